import Foundation

/// A write transaction whose writes are written once; a backend adds its hot paths (payment
/// states, plain events, attempt results). Whether detection writes may commit is decided
/// when the store opens the transaction (`OutboxStore.detect`), never here.
protocol SQLTransaction: DetectionTransaction {
    var connection: any SQLConnection { get }
    /// Sends writes the backend buffered, before a statement that must follow them.
    nonisolated(nonsending) func flush() async throws
}

extension SQLTransaction {
    nonisolated(nonsending) func recordWatchPoll(name: String, at date: Date, baselined: Bool) async throws {
        try await connection.execute(
            """
            INSERT INTO watch (name, baselined_at, last_success_at) VALUES (?, ?, ?)
            ON CONFLICT (name) DO UPDATE SET baselined_at = COALESCE(watch.baselined_at, excluded.baselined_at),
                last_success_at = excluded.last_success_at
            """, [.text(name), .date(baselined ? date : nil), .date(date)])
    }

    nonisolated(nonsending) func replaceWatchMembers(name: String, paymentIds: Set<String>) async throws {
        try await connection.execute("DELETE FROM watch_member WHERE watch = ?", [.text(name)])
        guard !paymentIds.isEmpty else { return }
        try await connection.execute(
            "INSERT INTO watch_member (watch, payment_id) SELECT ?, value FROM (\(connection.dialect.listRows)) AS ids WHERE true ON CONFLICT DO NOTHING",
            [.text(name), .texts(Array(paymentIds))])
    }

    nonisolated(nonsending) func saveSourceRecord(_ record: SourceRecord, name: String) async throws {
        try await connection.execute(
            """
            INSERT INTO source_state (name, failing_since, announced_at, sequence) VALUES (?, ?, ?, ?)
            ON CONFLICT (name) DO UPDATE SET failing_since = excluded.failing_since, announced_at = excluded.announced_at,
                sequence = excluded.sequence
            """, [.text(name), .date(record.failingSince), .date(record.announcedAt), .int(record.sequence)])
    }

    nonisolated(nonsending) func saveEndpointRecord(name: String, _ record: EndpointRecord) async throws {
        try await SQLWrites.saveEndpointRecord(connection, name: name, record)
    }

    nonisolated(nonsending) func saveEndpointStats(name: String, _ stats: EndpointStats) async throws {
        try await connection.execute(
            """
            INSERT INTO endpoint_state (name, last_success_at, last_failure_at, failures, circuit) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (name) DO UPDATE SET last_success_at = COALESCE(excluded.last_success_at, endpoint_state.last_success_at),
                last_failure_at = COALESCE(excluded.last_failure_at, endpoint_state.last_failure_at), failures = excluded.failures,
                circuit = excluded.circuit
            """, [.text(name), .date(stats.lastSuccessAt), .date(stats.lastFailureAt), .int(stats.failures), .text(stats.circuit?.rawValue)])
    }

    /// Stores the event with its renderings, deliveries and group memberships; returns
    /// whether it queued work (false when the event was stored before: appending it again is
    /// a no-op, so re-running a poll after a crash appends nothing twice).
    @discardableResult
    nonisolated(nonsending) func insert(_ entry: OutboxEntry, dueAt: Date) async throws -> Bool {
        let event = entry.event
        guard
            let eventRow = try await connection.insert(
                """
                INSERT INTO event (id, type, subject, sequence, status, previous_status, watch, created_at, body)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING
                """,
                [
                    .text(event.id), .text(event.type.rawValue), .text(event.subject), .int(event.sequence), .text(event.status),
                    .text(event.previousStatus), .text(event.watch), .date(event.createdAt), .bytes(event.body),
                ], returning: "row_id"), entry.queuesWork
        else { return false }
        var renderingIds: [Int64] = []
        for rendering in entry.renderings {
            let id = try await connection.insert(
                "INSERT INTO rendering (event_row, content_type, headers, body) VALUES (?, ?, ?, ?)",
                [.int(eventRow), .text(rendering.contentType), .text(rendering.headerText), .bytes(rendering.body)], returning: "id")
            renderingIds.append(id ?? 0)
        }
        for (endpoint, rendering) in entry.deliveries {
            try await connection.execute(
                """
                INSERT INTO delivery (event_id, event_row, endpoint, subject, sequence, due_at, created_at, updated_at, rendering_id)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .text(event.id), .int(eventRow), .text(endpoint), .text(event.subject), .int(event.sequence), .date(dueAt),
                    .date(event.createdAt), .date(event.createdAt), .int(rendering.map { renderingIds[$0] }),
                ])
        }
        for membership in entry.memberships {
            let at = dueAt.timeIntervalSince1970
            try await connection.execute(
                "INSERT INTO group_member (endpoint, group_key, event_row, added_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [.text(membership.endpoint), .text(membership.key), .int(eventRow), .double(at)])
            // The first waiting member sets the group's time: `wait` from now, and never
            // sooner than `interval` after its previous message.
            try await connection.execute(
                """
                INSERT INTO event_group (endpoint, group_key, flush_at) VALUES (?, ?, ?)
                ON CONFLICT (endpoint, group_key) DO UPDATE SET flush_at = COALESCE(event_group.flush_at,
                    \(connection.dialect.greatest("excluded.flush_at", "COALESCE(event_group.last_sent_at + ?, 0)")))
                """,
                [.text(membership.endpoint), .text(membership.key), .double(at + membership.wait.seconds), .double(membership.interval.seconds)])
        }
        return true
    }

    nonisolated(nonsending) func appendGroupMessage(_ entry: OutboxEntry, for group: PendingGroup, interval: Duration, at date: Date) async throws {
        try await append(entry, dueAt: date)
        try await flush()
        guard let messageRow = try await connection.int64("SELECT row_id FROM event WHERE id = ?", [.text(entry.event.id)]) else { return }
        try await connection.execute(
            "UPDATE group_member SET message_row = ? WHERE endpoint = ? AND group_key = ? AND message_row IS NULL AND \(connection.dialect.isIn("event_row"))",
            [.int(messageRow), .text(group.endpoint), .text(group.key), .ints(group.members.map(\.eventRow))])
        let waiting = try await connection.int64(
            "SELECT COUNT(*) FROM group_member WHERE endpoint = ? AND group_key = ? AND message_row IS NULL", [.text(group.endpoint), .text(group.key)])
        let now = date.timeIntervalSince1970
        try await connection.execute(
            "UPDATE event_group SET sequence = ?, last_sent_at = ?, flush_at = ? WHERE endpoint = ? AND group_key = ?",
            [
                .int(group.sequence + 1), .double(now), .double((waiting ?? 0) > 0 ? now + interval.seconds : nil), .text(group.endpoint),
                .text(group.key),
            ])
    }
}

/// Writes shared by transactions and operators' corrections.
enum SQLWrites {
    /// Whether the endpoint is disabled and since when it fails (not its stats).
    nonisolated(nonsending) static func saveEndpointRecord(_ connection: any SQLConnection, name: String, _ record: EndpointRecord) async throws {
        try await connection.execute(
            """
            INSERT INTO endpoint_state (name, disabled_at, disabled_reason, failing_since) VALUES (?, ?, ?, ?)
            ON CONFLICT (name) DO UPDATE SET disabled_at = excluded.disabled_at, disabled_reason = excluded.disabled_reason,
                failing_since = excluded.failing_since
            """, [.text(name), .date(record.disabledAt), .text(record.disabledReason), .date(record.failingSince)])
    }
}
