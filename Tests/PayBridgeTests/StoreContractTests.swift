import Foundation
import Testing

@testable import PayBridge

/// What every state backend promises, through the `Store` protocol only: the same tests
/// run on SQLite and, when a server is there, on PostgreSQL.
@Suite struct StoreContractTests {
    /// A store on a fresh state of `backend`, with its folder.
    struct Fixture {
        let directory: TemporaryDirectory
        let state: String
        let store: any Store & Coordination

        init(_ backend: Backend, lease: Duration = .seconds(10)) async throws {
            directory = try TemporaryDirectory()
            state = try await backend.freshState(in: directory)
            store = try await StateStore.open(Backend.configuration(state, lease: lease), logger: Fixtures.quietLogger)
        }

        /// Another process's view of the same state (an operator's command, a second instance).
        func second(lease: Duration = .seconds(10)) async throws -> any Store & Coordination {
            try await StateStore.open(Backend.configuration(state, lease: lease), logger: Fixtures.quietLogger)
        }

        /// Detection writes need the poller lease on a shared state.
        /// Polls and delivers: the poller lease and the endpoints' (on PostgreSQL only an
        /// endpoint's owner claims its deliveries).
        func lead() async throws {
            #expect(try await store.holdPollerLease())
            _ = try await store.holdEndpointLeases(["erp", "alerts", "other"], takeAllFree: true, settled: [])
        }
    }

    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    static func event(_ payment: String, _ sequence: Int, _ status: String, at date: Date = start) -> Event {
        Event.payment(
            type: sequence == 1 ? .paymentCreated : .paymentStatusChanged, paymentId: payment, status: status,
            previousStatus: sequence == 1 ? nil : "PendingProcessing", watch: "recent", sequence: sequence, createdAt: date,
            payment: ArraySlice(#"{"paymentId":"\#(payment)","status":"\#(status)"}"#.utf8))
    }

    static func entry(_ event: Event, to endpoints: [String] = ["erp"]) -> OutboxEntry {
        OutboxEntry(event: event, deliveries: endpoints.map { ($0, nil) })
    }

    /// Records a change as the poller does: the payment's state and its event together.
    static func detect(_ store: any Store, _ payment: String, _ sequence: Int, _ status: String, at date: Date = start) async throws {
        try await store.detect { transaction in
            try await transaction.savePaymentState(paymentId: payment, state: PaymentState(status: status, sequence: sequence), watch: "recent", at: date)
            try await transaction.append(entry(event(payment, sequence, status, at: date)), dueAt: date)
        }
    }

    static func attempt(_ delivery: QueuedDelivery, _ next: AttemptRecord.Next, status: Int = 500, at date: Date = start) -> AttemptRecord {
        AttemptRecord(
            deliveryId: delivery.id, attempt: delivery.attempts + 1, startedAt: date, duration: .milliseconds(12),
            httpStatus: next == .delivered ? 200 : status, error: next == .delivered ? nil : "HTTP \(status)", response: nil, next: next)
    }

    struct Refused: Error {}

    @Test(.timeLimit(.minutes(1)), arguments: Backend.available)
    func theStoreSignalsQueuedWorkAndOtherProcessesChanges(backend: Backend) async throws {
        let fixture = try await Fixture(backend)
        try await fixture.lead()
        var changes = fixture.store.changes().makeAsyncIterator()
        // The first reading of the change mark counts as a change (nothing is missed at start).
        #expect(await changes.next() == .changed)

        // This process's commit that queues a delivery: said as it commits.
        try await Self.detect(fixture.store, "p-1", 1, "PendingProcessing")
        #expect(await changes.next() == .queued)
        // A commit that queues nothing (results, records) is not news.
        try await fixture.store.write { try await $0.saveEndpointStats(name: "erp", EndpointStats(failures: 1)) }

        // Another process's correction (an operator disables the endpoint): heard within a
        // poll of the change mark.
        let operatorView = try await fixture.second()
        defer { operatorView.close() }
        try await operatorView.setEndpointDisabled(name: "erp", disabled: true, reason: "maintenance", at: Self.start)
        var heard: [StateChange] = []
        while !heard.contains(.changed), let next = await changes.next() { heard.append(next) }
        #expect(heard.last == .changed)
        fixture.store.close()
    }

    @Test(arguments: Backend.available)
    func anOutboxWriteCommitsWholeOrNothing(backend: Backend) async throws {
        let fixture = try await Fixture(backend)
        defer { fixture.store.close() }
        try await fixture.lead()
        let store = fixture.store
        await #expect(throws: Refused.self) {
            try await store.detect { transaction in
                try await transaction.savePaymentState(paymentId: "p1", state: PaymentState(status: "Processed", sequence: 1), watch: "recent", at: Self.start)
                try await transaction.append(Self.entry(Self.event("p1", 1, "Processed")), dueAt: Self.start)
                throw Refused()
            }
        }
        #expect(try await store.paymentStates(for: ["p1"]).isEmpty)
        #expect(try await store.dueDeliveries(endpoint: "erp", dueBy: Self.start, limit: 10, excluding: []).isEmpty)
        #expect(try await store.eventsAfter(nil, limit: 10, type: nil, status: nil).isEmpty)

        try await Self.detect(store, "p1", 1, "Processed")
        #expect(try await store.paymentStates(for: ["p1", "p2"]) == ["p1": PaymentState(status: "Processed", sequence: 1)])
        let due = try await store.dueDeliveries(endpoint: "erp", dueBy: Self.start, limit: 10, excluding: [])
        #expect(due.map(\.eventId) == [Self.event("p1", 1, "Processed").id])
        #expect(due.first.map { String(decoding: $0.body, as: UTF8.self) } == String(decoding: Self.event("p1", 1, "Processed").body, as: UTF8.self))
    }

    /// The operators' look-ups read the same on both backends: a search in any case, and
    /// filters with several values.
    @Test(arguments: Backend.available)
    func searchesAndFiltersReadTheSameOnBothBackends(backend: Backend) async throws {
        let fixture = try await Fixture(backend)
        defer { fixture.store.close() }
        try await fixture.lead()
        try await Self.detect(fixture.store, "Pay-ABC", 1, "Processed")
        try await Self.detect(fixture.store, "p2", 1, "Rejected")
        try await Self.detect(fixture.store, "p3", 1, "Cancelled")
        #expect(try await fixture.store.paymentIds(mentioning: "Pay-ABC", limit: 5) == ["Pay-ABC"])
        #expect(try await fixture.store.paymentIds(mentioning: "pay-abc", limit: 5) == ["Pay-ABC"], "any case")
        #expect(try await fixture.store.paymentIds(mentioning: "Pay", limit: 5).isEmpty, "a whole JSON string, not a part")
        let listed = try await fixture.store.events(EventFilter(status: "Processed,Rejected"))
        #expect(Set(listed.map(\.subject)) == ["Pay-ABC", "p2"])
        let after = try await fixture.store.eventsAfter(nil, limit: 10, type: "payment.created", status: "Rejected, Cancelled")
        #expect(after.count == 2)
        #expect(try await fixture.store.events(EventFilter(status: " , ")).count == 3, "no values: no filter")
    }

    @Test(arguments: Backend.available)
    func theSameChangeIsStoredOnceUnderOneId(backend: Backend) async throws {
        let fixture = try await Fixture(backend)
        defer { fixture.store.close() }
        try await fixture.lead()
        // A poll re-run after a crash records the same change again.
        try await Self.detect(fixture.store, "p1", 1, "Processed")
        try await Self.detect(fixture.store, "p1", 1, "Processed")
        #expect(try await fixture.store.eventsAfter(nil, limit: 10, type: nil, status: nil).count == 1)
        #expect(try await fixture.store.dueDeliveries(endpoint: "erp", dueBy: Self.start, limit: 10, excluding: []).count == 1)
    }

    @Test(arguments: Backend.available)
    func eachPaymentsEventsAreDueInOrder(backend: Backend) async throws {
        let fixture = try await Fixture(backend)
        defer { fixture.store.close() }
        try await fixture.lead()
        let store = fixture.store
        try await Self.detect(store, "p1", 1, "PendingProcessing")
        try await Self.detect(store, "p1", 2, "Processed", at: Self.start.addingTimeInterval(1))
        try await Self.detect(store, "p2", 1, "Rejected", at: Self.start.addingTimeInterval(2))
        let later = Self.start.addingTimeInterval(10)
        let due = try await store.dueDeliveries(endpoint: "erp", dueBy: later, limit: 10, excluding: [])
        #expect(due.map(\.subject) == ["p1", "p2"], "p1's second event waits for its first")
        #expect(try await store.dueDeliveries(endpoint: "other", dueBy: later, limit: 10, excluding: []).isEmpty)
        #expect(try await store.dueDeliveries(endpoint: "erp", dueBy: Self.start.addingTimeInterval(-1), limit: 10, excluding: []).isEmpty)
        guard let first = due.first else { return }
        #expect(try await store.dueDeliveries(endpoint: "erp", dueBy: later, limit: 10, excluding: [first.id]).map(\.subject) == ["p2"])
        #expect(try await store.dueDeliveries(endpoint: "erp", dueBy: later, limit: 1, excluding: []).count == 1)

        try await store.write { try await $0.recordAttempts([Self.attempt(first, .delivered)], at: later) }
        let next = try await store.dueDeliveries(endpoint: "erp", dueBy: later, limit: 10, excluding: [])
        #expect(next.map { "\($0.subject)#\($0.sequence)" } == ["p1#2", "p2#1"])
    }

    @Test(arguments: Backend.available)
    func attemptsMoveADeliveryToRetryThenDead(backend: Backend) async throws {
        let fixture = try await Fixture(backend)
        defer { fixture.store.close() }
        try await fixture.lead()
        let store = fixture.store
        try await Self.detect(store, "p1", 1, "Rejected")
        guard let delivery = try await store.dueDeliveries(endpoint: "erp", dueBy: Self.start, limit: 10, excluding: []).first else {
            Issue.record("nothing due")
            return
        }
        let retryAt = Self.start.addingTimeInterval(30)
        try await store.write { try await $0.recordAttempts([Self.attempt(delivery, .retry(at: retryAt))], at: Self.start) }
        #expect(try await store.dueDeliveries(endpoint: "erp", dueBy: Self.start.addingTimeInterval(29), limit: 10, excluding: []).isEmpty)
        #expect(try await store.nextDueDate(after: Self.start, endpoints: ["erp"]) == retryAt)
        let retry = try await store.dueDeliveries(endpoint: "erp", dueBy: retryAt, limit: 10, excluding: [])
        #expect(retry.map(\.attempts) == [1])
        #expect(retry.map(\.eventId) == [delivery.eventId], "the retry carries the same event id")

        guard let second = retry.first else { return }
        try await store.write { try await $0.recordAttempts([Self.attempt(second, .dead, status: 400, at: retryAt)], at: retryAt) }
        #expect(try await store.dueDeliveries(endpoint: "erp", dueBy: retryAt.addingTimeInterval(3600), limit: 10, excluding: []).isEmpty)
        let record = try await store.delivery(id: delivery.id)
        #expect(record?.state == .dead)
        #expect(record?.attempts == 2)
        #expect(record?.lastStatus == 400)
        #expect(try await store.attempts(deliveryId: delivery.id).map(\.httpStatus) == [500, 400])
        #expect(try await store.deliveryCounts()["erp"]?[.dead] == 1)
    }

    @Test(arguments: Backend.available)
    func aReplayQueuesAgainAndOtherProcessesSeeTheChange(backend: Backend) async throws {
        let fixture = try await Fixture(backend)
        defer { fixture.store.close() }
        try await fixture.lead()
        let store = fixture.store
        try await Self.detect(store, "p1", 1, "Rejected")
        guard let delivery = try await store.dueDeliveries(endpoint: "erp", dueBy: Self.start, limit: 10, excluding: []).first else { return }
        try await store.write { try await $0.recordAttempts([Self.attempt(delivery, .dead)], at: Self.start) }

        let before = try await store.changeMark()
        // An operator's command, another process on the same state.
        let operatorView = try await fixture.second()
        defer { operatorView.close() }
        let now = Self.start.addingTimeInterval(60)
        #expect(try await operatorView.replay(ids: [delivery.id], at: now) == [delivery.id])
        #expect(try await operatorView.setEndpointDisabled(name: "erp", disabled: true, reason: "maintenance", at: now))

        var seen = false
        for _ in 0..<40 where !seen {
            seen = try await store.changeMark() != before
            if !seen { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(seen, "the change mark moves within 2 s of another process's commit")
        let replayed = try await store.dueDeliveries(endpoint: "erp", dueBy: now, limit: 10, excluding: [])
        #expect(replayed.map(\.id) == [delivery.id])
        #expect(replayed.first?.scheduleBase == 1, "the retry schedule starts again after a replay")
        #expect(try await store.endpointRecords()["erp"]?.disabledReason == "maintenance")
        // Disabled again: nothing changes, the first reason and time stay.
        #expect(try await operatorView.setEndpointDisabled(name: "erp", disabled: true, reason: "other", at: now.addingTimeInterval(5)) == false)
        #expect(try await store.endpointRecords()["erp"]?.disabledReason == "maintenance")
        #expect(try await store.endpointRecords()["erp"]?.disabledAt == now)
        #expect(try await operatorView.setEndpointDisabled(name: "erp", disabled: false, reason: nil, at: now))
        #expect(try await store.endpointRecords()["erp"]?.disabledAt == nil)
        #expect(try await operatorView.setEndpointDisabled(name: "erp", disabled: false, reason: nil, at: now) == false)
    }

    @Test(arguments: Backend.available)
    func recordsRoundTrip(backend: Backend) async throws {
        let fixture = try await Fixture(backend)
        defer { fixture.store.close() }
        try await fixture.lead()
        let store = fixture.store
        let at = Self.start
        try await store.detect { transaction in
            try await transaction.recordWatchPoll(name: "recent", at: at, baselined: true)
            try await transaction.replaceWatchMembers(name: "recent", paymentIds: ["a", "b"])
            try await transaction.saveEndpointRecord(name: "erp", EndpointRecord(failingSince: at))
            try await transaction.saveEndpointStats(name: "erp", EndpointStats(lastFailureAt: at, failures: 3, circuit: .open))
            try await transaction.saveSourceRecord(SourceRecord(failingSince: at, announcedAt: at, sequence: 2))
        }
        #expect(try await store.watchRecord(name: "recent") == WatchRecord(baselinedAt: at, lastSuccessAt: at))
        #expect(try await store.watchRecord(name: "other") == nil)
        #expect(Set(try await store.watchMemberChanges(name: "recent").keys) == ["a", "b"])
        let record = try await store.endpointRecords()["erp"]
        #expect(record?.failingSince == at)
        #expect(record?.stats.failures == 3)
        #expect(record?.stats.circuit == .open)
        #expect(try await store.sourceRecord() == SourceRecord(failingSince: at, announcedAt: at, sequence: 2))
        try await store.detect { try await $0.replaceWatchMembers(name: "recent", paymentIds: ["c"]) }
        #expect(Set(try await store.watchMemberChanges(name: "recent").keys) == ["c"])
        // Members with their last change seen: the payment's state when there is one.
        let changed = at.addingTimeInterval(-3600)
        try await store.detect { transaction in
            try await transaction.savePaymentState(paymentId: "c", state: PaymentState(status: "Rejected", sequence: 1), watch: "recent", at: changed)
            try await transaction.replaceWatchMembers(name: "recent", paymentIds: ["c", "d"])
        }
        let members = try await store.watchMemberChanges(name: "recent")
        #expect(Set(members.keys) == ["c", "d"])
        #expect(members["c"] == .some(changed))
        #expect(members["d"] == .some(nil), "no state for d: no known change")
    }

    @Test(arguments: Backend.available)
    func retentionKeepsDeadLettersAndPendingDeliveries(backend: Backend) async throws {
        let fixture = try await Fixture(backend)
        defer { fixture.store.close() }
        try await fixture.lead()
        let store = fixture.store
        for (index, payment) in ["delivered", "dead", "pending"].enumerated() {
            try await Self.detect(store, payment, 1, "Processed", at: Self.start.addingTimeInterval(Double(index)))
        }
        let due = try await store.dueDeliveries(endpoint: "erp", dueBy: Self.start.addingTimeInterval(10), limit: 10, excluding: [])
        let bySubject = Dictionary(uniqueKeysWithValues: due.map { ($0.subject, $0) })
        guard let delivered = bySubject["delivered"], let dead = bySubject["dead"] else { return }
        try await store.write { try await $0.recordAttempts([Self.attempt(delivered, .delivered), Self.attempt(dead, .dead)], at: Self.start) }

        let report = try await store.prune(before: Self.start.addingTimeInterval(3600))
        #expect(report.deliveries == 1)
        #expect(report.events == 1)
        let counts = try await store.deliveryCounts()["erp"]
        #expect(counts?[.dead] == 1)
        #expect(counts?[.pending] == 1)
        #expect(counts?[.delivered] ?? 0 == 0)
        #expect(try await store.purgeDead(endpoint: "erp", before: Self.start.addingTimeInterval(3600)) == 1)
        #expect(try await store.deliveryCounts()["erp"]?[.dead] ?? 0 == 0)
    }

    @Test(arguments: Backend.available)
    func groupMembersWaitForTheirMessage(backend: Backend) async throws {
        let fixture = try await Fixture(backend)
        defer { fixture.store.close() }
        try await fixture.lead()
        let store = fixture.store
        let membership = GroupMembership(
            endpoint: "alerts", key: #"["Rejected"]"#, values: .object([(key: "status", value: .string("Rejected"))]), wait: .seconds(30), interval: .seconds(300))
        for payment in ["p1", "p2"] {
            try await store.write { transaction in
                try await transaction.append(OutboxEntry(event: Self.event(payment, 1, "Rejected"), memberships: [membership]), dueAt: Self.start)
            }
        }
        #expect(try await store.nextGroupFlush(endpoint: "alerts") == Self.start.addingTimeInterval(30))
        #expect(try await store.dueGroups(endpoint: "alerts", dueBy: Self.start.addingTimeInterval(29)).isEmpty)
        let flushAt = Self.start.addingTimeInterval(30)
        let groups = try await store.dueGroups(endpoint: "alerts", dueBy: flushAt)
        #expect(groups.map(\.members.count) == [2])
        guard let group = groups.first else { return }
        let message = Event.operational(type: .paymentGroup, subject: "grp", sequence: 1, createdAt: flushAt, data: [:])
        try await store.write { try await $0.appendGroupMessage(Self.entry(message, to: ["alerts"]), for: group, interval: .seconds(300), at: flushAt) }
        #expect(try await store.nextGroupFlush(endpoint: "alerts") == nil, "no member waits")
        #expect(try await store.dueDeliveries(endpoint: "alerts", dueBy: flushAt, limit: 10, excluding: []).map(\.eventId) == [message.id])
    }
}

/// What only a shared (PostgreSQL) state does: leases, fencing, claims.
@Suite struct SharedStateTests {
    typealias Contract = StoreContractTests

    /// CI sets `PAYBRIDGE_TEST_REQUIRE_POSTGRES=1`: there, a run that could not reach
    /// PostgreSQL must fail rather than pass on SQLite alone.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["PAYBRIDGE_TEST_REQUIRE_POSTGRES"] == "1", "PostgreSQL is required only where PAYBRIDGE_TEST_REQUIRE_POSTGRES=1 (CI)"))
    func postgresIsTestedWhereItIsRequired() {
        #expect(Backend.available.contains(.postgres), "PAYBRIDGE_TEST_REQUIRE_POSTGRES=1 but no PostgreSQL server (PAYBRIDGE_TEST_POSTGRES_URL) for this run")
    }

    @Test(arguments: Backend.shared)
    func oneInstanceLeadsAndAPausedOneCannotCommitAfterLosingTheLease(backend: Backend) async throws {
        // Long enough that the second instance asks within it even on a loaded machine (the
        // whole suite runs in parallel), short enough to wait for it to expire.
        let fixture = try await Contract.Fixture(backend, lease: .seconds(3))
        let other = try await fixture.second(lease: .seconds(3))
        defer {
            fixture.store.close()
            other.close()
        }
        _ = try await other.paymentStates(for: [])  // its connection is open before the lease is taken
        #expect(try await fixture.store.holdPollerLease())
        #expect(try await !other.holdPollerLease(), "the lease is held")
        try await Contract.detect(fixture.store, "p1", 1, "PendingProcessing")

        // The leader pauses (no renewal) while its session stays connected: the lease
        // expires and the other instance takes it.
        try await until("the paused leader's lease expires and the other instance takes it", timeout: .seconds(30)) {
            try await other.holdPollerLease()
        }
        await #expect(throws: StorageError.leaseLost) {
            try await Contract.detect(fixture.store, "p1", 2, "Processed")
        }
        #expect(try await other.paymentStates(for: ["p1"])["p1"]?.sequence == 1, "the old leader committed nothing")
        #expect(try await !fixture.store.holdPollerLease(), "the old leader learns it lost the lease")
        try await Contract.detect(other, "p1", 2, "Processed")
        #expect(try await other.paymentStates(for: ["p1"])["p1"]?.sequence == 2)
    }

    /// A leader holding the poller lease (60 s) that recorded p1 as PendingProcessing, and a
    /// second instance on the same state; the caller closes both.
    static func leaderAndOther(_ backend: Backend) async throws -> (Contract.Fixture, any Store & Coordination) {
        let fixture = try await Contract.Fixture(backend, lease: .seconds(60))
        let other = try await fixture.second(lease: .seconds(60))
        #expect(try await fixture.store.holdPollerLease())
        try await Contract.detect(fixture.store, "p1", 1, "PendingProcessing")
        return (fixture, other)
    }

    /// The database's check, not only the instance's own account of its lease: a token that
    /// moved on in the lease row fences the old holder even while its local lease still runs.
    @Test(arguments: Backend.shared)
    func aTokenMovedOnInTheDatabaseFencesWhileTheLocalLeaseStillRuns(backend: Backend) async throws {
        let (fixture, other) = try await Self.leaderAndOther(backend)
        defer {
            fixture.store.close()
            other.close()
        }
        let session = try #require(other as? PostgresStore)
        _ = try await session.writing(announce: false) { try await $0.execute("UPDATE lease SET token = token + 1 WHERE name = 'poller'", []) }
        await #expect(throws: StorageError.leaseLost) {
            try await Contract.detect(fixture.store, "p1", 2, "Processed")
        }
        #expect(try await other.paymentStates(for: ["p1"])["p1"]?.sequence == 1, "nothing of the fenced transaction was committed")
    }

    /// A poll begun under one token commits nothing after the lease changed hands, even once
    /// this instance holds it again: the leader pauses mid-poll, another instance takes the
    /// lease and lets it go (a rolling restart), the old leader renews, and the page it read
    /// before the pause is refused. Its next poll commits.
    @Test(arguments: Backend.shared)
    func aPollBegunBeforeTheLeaseChangedHandsCommitsNothing(backend: Backend) async throws {
        let (fixture, other) = try await Self.leaderAndOther(backend)
        defer {
            fixture.store.close()
            other.close()
        }
        let refused: Bool = await fixture.store.underPollerLease {
            // What the pause allowed: the lease went to the other instance and back.
            await fixture.store.releasePollerLease()
            #expect((try? await other.holdPollerLease()) == true)
            await other.releasePollerLease()
            #expect((try? await fixture.store.holdPollerLease()) == true)
            do {
                try await Contract.detect(fixture.store, "p1", 2, "Rejected")
                return false
            } catch {
                return error as? StorageError == .leaseLost
            }
        }
        #expect(refused, "the stale poll's commit is refused")
        #expect(try await other.paymentStates(for: ["p1"])["p1"]?.status == "PendingProcessing")
        let next: String? = await fixture.store.underPollerLease {
            do {
                try await Contract.detect(fixture.store, "p1", 2, "Processed")
                return nil
            } catch {
                return "\(error)"
            }
        }
        #expect(next == nil, "the next poll commits")
        #expect(try await other.paymentStates(for: ["p1"])["p1"]?.status == "Processed")
    }

    @Test(arguments: Backend.shared)
    func aDeadInstancesLeasesAreFreeAtOnce(backend: Backend) async throws {
        let fixture = try await Contract.Fixture(backend)
        let survivor = try await fixture.second()
        defer { survivor.close() }
        #expect(try await fixture.store.holdPollerLease())
        #expect(try await fixture.store.holdEndpointLeases(["erp"], takeAllFree: true, settled: []) == ["erp"])
        #expect(try await !survivor.holdPollerLease())
        // Its connections end (the process died): no need to wait for the 10 s lease.
        fixture.store.close()
        var took = false
        for _ in 0..<40 where !took {
            took = try await survivor.holdPollerLease()
            if !took { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(took)
        #expect(try await survivor.holdEndpointLeases(["erp"], takeAllFree: true, settled: []) == ["erp"])
    }

    @Test(arguments: Backend.shared)
    func aClaimIsOneInstancesUntilItsOwnerGoes(backend: Backend) async throws {
        let fixture = try await Contract.Fixture(backend)
        let other = try await fixture.second()
        defer { other.close() }
        try await fixture.lead()
        try await Contract.detect(fixture.store, "p1", 1, "Rejected")
        try await Contract.detect(fixture.store, "p2", 1, "Rejected")
        #expect(try await fixture.store.holdEndpointLeases(["erp"], takeAllFree: true, settled: []) == ["erp"])
        #expect(try await other.holdEndpointLeases(["erp"], takeAllFree: true, settled: []).isEmpty, "one owner per endpoint")
        let claimed = try await fixture.store.dueDeliveries(endpoint: "erp", dueBy: Contract.start, limit: 10, excluding: [])
        #expect(claimed.count == 2)
        #expect(try await other.dueDeliveries(endpoint: "erp", dueBy: Contract.start, limit: 10, excluding: []).isEmpty, "claimed deliveries are skipped")

        fixture.store.close()
        var owned: Set<String> = []
        for _ in 0..<40 where owned.isEmpty {
            owned = try await other.holdEndpointLeases(["erp"], takeAllFree: true, settled: [])
            if owned.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(owned == ["erp"])
        let taken = try await other.dueDeliveries(endpoint: "erp", dueBy: Contract.start, limit: 10, excluding: [])
        #expect(Set(taken.map(\.id)) == Set(claimed.map(\.id)), "the dead owner's claims return to the queue")
    }

    /// An instance paused past its endpoint lease (it still believes it owns the endpoint) claims
    /// nothing once another instance holds the lease: the endpoint's concurrency and rate limit
    /// hold across instances, and its deliveries go out from the new owner only.
    @Test(arguments: Backend.shared)
    func aFormerOwnerClaimsNothingOnceItsEndpointLeaseHasMoved(backend: Backend) async throws {
        let fixture = try await Contract.Fixture(backend)
        let other = try await fixture.second()
        defer { other.close() }
        try await fixture.lead()
        try await Contract.detect(fixture.store, "p1", 1, "Rejected")
        // The lease expires while its holder is paused; the other instance takes it.
        let session = try #require(other as? PostgresStore)
        _ = try await session.writing(announce: false) { try await $0.execute("UPDATE lease SET expires_at = 0 WHERE name = 'endpoint:erp'", []) }
        #expect(try await other.holdEndpointLeases(["erp"], takeAllFree: true, settled: []) == ["erp"])
        #expect(try await fixture.store.dueDeliveries(endpoint: "erp", dueBy: Contract.start, limit: 10, excluding: []).isEmpty)
        #expect(try await other.dueDeliveries(endpoint: "erp", dueBy: Contract.start, limit: 10, excluding: []).count == 1)
    }

    @Test(arguments: Backend.shared)
    func endpointsAreSharedOutAmongInstances(backend: Backend) async throws {
        let fixture = try await Contract.Fixture(backend)
        let other = try await fixture.second()
        defer {
            fixture.store.close()
            other.close()
        }
        let endpoints = ["a", "b", "c", "d"]
        var first = try await fixture.store.holdEndpointLeases(endpoints, takeAllFree: false, settled: [])
        #expect(first.count == 4, "alone, an instance delivers every endpoint")
        var second: Set<String> = []
        for _ in 0..<6 {
            // Each renewal finds what the instance stopped delivering settled (nothing in flight).
            second = try await other.holdEndpointLeases(endpoints, takeAllFree: false, settled: Set(endpoints).subtracting(second))
            first = try await fixture.store.holdEndpointLeases(endpoints, takeAllFree: false, settled: Set(endpoints).subtracting(first))
        }
        #expect(first.count == 2)
        #expect(second.count == 2)
        #expect(first.isDisjoint(with: second))
    }

    /// An endpoint let go to a joining instance stays its until a renewal finds it settled
    /// (nothing in flight, every result recorded): what it still sends is never sent by the
    /// taker too, however slow the endpoint.
    @Test(arguments: Backend.shared)
    func anEndpointLetGoIsTakenOnlyOnceSettled(backend: Backend) async throws {
        let fixture = try await Contract.Fixture(backend)
        let other = try await fixture.second()
        defer {
            fixture.store.close()
            other.close()
        }
        let both = ["a", "b"]
        #expect(try await fixture.store.holdEndpointLeases(both, takeAllFree: false, settled: []) == ["a", "b"])
        #expect(try await other.holdEndpointLeases(both, takeAllFree: false, settled: []).isEmpty, "both held")
        #expect(try await fixture.store.holdEndpointLeases(both, takeAllFree: false, settled: []) == ["a"], "b let go: no new attempts")
        #expect(try await other.holdEndpointLeases(both, takeAllFree: false, settled: []).isEmpty, "b is not free yet")
        for _ in 0..<3 {
            // b's last attempts are still under way there: its lease is kept, however long.
            #expect(try await fixture.store.holdEndpointLeases(both, takeAllFree: false, settled: []) == ["a"])
            #expect(try await other.holdEndpointLeases(both, takeAllFree: false, settled: []).isEmpty, "b still in flight there")
        }
        #expect(try await fixture.store.holdEndpointLeases(both, takeAllFree: false, settled: ["b"]) == ["a"])
        #expect(try await other.holdEndpointLeases(both, takeAllFree: false, settled: []) == ["b"], "free once settled")
    }
}

/// `state.tls` against the test cluster, which offers TLS with a certificate for localhost and
/// 127.0.0.1 signed by a CA of its own (`scripts/postgres`; `PAYBRIDGE_TEST_POSTGRES_CA`).
@Suite struct PostgresTLSTests {
    static let caFile: String? = ProcessInfo.processInfo.environment["PAYBRIDGE_TEST_POSTGRES_CA"].flatMap { $0.isEmpty ? nil : $0 }
    static let available = Backend.serverURL != nil && caFile != nil

    func open(host: String, tls: StateConfiguration.TLSMode, caFile: String?) async throws -> any Store & Coordination {
        let state = try await Backend.postgres.freshState(in: TemporaryDirectory())
        var components = try #require(URLComponents(string: state))
        components.host = host
        let url = try #require(components.string)
        return try await StateStore.open(
            StateConfiguration(path: "", kind: .postgres, url: Secret(url), tls: tls, caFile: caFile), logger: Fixtures.quietLogger, create: true)
    }

    @Test(.enabled(if: available, "needs the test cluster's CA (scripts/test starts one)"))
    func verifyFullConnectsWithTheServersCAAndRefusesAnyOther() async throws {
        let ca = try #require(Self.caFile)
        for host in ["127.0.0.1", "localhost"] {
            let store = try await open(host: host, tls: .verifyFull, caFile: ca)
            #expect(try await store.watchRecord(name: "recent") == nil)
            store.close()
        }
        // A CA that did not sign the server's certificate, and the system's roots: refused.
        let other = (ca as NSString).deletingLastPathComponent + "/other-ca.pem"
        for trust in [other, nil] {
            await #expect {
                try await open(host: "localhost", tls: .verifyFull, caFile: trust).close()
            } throws: { error in
                "\(error)".contains("cannot connect to PostgreSQL")
            }
        }
    }

    @Test(.enabled(if: available, "needs the test cluster's CA (scripts/test starts one)"))
    func requireEncryptsWithoutCheckingTheCertificate() async throws {
        let store = try await open(host: "localhost", tls: .require, caFile: nil)
        #expect(try await store.watchRecord(name: "recent") == nil)
        store.close()
    }
}
