import Foundation
import Testing

@testable import PayBridge

/// Drives the delivery state machine with a fixed clock and a table standing in for the
/// store: refills are answered from it and committed results change it, as SQLite would.
/// Nothing sleeps; time moves when a test says so.
struct MachineDriver {
    struct Row {
        var id: Int64
        var subject: String
        var sequence: Int
        var dueAt: Date
        var attempts = 0
        var state = DeliveryState.pending
    }

    var machine: DeliveryStateMachine
    var now: Date
    var rows: [Row] = []
    /// Every start, in order.
    var started: [QueuedDelivery] = []
    var inFlight: [Int64: QueuedDelivery] = [:]
    /// Results handed over and not committed yet.
    var uncommitted: [AttemptRecord] = []
    var committed: [AttemptRecord] = []
    var announcements: [DeliveryStateMachine.Announcement] = []
    var savedRecords: [EndpointRecord] = []
    var refills = 0
    /// Grouped lanes: when the store says the next group message is due, and what was flushed.
    var groupFlushAt: Date?
    var flushes = 0
    var groupMessages: [Int64] = []
    /// Answer `.flushGroups` only when `answerHeldFlushes` is called (as the dispatcher's
    /// flush task does, in a later turn).
    var holdsFlushes = false
    var heldFlushes: [Int] = []
    var wake: Date?
    var finished: Int?

    init(_ settings: [DeliveryLaneSettings], records: [String: EndpointRecord] = [:], now: Date = Date(timeIntervalSince1970: 1_800_000_000)) {
        machine = DeliveryStateMachine(lanes: settings, records: records)
        self.now = now
    }

    static func lane(
        retry: [Duration] = [.seconds(1), .seconds(2)], concurrency: Int = 4, rateLimit: Double? = nil,
        breaker: BreakerSettings = BreakerSettings(failures: 100, minimumDuration: .seconds(3600), openFor: .seconds(30))
    ) -> DeliveryLaneSettings {
        DeliveryLaneSettings(
            endpoint: "erp", concurrency: concurrency, retry: RetrySchedule(waits: retry, jitter: 0), breaker: breaker,
            rateLimit: rateLimit, refillLimit: 8)
    }

    /// Queues a delivery in the table (as the poller's commit would), due now unless told.
    mutating func queue(_ subject: String, sequence: Int = 1, dueAt: Date? = nil) -> Int64 {
        let id = Int64(rows.count + 1)
        rows.append(Row(id: id, subject: subject, sequence: sequence, dueAt: dueAt ?? now))
        return id
    }

    mutating func feed(_ inputs: DeliveryStateMachine.Input...) {
        var actions = machine.handle(inputs, now: now)
        var index = 0
        while index < actions.count {
            switch actions[index] {
            case .start(_, let delivery):
                started.append(delivery)
                inFlight[delivery.id] = delivery
            case .refill(let lane, let dueBy, let limit, let excluding, let askNextDue):
                refills += 1
                let answer = due(by: dueBy, limit: limit, excluding: excluding)
                let exhausted = answer.count < limit
                let next = exhausted && askNextDue ? rows.filter { $0.state == .pending && $0.dueAt > dueBy }.map(\.dueAt).min() : nil
                actions.append(contentsOf: machine.handle(.refilled(lane: lane, deliveries: answer, exhausted: exhausted, nextDue: next), now: now))
            case .record(let outcome):
                uncommitted.append(outcome.record)
            case .saveEndpointRecord(_, let record):
                savedRecords.append(record)
            case .readGroupSchedule(let lane):
                actions.append(contentsOf: machine.handle(.groupSchedule(lane: lane, next: groupFlushAt), now: now))
            case .flushGroups(let lane, _) where holdsFlushes:
                heldFlushes.append(lane)
            case .flushGroups(let lane, _):
                flushes += 1
                groupFlushAt = nil
                let id = queue("group")
                actions.append(contentsOf: machine.handle(.groupsFlushed(lane: lane, messages: 1, next: nil), now: now))
                groupMessages.append(id)
            case .announce(_, let announcement, _):
                announcements.append(announcement)
            case .wake(let date):
                wake = date
            case .finish(let abandoned):
                finished = abandoned
            }
            index += 1
        }
    }

