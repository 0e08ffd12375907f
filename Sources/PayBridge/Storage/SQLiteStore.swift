import Foundation
import GRDB
import Synchronization

/// The embedded store: one SQLite database in WAL mode.
///
/// Durability: `synchronous = FULL`, so a commit is on disk when `write` returns and survives
/// a power cut as well as a crash (NORMAL would survive a process crash but may lose the last
/// commits on power loss). Commits are batched by the callers, so the fsync per commit is cheap.
/// Checkpoints run in the background (`Checkpointer`), so no commit waits for one.
public final class SQLiteStore: SQLStore {
    public static let fileName = "paybridge.sqlite"

    private let pool: DatabasePool
    private let writer: SQLiteSession
    private let reader: SQLiteSession
    private let checkpointer: Checkpointer
    private let announcements = StateChanges()
    public let path: String

    /// Opens (and creates or migrates) the database in `directory`. A write waits up to
    /// `busyTimeout` for another writer (another process, an operator's sqlite3) to finish.
    ///
    /// The state holds payment data (IBANs, names, amounts): a folder it creates is `0700`
    /// and its database `0600` (SQLite gives the WAL and shared-memory files the same mode).
    /// - Parameter create: false for commands that only read or correct state: a missing
    ///   database is then `StateMissing`, and nothing is created.
    public static func open(directory: String, busyTimeout: Duration = .seconds(5), create: Bool = true) async throws -> SQLiteStore {
        let store = try SQLiteStore(directory: directory, busyTimeout: busyTimeout, create: create)
        _ = try await store.writer.transaction { db in try await Schema.migrate(SQLiteConnection(db: db)) }
        return store
    }

