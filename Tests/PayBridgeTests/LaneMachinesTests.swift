import Foundation
import Testing

@testable import PayBridge

/// The lane's small machines, input by input: what each answers, with no queue behind them.
struct GroupClockTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func anUngroupedEndpointNeverReadsOrFlushes() {
        var clock = GroupClock(grouped: false)
        #expect(clock.next(now: now, dueBy: now) == nil)
        clock.invalidate()
        clock.owned(true)
        #expect(clock.state == .off)
        #expect(clock.next(now: now, dueBy: now.addingTimeInterval(3600)) == nil)
    }

    @Test func readsTheScheduleThenFlushesWhenTheMessageIsDue() {
        var clock = GroupClock(grouped: true)
        #expect(clock.next(now: now, dueBy: now) == .read)
        #expect(clock.isBusy)
        #expect(clock.next(now: now, dueBy: now) == nil, "one read at a time")
        let due = now.addingTimeInterval(30)
        clock.answered(next: due)
        #expect(clock.state == .known(next: due))
        #expect(clock.next(now: now, dueBy: now) == nil)
        #expect(clock.wake(after: now) == due)
        #expect(clock.next(now: due, dueBy: due) == .flush(dueBy: due))
        #expect(clock.wake(after: due) == nil, "the flush's answer wakes the loop, not a time")
        clock.answered(next: nil)
        #expect(clock.state == .known(next: nil))
        #expect(clock.next(now: due.addingTimeInterval(3600), dueBy: due.addingTimeInterval(3600)) == nil)
    }

    @Test func aDrainFlushesWhatIsDueByItsCutoff() {
        var clock = GroupClock(grouped: true)
        _ = clock.next(now: now, dueBy: now)
        clock.answered(next: now.addingTimeInterval(30))
        let cutoff = now.addingTimeInterval(60)
        #expect(clock.next(now: now, dueBy: cutoff) == .flush(dueBy: cutoff))
    }

    @Test func aChangeDuringAReadIsReadAgainAfterIt() {
        var clock = GroupClock(grouped: true)
        #expect(clock.next(now: now, dueBy: now) == .read)
        clock.invalidate()  // new events committed while the read was under way
        clock.answered(next: nil)
        #expect(clock.state == .stale)
        #expect(clock.next(now: now, dueBy: now) == .read)
    }

    @Test func aChangeDuringAFlushIsReadAgainAfterIt() {
        var clock = GroupClock(grouped: true)
        _ = clock.next(now: now, dueBy: now)
        clock.answered(next: now)
        #expect(clock.next(now: now, dueBy: now) == .flush(dueBy: now))
        clock.invalidate()
        #expect(clock.state == .flushing(staleAgain: true))
        clock.answered(next: now.addingTimeInterval(30))
        #expect(clock.next(now: now, dueBy: now) == .read)
    }

    @Test func aFailedReadIsTriedAgainAtItsTimeInARunAndGivenUpInADrain() {
        var run = GroupClock(grouped: true)
        _ = run.next(now: now, dueBy: now)
        let retry = now.addingTimeInterval(1)
        run.failed(retryAt: retry)
        #expect(run.next(now: now, dueBy: now) == nil, "not again at once")
        #expect(run.wake(after: now) == retry)
        #expect(run.next(now: retry, dueBy: retry) == .read)

        var drain = GroupClock(grouped: true)
        _ = drain.next(now: now, dueBy: now)
        drain.failed(retryAt: nil)
        #expect(drain.state == .known(next: nil))
        #expect(!drain.isBusy)
    }

    @Test func losingTheLeaseStopsItAndTakingItReadsAfresh() {
        var clock = GroupClock(grouped: true)
        _ = clock.next(now: now, dueBy: now)
        clock.answered(next: now)
        clock.owned(false)
        #expect(clock.state == .off)
        #expect(clock.next(now: now, dueBy: now) == nil)
        clock.owned(true)
        #expect(clock.next(now: now, dueBy: now) == .read)
        // A lease moving while a flush is under way: its answer comes first, then a read.
        clock.answered(next: now)
        #expect(clock.next(now: now, dueBy: now) == .flush(dueBy: now))
        clock.owned(false)
        #expect(clock.isBusy)
        clock.answered(next: nil)
        #expect(clock.state == .stale)
    }

    @Test func aRunBeginsWithARead() {
        var clock = GroupClock(grouped: true)
        _ = clock.next(now: now, dueBy: now)
        clock.answered(next: nil)
        clock.begin()
        #expect(clock.next(now: now, dueBy: now) == .read)
    }
}

struct LaneOwnershipTests {
    @Test func aLeaseTakenOrLostChangesTheLaneOnce() {
        var ownership = LaneOwnership.elsewhere
        #expect(ownership.lease(held: false) == nil)
        #expect(ownership.lease(held: true) == .takenOver)
        #expect(ownership.lease(held: true) == nil, "renewed: nothing to do")
        #expect(ownership.lease(held: false) == .released)
        #expect(ownership == .elsewhere)
    }
}