    /// The held group flushes are answered: each queued one message.
    mutating func answerHeldFlushes() {
        let lanes = heldFlushes
        heldFlushes.removeAll()
        for lane in lanes {
            flushes += 1
            groupFlushAt = nil
            groupMessages.append(queue("group"))
            feed(.groupsFlushed(lane: lane, messages: 1, next: nil))
        }
    }

    /// What `SQL.dueDeliveries` answers: due, not excluded, no earlier pending delivery of the subject.
    func due(by date: Date, limit: Int, excluding: Set<Int64>) -> [QueuedDelivery] {
        let pending = rows.filter { $0.state == .pending }
        return pending.filter { row in
            row.dueAt <= date && !excluding.contains(row.id)
                && !pending.contains { $0.subject == row.subject && $0.sequence < row.sequence }
        }
        .sorted { ($0.dueAt, $0.id) < ($1.dueAt, $1.id) }
        .prefix(limit)
        .map {
            QueuedDelivery(
                id: $0.id, eventId: "evt_\($0.id)", eventType: "payment.status_changed", endpoint: "erp", subject: $0.subject,
                sequence: $0.sequence, attempts: $0.attempts, createdAt: now, body: [])
        }
    }

    /// The endpoint answers one attempt in flight.
    mutating func answer(_ id: Int64, status: Int, retryAfter: String? = nil, after seconds: TimeInterval = 0) {
        guard let delivery = inFlight.removeValue(forKey: id) else {
            Issue.record("delivery \(id) is not in flight")
            return
        }
        feed(
            .attemptFinished(
                DeliveryStateMachine.AttemptEnd(
                    lane: 0, delivery: delivery, startedAt: now, finishedAt: now.addingTimeInterval(seconds),
                    result: .response(status: status, retryAfter: retryAfter, excerpt: ""))))
    }

    /// The recorder commits what it holds.
    mutating func commit() {
        let records = uncommitted
        uncommitted.removeAll()
        for record in records {
            guard let index = rows.firstIndex(where: { $0.id == record.deliveryId }) else { continue }
            rows[index].attempts = record.attempt
            switch record.next {
            case .delivered: rows[index].state = .delivered
            case .dead: rows[index].state = .dead
            case .retry(let at): rows[index].dueAt = at
            }
        }
        committed += records
        feed(.resultsCommitted(DeliveryStateMachine.Commit(deliveryIds: records.map(\.deliveryId))))
    }

    /// Time passes to `date`; the deadline input is fed when one was asked for by then.
    mutating func advance(to date: Date) {
        now = date
        if let wake, wake <= date { feed(.deadline) }
    }

    mutating func advance(by seconds: TimeInterval) { advance(to: now.addingTimeInterval(seconds)) }

    var startedIds: [Int64] { started.map(\.id) }
}

@Suite struct DeliveryStateMachineTests {
    typealias Driver = MachineDriver

    /// A lane let go to another instance (§7) starts nothing more, and is settled — its lease
    /// may be deleted for the other to take — only once what it sent is answered and recorded.
    @Test func aLaneLetGoIsSettledOnceItsAttemptsAreRecorded() {
        var driver = Driver([Driver.lane()])
        let first = driver.queue("p1")
        let second = driver.queue("p2")
        driver.feed(.begin(.continuous))
        #expect(driver.startedIds == [first, second])
        #expect(!driver.machine.isSettled(lane: 0), "delivered here")
        let third = driver.queue("p3")
        driver.feed(.ownership(owned: [], records: [:]), .deliveriesQueued)
        #expect(!driver.machine.isSettled(lane: 0), "two attempts in flight")
        driver.answer(first, status: 200)
        driver.answer(second, status: 500)
        #expect(!driver.machine.isSettled(lane: 0), "answered, not recorded")
        driver.commit()
        driver.advance(by: 5)
        #expect(driver.machine.isSettled(lane: 0))
        #expect(!driver.startedIds.contains(third), "nothing new starts once let go")
        driver.feed(.ownership(owned: ["erp"], records: [:]))
        #expect(!driver.machine.isSettled(lane: 0), "taken back")
    }

