import Foundation

/// The state's tables, the same on both backends, and their versions. Each migration runs in
/// the transaction that records it (`paybridge_schema`); a backend runs `migrate` in a write
/// transaction that only one process at a time holds.
enum Schema {
    /// Versioned migrations: the list only grows.
    static func migrations(_ d: SQLDialect) -> [String] {
        [
            """
            CREATE TABLE payment (
                id TEXT PRIMARY KEY NOT NULL, status TEXT NOT NULL, sequence INTEGER NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
                first_seen_at DOUBLE PRECISION, first_status TEXT, first_watch TEXT)\(d.withoutRowId);
            CREATE TABLE watch (name TEXT PRIMARY KEY NOT NULL, baselined_at DOUBLE PRECISION, last_success_at DOUBLE PRECISION);
            CREATE TABLE watch_member (watch TEXT NOT NULL, payment_id TEXT NOT NULL, PRIMARY KEY (watch, payment_id))\(d.withoutRowId);
            CREATE TABLE event (
                row_id \(d.rowIdColumn), id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, subject TEXT NOT NULL, sequence INTEGER NOT NULL,
                status TEXT, previous_status TEXT, watch TEXT, created_at DOUBLE PRECISION NOT NULL, body \(d.bytesType) NOT NULL);
            CREATE INDEX event_created ON event(created_at);
            CREATE INDEX event_subject ON event(subject, sequence);
            CREATE TABLE rendering (
                id \(d.rowIdColumn), event_row BIGINT NOT NULL, content_type TEXT NOT NULL, headers TEXT, body \(d.bytesType) NOT NULL);
            CREATE INDEX rendering_event ON rendering(event_row);
            CREATE TABLE delivery (
                id \(d.rowIdColumn), event_id TEXT NOT NULL, event_row BIGINT NOT NULL, endpoint TEXT NOT NULL, subject TEXT NOT NULL,
                sequence INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
                due_at DOUBLE PRECISION NOT NULL, created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
                last_status INTEGER, last_error TEXT, delivered_at DOUBLE PRECISION, rendering_id BIGINT, last_attempt_at DOUBLE PRECISION,
                last_duration_ms DOUBLE PRECISION, schedule_base INTEGER NOT NULL DEFAULT 0, claimed_by TEXT, claimed_until DOUBLE PRECISION);
            -- (endpoint, due_at, id): a refill walks it in its ORDER BY and stops at its LIMIT.
            CREATE INDEX delivery_due ON delivery(endpoint, due_at, id) WHERE state = 'pending';
            CREATE INDEX delivery_order ON delivery(endpoint, subject, sequence) WHERE state = 'pending';
            CREATE INDEX delivery_event ON delivery(event_row);
            CREATE INDEX delivery_done ON delivery(updated_at) WHERE state = 'delivered';
            CREATE INDEX delivery_dead ON delivery(endpoint) WHERE state = 'dead';
            CREATE TABLE attempt (
                delivery_id BIGINT NOT NULL, number INTEGER NOT NULL, started_at DOUBLE PRECISION NOT NULL,
                duration_ms DOUBLE PRECISION NOT NULL, http_status INTEGER, error TEXT, response TEXT,
                PRIMARY KEY (delivery_id, number))\(d.withoutRowId);
            CREATE TABLE endpoint_state (
                name TEXT PRIMARY KEY NOT NULL, disabled_at DOUBLE PRECISION, disabled_reason TEXT, failing_since DOUBLE PRECISION,
                last_success_at DOUBLE PRECISION, last_failure_at DOUBLE PRECISION, failures INTEGER NOT NULL DEFAULT 0, circuit TEXT);
            CREATE TABLE source_state (
                name TEXT PRIMARY KEY NOT NULL, failing_since DOUBLE PRECISION, announced_at DOUBLE PRECISION,
                sequence INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE event_group (
                endpoint TEXT NOT NULL, group_key TEXT NOT NULL, sequence INTEGER NOT NULL DEFAULT 0, flush_at DOUBLE PRECISION,
                last_sent_at DOUBLE PRECISION, PRIMARY KEY (endpoint, group_key))\(d.withoutRowId);
            CREATE INDEX event_group_flush ON event_group(endpoint, flush_at) WHERE flush_at IS NOT NULL;
            CREATE TABLE group_member (
                endpoint TEXT NOT NULL, group_key TEXT NOT NULL, event_row BIGINT NOT NULL, message_row BIGINT,
                added_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (endpoint, group_key, event_row))\(d.withoutRowId);
            CREATE INDEX group_member_waiting ON group_member(endpoint, group_key, event_row) WHERE message_row IS NULL;
            CREATE INDEX group_member_event ON group_member(event_row);
            CREATE TABLE lease (
                name TEXT PRIMARY KEY NOT NULL, holder TEXT NOT NULL, token BIGINT NOT NULL, expires_at DOUBLE PRECISION NOT NULL,
                pid INTEGER, backend_start TIMESTAMPTZ);
            CREATE TABLE instance (id TEXT PRIMARY KEY NOT NULL, seen_at DOUBLE PRECISION NOT NULL, pid INTEGER, backend_start TIMESTAMPTZ);
            CREATE TABLE heartbeat (id INTEGER PRIMARY KEY, at DOUBLE PRECISION NOT NULL)
            """,
            // PostgreSQL's first schema indexed deliveries by event id: one more random
            // B-tree insert per delivery (B1 on SQLite lost a quarter of its speed to it).
            // Lookups by event go through `event_row` instead.
            "DROP INDEX IF EXISTS delivery_event_id",
            // The bank's notifications (§10): the event ids seen (deduplication) and the
            // look-ups they trigger, one per payment, a durable queue.
            """
            CREATE TABLE notification (
                event_id TEXT PRIMARY KEY NOT NULL, payment_id TEXT, type TEXT, received_at DOUBLE PRECISION NOT NULL)\(d.withoutRowId);
            CREATE INDEX notification_received ON notification(received_at);
            CREATE TABLE lookup (
                payment_id TEXT PRIMARY KEY NOT NULL, requested_at DOUBLE PRECISION NOT NULL, due_at DOUBLE PRECISION NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0, generation INTEGER NOT NULL DEFAULT 1, last_error TEXT)\(d.withoutRowId)
            """,
            // An operational event's number is its time in milliseconds (`endpoint.disabled`):
            // past PostgreSQL's 32-bit INTEGER, so disabling an endpoint failed its commit there.
            // SQLite's INTEGER has 64 bits already.
            d == .postgres
                ? "ALTER TABLE event ALTER COLUMN sequence TYPE BIGINT; ALTER TABLE delivery ALTER COLUMN sequence TYPE BIGINT"
                : "-- nothing on SQLite",
        ]
    }

