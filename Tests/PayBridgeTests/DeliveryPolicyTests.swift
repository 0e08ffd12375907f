import Foundation
import Testing

@testable import PayBridge

@Suite struct DeliveryPolicyTests {
    let schedule = RetrySchedule(waits: [.seconds(5), .seconds(300)], jitter: 0.1)
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func twoHundredsAreDelivered() {
        for status in [200, 201, 204, 299] {
            #expect(DeliveryPolicy.next(after: .response(status: status, retryAfter: nil, excerpt: ""), attempt: 1, schedule: schedule, now: now, random: 0.5) == .delivered)
        }
    }

    @Test func failuresFollowTheScheduleWithJitterThenDie() {
        let failure = AttemptResult.response(status: 500, retryAfter: nil, excerpt: "boom")
        #expect(DeliveryPolicy.next(after: failure, attempt: 1, schedule: schedule, now: now, random: 0.5) == .retry(at: now.addingTimeInterval(5)))
        #expect(DeliveryPolicy.next(after: failure, attempt: 1, schedule: schedule, now: now, random: 0) == .retry(at: now.addingTimeInterval(4.5)))
        #expect(DeliveryPolicy.next(after: failure, attempt: 2, schedule: schedule, now: now, random: 0.5) == .retry(at: now.addingTimeInterval(300)))
        #expect(DeliveryPolicy.next(after: failure, attempt: 3, schedule: schedule, now: now, random: 0.5) == .dead)
        #expect(DeliveryPolicy.next(after: .failure(.timedOut("x")), attempt: 3, schedule: schedule, now: now, random: 0.5) == .dead)
    }

    @Test func emptyScheduleDeadLettersAtOnce() {
        #expect(DeliveryPolicy.next(after: .failure(.connectionFailed("refused")), attempt: 1, schedule: RetrySchedule(waits: []), now: now, random: 0.5) == .dead)
    }

    /// The three HTTP date forms RFC 9110 has a recipient read, read without DateFormatter
    /// (which leaked on some inputs: found by `scripts/fuzz headers`); anything else is nil.
    @Test func retryAfterReadsEveryHTTPDateForm() {
        let base = Date(timeIntervalSince1970: 784_111_700)  // 1994-11-06 08:48:20 UTC
        for text in ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"] {
            #expect(RetryAfter.parse(text, now: base) == .seconds(77), "\(text)")
        }
        #expect(RetryAfter.parse("Wed, 15 Jan 2027 08:00:00 GMT", now: Date(timeIntervalSince1970: 1_800_000_000)) == .seconds(0))
        #expect(RetryAfter.parse("Thu, 01 Jan 1970 00:01:00 GMT", now: Date(timeIntervalSince1970: 0)) == .seconds(60))
        for garbage in ["Sun, 32 Nov 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:49:37 CET", "Sun, 06 Nov 99999 08:49:37 GMT", "soon", "-5 5", "1e3", "Sun, 06 Nov 1994 08:49 GMT"]
        {
            #expect(RetryAfter.parse(garbage, now: base) == nil, "\(garbage)")
        }
        #expect(RetryAfter.parse("-5", now: base) == nil, "not a Retry-After (RFC 9110: non-negative)")
    }

    /// The bank's client: a Retry-After is honoured up to a minute, and one of now keeps the
    /// exponential backoff rather than spending the few retries at once.
    @Test func theBankClientsBackoffTakesRetryAfterOnlyForLater() {
        let base = Duration.milliseconds(500)
        #expect(BankingCircleClient.backoff(attempt: 1, base: base, retryAfter: .seconds(7), random: 0.5) == .seconds(7))
        #expect(BankingCircleClient.backoff(attempt: 1, base: base, retryAfter: .seconds(600), random: 0.5) == .seconds(60))
        #expect(BankingCircleClient.backoff(attempt: 2, base: base, retryAfter: .zero, random: 0.5) == .seconds(1))
        #expect(BankingCircleClient.backoff(attempt: 2, base: base, retryAfter: nil, random: 0.5) == .seconds(1))
    }

    @Test func retryAfterIsHonouredOn429And503Only() {
        let busy = AttemptResult.response(status: 503, retryAfter: "120", excerpt: "")
        #expect(DeliveryPolicy.next(after: busy, attempt: 1, schedule: schedule, now: now, random: 0.5) == .retry(at: now.addingTimeInterval(120)))
        let limited = AttemptResult.response(status: 429, retryAfter: "Wed, 15 Jan 2027 08:10:00 GMT", excerpt: "")
        let date = RetryAfter.parse("Wed, 15 Jan 2027 08:10:00 GMT", now: now)
        #expect(date != nil)
        if case .retry(let at) = DeliveryPolicy.next(after: limited, attempt: 1, schedule: schedule, now: now, random: 0.5) {
            #expect(abs(at.timeIntervalSince(now) - (date?.seconds ?? 0)) < 1)
        } else {
            Issue.record("expected a retry")
        }
        let other = AttemptResult.response(status: 500, retryAfter: "120", excerpt: "")
        #expect(DeliveryPolicy.next(after: other, attempt: 1, schedule: schedule, now: now, random: 0.5) == .retry(at: now.addingTimeInterval(5)))
        // Now, or a time already past, would spend every retry at once: the schedule stands.
        for now in ["0", "-1", "Thu, 01 Jan 1970 00:00:00 GMT"] {
            let hurry = AttemptResult.response(status: 429, retryAfter: now, excerpt: "")
            #expect(DeliveryPolicy.next(after: hurry, attempt: 1, schedule: schedule, now: self.now, random: 0.5) == .retry(at: self.now.addingTimeInterval(5)), "\(now)")
        }
        let absurd = AttemptResult.response(status: 503, retryAfter: "99999999", excerpt: "")
        #expect(DeliveryPolicy.next(after: absurd, attempt: 1, schedule: schedule, now: now, random: 0.5) == .retry(at: now.addingTimeInterval(86400)))
    }

    @Test func durationsParse() {
        #expect(DurationText.parse("250ms") == .milliseconds(250))
        #expect(DurationText.parse("30s") == .seconds(30))
        #expect(DurationText.parse("5m") == .seconds(300))
        #expect(DurationText.parse("1h30m") == .seconds(5400))
        #expect(DurationText.parse("1d") == .seconds(86400))
        #expect(DurationText.parse("10") == nil)
        #expect(DurationText.parse("3x") == nil)
        #expect(DurationText.parse("") == nil)
        #expect(DurationText.parse("36500d") == DurationText.longest)
        // Found by fuzzing (scripts/fuzz config): this trapped converting to Int64 milliseconds.
        #expect(DurationText.parse("99999999999999999999d") == nil)
        #expect(DurationText.parse("36500d1ms") == nil)
        #expect(DurationText.parse("1e400s") == nil)
    }
}
