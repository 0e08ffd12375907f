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

        // Another that stays Rejected: 30 days after its last change it is asked for one last
        // time, then no more, with a line.
        let old = harness.bank.bank.createPayment(amount: 20, status: "Rejected")
        let askedForOld = { harness.bank.paymentRequests.filter { $0.path == "/api/v1/payments/singles/\(old)" }.count }
        _ = try await poll()  // a member
        try clock.advance(by: 31 * 86400)
        let before30 = askedForOld()
        let forgetting = try await poll()
        #expect(askedForOld() == before30 + 1, "asked for one last time")
        #expect(forgetting.stderr.contains("asked for one last time: no longer looked up"), "\(forgetting.stderr)")
        #expect(forgetting.stderr.contains(old))
        try clock.advance(by: 3600)
        _ = try await poll()
        #expect(askedForOld() == before30 + 1, "never asked for again")
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
        let decide = { (age: TimeInterval, gap: TimeInterval, horizon: TimeInterval?) in
            ExitCheck.decide(paymentId: "p", lastChange: base, now: base + age, previousPoll: base + age - gap, horizon: horizon)
        }
        // No previous poll, or no known change: ask.
        #expect(ExitCheck.decide(paymentId: "p", lastChange: nil, now: base, previousPoll: base - 15, horizon: nil) == .lookUp)
        #expect(ExitCheck.decide(paymentId: "p", lastChange: base, now: base, previousPoll: nil, horizon: nil) == .lookUp)
        // A change less than 5 minutes old: every poll.
        #expect(decide(200, 15, nil) == .lookUp)
        // Past the horizon (a LastChangedTimestampFrom watch): one last look-up; without one, never.
        #expect(decide(31 * 86400, 15, ExitCheck.horizon) == .lastLookUp)
        #expect(decide(31 * 86400, 900, nil) == .lookUp)
    }

    /// Polls every 15 s over a day of ages: an exit at any moment is caught within its period
    /// (at most 15 minutes) and one poll, and the look-ups are about a tenth as many as polls.
    @Test func anExitIsCaughtWithinItsPeriodAtEveryAge() {
        let lastChange = Date(timeIntervalSince1970: 1_800_000_000)
        for paymentId in ["a", "0b9f2c", "f00d-beef"] {
            var lookups: [TimeInterval] = []
            var previous = lastChange
            var age: TimeInterval = 15
            while age < 86400 {
                let now = lastChange + age
                if ExitCheck.decide(paymentId: paymentId, lastChange: lastChange, now: now, previousPoll: previous, horizon: ExitCheck.horizon) == .lookUp {
                    lookups.append(age)
                }
                previous = now
                age += 15
            }
            var longest: TimeInterval = 0
            for (earlier, later) in zip(lookups, lookups.dropFirst()) {
                let allowed = (ExitCheck.periods.last { $0 <= later / 10 } ?? 0) + 15
                #expect(later - earlier <= allowed, "\(paymentId): \(later - earlier) s between look-ups at age \(later) s")
                longest = max(longest, later - earlier)
            }
            #expect(longest <= 915)
            #expect(lookups.count < 86400 / 15 / 5, "\(lookups.count) look-ups in a day")
        }
    }
}
