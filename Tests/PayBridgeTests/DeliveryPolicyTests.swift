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

    @Test func retryAfterIsHonouredOn429And503Only() {
        let busy = AttemptResult.response(status: 503, retryAfter: "120", excerpt: "")
        #expect(DeliveryPolicy.next(after: busy, attempt: 1, schedule: schedule, now: now, random: 0.5) == .retry(at: now.addingTimeInterval(120)))
        let limited = AttemptResult.response(status: 429, retryAfter: "Wed, 15 Jan 2027 08:00:00 GMT", excerpt: "")
        let date = RetryAfter.parse("Wed, 15 Jan 2027 08:00:00 GMT", now: now)
        #expect(date != nil)
        if case .retry(let at) = DeliveryPolicy.next(after: limited, attempt: 1, schedule: schedule, now: now, random: 0.5) {
            #expect(abs(at.timeIntervalSince(now) - (date?.seconds ?? 0)) < 1)
        } else {
            Issue.record("expected a retry")
        }
        let other = AttemptResult.response(status: 500, retryAfter: "120", excerpt: "")
        #expect(DeliveryPolicy.next(after: other, attempt: 1, schedule: schedule, now: now, random: 0.5) == .retry(at: now.addingTimeInterval(5)))
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
    }
}
