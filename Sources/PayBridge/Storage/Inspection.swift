import Foundation

/// What operators ask of the state (`payments show`, `events list`, `deliveries …`,
/// `endpoints list`, the catch-up API): reads that are safe while `run` runs, and the
/// operator's own writes (replay, redeliver, enable, disable).
public protocol InspectionStore: Sendable {
    func payment(id: String) async throws -> PaymentRecord?
    /// Events, newest first.
    func events(_ filter: EventFilter) async throws -> [EventSummary]
    func event(id: String) async throws -> EventSummary?
    /// Payments one of whose events' bodies holds the JSON string `text` (a reference), newest
    /// first.
    func paymentIds(mentioning text: String, limit: Int) async throws -> [String]
    /// The event's stored (standard) body.
    func eventBody(id: String) async throws -> [UInt8]?
    /// Events in commit order after `after` (nil: from the first), for the catch-up API;
    /// each with its standard body. Throws `InspectionError.unknownEvent` for an unknown `after`.
    func eventsAfter(_ after: String?, limit: Int, type: String?, status: String?) async throws -> [(id: String, body: [UInt8])]
    /// Deliveries, newest first.
    func deliveries(_ filter: DeliveryFilter) async throws -> [DeliveryRecord]
    func delivery(id: Int64) async throws -> DeliveryRecord?
    /// Every attempt of a delivery, oldest first (a first-try success comes from the delivery row).
    func attempts(deliveryId: Int64) async throws -> [AttemptLog]
    /// Per endpoint: queue depth, oldest pending, last success and failure, its record.
    func endpointOverview() async throws -> [String: EndpointOverview]
    func deliveryCounts() async throws -> [String: [DeliveryState: Int]]
    /// Events recorded since `date` (the live status line's "events today").
    func eventCount(since date: Date) async throws -> Int
    /// Per endpoint: pending deliveries and when the oldest was queued (index-backed: cheap).
    func queueFigures() async throws -> [String: (pending: Int, oldest: Date?)]
    /// Payments paybridge remembers.
    func trackedPayments() async throws -> Int
    /// Which groups of grouped endpoints these events joined, and the message that carried
    /// each (none yet while the group waits).
    func groupHolds(eventIds: [String]) async throws -> [GroupHold]
    /// The events a group message (`payment.group`, grp_…) carried, oldest first.
    func groupMembers(messageId: String) async throws -> [EventSummary]

    /// Makes these deliveries pending again, due at `date`, keeping their webhook-id and their
    /// attempt history; returns the ids that were replayed (pending ones are left as they are).
    func replay(ids: [Int64], at date: Date) async throws -> [Int64]
    /// Of these deliveries, those whose payment already has a later event delivered to the
    /// same endpoint (a replay would reach the receiver out of order).
    func overtaken(ids: [Int64]) async throws -> Set<Int64>
    /// Queues `event` again for `endpoint` (a new delivery with the same webhook-id, or its
    /// existing one made pending again); returns the delivery id.
    func redeliver(eventId: String, endpoint: String, rendering: Rendering?, at date: Date) async throws -> Int64
    /// An operator's enable or disable, in one statement; returns whether it changed the
    /// endpoint (disabling a disabled endpoint keeps when and why it was).
    @discardableResult
    func setEndpointDisabled(name: String, disabled: Bool, reason: String?, at date: Date) async throws -> Bool
}

public enum InspectionError: Error, Sendable, CustomStringConvertible {
    case unknownEvent(String)

    public var description: String {
        switch self {
        case .unknownEvent(let id): return "no event with id \(id)"
        }
    }
}

/// An event held for a grouped endpoint: its group, and the message that carried it.
public struct GroupHold: Sendable, Equatable {
    public var eventId: String
    public var endpoint: String
    /// The group's key: its `by` fields' values joined (empty when `by: []`).
    public var group: String
    /// The group message (grp_…) that carried the event; nil while the group waits.
    public var messageId: String?
    /// While it waits: when the group's next message goes out.
    public var waitingUntil: Date?

