import Foundation

/// A look-up the bank's notifications asked for: read the payment by id and detect its change.
public struct Lookup: Sendable, Equatable {
    public var paymentId: String
    /// When the first notification still waiting for it arrived (the latency's start).
    public var requestedAt: Date
    /// Failed tries so far.
    public var attempts: Int
    /// Grows with every notification for the payment: a look-up finished only removes the
    /// trigger it read, never one a later notification renewed.
    public var generation: Int
}

/// The bank's notifications as the state keeps them: the event ids seen, and the look-ups
/// they trigger (a durable queue, one entry per payment).
public protocol NotificationStore: Sendable {
    /// Commits the notifications' event ids and a look-up per notified payment in one
    /// transaction; returns those not seen before (the others did nothing).
    func receive(_ notifications: [BankNotification], at date: Date) async throws -> [BankNotification]
    /// Look-ups due by `date`, oldest first.
    func dueLookups(by date: Date, limit: Int) async throws -> [Lookup]
    /// When the next look-up is due (nil: none waits).
    func nextLookupDate() async throws -> Date?
    /// Removes the look-up unless a notification renewed it meanwhile.
    func finishLookup(_ lookup: Lookup) async throws
    /// Tries the look-up again at `date`.
    func postponeLookup(_ lookup: Lookup, until date: Date, error: String) async throws
    /// Look-ups waiting.
    func pendingLookups() async throws -> Int
}

extension SQLStore {
    public func receive(_ notifications: [BankNotification], at date: Date) async throws -> [BankNotification] {
        guard !notifications.isEmpty else { return [] }
        return try await writing(announce: true) { connection in
            var fresh: [BankNotification] = []
            var seen = Set<String>()
            for notification in notifications where seen.insert(notification.eventId).inserted {
                let inserted = try await connection.execute(
                    "INSERT INTO notification (event_id, payment_id, type, received_at) VALUES (?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
                    [.text(notification.eventId), .text(notification.paymentId), .text(notification.notificationType), .date(date)])
                guard inserted > 0 else { continue }
                fresh.append(notification)
                guard let paymentId = notification.paymentId else { continue }
                try await connection.execute(
                    """
                    INSERT INTO lookup (payment_id, requested_at, due_at) VALUES (?, ?, ?)
                    ON CONFLICT (payment_id) DO UPDATE SET due_at = excluded.due_at, attempts = 0, generation = lookup.generation + 1
                    """, [.text(paymentId), .date(date), .date(date)])
            }
            return fresh
        }
    }

    public func dueLookups(by date: Date, limit: Int) async throws -> [Lookup] {
        try await reading { connection in
            try await connection.rows(
                "SELECT payment_id, requested_at, attempts, generation FROM lookup WHERE due_at <= ? ORDER BY due_at, payment_id LIMIT ?",
                [.date(date), .int(limit)]
            ) { Lookup(paymentId: try $0.string(0), requestedAt: try $0.instant(1), attempts: try $0.number(2), generation: try $0.number(3)) }
        }
    }

    public func nextLookupDate() async throws -> Date? {
        try await reading { connection in
            try await connection.double("SELECT MIN(due_at) FROM lookup").map(Date.init(timeIntervalSince1970:))
        }
    }

    public func finishLookup(_ lookup: Lookup) async throws {
        _ = try await writing(announce: false) { connection in
            try await connection.execute("DELETE FROM lookup WHERE payment_id = ? AND generation = ?", [.text(lookup.paymentId), .int(lookup.generation)])
        }
    }

    public func postponeLookup(_ lookup: Lookup, until date: Date, error: String) async throws {
        _ = try await writing(announce: false) { connection in
            try await connection.execute(
                "UPDATE lookup SET attempts = attempts + 1, due_at = ?, last_error = ? WHERE payment_id = ? AND generation = ?",
                [.date(date), .text(error), .text(lookup.paymentId), .int(lookup.generation)])
        }
    }

    public func pendingLookups() async throws -> Int {
        try await reading { connection in Int(try await connection.int64("SELECT COUNT(*) FROM lookup") ?? 0) }
    }
}
