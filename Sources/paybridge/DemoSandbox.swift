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

    /// The demo: the sandbox, a watch every 2 s, a console endpoint, state in a fresh folder.
    static func demoConfiguration() throws -> Configuration {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("paybridge-demo-\(UUID().uuidString.prefix(8))")
        let text = """
            source:
              kind: sandbox
              watches:
                - name: recent
                  every: 2s
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
            processingDelay: .seconds(4), initialPayments: demo ? 20 : 0, newPaymentEvery: demo ? .seconds(3) : nil,
            seed: UInt64(Date().timeIntervalSince1970 * 1000), signature: signature)
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

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = await task.result
    }
}
