import Foundation
import Sandbox
import Testing

@testable import PayBridge

/// A test bank, receivers and a state folder, with helpers to build bridges over them.
struct Harness {
    let bank: TestBank
    let directory: TemporaryDirectory

    static func start(_ options: SandboxOptions = SandboxOptions(processingDelay: .seconds(3600))) async throws -> Harness {
        Harness(bank: try await TestBank.start(options), directory: try TemporaryDirectory())
    }

    var statePath: String { directory.file("state") }

    func bridge(_ text: String) throws -> Bridge {
        try Bridge(configuration: try Fixtures.load(text, in: directory), logger: Fixtures.quietLogger)
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
        await dispatcher.run(.drain(dueBy: Date()))
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
        concurrency: Int = 8, options: SandboxOptions = SandboxOptions(processingDelay: .seconds(3600)),
        responder: @escaping TestReceiver.Responder = { _, _ in .ok }
    ) async throws -> Scenario {
        let harness = try await Harness.start(options)
        let receiver = try await TestReceiver.start(responder: responder)
        let ids = harness.createPayments(payments)
        let bridge = try harness.bridge(
            Fixtures.config(
                bankURL: harness.bank.url, state: harness.statePath, watches: watches, pageSize: pageSize,
                endpoints: Fixtures.endpoint("erp", url: receiver.url, retry: retry, concurrency: concurrency)))
        return Scenario(harness: harness, receiver: receiver, bridge: bridge, ids: ids)
    }

    func stop() async {
        bridge.close()
        await receiver.stop()
        await harness.stop()
    }
}