    /// The statuses say an endpoint is settled only once the loop has published them after
    /// the last ownership posted: an older snapshot may predate the loop starting its attempts.
    @Test func settledEndpointsWaitForTheLastOwnershipToBePublished() {
        let settled = Dispatcher.EndpointStatus(name: "erp", state: .closed, failures: 0, failingSince: nil, inFlight: 0, settled: true)
        let inbox = DeliveryInbox(statuses: [settled])
        #expect(inbox.settledEndpoints == ["erp"])
        inbox.ownership(["erp"])
        inbox.ownership([])
        #expect(inbox.settledEndpoints.isEmpty, "the loop has not seen the posts")
        inbox.publish([settled], ownershipPost: 1)
        #expect(inbox.settledEndpoints.isEmpty, "nor the last one")
        let taken = inbox.take()
        #expect(taken.ownership == [] && taken.ownershipPost == 2)
        inbox.publish([settled], ownershipPost: taken.ownershipPost)
        #expect(inbox.settledEndpoints == ["erp"])
    }

    @Test func aRetryIsDueAtItsScheduledTimeAndNotBefore() {
        var driver = Driver([Driver.lane()])
        let id = driver.queue("p1")
        driver.feed(.begin(.continuous))
        #expect(driver.startedIds == [id])
        driver.answer(id, status: 500)
        #expect(driver.uncommitted.first?.next == .retry(at: driver.now + 1))
        driver.commit()
        // The machine owns the retry's timer: it asks to be woken at the due time.
        #expect(driver.wake == driver.now + 1)
        driver.advance(by: 0.5)
        #expect(driver.startedIds == [id])
        driver.advance(to: driver.wake ?? driver.now)
        #expect(driver.startedIds == [id, id])
        #expect(driver.started.last?.attempts == 1)
    }

    @Test func aRetryCommittedAfterItsDueTimeStartsOnTheCommit() {
        // The race of the old loop: the due time passed while the result was being committed.
        var driver = Driver([Driver.lane(retry: [.milliseconds(1)])])
        let id = driver.queue("p1")
        driver.feed(.begin(.continuous))
        driver.answer(id, status: 500)
        driver.advance(by: 0.5)
        #expect(driver.startedIds == [id], "not read again before its result is committed")
        driver.commit()
        #expect(driver.startedIds == [id, id])
    }

    @Test func retryAfterReplacesTheScheduledWait() {
        var driver = Driver([Driver.lane()])
        let id = driver.queue("p1")
        driver.feed(.begin(.continuous))
        driver.answer(id, status: 503, retryAfter: "7", after: 0)
        driver.commit()
        #expect(driver.wake == driver.now + 7)
        driver.advance(by: 1.5)
        #expect(driver.startedIds == [id], "the schedule's 1 s is overridden")
        driver.advance(by: 5.5)
        #expect(driver.startedIds == [id, id])
    }

    @Test func theLastFailureIsADeadLetterAndNothingMoreIsScheduled() {
        var driver = Driver([Driver.lane(retry: [.seconds(1)])])
        let id = driver.queue("p1")
        driver.feed(.begin(.continuous))
        driver.answer(id, status: 500, after: 0)
        driver.commit()
        driver.advance(by: 1)
        driver.answer(id, status: 500, after: 0)
        #expect(driver.uncommitted.first?.next == .dead)
        #expect(driver.uncommitted.first?.attempt == 2)
        driver.commit()
        driver.advance(by: 0.01)  // the successor look finds nothing
        #expect(driver.wake == nil, "no timer is left: nothing to do until an input")
        #expect(driver.rows[0].state == .dead)
    }

