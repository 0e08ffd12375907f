import Foundation
import Logging
import Synchronization

/// Commits delivery results (and the dispatcher's own events) in a task of its own, so the
/// dispatcher keeps starting attempts while a commit waits for the disk or for the poller's
/// transaction. Whatever accumulates during one commit goes into the next: group commit
/// without a timer. On a storage fault it keeps everything and tries again a second later.
///
/// It decides nothing: what to write comes from the delivery state machine, already routed.
final class Recorder: Sendable {
    /// An endpoint disabled by paybridge: its record and its `endpoint.disabled` event
    /// commit together.
    struct Disabled: Sendable {
        var endpoint: String
        var record: EndpointRecord
        /// The `endpoint.disabled` event (never sent to the endpoint it is about).
        var event: Event
    }

    /// One unit of work handed over by the dispatcher.
    struct Batch: Sendable {
        var records: [AttemptRecord] = []
        var disabled: [Disabled] = []
        /// Endpoint records to save on their own (a circuit opened or closed).
        var endpointRecords: [(name: String, record: EndpointRecord)] = []
        /// The endpoints' latest stats, for operators (one row per endpoint per commit).
        var stats: [String: EndpointStats] = [:]

        var isEmpty: Bool { records.isEmpty && disabled.isEmpty && endpointRecords.isEmpty && stats.isEmpty }

        mutating func append(_ other: Batch) {
            records.append(contentsOf: other.records)
            disabled.append(contentsOf: other.disabled)
            endpointRecords.append(contentsOf: other.endpointRecords)
            for (name, newer) in other.stats {
                var merged = newer
                merged.lastSuccessAt = newer.lastSuccessAt ?? stats[name]?.lastSuccessAt
                merged.lastFailureAt = newer.lastFailureAt ?? stats[name]?.lastFailureAt
                stats[name] = merged
            }
        }

        /// An attempt's result, and the endpoint's stats for operators: when it last answered
        /// 2xx, when it last failed.
        mutating func add(_ outcome: DeliveryStateMachine.Outcome, endpoint name: String) {
            records.append(outcome.record)
            var endpointStats = stats[name] ?? EndpointStats()
            let finished = outcome.record.startedAt.addingTimeInterval(outcome.record.duration.seconds)
            if case .delivered = outcome.record.next { endpointStats.lastSuccessAt = finished } else { endpointStats.lastFailureAt = finished }
            stats[name] = endpointStats
        }

        /// An endpoint disabled by paybridge: its record with its `endpoint.disabled` event.
        mutating func disable(endpoint name: String, reason: String, failingSince since: Date?, pending: Int, at date: Date) {
            let event = Event.operational(
                type: .endpointDisabled, subject: "endpoint:\(name)", sequence: Int(date.timeIntervalSince1970 * 1000),
                createdAt: date,
                data: [
                    "endpoint": .string(name), "reason": .string(reason),
                    "failingSince": since.map { .string(Timestamp.iso8601($0)) } ?? .null, "pendingDeliveries": .number(pending),
                ])
            disabled.append(Disabled(endpoint: name, record: EndpointRecord(disabledAt: date, disabledReason: reason, failingSince: since), event: event))
        }

        /// Completes an endpoint's stats of this batch, if it has any, with its failures and
        /// circuit; returns whether it had.
        mutating func complete(endpoint name: String, health: EndpointHealth) -> Bool {
            guard var endpointStats = stats[name] else { return false }
            endpointStats.failures = health.failures
            endpointStats.circuit = health.state.circuit
            stats[name] = endpointStats
            return true
        }
    }

    private let outbox: Outbox
    private let storage: StorageMonitor
    private let clock: WallClock
    private let logger: Logger
    /// Told of every commit.
    private let acknowledge: @Sendable (DeliveryStateMachine.Commit) -> Void
    /// Told when a commit is refused (the storage fault is reported first).
    private let refused: @Sendable () -> Void

    private struct State {
        var waiting = Batch()
        /// Set by `finish`: commit what is left until then, then end.
        var deadline: Date?
        var wakeup: AsyncStream<Void>.Continuation
    }

    private let state: Mutex<State>
    private let wakeups: AsyncStream<Void>

    init(
        outbox: Outbox, storage: StorageMonitor, clock: WallClock, logger: Logger,
        acknowledge: @escaping @Sendable (DeliveryStateMachine.Commit) -> Void, refused: @escaping @Sendable () -> Void
    ) {
        self.outbox = outbox
        self.storage = storage
        self.clock = clock
        self.logger = logger
        self.acknowledge = acknowledge
        self.refused = refused
        let (wakeups, wakeup) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        self.wakeups = wakeups
        state = Mutex(State(wakeup: wakeup))
    }

    func submit(_ batch: Batch) {
        guard !batch.isEmpty else { return }
        state.withLock {
            $0.waiting.append(batch)
            $0.wakeup.yield()
        }
    }

    /// Asks `run` to commit what it holds and end; what is still refused at `deadline` stays
    /// pending in the store (attempted again later).
    func finish(deadline: Date) {
        state.withLock {
            $0.deadline = deadline
            $0.wakeup.yield()
        }
    }

    /// Commits batches as they come until `finish`.
    func run() async {
        var wakeups = self.wakeups.makeAsyncIterator()
        while true {
            let (batch, deadline) = state.withLock { state -> (Batch, Date?) in
                defer { state.waiting = Batch() }
                return (state.waiting, state.deadline)
            }
            if batch.isEmpty {
                if deadline != nil { return }
                // Cancelled (the run ended) with nothing left: done.
                if await wakeups.next() == nil, state.withLock({ $0.waiting.isEmpty }) { return }
                continue
            }
            if await commit(batch) { continue }
            // Keep it, ahead of anything newer, and retry after a pause.
            state.withLock { state in
                var retry = batch
                retry.append(state.waiting)
                state.waiting = retry
            }
            let now = clock.now()
            if Task.isCancelled || deadline.map({ now >= $0 }) ?? false {
                logger.warning(
                    "stopping with delivery results not committed; those deliveries stay pending and are attempted again",
                    metadata: ["results": .stringConvertible(batch.records.count)])
                return
            }
            try? await clock.sleep(until: min(now.addingTimeInterval(1), deadline ?? .distantFuture))
        }
    }

    private func commit(_ batch: Batch) async -> Bool {
        do {
            let now = clock.now()
            let announcements = batch.disabled.map { Outbox.Emission($0.event, excluding: $0.endpoint) }
            let committed = try await outbox.write(emitting: announcements) { transaction in
                for (name, record) in batch.endpointRecords { try await transaction.saveEndpointRecord(name: name, record) }
                for disabled in batch.disabled { try await transaction.saveEndpointRecord(name: disabled.endpoint, disabled.record) }
                try await transaction.recordAttempts(batch.records, at: now)
                for (name, stats) in batch.stats { try await transaction.saveEndpointStats(name: name, stats) }
            }
            storage.reportHealthy(at: now)
            acknowledge(
                DeliveryStateMachine.Commit(
                    deliveryIds: batch.records.map(\.deliveryId), disabledEndpoints: batch.disabled.map(\.endpoint),
                    queuedDeliveries: committed.queuedWork))
            return true
        } catch {
            // The deliveries stay pending in the store and are held here until it takes writes
            // again; if paybridge stops first, they are attempted again later.
            storage.reportFault(error, at: clock.now())
            refused()
            return false
        }
    }
}