    private init(directory: String, busyTimeout: Duration, create: Bool) throws {
        path = StateStore.databaseFile(inFolder: directory)
        if !FileManager.default.fileExists(atPath: path) {
            guard create else { throw StateMissing(path: path) }
            if !FileManager.default.fileExists(atPath: directory) {
                do {
                    try FileManager.default.createDirectory(
                        atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                } catch {
                    throw StateFolderError(text: "cannot create the state folder: \(FileProblem.describe(error, path: directory))")
                }
            }
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw StateFolderError(text: "cannot create the state database: \(FileProblem.describe(errno: errno, path: path))")
            }
        }
        var configuration = GRDB.Configuration()
        configuration.busyMode = .timeout(busyTimeout.seconds)
        configuration.label = "paybridge"
        // Two readers are plenty (the dispatcher's queries, the poller's diffs); each costs a cache.
        configuration.maximumReaderCount = 2
        // `SQLiteSession` opens and closes its transactions itself, possibly across accesses.
        configuration.allowsUnsafeTransactions = true
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // Checkpoints are the Checkpointer's job; this is only a backstop should it stall.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 20000")
            try db.execute(sql: "PRAGMA journal_size_limit = 67108864")
            // All connections' caches together stay near 8 MB (B3: 1M payments within 64 MB RSS).
            try db.execute(sql: "PRAGMA soft_heap_limit = 8388608")
        }
        pool = try DatabasePool(path: path, configuration: configuration)
        writer = try SQLiteSession(pool)
        var reading = configuration
        reading.readonly = true
        reading.label = "paybridge-reader"
        reader = try SQLiteSession(DatabaseQueue(path: path, configuration: reading))
        checkpointer = try Checkpointer(path: path)
    }

    deinit { checkpointer.stop() }

    // MARK: Detection

    public func paymentStates(for paymentIds: [String]) async throws -> [String: PaymentState] {
        try await read { db in try Self.paymentStates(db, paymentIds) }
    }

    /// A read on one of GRDB's reader connections, on its queue. Not GRDB's `async` read, which
    /// throws once its task is cancelled: a graceful stop cancels the watches' tasks, and a
    /// poll's read must not turn into a CancellationError that looks like a storage fault.
    private func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            pool.asyncRead { db in continuation.resume(with: Result { try body(db.get()) }) }
        }
    }

    public func write<T: Sendable>(_ body: nonisolated(nonsending) @Sendable (any StoreTransaction) async throws -> T) async throws -> T {
        try await committing { try await body($0) }
    }

    /// One process writes a SQLite state (`StateLock`): nothing to fence.
    public func detect<T: Sendable>(_ body: nonisolated(nonsending) @Sendable (any DetectionTransaction) async throws -> T) async throws -> T {
        try await committing { try await body($0) }
    }

    /// Runs a write transaction; once it committed work to deliver, says so.
    private func committing<T: Sendable>(_ body: nonisolated(nonsending) @Sendable (SQLiteTransaction) async throws -> T) async throws -> T {
        let (result, queued) = try await writer.transaction { db in
            let transaction = SQLiteTransaction(db: db)
            let result = try await body(transaction)
            return (result, transaction.queued)
        }
        if queued { announcements.announce(.queued) }
        return result
    }

    public func changes() -> AsyncStream<StateChange> {
        announcements.subscribe { [weak self] in try await self?.changeMark() ?? 0 }
    }

    func reading<T: Sendable>(_ body: SQLWork<T>) async throws -> T {
        try await reader.snapshot { db in try await body(SQLiteConnection(db: db)) }
    }

    /// Other processes see the commit by `data_version` (`changeMark`); this one's own
    /// subscribers are told here.
    func writing<T: Sendable>(announce: Bool, _ body: SQLWork<T>) async throws -> T {
        let result = try await writer.transaction { db in try await body(SQLiteConnection(db: db)) }
        if announce { announcements.announce(.changed) }
        return result
    }

    /// SQLite's `data_version` on the writer connection: every write of this process goes
    /// through that one connection, so only other processes' commits change it.
    public func changeMark() async throws -> Int64 {
        try await writer.read { db in try Int64.fetchOne(db, sql: "PRAGMA data_version") ?? 0 }
    }

    static func paymentStates(_ db: Database, _ paymentIds: [String]) throws -> [String: PaymentState] {
        guard !paymentIds.isEmpty else { return [:] }
        let statement = try db.cachedStatement(sql: SQL.paymentStates)
        var states: [String: PaymentState] = [:]
        states.reserveCapacity(paymentIds.count)
        var raw = RawStatement(statement)
        raw.bind(PayBridge.jsonArray(paymentIds))
        try raw.forEachRow { row in
            states[row.text(0)] = PaymentState(status: row.text(1), sequence: row.int(2))
        }
        return states
    }

    // MARK: Delivery queue

    public func dueDeliveries(endpoint: String, dueBy: Date, limit: Int, excluding: Set<Int64>) async throws -> [QueuedDelivery] {
        try await read { db in
            let statement = try db.cachedStatement(sql: SQL.dueDeliveries)
            let excluded = "[" + excluding.map(String.init).joined(separator: ",") + "]"
            var raw = RawStatement(statement)
            raw.bind(endpoint)
            raw.bind(dueBy.timeIntervalSince1970)
            raw.bind(excluded)
            raw.bind(limit)
            var due: [QueuedDelivery] = []
            try raw.forEachRow { row in
                due.append(
                    QueuedDelivery(
                        id: row.int64(0), eventId: row.text(1), eventType: row.text(2), endpoint: endpoint, subject: row.text(3),
                        sequence: row.int(4), attempts: row.int(5), createdAt: Date(timeIntervalSince1970: row.double(6)),
                        body: row.bytes(7), contentType: row.optionalText(8), headers: Rendering.headers(fromText: row.optionalText(9)),
                        scheduleBase: row.int(10)))
            }
            return due
        }
    }
}

/// The queries that run often or over much data; `StorageTests` checks that each one is
/// answered through an index, never by scanning a table.
enum SQL {
    static let paymentStates = "SELECT id, status, sequence FROM payment WHERE id IN (SELECT value FROM json_each(?))"

    /// Pending deliveries of an endpoint, due, whose subject has no earlier pending delivery;
    /// with the endpoint's rendering when it has one, else the event's stored body.
    static let dueDeliveries = """
        SELECT d.id, d.event_id, e.type, d.subject, d.sequence, d.attempts, e.created_at, COALESCE(r.body, e.body),
            r.content_type, r.headers, d.schedule_base
        FROM delivery d JOIN event e ON e.row_id = d.event_row LEFT JOIN rendering r ON r.id = d.rendering_id
        WHERE d.endpoint = ? AND d.state = 'pending' AND d.due_at <= ?
          AND d.id NOT IN (SELECT value FROM json_each(?))
          AND NOT EXISTS (
            SELECT 1 FROM delivery p
            WHERE p.endpoint = d.endpoint AND p.subject = d.subject
              AND p.state = 'pending' AND p.sequence < d.sequence)
        ORDER BY d.due_at, d.id
        LIMIT ?
        """
}

/// The writes of one SQLite transaction, through cached statements.
final class SQLiteTransaction: SQLTransaction {
    let db: Database
    /// Whether it queued deliveries or group members.
    private(set) var queued = false

    init(db: Database) { self.db = db }

    var connection: any SQLConnection { SQLiteConnection(db: db) }