    @Test func aSuccessReleasesThePaymentsNextEvent() throws {
        var driver = Driver([Driver.lane()])
        let first = driver.queue("p1", sequence: 1)
        let second = driver.queue("p1", sequence: 2)
        driver.feed(.begin(.continuous))
        #expect(driver.startedIds == [first], "the later event waits behind the earlier one")
        driver.answer(first, status: 200)
        #expect(driver.startedIds == [first], "nor goes before the 2xx is committed")
        driver.commit()
        // Released by the commit, read after the refill spacing: an explicit deadline.
        let wake = try #require(driver.wake)
        #expect(wake.timeIntervalSince(driver.now) <= DeliveryStateMachine.successorRefillSpacing)
        driver.advance(to: wake)
        #expect(driver.startedIds == [first, second])
    }

    @Test func aDeadLetterReleasesThePaymentsNextEventToo() {
        var driver = Driver([Driver.lane(retry: [])])
        let first = driver.queue("p1", sequence: 1)
        let second = driver.queue("p1", sequence: 2)
        driver.feed(.begin(.continuous))
        driver.answer(first, status: 500)
        #expect(driver.uncommitted.first?.next == .dead)
        driver.commit()
        driver.advance(by: 0.01)
        #expect(driver.startedIds == [first, second])
    }

    @Test func differentPaymentsGoInParallelUpToTheConcurrency() {
        var driver = Driver([Driver.lane(concurrency: 2)])
        let ids = (1...5).map { driver.queue("p\($0)") }
        driver.feed(.begin(.continuous))
        #expect(driver.startedIds == Array(ids.prefix(2)))
        driver.answer(ids[0], status: 200)
        #expect(driver.startedIds == Array(ids.prefix(3)), "a finished attempt frees its slot at once")
        #expect(driver.machine.inFlightCount == 2)
    }

    @Test func theBreakerOpensProbesHalfOpenAndCloses() {
        let breaker = BreakerSettings(failures: 2, minimumDuration: .zero, openFor: .seconds(30))
        var driver = Driver([Driver.lane(retry: [.milliseconds(10), .milliseconds(10), .milliseconds(10)], concurrency: 1, breaker: breaker)])
        let id = driver.queue("p1")
        let other = driver.queue("p2")
        driver.feed(.begin(.continuous))
        driver.answer(id, status: 500, after: 0)
        driver.commit()
        driver.advance(by: 0.02)
        // p2 was due before p1's retry: it goes next, and fails too.
        #expect(driver.startedIds == [id, other])
        driver.answer(other, status: 500, after: 0)
        #expect(driver.announcements.contains(.opened(until: driver.now + 30, failures: 2)))
        #expect(driver.savedRecords.last?.failingSince != nil)
        driver.commit()
        // Open: nothing starts; the probe's time is the next deadline.
        driver.advance(by: 1)
        #expect(driver.startedIds.count == 2)
        #expect(driver.wake == driver.now + 29)
        driver.advance(by: 29)
        #expect(driver.announcements.last == .halfOpened)
        #expect(driver.startedIds.count == 3, "one probe")
        let probe = driver.startedIds[2]
        driver.answer(probe, status: 200)
        #expect(driver.announcements.contains { if case .recovered = $0 { return true } else { return false } })
        #expect(driver.savedRecords.last == EndpointRecord())
        driver.commit()
        driver.advance(by: 0.01)
        #expect(driver.startedIds.count == 4, "closed again: the rest flows")
    }

    @Test func aRateLimitSpacesStartsEvenly() {
        var driver = Driver([Driver.lane(concurrency: 10, rateLimit: 2)])
        let ids = (1...3).map { driver.queue("p\($0)") }
        driver.feed(.begin(.continuous))
        #expect(driver.startedIds == [ids[0]])
        #expect(driver.wake == driver.now + 0.5, "the next slot is a deadline")
        driver.advance(by: 0.25)
        #expect(driver.startedIds == [ids[0]])
        driver.advance(by: 0.25)
        #expect(driver.startedIds == [ids[0], ids[1]])
        driver.advance(by: 0.5)
        #expect(driver.startedIds == ids)
    }

