import Foundation
import Logging
import Sandbox
import ServiceLifecycle

/// The sandbox bank served on an ephemeral port for one test.
struct TestBank {
    let bank: SandboxBank
    let url: String
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    static func start(_ options: SandboxOptions = SandboxOptions(processingDelay: .seconds(3600))) async throws -> TestBank {
        let bank = SandboxBank(options: options)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "test-bank")
        logger.logLevel = .critical
        let app = SandboxServer.application(bank: bank, port: 0, logger: logger) { port in
            continuation.yield(port)
            continuation.finish()
        }
        let group = ServiceGroup(configuration: .init(services: [.init(service: app)], logger: logger))
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        let port = await iterator.next() ?? 0
        return TestBank(bank: bank, url: "http://127.0.0.1:\(port)", group: group, task: task)
    }

    /// Requests for the payments API (not the authorize call).
    var paymentRequests: [SandboxRequest] { bank.requests.filter { $0.path.hasPrefix("/api/v1/payments") } }
    var authorizeRequests: [SandboxRequest] { bank.requests.filter { $0.path.hasSuffix("/authorize") } }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = await task.result
    }
}
