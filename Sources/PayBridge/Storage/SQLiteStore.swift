import Foundation
import GRDB
import Synchronization

/// The embedded store: one SQLite database in WAL mode.
///
/// Durability: `synchronous = FULL`, so a commit is on disk when `write` returns and survives
/// a power cut as well as a crash (NORMAL would survive a process crash but may lose the last
/// commits on power loss). Commits are batched by the callers, so the fsync per commit is cheap.
/// Checkpoints run in the background (`Checkpointer`), so no commit waits for one.
public final class SQLiteStore: Store {
    public static let fileName = "paybridge.sqlite"

    private let pool: DatabasePool
    private let checkpointer: Checkpointer
    public let path: String

    /// Opens (and creates or migrates) the database in `directory`. A write waits up to
    /// `busyTimeout` for another writer (another process, an operator's sqlite3) to finish.
    ///
    /// The state holds payment data (IBANs, names, amounts): a folder it creates is `0700`
    /// and its database `0600` (SQLite gives the WAL and shared-memory files the same mode).
    /// - Parameter create: false for commands that only read or correct state: a missing
    ///   database is then `StateMissing`, and nothing is created.
    public init(directory: String, busyTimeout: Duration = .seconds(5), create: Bool = true) throws {
        path = URL(fileURLWithPath: directory).appendingPathComponent(Self.fileName).path
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
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // Checkpoints are the Checkpointer's job; this is only a backstop should it stall.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 20000")
            try db.execute(sql: "PRAGMA journal_size_limit = 67108864")
            // All connections' caches together stay near 8 MB (B3: 1M payments within 64 MB RSS).
            try db.execute(sql: "PRAGMA soft_heap_limit = 8388608")
        }
        pool = try DatabasePool(path: path, configuration: configuration)
        try Self.migrator.migrate(pool)
        checkpointer = try Checkpointer(path: path)
    }

    deinit { checkpointer.stop() }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE payment (
                        id TEXT PRIMARY KEY NOT NULL,
                        status TEXT NOT NULL,
                        sequence INTEGER NOT NULL,
                        updated_at REAL NOT NULL
                    ) WITHOUT ROWID;
                    CREATE TABLE watch (
                        name TEXT PRIMARY KEY NOT NULL,
                        baselined_at REAL,
                        last_success_at REAL
                    );
                    CREATE TABLE watch_member (
                        watch TEXT NOT NULL,
                        payment_id TEXT NOT NULL,
                        PRIMARY KEY (watch, payment_id)
                    ) WITHOUT ROWID;
                    -- Events are stored in insertion order (rowid): their bodies are written
                    -- sequentially instead of scattered by their random ids.
                    CREATE TABLE event (
                        id TEXT NOT NULL UNIQUE,
                        type TEXT NOT NULL,
                        subject TEXT NOT NULL,
                        sequence INTEGER NOT NULL,
                        status TEXT,
                        previous_status TEXT,
                        watch TEXT,
                        created_at REAL NOT NULL,
                        body BLOB NOT NULL
                    );
                    CREATE INDEX event_created ON event(created_at);
                    CREATE TABLE delivery (
                        id INTEGER PRIMARY KEY,
                        event_id TEXT NOT NULL,
                        event_row INTEGER NOT NULL,
                        endpoint TEXT NOT NULL,
                        subject TEXT NOT NULL,
                        sequence INTEGER NOT NULL,
                        state TEXT NOT NULL DEFAULT 'pending',
                        attempts INTEGER NOT NULL DEFAULT 0,
                        due_at REAL NOT NULL,
                        created_at REAL NOT NULL,
                        updated_at REAL NOT NULL,
                        last_status INTEGER,
                        last_error TEXT,
                        delivered_at REAL
                    );
                    CREATE INDEX delivery_due ON delivery(endpoint, due_at) WHERE state = 'pending';
                    CREATE INDEX delivery_order ON delivery(endpoint, subject, sequence) WHERE state = 'pending';
                    CREATE INDEX delivery_event ON delivery(event_row);
                    CREATE INDEX delivery_done ON delivery(updated_at) WHERE state = 'delivered';
                    CREATE TABLE attempt (
                        delivery_id INTEGER NOT NULL REFERENCES delivery(id),
                        number INTEGER NOT NULL,
                        started_at REAL NOT NULL,
                        duration_ms REAL NOT NULL,
                        http_status INTEGER,
                        error TEXT,
                        PRIMARY KEY (delivery_id, number)
                    ) WITHOUT ROWID;
                    CREATE TABLE endpoint_state (
                        name TEXT PRIMARY KEY NOT NULL,
                        disabled_at REAL,
                        disabled_reason TEXT,
                        failing_since REAL
                    );
                    CREATE TABLE source_state (
                        name TEXT PRIMARY KEY NOT NULL,
                        failing_since REAL,
                        announced_at REAL,
                        sequence INTEGER NOT NULL DEFAULT 0
                    );
                    CREATE TABLE heartbeat (
                        id INTEGER PRIMARY KEY,
                        at REAL NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("v2-pipeline") { db in
            try db.execute(
                sql: """
                    -- What an endpoint receives when it is not the event's stored body (another
                    -- format, or redaction): one row per distinct rendering of an event.
                    CREATE TABLE rendering (
                        id INTEGER PRIMARY KEY,
                        event_row INTEGER NOT NULL,
                        content_type TEXT NOT NULL,
                        headers TEXT,
                        body BLOB NOT NULL
                    );
                    CREATE INDEX rendering_event ON rendering(event_row);
                    ALTER TABLE delivery ADD COLUMN rendering_id INTEGER;
                    -- Groups of grouped endpoints, and the events waiting in them. A member
                    -- commits with its event (the outbox), so a crash during a group's wait
                    -- loses nothing; message_row is set when a message carries it.
                    CREATE TABLE event_group (
                        endpoint TEXT NOT NULL,
                        group_key TEXT NOT NULL,
                        sequence INTEGER NOT NULL DEFAULT 0,
                        flush_at REAL,
                        last_sent_at REAL,
                        PRIMARY KEY (endpoint, group_key)
                    ) WITHOUT ROWID;
                    CREATE INDEX event_group_flush ON event_group(endpoint, flush_at) WHERE flush_at IS NOT NULL;
                    CREATE TABLE group_member (
                        endpoint TEXT NOT NULL,
                        group_key TEXT NOT NULL,
                        event_row INTEGER NOT NULL,
                        message_row INTEGER,
                        added_at REAL NOT NULL,
                        PRIMARY KEY (endpoint, group_key, event_row)
                    ) WITHOUT ROWID;
                    CREATE INDEX group_member_waiting ON group_member(endpoint, group_key, event_row) WHERE message_row IS NULL;
                    CREATE INDEX group_member_event ON group_member(event_row);
                    """)
        }
        migrator.registerMigration("v3-operations") { db in
            try db.execute(
                sql: """
                    -- When, how and by which watch a payment was first seen (payments show).
                    ALTER TABLE payment ADD COLUMN first_seen_at REAL;
                    ALTER TABLE payment ADD COLUMN first_status TEXT;
                    ALTER TABLE payment ADD COLUMN first_watch TEXT;
                    -- The first bytes of a failed attempt's answer (deliveries show).
                    ALTER TABLE attempt ADD COLUMN response TEXT;
                    -- The last attempt on the delivery row itself: a first-try success has no
                    -- attempt row. schedule_base: attempts before the last replay.
                    ALTER TABLE delivery ADD COLUMN last_attempt_at REAL;
                    ALTER TABLE delivery ADD COLUMN last_duration_ms REAL;
                    ALTER TABLE delivery ADD COLUMN schedule_base INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE endpoint_state ADD COLUMN last_success_at REAL;
                    ALTER TABLE endpoint_state ADD COLUMN last_failure_at REAL;
                    ALTER TABLE endpoint_state ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE endpoint_state ADD COLUMN circuit TEXT;
                    CREATE INDEX event_subject ON event(subject, sequence);
                    CREATE INDEX delivery_dead ON delivery(endpoint) WHERE state = 'dead';
                    """)
        }
        return migrator
    }

    // MARK: Detection

    public func paymentStates(for paymentIds: [String]) throws -> [String: PaymentState] {
        try pool.read { db in try Self.paymentStates(db, paymentIds) }
    }

    public func write<T>(_ body: (any StoreTransaction) throws -> T) throws -> T {
        try pool.write { db in try body(SQLiteTransaction(db: db)) }
    }

    /// A read on one of the pool's readers.
    func read<T>(_ body: (Database) throws -> T) throws -> T {
        try pool.read(body)
    }

    public func checkWritable(at date: Date) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO heartbeat (id, at) VALUES (1, ?)", arguments: [date.timeIntervalSince1970])
        }
    }

    /// SQLite's `data_version` on the writer connection: every write of this process goes
    /// through that one connection, so only other processes' commits change it.
    public func changeMark() throws -> Int64 {
        try pool.writeWithoutTransaction { db in try Int64.fetchOne(db, sql: "PRAGMA data_version") ?? 0 }
    }

    static func paymentStates(_ db: Database, _ paymentIds: [String]) throws -> [String: PaymentState] {
        guard !paymentIds.isEmpty else { return [:] }
        let statement = try db.cachedStatement(sql: SQL.paymentStates)
        var states: [String: PaymentState] = [:]
        states.reserveCapacity(paymentIds.count)
        var raw = RawStatement(statement)
        raw.bind(jsonArray(paymentIds))
        try raw.forEachRow { row in
            states[row.text(0)] = PaymentState(status: row.text(1), sequence: row.int(2))
        }
        return states
    }

    /// Ids as a JSON array, so one cached statement takes any number of them.
    static func jsonArray<S: Sequence>(_ values: S) -> String where S.Element == String {
        var writer = JSONWriter()
        writer.raw("[")
        var first = true
        for value in values {
            if !first { writer.raw(",") }
            first = false
            writer.string(value)
        }
        writer.raw("]")
        return String(decoding: writer.output, as: UTF8.self)
    }

    public func watchRecord(name: String) throws -> WatchRecord? {
        try pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT baselined_at, last_success_at FROM watch WHERE name = ?", arguments: [name])
            else { return nil }
            let baselined: Double? = row[0]
            let success: Double? = row[1]
            return WatchRecord(
                baselinedAt: baselined.map(Date.init(timeIntervalSince1970:)),
                lastSuccessAt: success.map(Date.init(timeIntervalSince1970:)))
        }
    }

    public func watchMembers(name: String) throws -> Set<String> {
        try pool.read { db in
            Set(try String.fetchAll(db, sql: "SELECT payment_id FROM watch_member WHERE watch = ?", arguments: [name]))
        }
    }

    public func endpointRecords() throws -> [String: EndpointRecord] {
        try pool.read { db in
            var records: [String: EndpointRecord] = [:]
            for row in try Row.fetchAll(
                db,
                sql: "SELECT name, disabled_at, disabled_reason, failing_since, last_success_at, last_failure_at, failures, circuit FROM endpoint_state")
            {
                let disabledAt: Double? = row[1]
                let failingSince: Double? = row[3]
                var record = EndpointRecord(
                    disabledAt: disabledAt.map(Date.init(timeIntervalSince1970:)), disabledReason: row[2],
                    failingSince: failingSince.map(Date.init(timeIntervalSince1970:)))
                let success: Double? = row[4]
                let failure: Double? = row[5]
                record.stats = EndpointStats(
                    lastSuccessAt: success.map(Date.init(timeIntervalSince1970:)), lastFailureAt: failure.map(Date.init(timeIntervalSince1970:)),
                    failures: row[6], circuit: row[7])
                records[row[0]] = record
            }
            return records
        }
    }

    public func sourceRecord() throws -> SourceRecord {
        try pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT failing_since, announced_at, sequence FROM source_state WHERE name = 'source'")
            else { return SourceRecord() }
            let failingSince: Double? = row[0]
            let announcedAt: Double? = row[1]
            return SourceRecord(
                failingSince: failingSince.map(Date.init(timeIntervalSince1970:)),
                announcedAt: announcedAt.map(Date.init(timeIntervalSince1970:)), sequence: row[2])
        }
    }

    // MARK: Delivery queue

    public func dueDeliveries(endpoint: String, dueBy: Date, limit: Int, excluding: Set<Int64>) throws -> [QueuedDelivery] {
        try pool.read { db in
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

    public func nextGroupFlush(endpoint: String) throws -> Date? {
        try pool.read { db in
            try Double.fetchOne(
                db, sql: "SELECT MIN(flush_at) FROM event_group WHERE endpoint = ? AND flush_at IS NOT NULL", arguments: [endpoint]
            ).map(Date.init(timeIntervalSince1970:))
        }
    }

    public func dueGroups(endpoint: String, dueBy: Date) throws -> [PendingGroup] {
        try pool.read { db in
            let groups = try Row.fetchAll(
                db, sql: "SELECT group_key, sequence FROM event_group WHERE endpoint = ? AND flush_at IS NOT NULL AND flush_at <= ? ORDER BY flush_at",
                arguments: [endpoint, dueBy.timeIntervalSince1970])
            return try groups.map { row in
                let key: String = row[0]
                let members = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT m.event_row, e.id, e.body FROM group_member m JOIN event e ON e.rowid = m.event_row
                        WHERE m.endpoint = ? AND m.group_key = ? AND m.message_row IS NULL ORDER BY m.event_row
                        """, arguments: [endpoint, key]
                ).map { member in
                    PendingGroup.Member(eventRow: member[0], eventId: member[1], body: Array((member[2] as Data?) ?? Data()))
                }
                return PendingGroup(endpoint: endpoint, key: key, sequence: row[1], members: members)
            }
        }
    }

    public func nextDueDate(after date: Date, endpoints: [String]) throws -> Date? {
        try pool.read { db in
            let statement = try db.cachedStatement(sql: SQL.nextDueDate)
            let seconds = try Double.fetchOne(statement, arguments: [Self.jsonArray(endpoints), date.timeIntervalSince1970])
            return seconds.map(Date.init(timeIntervalSince1970:))
        }
    }

    // MARK: Queue figures

    public func deliveryCounts() throws -> [String: [DeliveryState: Int]] {
        try pool.read { db in
            var counts: [String: [DeliveryState: Int]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT endpoint, state, COUNT(*) FROM delivery GROUP BY endpoint, state") {
                let endpoint: String = row[0]
                let stateText: String = row[1]
                guard let state = DeliveryState(rawValue: stateText) else { continue }
                counts[endpoint, default: [:]][state] = row[2]
            }
            return counts
        }
    }

    public func pendingCounts() throws -> [String: Int] {
        try pool.read { db in
            var counts: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT endpoint, COUNT(*) FROM delivery WHERE state = 'pending' GROUP BY endpoint") {
                counts[row[0]] = row[1]
            }
            return counts
        }
    }

    public func purgeDead(endpoint: String, before: Date) throws -> Int {
        try pool.write { db in
            let doomed = "SELECT id FROM delivery WHERE endpoint = ? AND state = 'dead' AND updated_at < ?"
            let arguments: StatementArguments = [endpoint, before.timeIntervalSince1970]
            try db.execute(sql: "DELETE FROM attempt WHERE delivery_id IN (\(doomed))", arguments: arguments)
            try db.execute(sql: "DELETE FROM delivery WHERE id IN (\(doomed))", arguments: arguments)
            let count = db.changesCount
            try Self.deleteOrphanEvents(db, before: before)
            return count
        }
    }

    public func prune(before: Date) throws -> PruneReport {
        try pool.write { db in
            var report = PruneReport()
            let arguments: StatementArguments = [before.timeIntervalSince1970]
            try db.execute(sql: "DELETE FROM attempt WHERE delivery_id IN (\(SQL.deliveredBefore))", arguments: arguments)
            report.attempts = db.changesCount
            try db.execute(sql: "DELETE FROM delivery WHERE id IN (\(SQL.deliveredBefore))", arguments: arguments)
            report.deliveries = db.changesCount
            report.events = try Self.deleteOrphanEvents(db, before: before)
            return report
        }
    }

    /// Events older than `before` that no delivery refers to any more.
    @discardableResult
    private static func deleteOrphanEvents(_ db: Database, before: Date) throws -> Int {
        try db.execute(sql: SQL.deleteOrphanEvents, arguments: [before.timeIntervalSince1970])
        let count = db.changesCount
        if count > 0 {
            try db.execute(sql: SQL.deleteOrphanRenderings)
            try db.execute(sql: SQL.deleteSentMembers)
        }
        return count
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
        FROM delivery d JOIN event e ON e.rowid = d.event_row LEFT JOIN rendering r ON r.id = d.rendering_id
        WHERE d.endpoint = ? AND d.state = 'pending' AND d.due_at <= ?
          AND d.id NOT IN (SELECT value FROM json_each(?))
          AND NOT EXISTS (
            SELECT 1 FROM delivery p
            WHERE p.endpoint = d.endpoint AND p.subject = d.subject
              AND p.state = 'pending' AND p.sequence < d.sequence)
        ORDER BY d.due_at, d.id
        LIMIT ?
        """

    static let nextDueDate = """
        SELECT MIN(due_at) FROM delivery
        WHERE state = 'pending' AND endpoint IN (SELECT value FROM json_each(?)) AND due_at > ?
        """

    static let deliveredBefore = "SELECT id FROM delivery WHERE state = 'delivered' AND updated_at < ?"

    /// Events no delivery refers to and no group still holds for its next message.
    static let deleteOrphanEvents = """
        DELETE FROM event WHERE created_at < ?
          AND NOT EXISTS (SELECT 1 FROM delivery d WHERE d.event_row = event.rowid)
          AND NOT EXISTS (SELECT 1 FROM group_member m WHERE m.event_row = event.rowid AND m.message_row IS NULL)
        """

    static let deleteOrphanRenderings = """
        DELETE FROM rendering WHERE NOT EXISTS (SELECT 1 FROM event e WHERE e.rowid = rendering.event_row)
        """

    /// Members already sent whose event or message is gone.
    static let deleteSentMembers = """
        DELETE FROM group_member WHERE message_row IS NOT NULL
          AND (NOT EXISTS (SELECT 1 FROM event e WHERE e.rowid = group_member.message_row)
            OR NOT EXISTS (SELECT 1 FROM event e WHERE e.rowid = group_member.event_row))
        """
}

/// The writes of one SQLite transaction, through cached statements.
struct SQLiteTransaction: StoreTransaction {
    let db: Database

    func paymentStates(for paymentIds: [String]) throws -> [String: PaymentState] {
        try SQLiteStore.paymentStates(db, paymentIds)
    }

    func savePaymentState(paymentId: String, state: PaymentState, watch: String, at date: Date) throws {
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

    func append(_ entry: OutboxEntry, dueAt: Date) throws {
        let event = entry.event
        let insertEvent = try db.cachedStatement(
            sql: """
                INSERT OR IGNORE INTO event (id, type, subject, sequence, status, previous_status, watch, created_at, body)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        var raw = RawStatement(insertEvent)
        raw.bind(event.id)
        raw.bind(event.type.rawValue)
        raw.bind(event.subject)
        raw.bind(event.sequence)
        raw.bind(event.status)
        raw.bind(event.previousStatus)
        raw.bind(event.watch)
        raw.bind(event.createdAt.timeIntervalSince1970)
        raw.bind(bytes: event.body)
        try raw.run()
        // An event already stored already has its deliveries: appending it again is a no-op.
        guard db.changesCount > 0, entry.queuesWork else { return }
        let eventRow = db.lastInsertedRowID
        var renderingIds: [Int64] = []
        if !entry.renderings.isEmpty {
            let insertRendering = try db.cachedStatement(
                sql: "INSERT INTO rendering (event_row, content_type, headers, body) VALUES (?, ?, ?, ?)")
            for rendering in entry.renderings {
                var raw = RawStatement(insertRendering)
                raw.bind(eventRow)
                raw.bind(rendering.contentType)
                raw.bind(rendering.headerText)
                raw.bind(bytes: rendering.body)
                try raw.run()
                renderingIds.append(db.lastInsertedRowID)
            }
        }
        if !entry.deliveries.isEmpty {
            let insertDelivery = try db.cachedStatement(
                sql: """
                    INSERT INTO delivery (event_id, event_row, endpoint, subject, sequence, due_at, created_at, updated_at, rendering_id)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
            let now = event.createdAt.timeIntervalSince1970
            for (endpoint, rendering) in entry.deliveries {
                var raw = RawStatement(insertDelivery)
                raw.bind(event.id)
                raw.bind(eventRow)
                raw.bind(endpoint)
                raw.bind(event.subject)
                raw.bind(event.sequence)
                raw.bind(dueAt.timeIntervalSince1970)
                raw.bind(now)
                raw.bind(now)
                if let rendering { raw.bind(renderingIds[rendering]) } else { raw.bindNull() }
                try raw.run()
            }
        }
        for membership in entry.memberships {
            let at = dueAt.timeIntervalSince1970
            try db.execute(
                sql: "INSERT OR IGNORE INTO group_member (endpoint, group_key, event_row, added_at) VALUES (?, ?, ?, ?)",
                arguments: [membership.endpoint, membership.key, eventRow, at])
            // The first waiting member sets the group's time: `wait` from now, and never
            // sooner than `interval` after its previous message.
            try db.execute(
                sql: """
                    INSERT INTO event_group (endpoint, group_key, flush_at) VALUES (?, ?, ?)
                    ON CONFLICT (endpoint, group_key) DO UPDATE SET flush_at = COALESCE(event_group.flush_at,
                        MAX(excluded.flush_at, COALESCE(event_group.last_sent_at + ?, 0)))
                    """, arguments: [membership.endpoint, membership.key, at + membership.wait.seconds, membership.interval.seconds])
        }
    }

    func appendGroupMessage(_ entry: OutboxEntry, for group: PendingGroup, interval: Duration, at date: Date) throws {
        try append(entry, dueAt: date)
        guard let messageRow = try Int64.fetchOne(db, sql: "SELECT rowid FROM event WHERE id = ?", arguments: [entry.event.id]) else { return }
        let members = "[" + group.members.map { String($0.eventRow) }.joined(separator: ",") + "]"
        try db.execute(
            sql: """
                UPDATE group_member SET message_row = ? WHERE endpoint = ? AND group_key = ? AND message_row IS NULL
                  AND event_row IN (SELECT value FROM json_each(?))
                """, arguments: [messageRow, group.endpoint, group.key, members])
        let waiting = try Bool.fetchOne(
            db, sql: "SELECT EXISTS (SELECT 1 FROM group_member WHERE endpoint = ? AND group_key = ? AND message_row IS NULL)",
            arguments: [group.endpoint, group.key]) ?? false
        let now = date.timeIntervalSince1970
        try db.execute(
            sql: "UPDATE event_group SET sequence = ?, last_sent_at = ?, flush_at = ? WHERE endpoint = ? AND group_key = ?",
            arguments: [group.sequence + 1, now, waiting ? now + interval.seconds : nil, group.endpoint, group.key])
    }

    func saveEndpointRecord(name: String, _ record: EndpointRecord) throws {
        try db.execute(
            sql: """
                INSERT INTO endpoint_state (name, disabled_at, disabled_reason, failing_since) VALUES (?, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET disabled_at = excluded.disabled_at, disabled_reason = excluded.disabled_reason,
                    failing_since = excluded.failing_since
                """,
            arguments: [
                name, record.disabledAt?.timeIntervalSince1970, record.disabledReason, record.failingSince?.timeIntervalSince1970,
            ])
    }

    func saveEndpointStats(name: String, _ stats: EndpointStats) throws {
        try db.execute(
            sql: """
                INSERT INTO endpoint_state (name, last_success_at, last_failure_at, failures, circuit) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET last_success_at = COALESCE(excluded.last_success_at, last_success_at),
                    last_failure_at = COALESCE(excluded.last_failure_at, last_failure_at), failures = excluded.failures,
                    circuit = excluded.circuit
                """,
            arguments: [
                name, stats.lastSuccessAt?.timeIntervalSince1970, stats.lastFailureAt?.timeIntervalSince1970, stats.failures, stats.circuit,
            ])
    }

    /// A success is recorded on the delivery row (`delivered_at`, `last_status`); only
    /// failures and the attempts that follow them get an `attempt` row, which keeps the common
    /// case to one write per delivery.
    func recordAttempts(_ attempts: [AttemptRecord], at date: Date) throws {
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
            if record.next != .delivered || record.attempt > 1 {
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

    func saveSourceRecord(_ record: SourceRecord) throws {
        try db.execute(
            sql: "INSERT OR REPLACE INTO source_state (name, failing_since, announced_at, sequence) VALUES ('source', ?, ?, ?)",
            arguments: [record.failingSince?.timeIntervalSince1970, record.announcedAt?.timeIntervalSince1970, record.sequence])
    }

    func recordWatchPoll(name: String, at date: Date, baselined: Bool) throws {
        let seconds = date.timeIntervalSince1970
        try db.execute(
            sql: """
                INSERT INTO watch (name, baselined_at, last_success_at) VALUES (?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET
                    baselined_at = COALESCE(watch.baselined_at, excluded.baselined_at),
                    last_success_at = excluded.last_success_at
                """, arguments: [name, baselined ? seconds : nil, seconds])
    }

    func replaceWatchMembers(name: String, paymentIds: Set<String>) throws {
        try db.execute(sql: "DELETE FROM watch_member WHERE watch = ?", arguments: [name])
        let insert = try db.cachedStatement(sql: "INSERT OR IGNORE INTO watch_member (watch, payment_id) VALUES (?, ?)")
        for id in paymentIds {
            try insert.execute(arguments: [name, id])
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
/// (32 MB checkpoints on the committing thread) and B1 rose by a tenth.
final class Checkpointer: @unchecked Sendable {
    // @unchecked: `queue` is used only by the checkpoint thread; `wake` is thread-safe.
    private let queue: DatabaseQueue
    private let wake = DispatchSemaphore(value: 0)
    private let stopped = Mutex(false)

    init(path: String) throws {
        var configuration = GRDB.Configuration()
        configuration.label = "paybridge-checkpoint"
        configuration.busyMode = .timeout(1)
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        queue = try DatabaseQueue(path: path, configuration: configuration)
        let thread = Thread { [self] in run() }
        thread.name = "paybridge-checkpoint"
        thread.start()
    }

    func stop() {
        stopped.withLock { $0 = true }
        wake.signal()
    }

    private func run() {
        while !stopped.withLock({ $0 }) {
            _ = try? queue.inDatabase { db in try db.checkpoint(.passive) }
            _ = wake.wait(timeout: .now() + .milliseconds(200))
        }
    }
}
