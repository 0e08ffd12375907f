import Foundation
import PostgresNIO

/// Operators' reads and corrections, on PostgreSQL. Corrections notify `paybridge_change`,
/// so every running instance reads its endpoints' records and queues again at once.
extension PostgresStore {
    public func payment(id: String) throws -> PaymentRecord? {
        try reader.exclusive { link in
            guard
                let row = try link.run(
                    "SELECT id, status, sequence, updated_at, first_seen_at, first_status, first_watch FROM payment WHERE id = $1", [.text(id)]
                ).rows.first
            else { return nil }
            return PaymentRecord(
                paymentId: try row.value(0), status: try row.value(1), sequence: try row.value(2),
                updatedAt: Date(timeIntervalSince1970: try row.value(3)), firstSeenAt: try row.date(4), firstStatus: try row.value(5),
                firstWatch: try row.value(6))
        }
    }

    private static let eventColumns = "id, type, subject, sequence, status, previous_status, watch, created_at"

    private static func event(_ row: PostgresRow) throws -> EventSummary {
        EventSummary(
            id: try row.value(0), type: try row.value(1), subject: try row.value(2), sequence: try row.value(3), status: try row.value(4),
            previousStatus: try row.value(5), watch: try row.value(6), createdAt: Date(timeIntervalSince1970: try row.value(7)))
    }

    public func events(_ filter: EventFilter) throws -> [EventSummary] {
        var conditions: [String] = []
        var values: [SQLValue] = []
        func add(_ condition: String, _ value: SQLValue) {
            values.append(value)
            conditions.append(condition.replacingOccurrences(of: "?", with: "$\(values.count)"))
        }
        if let type = filter.type { add("type = ?", .text(type)) }
        if let status = filter.status { add("status = ?", .text(status)) }
        if let payment = filter.paymentId { add("subject = ?", .text(payment)) }
        if let since = filter.since { add("created_at >= ?", .date(since)) }
        values.append(.int(filter.limit))
        let clause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        return try reader.exclusive { link in
            try link.run("SELECT \(Self.eventColumns) FROM event \(clause) ORDER BY row_id DESC LIMIT $\(values.count)", values).rows.map(Self.event)
        }
    }

    public func groupHolds(eventIds: [String]) throws -> [GroupHold] {
        guard !eventIds.isEmpty else { return [] }
        return try reader.exclusive { link in
            try link.run(
                """
                SELECT e.id, m.endpoint, m.group_key, message.id, g.flush_at FROM group_member m
                JOIN event e ON e.row_id = m.event_row
                LEFT JOIN event message ON message.row_id = m.message_row
                LEFT JOIN event_group g ON g.endpoint = m.endpoint AND g.group_key = m.group_key
                WHERE e.id = ANY($1) ORDER BY m.event_row, m.endpoint
                """, [.texts(eventIds)]
            ).rows.map { row in
                let messageId: String? = try row.value(3)
                return GroupHold(
                    eventId: try row.value(0), endpoint: try row.value(1), group: try row.value(2), messageId: messageId,
                    waitingUntil: messageId == nil ? try row.date(4) : nil)
            }
        }
    }

    public func groupMembers(messageId: String) throws -> [EventSummary] {
        let columns = Self.eventColumns.split(separator: ",").map { "e." + $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ", ")
        return try reader.exclusive { link in
            try link.run(
                """
                SELECT \(columns) FROM group_member m JOIN event e ON e.row_id = m.event_row
                JOIN event message ON message.row_id = m.message_row WHERE message.id = $1 ORDER BY m.event_row
                """, [.text(messageId)]
            ).rows.map(Self.event)
        }
    }

    public func event(id: String) throws -> EventSummary? {
        try reader.exclusive { link in try link.run("SELECT \(Self.eventColumns) FROM event WHERE id = $1", [.text(id)]).rows.first.map(Self.event) }
    }

    public func eventBody(id: String) throws -> [UInt8]? {
        try reader.exclusive { link in try link.run("SELECT body FROM event WHERE id = $1", [.text(id)]).rows.first.map { try $0.bytes(0) } }
    }

    public func eventsAfter(_ after: String?, limit: Int, type: String?, status: String?) throws -> [(id: String, body: [UInt8])] {
        try reader.exclusive { link in
            var start: Int64 = 0
            if let after {
                guard let row: Int64 = try link.run("SELECT row_id FROM event WHERE id = $1", [.text(after)]).rows.first?.value(0) else {
                    throw InspectionError.unknownEvent(after)
                }
                start = row
            }
            var sql = "SELECT id, body FROM event WHERE row_id > $1"
            var values: [SQLValue] = [.int(start)]
            if let type {
                values.append(.text(type))
                sql += " AND type = $\(values.count)"
            }
            if let status {
                values.append(.text(status))
                sql += " AND status = $\(values.count)"
            }
            values.append(.int(limit))
            sql += " ORDER BY row_id LIMIT $\(values.count)"
            return try link.run(sql, values).rows.map { (try $0.value(0), try $0.bytes(1)) }
        }
    }

