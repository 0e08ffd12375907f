import Foundation
import GRDB

/// Operators' reads and corrections, on SQLite. Reads use the pool's readers (WAL): they
/// never wait for a running paybridge's writes, nor hold them up.
extension SQLiteStore {
    private static func date(_ value: Double?) -> Date? { value.map(Date.init(timeIntervalSince1970:)) }

    public func payment(id: String) throws -> PaymentRecord? {
        try read { db in
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT id, status, sequence, updated_at, first_seen_at, first_status, first_watch FROM payment WHERE id = ?",
                    arguments: [id])
            else { return nil }
            let updated: Double = row[3]
            return PaymentRecord(
                paymentId: row[0], status: row[1], sequence: row[2], updatedAt: Date(timeIntervalSince1970: updated),
                firstSeenAt: Self.date(row[4]), firstStatus: row[5], firstWatch: row[6])
        }
    }

    private static let eventColumns = "id, type, subject, sequence, status, previous_status, watch, created_at"

    private static func event(_ row: Row) -> EventSummary {
        let created: Double = row[7]
        return EventSummary(
            id: row[0], type: row[1], subject: row[2], sequence: row[3], status: row[4], previousStatus: row[5], watch: row[6],
            createdAt: Date(timeIntervalSince1970: created))
    }

    public func events(_ filter: EventFilter) throws -> [EventSummary] {
        try read { db in
            var conditions: [String] = []
            var arguments: StatementArguments = []
            if let type = filter.type {
                conditions.append("type = ?")
                arguments += [type]
            }
            if let status = filter.status {
                conditions.append("status = ?")
                arguments += [status]
            }
            if let payment = filter.paymentId {
                conditions.append("subject = ?")
                arguments += [payment]
            }
            if let since = filter.since {
                conditions.append("created_at >= ?")
                arguments += [since.timeIntervalSince1970]
            }
            arguments += [filter.limit]
            let clause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            return try Row.fetchAll(
                db, sql: "SELECT \(Self.eventColumns) FROM event \(clause) ORDER BY rowid DESC LIMIT ?", arguments: arguments
            ).map(Self.event)
        }
    }

    public func groupHolds(eventIds: [String]) throws -> [GroupHold] {
        guard !eventIds.isEmpty else { return [] }
        return try read { db in
            let marks = Array(repeating: "?", count: eventIds.count).joined(separator: ",")
            return try Row.fetchAll(
                db,
                sql: """
                    SELECT e.id, m.endpoint, m.group_key, message.id, g.flush_at FROM group_member m
                    JOIN event e ON e.rowid = m.event_row
                    LEFT JOIN event message ON message.rowid = m.message_row
                    LEFT JOIN event_group g ON g.endpoint = m.endpoint AND g.group_key = m.group_key
                    WHERE e.id IN (\(marks)) ORDER BY m.event_row, m.endpoint
                    """, arguments: StatementArguments(eventIds)
            ).map { row in
                let messageId: String? = row[3]
                return GroupHold(
                    eventId: row[0], endpoint: row[1], group: row[2], messageId: messageId,
                    waitingUntil: messageId == nil ? Self.date(row[4]) : nil)
            }
        }
    }

    public func groupMembers(messageId: String) throws -> [EventSummary] {
        try read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT \(Self.eventColumns.split(separator: ",").map { "e." + $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ", "))
                    FROM group_member m JOIN event e ON e.rowid = m.event_row JOIN event message ON message.rowid = m.message_row
                    WHERE message.id = ? ORDER BY m.event_row
                    """, arguments: [messageId]
            ).map(Self.event)
        }
    }

    public func event(id: String) throws -> EventSummary? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT \(Self.eventColumns) FROM event WHERE id = ?", arguments: [id]).map(Self.event)
        }
    }

    public func eventBody(id: String) throws -> [UInt8]? {
        try read { db in try Data.fetchOne(db, sql: "SELECT body FROM event WHERE id = ?", arguments: [id]).map { Array($0) } }
    }

    public func eventsAfter(_ after: String?, limit: Int, type: String?, status: String?) throws -> [(id: String, body: [UInt8])] {
        try read { db in
            var start: Int64 = 0
            if let after {
                guard let row = try Int64.fetchOne(db, sql: "SELECT rowid FROM event WHERE id = ?", arguments: [after]) else {
                    throw InspectionError.unknownEvent(after)
                }
                start = row
            }
            var sql = "SELECT id, body FROM event WHERE rowid > ?"
            var arguments: StatementArguments = [start]
            if let type {
                sql += " AND type = ?"
                arguments += [type]
            }
            if let status {
                sql += " AND status = ?"
                arguments += [status]
            }
            sql += " ORDER BY rowid LIMIT ?"
            arguments += [limit]
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
                let body: Data = row[1]
                return (row[0], Array(body))
            }
        }
    }

    private static let deliveryColumns = """
        d.id, d.event_id, e.type, d.endpoint, d.subject, d.sequence, d.state, d.attempts, d.due_at, d.updated_at, d.last_status,
        d.last_error, d.created_at, d.delivered_at, d.last_attempt_at, d.last_duration_ms
        """

    private static func delivery(_ row: Row) -> DeliveryRecord {
        let stateText: String = row[6]
        let due: Double = row[8]
        let updated: Double = row[9]
        let created: Double = row[12]
        return DeliveryRecord(
            id: row[0], eventId: row[1], eventType: row[2], endpoint: row[3], subject: row[4], sequence: row[5],
            state: DeliveryState(rawValue: stateText) ?? .pending, attempts: row[7], dueAt: Date(timeIntervalSince1970: due),
            updatedAt: Date(timeIntervalSince1970: updated), lastStatus: row[10], lastError: row[11],
            createdAt: Date(timeIntervalSince1970: created), deliveredAt: date(row[13]), lastAttemptAt: date(row[14]),
            lastDurationMs: row[15])
    }

    public func deliveries(_ filter: DeliveryFilter) throws -> [DeliveryRecord] {
        try read { db in
            var conditions: [String] = []
            var arguments: StatementArguments = []
            if let endpoint = filter.endpoint {
                conditions.append("d.endpoint = ?")
                arguments += [endpoint]
            }
            if let state = filter.state { conditions.append(state.condition) }
            if let since = filter.since {
                conditions.append("d.updated_at >= ?")
                arguments += [since.timeIntervalSince1970]
            }
            if let eventId = filter.eventId {
                conditions.append("d.event_id = ?")
                arguments += [eventId]
            }
            arguments += [filter.limit]
            let clause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            return try Row.fetchAll(
                db,
                sql: "SELECT \(Self.deliveryColumns) FROM delivery d JOIN event e ON e.rowid = d.event_row \(clause) ORDER BY d.id DESC LIMIT ?",
                arguments: arguments
            ).map(Self.delivery)
        }
    }

    public func delivery(id: Int64) throws -> DeliveryRecord? {
        try read { db in
            try Row.fetchOne(
                db, sql: "SELECT \(Self.deliveryColumns) FROM delivery d JOIN event e ON e.rowid = d.event_row WHERE d.id = ?", arguments: [id]
            ).map(Self.delivery)
        }
    }

    public func attempts(deliveryId: Int64) throws -> [AttemptLog] {
        try read { db in
            var logs = try Row.fetchAll(
                db, sql: "SELECT number, started_at, duration_ms, http_status, error, response FROM attempt WHERE delivery_id = ? ORDER BY number",
                arguments: [deliveryId]
            ).map { row -> AttemptLog in
                let started: Double = row[1]
                return AttemptLog(
                    number: row[0], startedAt: Date(timeIntervalSince1970: started), durationMs: row[2], httpStatus: row[3], error: row[4],
                    response: row[5])
            }
            // A first-try success is recorded on the delivery row only.
            if let row = try Row.fetchOne(
                db, sql: "SELECT attempts, last_attempt_at, last_duration_ms, last_status, last_error FROM delivery WHERE id = ?",
                arguments: [deliveryId]), let at: Double = row[1]
            {
                let number: Int = row[0]
                if number > 0, !logs.contains(where: { $0.number == number }) {
                    logs.append(
                        AttemptLog(
                            number: number, startedAt: Date(timeIntervalSince1970: at), durationMs: row[2] ?? 0, httpStatus: row[3], error: row[4],
                            response: nil))
                }
            }
            return logs
        }
    }

    public func endpointOverview() throws -> [String: EndpointOverview] {
        let records = try endpointRecords()
        let queues = try queueFigures()
        let dead = try read { db in
            Dictionary(
                try Row.fetchAll(db, sql: "SELECT endpoint, COUNT(*) FROM delivery WHERE state = 'dead' GROUP BY endpoint").map { ($0[0] as String, $0[1] as Int) },
                uniquingKeysWith: +)
        }
        return EndpointOverview.merge(records: records, queues: queues, dead: dead)
    }

    public func queueFigures() throws -> [String: (pending: Int, oldest: Date?)] {
        try read { db in
            var figures: [String: (pending: Int, oldest: Date?)] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT endpoint, COUNT(*), MIN(created_at) FROM delivery WHERE state = 'pending' GROUP BY endpoint") {
                figures[row[0]] = (row[1], Self.date(row[2]))
            }
            return figures
        }
    }

    public func trackedPayments() throws -> Int {
        try read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM payment") ?? 0 }
    }

    public func eventCount(since date: Date) throws -> Int {
        try read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM event WHERE created_at >= ?", arguments: [date.timeIntervalSince1970]) ?? 0 }
    }

    // MARK: Operators' writes

    public func replay(ids: [Int64], at date: Date) throws -> [Int64] {
        guard !ids.isEmpty else { return [] }
        return try write { transaction in
            guard let db = (transaction as? SQLiteTransaction)?.db else { return [] }
            let list = "[" + ids.map(String.init).joined(separator: ",") + "]"
            let replayed = try Int64.fetchAll(
                db, sql: "SELECT id FROM delivery WHERE state != 'pending' AND id IN (SELECT value FROM json_each(?)) ORDER BY id",
                arguments: [list])
            let now = date.timeIntervalSince1970
            try Self.keepLastAttempt(db, list)
            // The attempt count and its history stay; the retry schedule starts again.
            try db.execute(
                sql: """
                    UPDATE delivery SET state = 'pending', schedule_base = attempts, due_at = ?, updated_at = ?, delivered_at = NULL
                    WHERE state != 'pending' AND id IN (SELECT value FROM json_each(?))
                    """, arguments: [now, now, list])
            return replayed
        }
    }

    /// A first-try success lives on the delivery row only; before the row is used again, its
    /// attempt is written down so the history stays whole.
    private static func keepLastAttempt(_ db: Database, _ ids: String) throws {
        try db.execute(
            sql: """
                INSERT OR IGNORE INTO attempt (delivery_id, number, started_at, duration_ms, http_status, error)
                SELECT id, attempts, last_attempt_at, COALESCE(last_duration_ms, 0), last_status, last_error FROM delivery
                WHERE id IN (SELECT value FROM json_each(?)) AND state != 'pending' AND attempts > 0 AND last_attempt_at IS NOT NULL
                """, arguments: [ids])
    }

    public func overtaken(ids: [Int64]) throws -> Set<Int64> {
        guard !ids.isEmpty else { return [] }
        return try read { db in
            Set(
                try Int64.fetchAll(
                    db,
                    sql: """
                        SELECT d.id FROM delivery d WHERE d.id IN (SELECT value FROM json_each(?)) AND EXISTS (
                          SELECT 1 FROM delivery later WHERE later.endpoint = d.endpoint AND later.subject = d.subject
                            AND later.sequence > d.sequence AND later.state = 'delivered')
                        """, arguments: ["[" + ids.map(String.init).joined(separator: ",") + "]"]))
        }
    }

    public func redeliver(eventId: String, endpoint: String, rendering: Rendering?, at date: Date) throws -> Int64 {
        try write { transaction in
            guard let db = (transaction as? SQLiteTransaction)?.db else { return 0 }
            guard let event = try Row.fetchOne(db, sql: "SELECT rowid, subject, sequence FROM event WHERE id = ?", arguments: [eventId]) else {
                throw InspectionError.unknownEvent(eventId)
            }
            let now = date.timeIntervalSince1970
            if let existing = try Int64.fetchOne(
                db, sql: "SELECT id FROM delivery WHERE event_id = ? AND endpoint = ? ORDER BY id DESC LIMIT 1", arguments: [eventId, endpoint])
            {
                try Self.keepLastAttempt(db, "[\(existing)]")
                try db.execute(
                    sql: """
                        UPDATE delivery SET state = 'pending', schedule_base = attempts, due_at = ?, updated_at = ?, delivered_at = NULL
                        WHERE id = ? AND state != 'pending'
                        """, arguments: [now, now, existing])
                return existing
            }
            let eventRow: Int64 = event[0]
            var renderingId: Int64?
            if let rendering {
                try db.execute(
                    sql: "INSERT INTO rendering (event_row, content_type, headers, body) VALUES (?, ?, ?, ?)",
                    arguments: [eventRow, rendering.contentType, rendering.headerText, Data(rendering.body)])
                renderingId = db.lastInsertedRowID
            }
            try db.execute(
                sql: """
                    INSERT INTO delivery (event_id, event_row, endpoint, subject, sequence, due_at, created_at, updated_at, rendering_id)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [eventId, eventRow, endpoint, event[1] as String, event[2] as Int, now, now, now, renderingId])
            return db.lastInsertedRowID
        }
    }

    public func setEndpointDisabled(name: String, disabled: Bool, reason: String?, at date: Date) throws {
        try write { transaction in
            try transaction.saveEndpointRecord(
                name: name, EndpointRecord(disabledAt: disabled ? date : nil, disabledReason: disabled ? reason ?? "disabled by an operator" : nil))
        }
    }
}