    public init(eventId: String, endpoint: String, group: String, messageId: String?, waitingUntil: Date?) {
        self.eventId = eventId
        self.endpoint = endpoint
        self.group = group
        self.messageId = messageId
        self.waitingUntil = waitingUntil
    }
}

/// What paybridge remembers of one payment.
public struct PaymentRecord: Sendable, Equatable {
    public var paymentId: String
    public var status: String
    public var sequence: Int
    public var updatedAt: Date
    /// When, with which status and by which watch paybridge first saw it (nil for payments
    /// recorded before this was kept).
    public var firstSeenAt: Date?
    public var firstStatus: String?
    public var firstWatch: String?
}

public struct EventSummary: Sendable, Equatable {
    public var id: String
    public var type: String
    public var subject: String
    public var sequence: Int
    public var status: String?
    public var previousStatus: String?
    public var watch: String?
    public var createdAt: Date
}

public struct EventFilter: Sendable {
    public var type: String?
    public var status: String?
    public var paymentId: String?
    public var since: Date?
    public var limit: Int
    /// A cursor: only events committed before this one.
    public var before: String?

    public init(type: String? = nil, status: String? = nil, paymentId: String? = nil, since: Date? = nil, limit: Int = 50, before: String? = nil) {
        self.before = before
        self.type = type
        self.status = status
        self.paymentId = paymentId
        self.since = since
        self.limit = limit
    }
}

public struct DeliveryFilter: Sendable {
    /// `failing`: pending after at least one failed attempt.
    public enum State: String, Sendable, CaseIterable {
        case pending, failing, dead, delivered

        /// The condition on a `delivery d` row, the same on both backends.
        var condition: String {
            switch self {
            case .pending: "d.state = 'pending'"
            case .failing: "d.state = 'pending' AND d.attempts > 0"
            case .dead: "d.state = 'dead'"
            case .delivered: "d.state = 'delivered'"
            }
        }
    }

    public var endpoint: String?
    public var state: State?
    public var since: Date?
    public var eventId: String?
    public var limit: Int
    /// A cursor: only deliveries with a smaller id (older).
    public var before: Int64?

    public init(endpoint: String? = nil, state: State? = nil, since: Date? = nil, eventId: String? = nil, limit: Int = 50, before: Int64? = nil) {
        self.before = before
        self.endpoint = endpoint
        self.state = state
        self.since = since
        self.eventId = eventId
        self.limit = limit
    }
}

/// One attempt of a delivery.
public struct AttemptLog: Sendable, Equatable {
    public var number: Int
    public var startedAt: Date
    public var durationMs: Double
    public var httpStatus: Int?
    public var error: String?
    /// The first bytes of the receiver's answer.
    public var response: String?
}

/// An endpoint as `endpoints list` shows it.
public struct EndpointOverview: Sendable, Equatable {
    public var name: String
    public var pending: Int
    public var oldestPendingAt: Date?
    public var dead: Int
    public var record: EndpointRecord

    public init(name: String, pending: Int = 0, oldestPendingAt: Date? = nil, dead: Int = 0, record: EndpointRecord = EndpointRecord()) {
        self.name = name
        self.pending = pending
        self.oldestPendingAt = oldestPendingAt
        self.dead = dead
        self.record = record
    }

    /// One overview per endpoint named by any of the three sources (a backend's queries).
    static func merge(
        records: [String: EndpointRecord], queues: [String: (pending: Int, oldest: Date?)], dead: [String: Int]
    ) -> [String: EndpointOverview] {
        var overview: [String: EndpointOverview] = [:]
        for name in Set(records.keys).union(queues.keys).union(dead.keys) {
            overview[name] = EndpointOverview(
                name: name, pending: queues[name]?.pending ?? 0, oldestPendingAt: queues[name]?.oldest, dead: dead[name] ?? 0,
                record: records[name] ?? EndpointRecord())
        }
        return overview
    }
}