    private static let deliveryColumns = """
        d.id, d.event_id, e.type, d.endpoint, d.subject, d.sequence, d.state, d.attempts, d.due_at, d.updated_at, d.last_status,
        d.last_error, d.created_at, d.delivered_at, d.last_attempt_at, d.last_duration_ms
        """

    private static func delivery(_ row: PostgresRow) throws -> DeliveryRecord {
        DeliveryRecord(
            id: try row.value(0), eventId: try row.value(1), eventType: try row.value(2), endpoint: try row.value(3), subject: try row.value(4),
            sequence: try row.value(5), state: DeliveryState(rawValue: try row.value(6)) ?? .pending, attempts: try row.value(7),
            dueAt: Date(timeIntervalSince1970: try row.value(8)), updatedAt: Date(timeIntervalSince1970: try row.value(9)),
            lastStatus: try row.value(10), lastError: try row.value(11), createdAt: Date(timeIntervalSince1970: try row.value(12)),
            deliveredAt: try row.date(13), lastAttemptAt: try row.date(14), lastDurationMs: try row.value(15))
    }

    public func deliveries(_ filter: DeliveryFilter) throws -> [DeliveryRecord] {
        var conditions: [String] = []
        var values: [SQLValue] = []
        func add(_ condition: String, _ value: SQLValue) {
            values.append(value)
            conditions.append(condition.replacingOccurrences(of: "?", with: "$\(values.count)"))
        }
        if let endpoint = filter.endpoint { add("d.endpoint = ?", .text(endpoint)) }
        if let state = filter.state { conditions.append(state.condition) }
        if let since = filter.since { add("d.updated_at >= ?", .date(since)) }
        if let eventId = filter.eventId { add("d.event_id = ?", .text(eventId)) }
        values.append(.int(filter.limit))
        let clause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        return try reader.exclusive { link in
            try link.run(
                "SELECT \(Self.deliveryColumns) FROM delivery d JOIN event e ON e.row_id = d.event_row \(clause) ORDER BY d.id DESC LIMIT $\(values.count)",
                values
            ).rows.map(Self.delivery)
        }
    }

    public func delivery(id: Int64) throws -> DeliveryRecord? {
        try reader.exclusive { link in
            try link.run("SELECT \(Self.deliveryColumns) FROM delivery d JOIN event e ON e.row_id = d.event_row WHERE d.id = $1", [.int(id)])
                .rows.first.map(Self.delivery)
        }
    }

    public func attempts(deliveryId: Int64) throws -> [AttemptLog] {
        try reader.exclusive { link in
            var logs = try link.run(
                "SELECT number, started_at, duration_ms, http_status, error, response FROM attempt WHERE delivery_id = $1 ORDER BY number",
                [.int(deliveryId)]
            ).rows.map { row in
                AttemptLog(
                    number: try row.value(0), startedAt: Date(timeIntervalSince1970: try row.value(1)), durationMs: try row.value(2),
                    httpStatus: try row.value(3), error: try row.value(4), response: try row.value(5))
            }
            if let row = try link.run(
                "SELECT attempts, last_attempt_at, last_duration_ms, last_status, last_error FROM delivery WHERE id = $1", [.int(deliveryId)]
            ).rows.first, let at = try row.date(1) {
                let number: Int = try row.value(0)
                if number > 0, !logs.contains(where: { $0.number == number }) {
                    logs.append(
                        AttemptLog(
                            number: number, startedAt: at, durationMs: (try row.value(2) as Double?) ?? 0, httpStatus: try row.value(3),
                            error: try row.value(4), response: nil))
                }
            }
            return logs
        }
    }

    public func endpointOverview() throws -> [String: EndpointOverview] {
        let records = try endpointRecords()
        let queues = try queueFigures()
        let dead: [String: Int] = try reader.exclusive { link in
            var counts: [String: Int] = [:]
            for row in try link.run("SELECT endpoint, COUNT(*)::INTEGER FROM delivery WHERE state = 'dead' GROUP BY endpoint").rows {
                counts[try row.value(0)] = try row.value(1)
            }
            return counts
        }
        return EndpointOverview.merge(records: records, queues: queues, dead: dead)
    }

    public func deliveryCounts() throws -> [String: [DeliveryState: Int]] {
        try reader.exclusive { link in
            var counts: [String: [DeliveryState: Int]] = [:]
            for row in try link.run("SELECT endpoint, state, COUNT(*)::INTEGER FROM delivery GROUP BY endpoint, state").rows {
                guard let state = DeliveryState(rawValue: try row.value(1)) else { continue }
                counts[try row.value(0), default: [:]][state] = try row.value(2)
            }
            return counts
        }
    }

    public func eventCount(since date: Date) throws -> Int {
        try reader.exclusive { link in
            try link.run("SELECT COUNT(*)::INTEGER FROM event WHERE created_at >= $1", [.date(date)]).rows.first?.value(0) ?? 0
        }
    }

