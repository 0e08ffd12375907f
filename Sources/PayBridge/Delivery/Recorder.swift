import Foundation
import Synchronization

/// Commits delivery results (and the dispatcher's own events) on a thread of its own, so the
/// dispatcher keeps starting attempts while a commit waits for the disk or for the poller's
/// transaction. Whatever accumulates during one commit goes into the next: group commit
/// without a timer. On a storage fault it keeps everything and tries again every second.
///
/// It decides nothing: what to write comes from the delivery state machine, already routed.
final class Recorder: @unchecked Sendable {
    // @unchecked: everything shared is guarded by `condition`; `store` is immutable and Sendable.

    /// An endpoint disabled by paybridge: its record and its `endpoint.disabled` event
    /// commit together.
    struct Disabled {
        var endpoint: String
        var record: EndpointRecord
        /// The `endpoint.disabled` event, routed and rendered before the transaction.
        var entry: OutboxEntry
    }

    /// One unit of work handed over by the dispatcher.
    struct Batch {
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
    }

    private let store: any OutboxStore
    private let storage: StorageMonitor
    private let clock: WallClock
    // The callbacks sit in a struct, never directly in the Mutex: a closure stored as a
    // generic value and read through `withLock`'s inout gains two reabstraction thunks per
    // read, so every commit made the next acknowledgement slower (and kept more memory).
    private struct Acknowledgement: Sendable {
        let call: @Sendable (DeliveryStateMachine.Commit) -> Void
    }

    private struct Refusal: Sendable {
        let call: @Sendable () -> Void
    }

    private let acknowledgement = Mutex<Acknowledgement?>(nil)
    private let refusal = Mutex<Refusal?>(nil)

    private let condition = NSCondition()
    private var waiting = Batch()
    private var committing = false
    private var stopped = false

    init(store: any OutboxStore, storage: StorageMonitor, clock: WallClock) {
        self.store = store
        self.storage = storage
        self.clock = clock
        let thread = Thread { [self] in run() }
        thread.name = "paybridge-recorder"
        thread.start()
    }

    /// Told of every commit (set once, before the first batch).
    var acknowledge: (@Sendable (DeliveryStateMachine.Commit) -> Void)? {
        get { acknowledgement.withLock { $0 }?.call }
        set { acknowledgement.withLock { $0 = newValue.map(Acknowledgement.init) } }
    }

    /// Told when a commit is refused (the storage fault is reported first).
    var refused: (@Sendable () -> Void)? {
        get { refusal.withLock { $0 }?.call }
        set { refusal.withLock { $0 = newValue.map(Refusal.init) } }
    }

    func submit(_ batch: Batch) {
        guard !batch.isEmpty else { return }
        condition.lock()
        waiting.append(batch)
        condition.signal()
        condition.unlock()
    }

    /// Waits until everything submitted so far is committed, or `deadline` passes.
    func waitUntilIdle(deadline: Date) {
        condition.lock()
        while !(waiting.isEmpty && !committing) {
            let left = deadline.timeIntervalSince(clock.now())
            guard left > 0 else { break }
            _ = condition.wait(until: Date(timeIntervalSinceNow: min(left, 0.05)))
        }
        condition.unlock()
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while waiting.isEmpty, !stopped { condition.wait() }
            if waiting.isEmpty, stopped {
                condition.unlock()
                return
            }
            let batch = waiting
            waiting = Batch()
            committing = true
            condition.unlock()

            let committed = commit(batch)

            condition.lock()
            committing = false
            if !committed {
                // Keep it, ahead of anything newer, and retry after a pause.
                var retry = batch
                retry.append(waiting)
                waiting = retry
                condition.broadcast()
                _ = condition.wait(until: Date(timeIntervalSinceNow: 1))
            } else {
                condition.broadcast()
            }
            condition.unlock()
        }
    }

    private func commit(_ batch: Batch) -> Bool {
        do {
            let now = clock.now()
            try store.write { transaction in
                for (name, record) in batch.endpointRecords { try transaction.saveEndpointRecord(name: name, record) }
                for disabled in batch.disabled {
                    try transaction.saveEndpointRecord(name: disabled.endpoint, disabled.record)
                    try transaction.append(disabled.entry, dueAt: disabled.entry.event.createdAt)
                }
                try transaction.recordAttempts(batch.records, at: now)
                for (name, stats) in batch.stats { try transaction.saveEndpointStats(name: name, stats) }
            }
            storage.reportHealthy(at: now)
            acknowledge?(
                DeliveryStateMachine.Commit(
                    deliveryIds: batch.records.map(\.deliveryId), disabledEndpoints: batch.disabled.map(\.endpoint),
                    queuedDeliveries: batch.disabled.contains { $0.entry.queuesWork }))
            return true
        } catch {
            // The deliveries stay pending in the store and are held here until it takes writes
            // again; if paybridge stops first, they are attempted again later.
            storage.reportFault(error, at: clock.now())
            refused?()
            return false
        }
    }
}
