import Foundation

/// Operators' reads and corrections, written once. Reads never wait for a running paybridge's
/// writes (SQLite's WAL readers, PostgreSQL's MVCC); corrections are announced, so a running
/// `run` picks them up within a second on either backend.
extension SQLStore {
    public func payment(id: String) async throws -> PaymentRecord? {
        try await reading { connection in
            try await connection.first(
                "SELECT id, status, sequence, updated_at, first_seen_at, first_status, first_watch FROM payment WHERE id = ?", [.text(id)]
            ) { row in
                PaymentRecord(
                    paymentId: try row.string(0), status: try row.string(1), sequence: try row.number(2), updatedAt: try row.instant(3),
                    firstSeenAt: try row.date(4), firstStatus: try row.text(5), firstWatch: try row.text(6))
            }
        }
    }

    private static var eventColumns: String { "e.id, e.type, e.subject, e.sequence, e.status, e.previous_status, e.watch, e.created_at" }

    private static func event(_ row: any SQLRow) throws -> EventSummary {
        EventSummary(
            id: try row.string(0), type: try row.string(1), subject: try row.string(2), sequence: try row.number(3), status: try row.text(4),
            previousStatus: try row.text(5), watch: try row.text(6), createdAt: try row.instant(7))
    }

    public func events(_ filter: EventFilter) async throws -> [EventSummary] {
        try await reading { connection in
            var conditions: [String] = []
            var values: [SQLValue] = []
            for (column, list) in [("e.type", Self.listed(filter.type)), ("e.status", Self.listed(filter.status))] {
                guard let list else { continue }
                (conditions, values) = (conditions + [connection.dialect.isIn(column)], values + [.texts(list)])
            }
            if let payment = filter.paymentId { (conditions, values) = (conditions + ["e.subject = ?"], values + [.text(payment)]) }
            if let since = filter.since { (conditions, values) = (conditions + ["e.created_at >= ?"], values + [.date(since)]) }
            if let before = filter.before {
                (conditions, values) = (conditions + ["e.row_id < (SELECT row_id FROM event WHERE id = ?)"], values + [.text(before)])
            }
            let clause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            return try await connection.rows(
                "SELECT \(Self.eventColumns) FROM event e \(clause) ORDER BY e.row_id DESC LIMIT ?", values + [.int(filter.limit)], Self.event)
        }
    }

