import Foundation
import Testing

@testable import PayBridge

/// A status-filtered watch asks the bank for a payment that left it (§3: `Rejected ->
/// Processed` is not missed). One that left with its status still matching slid out of the
/// watch's window: it is asked for less often as its last change ages, and forgotten after 30
/// days, so the look-ups do not grow with every payment that ever matched.
@Suite struct WatchExitTests {
    static let watch = """
            - name: failures
              every: 15s
              query:
                Status: [Rejected, MissingFunding]
                LastChangedTimestampFrom: -2h
        """

    @Test func aPaymentThatSlidOutOfTheWindowIsAskedForLessOftenAndForgottenAfterThirtyDays() async throws {
        let clock = try BinaryClock()
        let harness = try await Harness.start(clock: clock)
        let receiver = try await TestReceiver.start()
        let stale = harness.bank.bank.createPayment(amount: 19, status: "Rejected")
        let path = try harness.directory.write(
            "pb.yaml",
            Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, watches: Self.watch, endpoints: Fixtures.endpoint("alerts", url: receiver.url)))
        let lookups = { harness.bank.paymentRequests.filter { $0.path == "/api/v1/payments/singles/\(stale)" }.count }
        let poll = { () async throws -> Binary.Output in
            let output = try await Binary.run(["poll", "--once", "--log-format", "json", "--config", path], environment: clock.environment)
            #expect(output.status == 0, "\(output.stderr)")
            return output
        }
        _ = try await poll()  // the baseline: a member

        // Three hours on, the window has slid past it: asked for once, still Rejected, kept.
        try clock.advance(by: 3 * 3600)
        _ = try await poll()
        #expect(lookups() == 1)
        // Polls 15 s apart: asked for again at most once in a quarter of an hour (every poll before).
        for _ in 0..<3 {
            try clock.advance(by: 15)
            _ = try await poll()
        }
        #expect(lookups() <= 2, "asked for \(lookups()) times")
        let before = lookups()
        try clock.advance(by: 16 * 60)
        _ = try await poll()
        #expect(lookups() == before + 1, "a quarter of an hour later it is asked for again")

        // Its exit is still caught.
        harness.bank.bank.setStatus(stale, "Processed")
        try clock.advance(by: 16 * 60)
        _ = try await poll()
        #expect(await receiver.waitFor(count: 1))
        #expect(receiver.requests.first?.status == "Processed")
        #expect(receiver.requests.first?.data["previousStatus"] as? String == "Rejected")
        #expect(receiver.requests.first?.data["watch"] as? String == "failures")

        // Another that stays Rejected: forgotten 30 days after its last change, with a line.
        let old = harness.bank.bank.createPayment(amount: 20, status: "Rejected")
        _ = try await poll()  // a member
        try clock.advance(by: 31 * 86400)
        let forgetting = try await poll()
        #expect(forgetting.stderr.contains("payment left the watch long after its last change: no longer looked up"), "\(forgetting.stderr)")
        #expect(forgetting.stderr.contains(old))
        let asked = harness.bank.paymentRequests.filter { $0.path == "/api/v1/payments/singles/\(old)" }.count
        try clock.advance(by: 3600)
        _ = try await poll()
        #expect(harness.bank.paymentRequests.filter { $0.path == "/api/v1/payments/singles/\(old)" }.count == asked, "never asked for again")
        await receiver.stop()
        await harness.stop()
    }

    /// The line about a member the bank no longer knows carries the look-up's request id.
    @Test func aMemberTheBankNoLongerKnowsIsLoggedWithItsRequestId() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let gone = harness.bank.bank.createPayment(amount: 19, status: "Rejected")
        let path = try harness.directory.write(
            "pb.yaml",
            Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, watches: Self.watch, endpoints: Fixtures.endpoint("alerts", url: receiver.url)))
        #expect(try await Binary.run(["poll", "--once", "--config", path]).status == 0)
        harness.bank.bank.removePayment(gone)
        let output = try await Binary.run(["poll", "--once", "--log-format", "json", "--config", path])
        #expect(output.status == 0, "\(output.stderr)")
        let line = output.stderr.split(separator: "\n").map { String($0) }.first { $0.contains("the bank no longer knows it") }
        let object = (try? JSONSerialization.jsonObject(with: Data((line ?? "").utf8))) as? [String: Any]
        let requestId = try #require(object?["requestId"] as? String, "\(output.stderr)")
        #expect(harness.bank.bank.requests.contains { $0.path == "/api/v1/payments/singles/\(gone)" && $0.headers["x-request-id"] == requestId })
        await receiver.stop()
        await harness.stop()
    }

    @Test func theLookUpMomentsFollowTheAgeOfTheLastChange() {
        let base = Date(timeIntervalSince1970: 1_800_000_000)
        // No previous poll, or no known change: ask.
        #expect(ExitCheck.decide(lastChange: nil, now: base, previousPoll: base) == .lookUp)
        #expect(ExitCheck.decide(lastChange: base, now: base, previousPoll: nil) == .lookUp)
        // A change a few seconds old: every poll.
        #expect(ExitCheck.decide(lastChange: base, now: base + 5, previousPoll: base + 4) == .lookUp)
        // A day old: every 15 minutes, at multiples of it.
        let period = 900.0
        let boundary = (base.timeIntervalSince1970 / period).rounded(.up) * period + 86400
        let justBefore = Date(timeIntervalSince1970: boundary - 1)
        #expect(ExitCheck.decide(lastChange: base, now: justBefore, previousPoll: justBefore - 10) == .later)
        #expect(ExitCheck.decide(lastChange: base, now: justBefore + 2, previousPoll: justBefore) == .lookUp)
        // An hour old: every 6 minutes.
        #expect(ExitCheck.decide(lastChange: base, now: base + 3600, previousPoll: base + 3600 - 361) == .lookUp)
        // Thirty days and more: forgotten.
        #expect(ExitCheck.decide(lastChange: base, now: base + 31 * 86400, previousPoll: base + 31 * 86400 - 15) == .forget)
    }
}
