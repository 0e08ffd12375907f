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
    private let clock: WallClock
    private let gauge = Gauge(label: "paybridge_storage_available")

    public init(logger: Logger, clock: WallClock = .system) {
        self.logger = logger
        self.clock = clock
        gauge.record(1)
    }

    public var isAvailable: Bool { fault.withLock { $0 == nil } }

    public func reportFault(_ error: any Error, at date: Date? = nil) {
        let date = date ?? clock.now()
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

    public func reportHealthy(at date: Date? = nil) {
        let date = date ?? clock.now()
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
    public func waitUntilWritable(_ store: any OutboxStore, interval: Duration = .seconds(1)) async {
        while !Task.isCancelled {
            do {
                try await store.checkWritable(at: clock.now())
                reportHealthy()
                return
            } catch {
                logger.debug("the state is still not writable", metadata: ["error": "\(error)"])
                try? await clock.sleep(for: interval)
            }
        }
    }
}

/// Tracks the bank's availability across polls and emits `source.unavailable` /
/// `source.recovered` through the outbox.
public actor SourceMonitor {
    private var health: SourceHealth
    private let store: any RecordStore
    private let outbox: Outbox
    private let logger: Logger
    private let clock: WallClock
    private let gauge = Gauge(label: "paybridge_source_available")
    private let threshold: Duration

    /// Reads the stored record first: a read that fails throws, so an outage already
    /// announced is never forgotten (nor announced twice) because the record was unreadable.
    public init(
        store: any RecordStore, outbox: Outbox, threshold: Duration, logger: Logger, clock: WallClock = .system
    ) async throws {
        let record = try await store.sourceRecord()
        health = SourceHealth(record: record, threshold: threshold)
        self.threshold = threshold
        self.store = store
        self.outbox = outbox
        self.logger = logger
        self.clock = clock
        gauge.record(record.announcedAt == nil ? 1 : 0)
    }

    public var isAvailable: Bool { health.isAvailable }

    /// Reads the stored record again: this instance has just become the one that polls, and
    /// the last poller may have announced an outage (or numbered `source` events) since.
    public func reload() async throws {
        let record = try await store.sourceRecord()
        health = SourceHealth(record: record, threshold: threshold)
        gauge.record(record.announcedAt == nil ? 1 : 0)
    }

    public func pollSucceeded(at date: Date? = nil) async {
        let date = date ?? clock.now()
        await oneAtATime {
            var next = health
            let (change, save) = next.pollSucceeded(now: date)
            await commit(next, change: change, save: save, at: date, error: nil)
        }
    }

    public func pollFailed(_ error: any Error, at date: Date? = nil) async {
        let date = date ?? clock.now()
        await oneAtATime {
            var next = health
            let (change, save) = next.pollFailed(now: date)
            await commit(next, change: change, save: save, at: date, error: error)
        }
    }

    /// Whether a poll's outcome is being committed, and the outcomes waiting for it.
    private var committing = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    /// Runs `step` once no other outcome is between reading `health` and saving the next
    /// one: the commit waits for the database, and two watches' outcomes must not both start
    /// from the same record (an outage announced twice, or a sequence number used twice).
    private func oneAtATime(_ step: () async -> Void) async {
        while committing { await withCheckedContinuation { waiting.append($0) } }
        committing = true
        await step()
        committing = false
        if !waiting.isEmpty { waiting.removeFirst().resume() }
    }

    /// Saves the new record (with its event) first; only then is it the current one.
    private func commit(_ next: SourceHealth, change: SourceHealth.Change?, save: Bool, at date: Date, error: (any Error)?) async {
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
        let record = next.record
        do {
            _ = try await outbox.detect(emitting: event.map { [Outbox.Emission($0)] } ?? []) { transaction in
                try await transaction.saveSourceRecord(record)
            }
            health = next
        } catch {
            logger.error("cannot record the bank's availability", metadata: ["error": "\(error)"])
            // A commit reported failed may still have happened (a connection lost at COMMIT):
            // what the state holds decides the next step, so an outage is not announced again
            // under a new id.
            if let stored = try? await store.sourceRecord() {
                health = SourceHealth(record: stored, threshold: threshold)
                gauge.record(stored.announcedAt == nil ? 1 : 0)
            }
            return
        }
        switch change {
        case .unavailable(let since):
            gauge.record(0)
            var metadata: Logger.Metadata = ["since": "\(Timestamp.iso8601(since))", "error": "\(error.map { "\($0)" } ?? "")"]
            if let requestId = (error as? PollError)?.requestId ?? (error as? BankError)?.requestId { metadata["requestId"] = "\(requestId)" }
            logger.error("the bank is unavailable", metadata: metadata)
        case .recovered(let since):
            gauge.record(1)
            logger.notice("the bank is available again", metadata: ["since": "\(Timestamp.iso8601(since))"])
        case nil:
            break
        }
    }
}
