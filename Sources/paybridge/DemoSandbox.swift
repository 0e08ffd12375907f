import Foundation
import Logging
import PayBridge
import Sandbox
import ServiceLifecycle

/// The sandbox bank run inside the process, for `kind: sandbox` without an `apiURL` and for
/// the demo.
struct DemoSandbox {
    let apiURL: String
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    /// The demo: the sandbox, a watch every 10 s, the sandbox's notifications on a free
    /// loopback port (most changes arrive by notification first, and their lines say so), a
    /// console endpoint, state in a fresh folder.
    static func demoConfiguration() throws -> Configuration {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("paybridge-demo-\(UUID().uuidString.prefix(8))")
        let port = try freePort()
        // A key for this run only (the sandbox encrypts with it; nothing outside sees it).
        let key = (0..<32).map { _ in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".randomElement() ?? "a" }
        let text = """
            source:
              kind: sandbox
              notifications:
                listen: 127.0.0.1:\(port)
                publicURL: http://127.0.0.1:\(port)/bc/notifications
                key: \(String(key))
                checkEvery: 1m
              watches:
                - name: recent
                  every: 10s
                  query:
                    InstructedDateFrom: -1d
            state:
              path: \(folder.path)
            endpoints:
              console:
                kind: console
            routes:
              - to: [console]
            """
        return try ConfigLoader.load(text: text, file: "<demo>", baseDirectory: folder.path).configuration
    }

    static func startIfNeeded(for configuration: Configuration, logger: Logger, demo: Bool = false) async throws -> DemoSandbox? {
        guard configuration.source.kind == .sandbox, configuration.source.apiURL == nil else { return nil }
        // With `source.signing`, the in-process bank checks every signature as the real one would.
        let signature = try configuration.source.signing.map { signing in
            try SignatureRequirement(
                certificateDER: Array(Data(base64Encoded: signing.certificateBase64) ?? Data()), psuId: signing.psuId)
        }
        let options = SandboxOptions(
            username: configuration.source.username.value, password: configuration.source.password.value,
            // The demo's first event within about 3 s of the start: a payment arrives every 2 s
            // and is decided a second later.
            processingDelay: .seconds(demo ? 1 : 4), initialPayments: demo ? 20 : 0, newPaymentEvery: demo ? .seconds(2) : nil,
            seed: UInt64(Date().timeIntervalSince1970 * 1000), signature: signature,
            // The demo's listener starts after it subscribes: a first push that finds it not yet
            // listening is tried again in 1.5 s, not 15.
            notificationRetryScale: demo ? 0.1 : 1)
        let bank = SandboxBank(options: options)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let server = SandboxServer.application(bank: bank, port: 0) { port in
            continuation.yield(port)
            continuation.finish()
        }
        // A group of its own, so stopping it is a graceful shutdown rather than a cancellation.
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [ServiceGroupConfiguration.ServiceConfiguration(service: server)], logger: logger))
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw CancellationError() }
        let url = "http://127.0.0.1:\(port)"
        logger.info("in-process sandbox bank listening", metadata: ["url": "\(url)"])
        return DemoSandbox(apiURL: url, group: group, task: task)
    }

    /// Subscribes the demo's listener to the in-process sandbox's notifications.
    func subscribe(_ configuration: Configuration, logger: Logger) async {
        do {
            let setup = try SubscriptionSetup(source: configuration.source, apiURL: apiURL, logger: logger)
            let subscribed = try await setup.subscribe()
            logger.info(
                "subscribed to the sandbox's notifications: changes arrive by notification, the poll reconciles",
                metadata: ["subscription": "\(subscribed.subscription.id)", "events": "\(subscribed.subscription.events.map(\.eventType).joined(separator: ","))"])
        } catch {
            logger.warning("cannot subscribe to the sandbox's notifications; polling only", metadata: ["error": "\(error)"])
        }
    }

    /// A loopback port free now (bound, read and closed).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard fd >= 0, bound == 0 else { throw CommandError("cannot find a free port for the demo's notifications") }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = await task.result
    }
}