struct QueueCursorTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func delivery(_ id: Int64) -> QueuedDelivery {
        QueuedDelivery(
            id: id, eventId: "evt_\(id)", eventType: "payment.status_changed", endpoint: "erp", subject: "payment:\(id)", sequence: 1,
            attempts: 0, createdAt: now, body: [])
    }

    @Test func readsOnlyWhenAttemptsMayStartAndSomethingMayBeDue() {
        var queue = QueueCursor()
        #expect(queue.refill(now: now, dueBy: now, free: 4) == nil, "nothing says to look")
        queue.look(at: now)
        #expect(queue.refill(now: now, dueBy: now, free: 0) == nil, "no attempt may start")
        #expect(queue.refill(now: now, dueBy: now, free: 4) == QueueCursor.Refill(askNextDue: true))
        #expect(queue.state == .refilling)
        #expect(queue.refill(now: now, dueBy: now, free: 4) == nil, "one read at a time")
    }

    @Test func anExhaustedReadKeepsTheNextDueTimeAndReadsAgainThen() {
        var queue = QueueCursor()
        queue.look(at: now)
        _ = queue.refill(now: now, dueBy: now, free: 1)
        let later = now.addingTimeInterval(10)
        queue.refilled([delivery(1)], exhausted: true, nextDue: later, now: now, known: { _ in false })
        #expect(queue.state == .idle)
        #expect(queue.lookAt == nil)
        #expect(queue.nextDue == later)
        #expect(queue.pop()?.id == 1)
        #expect(queue.refill(now: now, dueBy: now, free: 1) == nil)
        // Reading the known due time: the one after it is the store's to say.
        #expect(queue.refill(now: later, dueBy: later, free: 1) == QueueCursor.Refill(askNextDue: true))
        #expect(queue.nextDue == nil)
    }

    @Test func aFullReadReadsOnAndAKnownNextDueIsNotAskedAgain() {
        var queue = QueueCursor()
        queue.look(at: now)
        _ = queue.refill(now: now, dueBy: now, free: 2)
        queue.refilled([delivery(1), delivery(2)], exhausted: false, nextDue: nil, now: now, known: { _ in false })
        #expect(queue.lookAt == now, "more is due")
        #expect(queue.refill(now: now, dueBy: now, free: 2) == nil, "two are ready for two free slots")
        _ = queue.pop()
        _ = queue.pop()
        #expect(queue.refill(now: now, dueBy: now, free: 2) == QueueCursor.Refill(askNextDue: true))
        queue.refilled([], exhausted: true, nextDue: now.addingTimeInterval(60), now: now, known: { _ in false })
        queue.retry(at: now.addingTimeInterval(5))
        #expect(queue.nextDue == now.addingTimeInterval(5), "a retry earlier than the known time")
        queue.look(at: now)
        #expect(queue.refill(now: now, dueBy: now, free: 1) == QueueCursor.Refill(askNextDue: false))
    }

    @Test func skipsDeliveriesAlreadyReadyStartedOrRecorded() {
        var queue = QueueCursor()
        queue.look(at: now)
        _ = queue.refill(now: now, dueBy: now, free: 8)
        queue.refilled([delivery(1), delivery(2)], exhausted: false, nextDue: nil, now: now, known: { _ in false })
        _ = queue.refill(now: now, dueBy: now, free: 8)
        queue.refilled([delivery(2), delivery(3), delivery(4)], exhausted: true, nextDue: nil, now: now, known: { $0 == 3 })
        #expect(queue.readyCount == 3)
        #expect([queue.pop(), queue.pop(), queue.pop()].map { $0?.id } == [1, 2, 4])
        #expect(queue.pop() == nil)
    }

    @Test func aFailedReadIsTriedAgainInARunAndGivenUpInADrain() {
        var run = QueueCursor()
        run.look(at: now)
        _ = run.refill(now: now, dueBy: now, free: 1)
        run.refillFailed(retryAt: now.addingTimeInterval(1))
        #expect(run.refill(now: now, dueBy: now, free: 1) == nil)
        #expect(run.refill(now: now.addingTimeInterval(1), dueBy: now.addingTimeInterval(1), free: 1) != nil)

        var drain = QueueCursor()
        drain.look(at: now)
        drain.retry(at: now)
        _ = drain.refill(now: now, dueBy: now, free: 1)
        drain.refillFailed(retryAt: nil)
        #expect(drain.lookAt == nil)
        #expect(drain.nextDue == nil)
        #expect(!drain.needsRefill(now: now, dueBy: now.addingTimeInterval(3600)))
    }

    @Test func aResetForgetsWhatWasRead() {
        var queue = QueueCursor()
        queue.look(at: now)
        _ = queue.refill(now: now, dueBy: now, free: 1)
        queue.refilled([delivery(1)], exhausted: true, nextDue: now.addingTimeInterval(9), now: now, known: { _ in false })
        queue.reset(lookAt: nil)
        #expect(queue.readyCount == 0)
        #expect(queue.nextDue == nil)
        #expect(!queue.needsRefill(now: now, dueBy: now.addingTimeInterval(3600)))
        queue.begin(now: now)
        #expect(queue.refill(now: now, dueBy: now, free: 1) == QueueCursor.Refill(askNextDue: true))
    }
}