    public func queueFigures() throws -> [String: (pending: Int, oldest: Date?)] {
        try reader.exclusive { link in
            var figures: [String: (pending: Int, oldest: Date?)] = [:]
            for row in try link.run("SELECT endpoint, COUNT(*)::INTEGER, MIN(created_at) FROM delivery WHERE state = 'pending' GROUP BY endpoint").rows {
                figures[try row.value(0)] = (try row.value(1), try row.date(2))
            }
            return figures
        }
    }

    public func trackedPayments() throws -> Int {
        try reader.exclusive { link in try link.run("SELECT COUNT(*)::INTEGER FROM payment").rows.first?.value(0) ?? 0 }
    }

    // MARK: Operators' writes

    private static let keepLastAttempt = """
        INSERT INTO attempt (delivery_id, number, started_at, duration_ms, http_status, error)
        SELECT id, attempts, last_attempt_at, COALESCE(last_duration_ms, 0), last_status, last_error FROM delivery
        WHERE id = ANY($1) AND state != 'pending' AND attempts > 0 AND last_attempt_at IS NOT NULL
        ON CONFLICT DO NOTHING
        """

    public func replay(ids: [Int64], at date: Date) throws -> [Int64] {
        guard !ids.isEmpty else { return [] }
        return try writer.transaction { link in
            try link.run(Self.keepLastAttempt, [.ints(ids)])
            let replayed: [Int64] = try link.run(
                """
                UPDATE delivery SET state = 'pending', schedule_base = attempts, due_at = $2, updated_at = $2, delivered_at = NULL,
                    claimed_by = NULL, claimed_until = NULL
                WHERE state != 'pending' AND id = ANY($1) RETURNING id
                """, [.ints(ids), .date(date)]
            ).rows.map { try $0.value(0) }
            try link.run("NOTIFY paybridge_change")
            try link.run("NOTIFY paybridge_queue")
            return replayed.sorted()
        }
    }

    public func overtaken(ids: [Int64]) throws -> Set<Int64> {
        guard !ids.isEmpty else { return [] }
        return try reader.exclusive { link in
            Set(
                try link.run(
                    """
                    SELECT d.id FROM delivery d WHERE d.id = ANY($1) AND EXISTS (
                      SELECT 1 FROM delivery later WHERE later.endpoint = d.endpoint AND later.subject = d.subject
                        AND later.sequence > d.sequence AND later.state = 'delivered')
                    """, [.ints(ids)]
                ).rows.map { try $0.value(0) as Int64 })
        }
    }

    public func redeliver(eventId: String, endpoint: String, rendering: Rendering?, at date: Date) throws -> Int64 {
        try writer.transaction { link in
            guard let event = try link.run("SELECT row_id, subject, sequence FROM event WHERE id = $1", [.text(eventId)]).rows.first else {
                throw InspectionError.unknownEvent(eventId)
            }
            defer {
                _ = try? link.run("NOTIFY paybridge_change")
                _ = try? link.run("NOTIFY paybridge_queue")
            }
            if let existing: Int64 = try link.run(
                "SELECT id FROM delivery WHERE event_id = $1 AND endpoint = $2 ORDER BY id DESC LIMIT 1", [.text(eventId), .text(endpoint)]
            ).rows.first?.value(0) {
                try link.run(Self.keepLastAttempt, [.ints([existing])])
                try link.run(
                    """
                    UPDATE delivery SET state = 'pending', schedule_base = attempts, due_at = $2, updated_at = $2, delivered_at = NULL,
                        claimed_by = NULL, claimed_until = NULL
                    WHERE id = $1 AND state != 'pending'
                    """, [.int(existing), .date(date)])
                return existing
            }
            let eventRow: Int64 = try event.value(0)
            var renderingId: Int64?
            if let rendering {
                renderingId = try link.run(
                    "INSERT INTO rendering (event_row, content_type, headers, body) VALUES ($1, $2, $3, $4) RETURNING id",
                    [.int(eventRow), .text(rendering.contentType), .text(rendering.headerText), .bytes(rendering.body)]
                ).rows.first?.value(0)
            }
            let id: Int64? = try link.run(
                """
                INSERT INTO delivery (event_id, event_row, endpoint, subject, sequence, due_at, created_at, updated_at, rendering_id)
                VALUES ($1, $2, $3, $4, $5, $6, $6, $6, $7) RETURNING id
                """,
                [.text(eventId), .int(eventRow), .text(endpoint), .text(try event.value(1)), .int(try event.value(2) as Int), .date(date), .int(renderingId)]
            ).rows.first?.value(0)
            return id ?? 0
        }
    }

    public func setEndpointDisabled(name: String, disabled: Bool, reason: String?, at date: Date) throws {
        try writer.transaction { link in
            try PostgresTransaction(link: link, store: self).saveEndpointRecord(
                name: name, EndpointRecord(disabledAt: disabled ? date : nil, disabledReason: disabled ? reason ?? "disabled by an operator" : nil))
            try link.run("NOTIFY paybridge_change")
        }
    }
}
