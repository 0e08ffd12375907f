import Foundation
import Logging
import Metrics
import Synchronization

/// Whether the state database takes writes. Polling stops while it does not (paybridge must
/// not detect changes it cannot record) and the dispatcher holds its results; one log line
/// when the fault starts, one when it clears.
public final class StorageMonitor: Sendable {
    private let fault = Mutex<(reason: String, since: Date)?>(nil)
    private let logger: Logger
    private let gauge = Gauge(label: "paybridge_storage_available")

    public init(logger: Logger) {
        self.logger = logger
        gauge.record(1)
    }

    public var isAvailable: Bool { fault.withLock { $0 == nil } }

    public func reportFault(_ error: any Error, at date: Date = Date()) {
        let first = fault.withLock { fault -> Bool in
            guard fault == nil else { return false }
            fault = ("\(error)", date)
            return true
        }
        guard first else { return }
        gauge.record(0)
        logger.error(
            "state storage unavailable: polling paused and delivery results held; nothing is lost, resuming when it clears",
            metadata: ["error": "\(error)"])
    }

    public func reportHealthy(at date: Date = Date()) {
        guard let ended = fault.withLock({ fault -> (reason: String, since: Date)? in
            defer { fault = nil }
            return fault
        }) else { return }
        gauge.record(1)
        logger.notice(
            "state storage available again; resuming",
            metadata: ["unavailableFor": "\(DurationText.format(.milliseconds(Int64(date.timeIntervalSince(ended.since) * 1000))))"])
    }

    /// Waits until a write commits again, probing every `interval`.
    public func waitUntilWritable(_ store: any Store, interval: Duration = .seconds(1)) async {
        while !Task.isCancelled {
            do {
                try store.checkWritable()
                reportHealthy()
                return
            } catch {
                try? await Task.sleep(for: interval)
            }
        }
    }
}

/// Tracks the bank's availability across polls and emits `source.unavailable` /
/// `source.recovered` through the outbox.
public actor SourceMonitor {
    private var health: SourceHealth
    private let store: any Store
    private let routes: RouteTable
    private let logger: Logger
    private let onQueued: @Sendable () -> Void
    private let gauge = Gauge(label: "paybridge_source_available")

    public init(store: any Store, routes: RouteTable, threshold: Duration, logger: Logger, onQueued: @escaping @Sendable () -> Void) {
        let record = (try? store.sourceRecord()) ?? SourceRecord()
        health = SourceHealth(record: record, threshold: threshold)
        self.store = store
        self.routes = routes
        self.logger = logger
        self.onQueued = onQueued
        gauge.record(record.announcedAt == nil ? 1 : 0)
    }

    public var isAvailable: Bool { health.isAvailable }

    public func pollSucceeded(at date: Date = Date()) {
        var next = health
        let (change, save) = next.pollSucceeded(now: date)
        commit(next, change: change, save: save, at: date, error: nil)
    }

    public func pollFailed(_ error: any Error, at date: Date = Date()) {
        var next = health
        let (change, save) = next.pollFailed(now: date)
        commit(next, change: change, save: save, at: date, error: error)
    }

    /// Saves the new record (with its event) first; only then is it the current one.
    private func commit(_ next: SourceHealth, change: SourceHealth.Change?, save: Bool, at date: Date, error: (any Error)?) {
        guard save || change != nil else {
            health = next
            return
        }
        let event: Event?
        switch change {
        case .unavailable(let since):
            event = .operational(
                type: .sourceUnavailable, subject: "source", sequence: next.record.sequence, createdAt: date,
                data: ["source": .string("banking-circle"), "since": .string(Timestamp.iso8601(since)), "error": .string(error.map { "\($0)" } ?? "")])
        case .recovered(let since):
            event = .operational(
                type: .sourceRecovered, subject: "source", sequence: next.record.sequence, createdAt: date,
                data: ["source": .string("banking-circle"), "since": .string(Timestamp.iso8601(since))])
        case nil:
            event = nil
        }
        do {
            let queued = try store.write { transaction -> Bool in
                try transaction.saveSourceRecord(next.record)
                guard let event else { return false }
                let endpoints = routes.endpoints(for: event.routable)
                try transaction.appendEvent(event, endpoints: endpoints, dueAt: date)
                return !endpoints.isEmpty
            }
            health = next
            if queued { onQueued() }
        } catch {
            logger.error("cannot record the bank's availability", metadata: ["error": "\(error)"])
            return
        }
        switch change {
        case .unavailable(let since):
            gauge.record(0)
            logger.error("the bank is unavailable", metadata: ["since": "\(Timestamp.iso8601(since))", "error": "\(error.map { "\($0)" } ?? "")"])
        case .recovered(let since):
            gauge.record(1)
            logger.notice("the bank is available again", metadata: ["since": "\(Timestamp.iso8601(since))"])
        case nil:
            break
        }
    }
}