    @Test func aGracefulStopWaitsForAttemptsInFlightThenFinishes() {
        var driver = Driver([Driver.lane()])
        let ids = (1...3).map { driver.queue("p\($0)") }
        driver.feed(.begin(.continuous))
        driver.feed(.stop(deadline: driver.now + 10))
        #expect(driver.finished == nil)
        #expect(driver.wake == driver.now + 10)
        driver.answer(ids[0], status: 200)
        driver.answer(ids[1], status: 200)
        #expect(driver.finished == nil)
        _ = driver.queue("p4")
        driver.feed(.deliveriesQueued)
        #expect(driver.startedIds == ids, "nothing new starts while stopping")
        driver.answer(ids[2], status: 500)
        #expect(driver.finished == 0)
        #expect(driver.uncommitted.count == 3, "every result still goes to the recorder")
    }

    @Test func aStopsGraceEndsWithAttemptsStillInFlight() {
        var driver = Driver([Driver.lane()])
        let id = driver.queue("p1")
        driver.feed(.begin(.continuous))
        driver.feed(.stop(deadline: driver.now + 2))
        driver.advance(by: 2)
        #expect(driver.finished == 1, "abandoned: it stays pending for the next start")
        // A late answer is ignored: the delivery is attempted again by the next run.
        driver.answer(id, status: 200)
        #expect(driver.uncommitted.isEmpty)
    }

    @Test func anOperatorsReplayIsPickedUpAtOnce() {
        var driver = Driver([Driver.lane(retry: [])])
        let id = driver.queue("p1")
        driver.feed(.begin(.continuous))
        driver.answer(id, status: 500)
        driver.commit()
        driver.advance(by: 0.01)
        #expect(driver.wake == nil)
        // `paybridge deliveries replay` in another process: pending again, due now.
        driver.rows[0].state = .pending
        driver.rows[0].dueAt = driver.now
        driver.feed(.externalChange(records: [:]))
        #expect(driver.startedIds == [id, id])
    }

    @Test func anOperatorEnablesAndDisablesAnEndpoint() {
        let since = Date(timeIntervalSince1970: 1_700_000_000)
        var driver = Driver([Driver.lane()], records: ["erp": EndpointRecord(disabledAt: since, disabledReason: "gone")])
        _ = driver.queue("p1")
        driver.feed(.begin(.continuous))
        #expect(driver.started.isEmpty, "disabled at start: the stored record is honoured")
        #expect(driver.wake == nil, "no polling for a re-enable: the change signal brings it")
        driver.feed(.externalChange(records: [:]))
        #expect(driver.announcements == [.enabled])
        #expect(driver.started.count == 1)
        driver.feed(.externalChange(records: ["erp": EndpointRecord(disabledAt: driver.now, disabledReason: "maintenance")]))
        #expect(driver.announcements.last == .disabledByOperator(reason: "maintenance"))
        _ = driver.queue("p2")
        driver.feed(.deliveriesQueued)
        #expect(driver.started.count == 1)
    }

    @Test func a410DisablesAndAStaleEnabledRecordDoesNotUndoIt() {
        var driver = Driver([Driver.lane()])
        let id = driver.queue("p1")
        driver.feed(.begin(.continuous))
        driver.answer(id, status: 410)
        #expect(driver.announcements.last == .disabled(reason: "the endpoint answered 410 Gone", failingSince: driver.now))
        #expect(driver.uncommitted.first?.next == .retry(at: driver.now), "kept pending for a re-enable")
        // The store still says enabled until the disabled record is committed.
        driver.feed(.externalChange(records: [:]))
        #expect(!driver.announcements.contains(.enabled))
        driver.feed(.resultsCommitted(DeliveryStateMachine.Commit(deliveryIds: [], disabledEndpoints: ["erp"])))
        driver.feed(.externalChange(records: [:]))
        #expect(driver.announcements.last == .enabled)
    }

