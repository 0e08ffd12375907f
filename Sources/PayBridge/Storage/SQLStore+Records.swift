import Foundation

// Records, the queue's cheap questions and retention, written once for both backends.
extension SQLStore {
    public func checkWritable(at date: Date) async throws {
        try await writing(announce: false) { connection in
            _ = try await connection.execute(
                "INSERT INTO heartbeat (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at", [.date(date)])
        }
    }

    public func watchRecord(name: String) async throws -> WatchRecord? {
        try await reading { connection in
            try await connection.first("SELECT baselined_at, last_success_at FROM watch WHERE name = ?", [.text(name)]) { row in
                WatchRecord(baselinedAt: try row.date(0), lastSuccessAt: try row.date(1))
            }
        }
    }

    public func watchMemberChanges(name: String) async throws -> [String: Date?] {
        try await reading { connection in
            var members: [String: Date?] = [:]
            try await connection.query(
                "SELECT m.payment_id, p.updated_at FROM watch_member m LEFT JOIN payment p ON p.id = m.payment_id WHERE m.watch = ?", [.text(name)]
            ) { row in members[try row.string(0)] = try row.date(1) }
            return members
        }
    }

    public func endpointRecords() async throws -> [String: EndpointRecord] {
        try await reading { connection in
            var records: [String: EndpointRecord] = [:]
            try await connection.query(
                "SELECT name, disabled_at, disabled_reason, failing_since, last_success_at, last_failure_at, failures, circuit FROM endpoint_state",
                []
            ) { row in
                var record = EndpointRecord(disabledAt: try row.date(1), disabledReason: try row.text(2), failingSince: try row.date(3))
                record.stats = EndpointStats(
                    lastSuccessAt: try row.date(4), lastFailureAt: try row.date(5), failures: try row.number(6), circuit: try row.text(7).flatMap(EndpointHealth.Circuit.init(rawValue:)))
                records[try row.string(0)] = record
            }
            return records
        }
    }

    public func sourceRecord(name: String) async throws -> SourceRecord {
        try await reading { connection in
            try await connection.first("SELECT failing_since, announced_at, sequence FROM source_state WHERE name = ?", [.text(name)]) { row in
                SourceRecord(failingSince: try row.date(0), announcedAt: try row.date(1), sequence: try row.number(2))
            } ?? SourceRecord()
        }
    }

    // MARK: The queue

    public func nextDueDate(after date: Date, endpoints: [String]) async throws -> Date? {
        try await reading { connection in
            try await connection.double(
                "SELECT MIN(due_at) FROM delivery WHERE state = 'pending' AND \(connection.dialect.isIn("endpoint")) AND due_at > ?",
                [.texts(endpoints), .date(date)]
            ).map(Date.init(timeIntervalSince1970:))
        }
    }

    public func nextGroupFlush(endpoint: String) async throws -> Date? {
        try await reading { connection in
            try await connection.double("SELECT MIN(flush_at) FROM event_group WHERE endpoint = ? AND flush_at IS NOT NULL", [.text(endpoint)])
                .map(Date.init(timeIntervalSince1970:))
        }
    }

    public func dueGroups(endpoint: String, dueBy: Date) async throws -> [PendingGroup] {
        try await reading { connection in
            let groups = try await connection.rows(
                "SELECT group_key, sequence FROM event_group WHERE endpoint = ? AND flush_at IS NOT NULL AND flush_at <= ? ORDER BY flush_at",
                [.text(endpoint), .date(dueBy)]
            ) { (key: try $0.string(0), sequence: try $0.number(1)) }
            var pending: [PendingGroup] = []
            for group in groups {
                let members = try await connection.rows(
                    """
                    SELECT m.event_row, e.id, e.body FROM group_member m JOIN event e ON e.row_id = m.event_row
                    WHERE m.endpoint = ? AND m.group_key = ? AND m.message_row IS NULL ORDER BY m.event_row
                    """, [.text(endpoint), .text(group.key)]
                ) { PendingGroup.Member(eventRow: try $0.int64(0) ?? 0, eventId: try $0.string(1), body: try $0.bytes(2) ?? []) }
                pending.append(PendingGroup(endpoint: endpoint, key: group.key, sequence: group.sequence, members: members))
            }
            return pending
        }
    }

    public func pendingCounts() async throws -> [String: Int] {
        try await queueFigures().mapValues(\.pending)
    }

    // MARK: Retention

    public func purgeDead(endpoint: String, before: Date) async throws -> Int {
        try await correcting { connection in
            let doomed = "SELECT id FROM delivery WHERE endpoint = ? AND state = 'dead' AND updated_at < ?"
            try await connection.execute("DELETE FROM attempt WHERE delivery_id IN (\(doomed))", [.text(endpoint), .date(before)])
            let count = try await connection.execute("DELETE FROM delivery WHERE id IN (\(doomed))", [.text(endpoint), .date(before)])
            try await Self.deleteOrphans(connection, before: before)
            return count
        }
    }

    public func prune(before: Date) async throws -> PruneReport {
        try await correcting { connection in
            var report = PruneReport()
            report.attempts = try await connection.execute("DELETE FROM attempt WHERE delivery_id IN (\(RetentionSQL.deliveredBefore))", [.date(before)])
            report.deliveries = try await connection.execute("DELETE FROM delivery WHERE id IN (\(RetentionSQL.deliveredBefore))", [.date(before)])
            report.events = try await Self.deleteOrphans(connection, before: before)
            // The bank retries a notification for about four days: its id is kept as long as
            // deliveries are, so a late repeat is still recognised.
            try await connection.execute("DELETE FROM notification WHERE received_at < ?", [.date(before)])
            return report
        }
    }

    /// Events older than `before` that no delivery refers to any more, and what hung on them.
    @discardableResult
    nonisolated(nonsending) static func deleteOrphans(_ connection: any SQLConnection, before: Date) async throws -> Int {
        let events = try await connection.execute(RetentionSQL.deleteOrphanEvents, [.date(before)])
        if events > 0 {
            try await connection.execute(RetentionSQL.deleteOrphanRenderings, [])
            try await connection.execute(RetentionSQL.deleteSentMembers, [])
        }
        return events
    }
}

/// Retention's statements; `StorageTests` checks that they are answered through indexes.
enum RetentionSQL {
    static let deliveredBefore = "SELECT id FROM delivery WHERE state = 'delivered' AND updated_at < ?"

    /// Events no delivery refers to and no group still holds for its next message.
    static let deleteOrphanEvents = """
        DELETE FROM event WHERE created_at < ?
          AND NOT EXISTS (SELECT 1 FROM delivery d WHERE d.event_row = event.row_id)
          AND NOT EXISTS (SELECT 1 FROM group_member m WHERE m.event_row = event.row_id AND m.message_row IS NULL)
        """

    static let deleteOrphanRenderings = "DELETE FROM rendering WHERE NOT EXISTS (SELECT 1 FROM event e WHERE e.row_id = rendering.event_row)"

    /// Members already sent whose event or message is gone.
    static let deleteSentMembers = """
        DELETE FROM group_member WHERE message_row IS NOT NULL
          AND (NOT EXISTS (SELECT 1 FROM event e WHERE e.row_id = group_member.message_row)
            OR NOT EXISTS (SELECT 1 FROM event e WHERE e.row_id = group_member.event_row))
        """
}
