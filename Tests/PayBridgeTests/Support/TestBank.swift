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

    static func start(
        _ options: SandboxOptions = SandboxOptions(processingDelay: .seconds(3600)), now: @escaping @Sendable () -> Date = Date.init
    ) async throws -> TestBank {
        let bank = SandboxBank(options: options, now: now)
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

    /// Waits until the payments API has answered `count` more requests than now: a running
    /// `paybridge` has gone round its loop that many times (what a test waits for before it
    /// says nothing more arrived). False on timeout.
    func waitForPolls(_ count: Int, timeout: Duration = .seconds(20)) async -> Bool {
        let target = paymentRequests.count + count
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if paymentRequests.count >= target { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    /// Requests for the payments API (not the authorize call).
    var paymentRequests: [SandboxRequest] { bank.requests.filter { $0.path.hasPrefix("/api/v1/payments") } }
    var authorizeRequests: [SandboxRequest] { bank.requests.filter { $0.path.hasSuffix("/authorize") } }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = await task.result
    }
}