    /// A filter's values, comma-separated as the bank's `Status` is (`Rejected,MissingFunding`);
    /// nil (no filter) when there are none, as for an empty `?status=`.
    static func listed(_ text: String?) -> [String]? {
        let values = (text ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return values.isEmpty ? nil : values
    }

    /// A-Z folded only, as SQLite's `lower` folds: the same matches on both backends.
    static func asciiLowercased(_ text: String) -> String {
        String(decoding: text.utf8.map { (65...90).contains($0) ? $0 + 32 : $0 }, as: UTF8.self)
    }

    public func paymentIds(mentioning text: String, limit: Int) async throws -> [String] {
        // A scan for the JSON string "text" anywhere in a payment event's body: an operator's
        // search, not a hot path.
        // As typed first; else in any case (`inv-4821` finds `INV-4821`).
        let quoted = "\"\(text)\""
        return try await reading { connection in
            for anyCase in [false, true] {
                let found = try await connection.rows(
                    """
                    SELECT subject FROM event WHERE type IN ('payment.created', 'payment.status_changed')
                        AND \(connection.dialect.contains("body", anyCase: anyCase))
                    GROUP BY subject ORDER BY MAX(row_id) DESC LIMIT ?
                    """, [anyCase ? .text(Self.asciiLowercased(quoted)) : .bytes(Array(quoted.utf8)), .int(limit)]
                ) { try $0.string(0) }
                if !found.isEmpty { return found }
            }
            return []
        }
    }

    public func event(id: String) async throws -> EventSummary? {
        try await reading { connection in try await connection.first("SELECT \(Self.eventColumns) FROM event e WHERE e.id = ?", [.text(id)], Self.event) }
    }

    public func eventBody(id: String) async throws -> [UInt8]? {
        try await reading { connection in try await connection.first("SELECT body FROM event WHERE id = ?", [.text(id)]) { try $0.bytes(0) ?? [] } }
    }

    public func eventsAfter(_ after: String?, limit: Int, type: String?, status: String?) async throws -> [(id: String, body: [UInt8])] {
        try await reading { connection in
            var start: Int64 = 0
            if let after {
                guard let row = try await connection.int64("SELECT row_id FROM event WHERE id = ?", [.text(after)]) else {
                    throw InspectionError.unknownEvent(after)
                }
                start = row
            }
            var sql = "SELECT id, body FROM event WHERE row_id > ?"
            var values: [SQLValue] = [.int(start)]
            if let types = Self.listed(type) { (sql, values) = (sql + " AND " + connection.dialect.isIn("type"), values + [.texts(types)]) }
            if let statuses = Self.listed(status) { (sql, values) = (sql + " AND " + connection.dialect.isIn("status"), values + [.texts(statuses)]) }
            return try await connection.rows(sql + " ORDER BY row_id LIMIT ?", values + [.int(limit)]) { (try $0.string(0), try $0.bytes(1) ?? []) }
        }
    }

    public func groupHolds(eventIds: [String]) async throws -> [GroupHold] {
        guard !eventIds.isEmpty else { return [] }
        return try await reading { connection in
            try await connection.rows(
                """
                SELECT e.id, m.endpoint, m.group_key, message.id, g.flush_at FROM group_member m
                JOIN event e ON e.row_id = m.event_row
                LEFT JOIN event message ON message.row_id = m.message_row
                LEFT JOIN event_group g ON g.endpoint = m.endpoint AND g.group_key = m.group_key
                WHERE \(connection.dialect.isIn("e.id")) ORDER BY m.event_row, m.endpoint
                """, [.texts(eventIds)]
            ) { row in
                let messageId = try row.text(3)
                return GroupHold(
                    eventId: try row.string(0), endpoint: try row.string(1), group: try row.string(2), messageId: messageId,
                    waitingUntil: messageId == nil ? try row.date(4) : nil)
            }
        }
    }

    public func groupMembers(messageId: String) async throws -> [EventSummary] {
        try await reading { connection in
            try await connection.rows(
                """
                SELECT \(Self.eventColumns) FROM group_member m JOIN event e ON e.row_id = m.event_row
                JOIN event message ON message.row_id = m.message_row WHERE message.id = ? ORDER BY m.event_row
                """, [.text(messageId)], Self.event)
        }
    }

    private static var deliveryColumns: String {
        """
        d.id, d.event_id, e.type, d.endpoint, d.subject, d.sequence, d.state, d.attempts, d.due_at, d.updated_at, d.last_status,
        d.last_error, d.created_at, d.delivered_at, d.last_attempt_at, d.last_duration_ms
        """
    }

    private static func delivery(_ row: any SQLRow) throws -> DeliveryRecord {
        DeliveryRecord(
            id: try row.int64(0) ?? 0, eventId: try row.string(1), eventType: try row.string(2), endpoint: try row.string(3),
            subject: try row.string(4), sequence: try row.number(5), state: DeliveryState(rawValue: try row.string(6)) ?? .pending,
            attempts: try row.number(7), dueAt: try row.instant(8), updatedAt: try row.instant(9), lastStatus: try row.int(10),
            lastError: try row.text(11), createdAt: try row.instant(12), deliveredAt: try row.date(13), lastAttemptAt: try row.date(14),
            lastDurationMs: try row.double(15))
    }

    public func deliveries(_ filter: DeliveryFilter) async throws -> [DeliveryRecord] {
        var conditions: [String] = []
        var values: [SQLValue] = []
        if let endpoint = filter.endpoint { (conditions, values) = (conditions + ["d.endpoint = ?"], values + [.text(endpoint)]) }
        if let state = filter.state { conditions.append(state.condition) }
        if let since = filter.since { (conditions, values) = (conditions + ["d.updated_at >= ?"], values + [.date(since)]) }
        if let eventId = filter.eventId { (conditions, values) = (conditions + ["d.event_row = (SELECT row_id FROM event WHERE id = ?)"], values + [.text(eventId)]) }
        if let before = filter.before { (conditions, values) = (conditions + ["d.id < ?"], values + [.int(before)]) }
        let clause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let bound = values + [.int(filter.limit)]
        return try await reading { connection in
            try await connection.rows(
                "SELECT \(Self.deliveryColumns) FROM delivery d JOIN event e ON e.row_id = d.event_row \(clause) ORDER BY d.id DESC LIMIT ?",
                bound, Self.delivery)
        }
    }

    public func delivery(id: Int64) async throws -> DeliveryRecord? {
        try await reading { connection in
            try await connection.first(
                "SELECT \(Self.deliveryColumns) FROM delivery d JOIN event e ON e.row_id = d.event_row WHERE d.id = ?", [.int(id)], Self.delivery)
        }
    }

    public func attempts(deliveryId: Int64) async throws -> [AttemptLog] {
        try await reading { connection in
            var logs = try await connection.rows(
                "SELECT number, started_at, duration_ms, http_status, error, response FROM attempt WHERE delivery_id = ? ORDER BY number",
                [.int(deliveryId)]
            ) { row in
                AttemptLog(
                    number: try row.number(0), startedAt: try row.instant(1), durationMs: try row.double(2) ?? 0, httpStatus: try row.int(3),
                    error: try row.text(4), response: try row.text(5))
            }
            // A first-try success is recorded on the delivery row only.
            let last = try await connection.first(
                "SELECT attempts, last_attempt_at, last_duration_ms, last_status, last_error FROM delivery WHERE id = ?", [.int(deliveryId)]
            ) { row in
                (number: try row.number(0), at: try row.date(1), duration: try row.double(2), status: try row.int(3), error: try row.text(4))
            }
            if let last, let at = last.at, last.number > 0, !logs.contains(where: { $0.number == last.number }) {
                logs.append(
                    AttemptLog(
                        number: last.number, startedAt: at, durationMs: last.duration ?? 0, httpStatus: last.status, error: last.error,
                        response: nil))
            }
            return logs
        }
    }

    public func endpointOverview() async throws -> [String: EndpointOverview] {
        let records = try await endpointRecords()
        let queues = try await queueFigures()
        let dead = try await reading { connection in
            Dictionary(
                try await connection.rows("SELECT endpoint, COUNT(*) FROM delivery WHERE state = 'dead' GROUP BY endpoint") {
                    (try $0.string(0), try $0.number(1))
                }, uniquingKeysWith: +)
        }
        return EndpointOverview.merge(records: records, queues: queues, dead: dead)
    }

    public func deliveryCounts() async throws -> [String: [DeliveryState: Int]] {
        try await reading { connection in
            var counts: [String: [DeliveryState: Int]] = [:]
            try await connection.query("SELECT endpoint, state, COUNT(*) FROM delivery GROUP BY endpoint, state", []) { row in
                guard let state = DeliveryState(rawValue: try row.string(1)) else { return }
                counts[try row.string(0), default: [:]][state] = try row.number(2)
            }
            return counts
        }
    }

    public func queueFigures() async throws -> [String: (pending: Int, oldest: Date?)] {
        try await reading { connection in
            var figures: [String: (pending: Int, oldest: Date?)] = [:]
            try await connection.query("SELECT endpoint, COUNT(*), MIN(created_at) FROM delivery WHERE state = 'pending' GROUP BY endpoint", []) { row in
                figures[try row.string(0)] = (try row.number(1), try row.date(2))
            }
            return figures
        }
    }

    public func trackedPayments() async throws -> Int {
        try await reading { connection in Int(try await connection.int64("SELECT COUNT(*) FROM payment") ?? 0) }
    }

    public func eventCount(since date: Date) async throws -> Int {
        try await reading { connection in Int(try await connection.int64("SELECT COUNT(*) FROM event WHERE created_at >= ?", [.date(date)]) ?? 0) }
    }

    public func overtaken(ids: [Int64]) async throws -> Set<Int64> {
        guard !ids.isEmpty else { return [] }
        return try await reading { connection in
            Set(
                try await connection.rows(
                    """
                    SELECT d.id FROM delivery d WHERE \(connection.dialect.isIn("d.id")) AND EXISTS (
                      SELECT 1 FROM delivery later WHERE later.endpoint = d.endpoint AND later.subject = d.subject
                        AND later.sequence > d.sequence AND later.state = 'delivered')
                    """, [.ints(ids)]
                ) { try $0.int64(0) ?? 0 })
        }
    }

    // MARK: Operators' writes

    public func replay(ids: [Int64], at date: Date) async throws -> [Int64] {
        guard !ids.isEmpty else { return [] }
        return try await correcting { connection in
            let replayed = try await connection.rows(
                "SELECT id FROM delivery WHERE state != 'pending' AND \(connection.dialect.isIn("id")) ORDER BY id", [.ints(ids)]
            ) { try $0.int64(0) ?? 0 }
            try await Self.keepLastAttempt(connection, ids)
            try await Self.queueAgain(connection, ids, at: date)
            return replayed
        }
    }

    /// Pending again, due at `date`: the attempt count and its history stay, the retry schedule
    /// starts again, and any claim of an instance is void.
    private nonisolated(nonsending) static func queueAgain(_ connection: any SQLConnection, _ ids: [Int64], at date: Date) async throws {
        try await connection.execute(
            """
            UPDATE delivery SET state = 'pending', schedule_base = attempts, due_at = ?, updated_at = ?, delivered_at = NULL,
                claimed_by = NULL, claimed_until = NULL
            WHERE state != 'pending' AND \(connection.dialect.isIn("id"))
            """, [.date(date), .date(date), .ints(ids)])
    }

    /// A first-try success lives on the delivery row only; before the row is used again, its
    /// attempt is written down so the history stays whole.
    private nonisolated(nonsending) static func keepLastAttempt(_ connection: any SQLConnection, _ ids: [Int64]) async throws {
        try await connection.execute(
            """
            INSERT INTO attempt (delivery_id, number, started_at, duration_ms, http_status, error)
            SELECT id, attempts, last_attempt_at, COALESCE(last_duration_ms, 0), last_status, last_error FROM delivery
            WHERE \(connection.dialect.isIn("id")) AND state != 'pending' AND attempts > 0 AND last_attempt_at IS NOT NULL
            ON CONFLICT DO NOTHING
            """, [.ints(ids)])
    }

    public func redeliver(eventId: String, endpoint: String, rendering: Rendering?, at date: Date) async throws -> Int64 {
        try await correcting { connection in
            guard
                let event = try await connection.first("SELECT row_id, subject, sequence FROM event WHERE id = ?", [.text(eventId)], {
                    (row: try $0.int64(0) ?? 0, subject: try $0.string(1), sequence: try $0.number(2))
                })
            else { throw InspectionError.unknownEvent(eventId) }
            if let existing = try await connection.int64(
                "SELECT id FROM delivery WHERE event_row = ? AND endpoint = ? ORDER BY id DESC LIMIT 1", [.int(event.row), .text(endpoint)])
            {
                try await Self.keepLastAttempt(connection, [existing])
                try await Self.queueAgain(connection, [existing], at: date)
                return existing
            }
            var renderingId: Int64?
            if let rendering {
                renderingId = try await connection.insert(
                    "INSERT INTO rendering (event_row, content_type, headers, body) VALUES (?, ?, ?, ?)",
                    [.int(event.row), .text(rendering.contentType), .text(rendering.headerText), .bytes(rendering.body)], returning: "id")
            }
            return try await connection.insert(
                """
                INSERT INTO delivery (event_id, event_row, endpoint, subject, sequence, due_at, created_at, updated_at, rendering_id)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .text(eventId), .int(event.row), .text(endpoint), .text(event.subject), .int(event.sequence), .date(date), .date(date),
                    .date(date), .int(renderingId),
                ], returning: "id") ?? 0
        }
    }

    @discardableResult
    public func setEndpointDisabled(name: String, disabled: Bool, reason: String?, at date: Date) async throws -> Bool {
        try await correcting { connection in
            guard disabled else {
                let enabled = try await connection.execute(
                    "UPDATE endpoint_state SET disabled_at = NULL, disabled_reason = NULL, failing_since = NULL WHERE name = ? AND disabled_at IS NOT NULL",
                    [.text(name)])
                return enabled > 0
            }
            let changed = try await connection.execute(
                """
                INSERT INTO endpoint_state (name, disabled_at, disabled_reason, failing_since) VALUES (?, ?, ?, NULL)
                ON CONFLICT (name) DO UPDATE SET disabled_at = excluded.disabled_at, disabled_reason = excluded.disabled_reason,
                    failing_since = NULL
                WHERE endpoint_state.disabled_at IS NULL
                """, [.text(name), .date(date), .text(reason ?? "disabled by an operator")])
            return changed > 0
        }
    }
}
