import Foundation
import ServiceLifecycle
import Testing

@testable import PayBridge

/// `run`'s timers wait on the bridge's clock: a test moves the clock, never sleeps it out.
@Suite struct RuntimeClockTests {
    @Test func aWatchPollsAgainWhenTheClockPassesItsInterval() async throws {
        let time = ManualClock(Date())
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let ids = harness.createPayments(1)
        let config = Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: receiver.url))
            .replacingOccurrences(of: "every: 1s", with: "every: 1h")
        let bridge = try await harness.bridge(config, clock: time.clock)
        let group = ServiceGroup(services: bridge.services(), logger: Fixtures.quietLogger)
        let running = Task { try await group.run() }

        // The first poll (the baseline) goes out at once; the next waits an hour on the clock.
        let pages = { harness.bank.paymentRequests.count }
        #expect(await eventually { pages() >= 1 })
        // Asleep for the hour: the watch until its next poll, retention until its next pass.
        #expect(await eventually { time.deadlines.filter { $0.timeIntervalSince(time.now) >= 3600 }.count >= 2 })
        let afterBaseline = pages()
        harness.bank.bank.setStatus(ids[0], "Rejected")
        time.advance(by: 3600)
        #expect(await eventually { pages() > afterBaseline })
        #expect(await receiver.waitFor(count: 1))
        #expect(receiver.requests.first?.status == "Rejected")

        await group.triggerGracefulShutdown()
        try await running.value
        bridge.close()
        await receiver.stop()
        await harness.stop()
    }

    /// Waits (up to 20 s, checking every 10 ms) until `condition` holds.
    private func eventually(_ condition: () -> Bool) async -> Bool {
        for _ in 0..<2000 {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }
}
