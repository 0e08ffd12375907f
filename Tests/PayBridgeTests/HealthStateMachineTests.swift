import Foundation
import Testing

@testable import PayBridge

@Suite struct EndpointHealthTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    let settings = BreakerSettings(failures: 3, minimumDuration: .seconds(60), openFor: .seconds(30))

    func health(disableAfter: Duration = .seconds(86400)) -> EndpointHealth {
        EndpointHealth(settings: settings, disableAfter: disableAfter)
    }

    @Test func aBriefBlipNeverOpensTheCircuit() {
        var health = health()
        for second in 0..<10 { #expect(health.record(success: false, now: t0 + Double(second)) == nil) }
        #expect(health.state == .closed)
        #expect(health.failures == 10)
        #expect(health.admits(now: t0 + 10, inFlight: 5).limit == Int.max)
    }

    /// A streak too short to open the circuit still ends with a success: nothing is kept for the
    /// next failure (after a restart, too) to measure `disableAfter` from.
    @Test func aSuccessEndsAShortStreakToo() {
        var health = health(disableAfter: .seconds(120))
        _ = health.record(success: false, now: t0)
        #expect(health.record(success: true, now: t0 + 6) == .closed(failingSince: t0))
        #expect(health.failingSince == nil)
        #expect(health.record(success: false, now: t0 + 300) == nil, "a new streak, not disabled")
        #expect(health.failingSince == t0 + 300)
        #expect(health.record(success: true, now: t0 + 301) == .closed(failingSince: t0 + 300))
        #expect(health.record(success: true, now: t0 + 302) == nil, "no streak, nothing to end")
    }

    @Test func sustainedFailuresOpenThenAProbeClosesIt() {
        var health = health()
        _ = health.record(success: false, now: t0)
        _ = health.record(success: false, now: t0 + 30)
        #expect(health.record(success: false, now: t0 + 61) == .opened(until: t0 + 91, failures: 3))
        #expect(health.admits(now: t0 + 80, inFlight: 0).limit == 0)
        let probe = health.admits(now: t0 + 91, inFlight: 0)
        #expect(probe.limit == 1)
        #expect(probe.change == .halfOpened)
        #expect(health.admits(now: t0 + 91, inFlight: 1).limit == 0)  // one probe at a time
        #expect(health.record(success: true, now: t0 + 92) == .closed(failingSince: t0))
        #expect(health.state == .closed)
        #expect(health.failingSince == nil)
    }

    @Test func aFailedProbeReopensForLongerUpToACap() {
        var health = health()
        for offset in [0.0, 30, 61] { _ = health.record(success: false, now: t0 + offset) }
        var now = t0 + 61
        var waits: [TimeInterval] = []
        for _ in 0..<6 {
            guard case .open(let until) = health.state else { Issue.record("expected open"); return }
            now = until
            _ = health.admits(now: now, inFlight: 0)
            if case .opened(let next, _) = health.record(success: false, now: now) { waits.append(next.timeIntervalSince(now)) }
        }
        #expect(waits == [60, 120, 240, 300, 300, 300])
    }

    @Test func lateResultsWhileOpenChangeNothing() {
        var health = health()
        for offset in [0.0, 30, 61] { _ = health.record(success: false, now: t0 + offset) }
        let state = health.state
        #expect(health.record(success: false, now: t0 + 62) == nil)
        #expect(health.state == state)
    }

    @Test func goneDisablesAtOnce() {
        var health = health()
        #expect(health.record(success: false, gone: true, now: t0) == .disabled(reason: "the endpoint answered 410 Gone", failingSince: t0))
        #expect(health.isDisabled)
        #expect(health.admits(now: t0 + 1e6, inFlight: 0).limit == 0)
        #expect(health.record(success: true, now: t0 + 1) == nil)  // only an operator re-enables
        health.enable()
        #expect(health.state == .closed)
    }

    @Test func failingLongerThanDisableAfterDisables() {
        var health = health(disableAfter: .seconds(3600))
        _ = health.record(success: false, now: t0)
        _ = health.record(success: false, now: t0 + 10)
        #expect(health.record(success: false, now: t0 + 3599) == .opened(until: t0 + 3629, failures: 3))
        let change = health.record(success: false, now: t0 + 3600)
        #expect(change == .disabled(reason: "failing without a success since \(Timestamp.iso8601(t0))", failingSince: t0))
    }

    @Test func theFailureClockSurvivesARestart() {
        var health = EndpointHealth(settings: settings, disableAfter: .seconds(3600), record: EndpointRecord(failingSince: t0))
        let change = health.record(success: false, now: t0 + 3600)
        #expect(change == .disabled(reason: "failing without a success since \(Timestamp.iso8601(t0))", failingSince: t0))
        let disabled = EndpointHealth(settings: settings, disableAfter: .seconds(3600), record: EndpointRecord(disabledAt: t0, disabledReason: "x"))
        #expect(disabled.isDisabled)
    }
}

@Suite struct RateAndScheduleTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func theRateLimiterSpacesStarts() {
        var limiter = RateLimiter(perSecond: 4)
        var starts: [Date] = []
        var now = t0
        while starts.count < 9 {
            if limiter.allows(now: now) {
                limiter.take(now: now)
                starts.append(now)
            }
            now += 0.01
        }
        for (index, start) in starts.enumerated() {
            let window = starts.filter { $0 >= start && $0 < start + 1 }
            #expect(window.count <= 4, "window from start \(index)")
        }
        // Spacing is measured from actual starts: never closer than 1/rate, at worst a tick later.
        let span = starts[8].timeIntervalSince(starts[0])
        #expect(span >= 2 - 1e-6 && span < 2.1)
    }

    @Test func pollsBackOffAndRecover() {
        #expect(PollSchedule.delay(every: .seconds(15), failures: 0, maxBackoff: .seconds(300)) == .seconds(15))
        #expect(PollSchedule.delay(every: .seconds(15), failures: 1, maxBackoff: .seconds(300)) == .seconds(30))
        #expect(PollSchedule.delay(every: .seconds(15), failures: 3, maxBackoff: .seconds(300)) == .seconds(120))
        #expect(PollSchedule.delay(every: .seconds(15), failures: 40, maxBackoff: .seconds(300)) == .seconds(300))
        #expect(PollSchedule.delay(every: .seconds(600), failures: 2, maxBackoff: .seconds(300)) == .seconds(600))
    }

    @Test func theSourceIsAnnouncedUnavailableOnceThenRecovered() {
        var health = SourceHealth(record: SourceRecord(), threshold: .seconds(300))
        #expect(health.pollFailed(now: t0) == (nil, true))
        #expect(health.pollFailed(now: t0 + 299) == (nil, false))
        let announced = health.pollFailed(now: t0 + 300)
        #expect(announced.change == .unavailable(since: t0))
        #expect(health.pollFailed(now: t0 + 900).change == nil)
        #expect(health.pollSucceeded(now: t0 + 1000).change == .recovered(since: t0))
        #expect(health.record == SourceRecord(failingSince: nil, announcedAt: nil, sequence: 2))
        // A short outage is silent both ways.
        _ = health.pollFailed(now: t0 + 2000)
        #expect(health.pollSucceeded(now: t0 + 2010) == (nil, true))
    }
}