    @Test func aDrainEndsWhenNothingDueIsLeftAndLeavesLaterRetriesQueued() {
        var driver = Driver([Driver.lane(retry: [.seconds(60)])])
        let first = driver.queue("p1", sequence: 1)
        let second = driver.queue("p1", sequence: 2)
        let later = driver.queue("p2", dueAt: driver.now + 3600)
        driver.feed(.begin(.drain(dueBy: driver.now)))
        #expect(driver.startedIds == [first])
        driver.answer(first, status: 200)
        #expect(driver.finished == nil, "its result is not committed yet")
        driver.commit()
        driver.advance(by: 0.01)
        #expect(driver.startedIds == [first, second], "the successor is found within the drain")
        driver.answer(second, status: 500)
        driver.commit()
        driver.advance(by: 0.01)
        #expect(driver.finished == 0)
        #expect(!driver.startedIds.contains(later))
    }

    /// `poll --once` after a poll whose delivery results the full disk refused: the next run's
    /// drain neither waits for those results (they were given up) nor skips their deliveries.
    @Test func aRunDoesNotWaitForResultsAnEarlierRunNeverCommitted() {
        var driver = Driver([Driver.lane()])
        let id = driver.queue("p1")
        driver.feed(.begin(.drain(dueBy: driver.now)))
        driver.answer(id, status: 200)
        driver.feed(.storage(available: false))
        #expect(driver.finished == 0, "the drain ends with its result refused")
        driver.uncommitted.removeAll()  // the recorder gave up: the delivery is still pending
        driver.feed(.storage(available: true))
        driver.finished = nil
        driver.feed(.begin(.drain(dueBy: driver.now)))
        #expect(driver.startedIds == [id, id], "attempted again")
        driver.answer(id, status: 200)
        driver.commit()
        driver.advance(by: 0.01)
        #expect(driver.finished == 0)
    }

    @Test func whileStorageRefusesWritesNothingStartsAndItResumesAfter() {
        var driver = Driver([Driver.lane()])
        let id = driver.queue("p1")
        driver.feed(.storage(available: false), .begin(.continuous))
        #expect(driver.started.isEmpty)
        #expect(driver.wake == driver.now + DeliveryStateMachine.refillRetry)
        driver.feed(.storage(available: true))
        #expect(driver.startedIds == [id])
    }

    @Test func aFailedRefillIsRetriedOnATimer() {
        var driver = Driver([Driver.lane()])
        _ = driver.queue("p1")
        var actions = driver.machine.handle(.begin(.continuous), now: driver.now)
        guard case .refill(let lane, _, _, _, _) = actions.first else {
            Issue.record("expected a refill first, got \(actions)")
            return
        }
        actions = driver.machine.handle(.refillFailed(lane: lane), now: driver.now)
        #expect(actions.last == .wake(at: driver.now + DeliveryStateMachine.refillRetry))
        driver.advance(to: driver.now + DeliveryStateMachine.refillRetry)
        driver.feed(.deadline)
        #expect(driver.started.count == 1)
    }

    @Test func newDeliveriesAreReadWhenQueuedNotOnATimer() {
        var driver = Driver([Driver.lane()])
        driver.feed(.begin(.continuous))
        #expect(driver.wake == nil)
        let id = driver.queue("p1")
        driver.feed(.deliveriesQueued)
        #expect(driver.startedIds == [id])
    }

    /// The dispatcher queues group messages in a task of its own, so the answer comes in a
    /// later turn: a drain (`poll --once`) must not end before it.
    @Test func aDrainWaitsForAGroupMessageAnsweredInALaterTurn() {
        var lane = Driver.lane()
        lane.grouped = true
        var driver = Driver([lane])
        driver.holdsFlushes = true
        driver.groupFlushAt = driver.now
        driver.feed(.begin(.drain(dueBy: driver.now)))
        #expect(driver.heldFlushes == [0])
        driver.feed(.deliveriesQueued)
        #expect(driver.finished == nil, "the drain ended with a group message still being queued")
        driver.answerHeldFlushes()
        #expect(driver.startedIds == driver.groupMessages)
        for id in driver.startedIds { driver.answer(id, status: 200) }
        driver.commit()
        #expect(driver.finished == 0)
    }
}