    nonisolated(nonsending) func flush() async {}

    nonisolated(nonsending) func paymentStates(for paymentIds: [String]) async throws -> [String: PaymentState] {
        try SQLiteStore.paymentStates(db, paymentIds)
    }

    nonisolated(nonsending) func savePaymentState(paymentId: String, state: PaymentState, watch: String, at date: Date) async throws {
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO payment (id, status, sequence, updated_at, first_seen_at, first_status, first_watch)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET status = excluded.status, sequence = excluded.sequence,
                    updated_at = excluded.updated_at
                """)
        var raw = RawStatement(statement)
        raw.bind(paymentId)
        raw.bind(state.status)
        raw.bind(state.sequence)
        raw.bind(date.timeIntervalSince1970)
        raw.bind(date.timeIntervalSince1970)
        raw.bind(state.status)
        raw.bind(watch)
        try raw.run()
    }

    nonisolated(nonsending) func append(_ entry: OutboxEntry, dueAt: Date) async throws {
        if try await insert(entry, dueAt: dueAt) { queued = true }
    }

    /// A success is recorded on the delivery row (`delivered_at`, `last_status`); only
    /// failures, the attempts that follow them and answers with a body (kept for `deliveries
    /// show`) get an `attempt` row, which keeps the common case to one write per delivery.
    nonisolated(nonsending) func recordAttempts(_ attempts: [AttemptRecord], at date: Date) async throws {
        let insert = try db.cachedStatement(
            sql: """
                INSERT OR REPLACE INTO attempt (delivery_id, number, started_at, duration_ms, http_status, error, response)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """)
        let update = try db.cachedStatement(
            sql: """
                UPDATE delivery SET state = ?, attempts = ?, due_at = COALESCE(?, due_at), last_status = ?,
                    last_error = ?, updated_at = ?, delivered_at = ?, last_attempt_at = ?, last_duration_ms = ?
                WHERE id = ? AND state = 'pending'
                """)
        let now = date.timeIntervalSince1970
        for record in attempts {
            let finished = record.startedAt.timeIntervalSince1970 + Double(record.duration.milliseconds) / 1000
            if record.needsAttemptRow {
                var raw = RawStatement(insert)
                raw.bind(record.deliveryId)
                raw.bind(record.attempt)
                raw.bind(record.startedAt.timeIntervalSince1970)
                raw.bind(Double(record.duration.milliseconds))
                raw.bind(record.httpStatus)
                raw.bind(record.error)
                raw.bind(record.response)
                try raw.run()
            }
            let state: DeliveryState
            var dueAt: Double?
            var deliveredAt: Double?
            switch record.next {
            case .delivered:
                state = .delivered
                deliveredAt = finished
            case .dead: state = .dead
            case .retry(let date):
                state = .pending
                dueAt = date.timeIntervalSince1970
            }
            var raw = RawStatement(update)
            raw.bind(state.rawValue)
            raw.bind(record.attempt)
            raw.bind(dueAt)
            raw.bind(record.httpStatus)
            raw.bind(record.error)
            raw.bind(now)
            raw.bind(deliveredAt)
            raw.bind(record.startedAt.timeIntervalSince1970)
            raw.bind(Double(record.duration.milliseconds))
            raw.bind(record.deliveryId)
            try raw.run()
        }
    }
}

/// The state folder or its database file cannot be created, in plain words.
public struct StateFolderError: Error, Sendable, CustomStringConvertible {
    public var text: String
    public var description: String { text }
}

/// There is no state database where the config says.
public struct StateMissing: Error, Sendable, CustomStringConvertible {
    public var path: String

    public var description: String {
        "no state database at \(path): paybridge has not run with this config yet (or state.path points elsewhere)"
    }
}

/// Copies the WAL back into the database file every 200 ms from a connection of its own, in
/// PASSIVE mode: it never blocks a writer or a reader, so commits (the poller's, the
/// recorder's) never pay for a checkpoint. Measured: B4's p99 detection→2xx fell from 88 ms
/// (32 MB checkpoints on the committing thread) and B1 rose by a tenth. The checkpoints run
/// on the connection's own GRDB queue; the task only waits between them.
final class Checkpointer: Sendable {
    private let task: Task<Void, Never>

    init(path: String) throws {
        var configuration = GRDB.Configuration()
        configuration.label = "paybridge-checkpoint"
        configuration.busyMode = .timeout(1)
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        task = Task.detached {
            while !Task.isCancelled {
                _ = try? await queue.writeWithoutTransaction { db in try db.checkpoint(.passive) }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    func stop() { task.cancel() }
}
