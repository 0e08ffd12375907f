import Foundation
import Sandbox
import Testing

@testable import PayBridge

/// A test bank, receivers and a state folder, with helpers to build bridges over them.
struct Harness {
    let bank: TestBank
    let directory: TemporaryDirectory
    let backend: Backend
    /// The state: a folder (SQLite) or a database URL (PostgreSQL), as configs name it.
    let state: String

    static func start(
        _ options: SandboxOptions = SandboxOptions(processingDelay: .seconds(3600)), backend: Backend = .sqlite,
        clock: BinaryClock? = nil
    ) async throws -> Harness {
        let directory = try TemporaryDirectory()
        let state = try await backend.freshState(in: directory)
        let now: @Sendable () -> Date
        if let clock { now = { clock.now() } } else { now = { Date() } }
        let bank = try await TestBank.start(options, now: now)
        return Harness(bank: bank, directory: directory, backend: backend, state: state)
    }

    /// The SQLite state folder (tests that look at its files).
    var statePath: String { directory.file("state") }

    /// The state as the CLI's reading commands open it.
    func openStore() async throws -> any Store & Coordination { try await Backend.open(state) }

    /// Waits until a running paybridge has committed `watch`'s baseline (read from the state,
    /// as an operator's command would), so a change made after this is an event, not part of
    /// the silent baseline — however slow the machine.
    func waitForBaseline(watch: String = "recent", state: String? = nil, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let store = try? await Backend.open(state ?? self.state) {
                defer { store.close() }
                if (try? await store.watchRecord(name: watch))??.baselinedAt != nil { return }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("no baseline of watch '\(watch)' within \(timeout)")
    }

    func bridge(_ text: String, clock: WallClock = .system) async throws -> Bridge {
        try await Bridge(configuration: try Fixtures.load(text, in: directory), logger: Fixtures.quietLogger, clock: clock)
    }

    /// Creates `count` payments in PendingProcessing (they stay there until told otherwise).
    func createPayments(_ count: Int, amount: Double = 100) -> [String] {
        (0..<count).map { index in bank.bank.createPayment(amount: amount + Double(index), status: "PendingProcessing") }
    }

    func stop() async { await bank.stop() }
}

extension TestReceiver.Received {
    /// The bytes of `data.payment`, exactly as sent.
    var rawPayment: String {
        let text = String(decoding: body, as: UTF8.self)
        guard let start = text.range(of: ",\"payment\":") else { return "" }
        return String(text[start.upperBound...].dropLast(2))
    }
}

extension Bridge {
    /// Attempts what is due now without polling.
    func deliverDue() async {
        await deliverDue(by: clock.now())
    }
}

/// The common setup: a bank with `payments` pending payments, one receiver, and a bridge
/// whose endpoint `erp` delivers to it.
struct Scenario {
    let harness: Harness
    let receiver: TestReceiver
    let bridge: Bridge
    let ids: [String]

    var bank: SandboxBank { harness.bank.bank }

    static func start(
        payments: Int, pageSize: Int = 1000, watches: String = Fixtures.defaultWatch, retry: String = "[100ms, 100ms]",
        concurrency: Int = 8, options: SandboxOptions = SandboxOptions(processingDelay: .seconds(3600)), backend: Backend = .sqlite,
        clock: WallClock = .system, bankClock: BinaryClock? = nil, responder: @escaping TestReceiver.Responder = { _, _ in .ok }
    ) async throws -> Scenario {
        let harness = try await Harness.start(options, backend: backend, clock: bankClock)
        let receiver = try await TestReceiver.start(responder: responder)
        let ids = harness.createPayments(payments)
        let bridge = try await harness.bridge(
            Fixtures.config(
                bankURL: harness.bank.url, state: harness.state, watches: watches, pageSize: pageSize,
                endpoints: Fixtures.endpoint("erp", url: receiver.url, retry: retry, concurrency: concurrency)),
            clock: clock)
        return Scenario(harness: harness, receiver: receiver, bridge: bridge, ids: ids)
    }

    func stop() async {
        bridge.close()
        await receiver.stop()
        await harness.stop()
    }
}
