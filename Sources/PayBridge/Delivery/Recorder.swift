import Foundation
import Synchronization

/// Commits delivery results (and the dispatcher's own events) on a thread of its own, so the
/// dispatcher keeps starting attempts while a commit waits for the disk or for the poller's
/// transaction. Whatever accumulates during one commit goes into the next: group commit
/// without a timer. On a storage fault it keeps everything and tries again every second.
final class Recorder: @unchecked Sendable {
    // @unchecked: everything shared is guarded by `condition`; `store` and the callbacks are
    // immutable and Sendable.

    /// One unit of work handed over by the dispatcher.
    struct Batch {
        var records: [AttemptRecord] = []
        /// Events with the endpoint record to save and the endpoint they are about.
        var events: [(event: Event, record: EndpointRecord, endpoint: String)] = []
        /// Endpoint records to save on their own (a circuit opened or closed).
        var endpointRecords: [(name: String, record: EndpointRecord)] = []

        var isEmpty: Bool { records.isEmpty && events.isEmpty && endpointRecords.isEmpty }

        mutating func append(_ other: Batch) {
            records.append(contentsOf: other.records)
            events.append(contentsOf: other.events)
            endpointRecords.append(contentsOf: other.endpointRecords)
        }
    }

    /// What a commit did, reported back to the dispatcher.
    struct Acknowledgement {
        var deliveryIds: [Int64]
        var committedEvents: Bool
    }

    private let store: any Store
    private let routes: RouteTable
    private let storage: StorageMonitor
    private let acknowledge: @Sendable (Acknowledgement) -> Void
    private let onQueued: @Sendable () -> Void

    private let condition = NSCondition()
    private var waiting = Batch()
    private var committing = false
    private var stopped = false

    init(
        store: any Store, routes: RouteTable, storage: StorageMonitor, onQueued: @escaping @Sendable () -> Void,
        acknowledge: @escaping @Sendable (Acknowledgement) -> Void
    ) {
        self.store = store
        self.routes = routes
        self.storage = storage
        self.onQueued = onQueued
        self.acknowledge = acknowledge
        let thread = Thread { [self] in run() }
        thread.name = "paybridge-recorder"
        thread.start()
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
        while !(waiting.isEmpty && !committing), Date() < deadline {
            _ = condition.wait(until: min(deadline, Date().addingTimeInterval(0.05)))
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
                _ = condition.wait(until: Date().addingTimeInterval(1))
            } else {
                condition.broadcast()
            }
            condition.unlock()
        }
    }

    private func commit(_ batch: Batch) -> Bool {
        do {
            let routes = self.routes
            let queued = try store.write { transaction -> Bool in
                var queued = false
                for (name, record) in batch.endpointRecords { try transaction.saveEndpointRecord(name: name, record) }
                for (event, record, endpoint) in batch.events {
                    try transaction.saveEndpointRecord(name: endpoint, record)
                    let targets = routes.endpoints(for: event.routable).filter { $0 != endpoint }
                    try transaction.appendEvent(event, endpoints: targets, dueAt: event.createdAt)
                    queued = queued || !targets.isEmpty
                }
                try transaction.recordAttempts(batch.records)
                return queued
            }
            storage.reportHealthy()
            if queued { onQueued() }
            acknowledge(Acknowledgement(deliveryIds: batch.records.map(\.deliveryId), committedEvents: !batch.events.isEmpty))
            return true
        } catch {
            // The deliveries stay pending in the store and are held here until it takes writes
            // again; if paybridge stops first, they are attempted again later.
            storage.reportFault(error)
            return false
        }
    }
}