    /// Brings the schema up to date; returns the version it found (0: an empty database).
    @discardableResult
    nonisolated(nonsending) static func migrate(_ connection: any SQLConnection) async throws -> Int {
        try await connection.execute("CREATE TABLE IF NOT EXISTS paybridge_schema (version INTEGER NOT NULL)", [])
        let found = Int(try await connection.int64("SELECT COALESCE(MAX(version), 0) FROM paybridge_schema") ?? 0)
        var version = found
        if version == 0, connection.dialect == .sqlite, try await adoptGRDBSchema(connection) { version = 1 }
        for (index, migration) in migrations(connection.dialect).enumerated() where index + 1 > version {
            for statement in statements(migration) { try await connection.execute(statement, []) }
            try await connection.execute("INSERT INTO paybridge_schema (version) VALUES (?)", [.int(index + 1)])
        }
        return found
    }

    /// A script's statements, without their comment lines.
    private static func statements(_ script: String) -> [String] {
        script.split(separator: ";").map { statement in
            statement.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("--") }.joined(separator: "\n")
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }.filter { !$0.isEmpty }
    }

    /// A SQLite state made before the schema was written once (GRDB's migrations v1,
    /// v2-pipeline, v3-operations): reshaped in place into version 1. The event table gets its
    /// row id as a column of its own (the same numbers: deliveries, renderings and group
    /// members keep pointing at their events); deliveries get the claim columns; the tables
    /// only PostgreSQL used appear, empty. Returns false when there is no such state.
    private nonisolated(nonsending) static func adoptGRDBSchema(_ connection: any SQLConnection) async throws -> Bool {
        let grdb = try await connection.int64("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'grdb_migrations'") ?? 0
        guard grdb > 0 else { return false }
        let applied = Set(try await connection.rows("SELECT identifier FROM grdb_migrations") { try $0.string(0) })
        guard applied == ["v1", "v2-pipeline", "v3-operations"] else {
            throw StorageError.unsupportedSchema(
                "the state was made by a release older than 2026-12 (its migrations: \(applied.sorted().joined(separator: ", "))); "
                    + "open it once with that year's December release, then with this one")
        }
        // Version 1's own statements, so the reshaped state is the schema a new one gets.
        let base = statements(migrations(.sqlite)[0])
        func created(_ prefix: String) throws -> String {
            guard let statement = base.first(where: { $0.hasPrefix(prefix) }) else { throw StorageError.unsupportedSchema("no \(prefix)") }
            return statement
        }
        try await connection.execute(try created("CREATE TABLE event (").replacingOccurrences(of: "CREATE TABLE event (", with: "CREATE TABLE event_v1 ("), [])
        try await connection.execute(
            """
            INSERT INTO event_v1 (row_id, id, type, subject, sequence, status, previous_status, watch, created_at, body)
            SELECT rowid, id, type, subject, sequence, status, previous_status, watch, created_at, body FROM event ORDER BY rowid
            """, [])
        for statement in [
            "DROP TABLE event",
            "ALTER TABLE event_v1 RENAME TO event",
            try created("CREATE INDEX event_created "),
            try created("CREATE INDEX event_subject "),
            "ALTER TABLE delivery ADD COLUMN claimed_by TEXT",
            "ALTER TABLE delivery ADD COLUMN claimed_until DOUBLE PRECISION",
            "DROP INDEX delivery_due",
            try created("CREATE INDEX delivery_due "),
            try created("CREATE TABLE lease ("),
            try created("CREATE TABLE instance ("),
            "DROP TABLE grdb_migrations",
            "INSERT INTO paybridge_schema (version) VALUES (1)",
        ] {
            try await connection.execute(statement, [])
        }
        return true
    }
}
