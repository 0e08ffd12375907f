import Foundation
import Logging

/// What an operator can ask of a state and do to it: the on-call commands (`payments show`,
/// `events …`, `deliveries …`, `endpoints …`) and the admin server call these, never the
/// store. Reads are safe while `run` runs; the corrections (replay, redeliver, enable,
/// disable, purge) are announced so a running paybridge acts on them within a second.
public struct Operations: Sendable {
    public let configuration: Configuration
    let store: any Store & Coordination

    public init(configuration: Configuration, store: any Store & Coordination) {
        self.configuration = configuration
        self.store = store
    }

    /// Opens the configuration's state for reading and correcting: a state that does not
    /// exist is `StateMissing`, never created.
    public static func open(_ configuration: Configuration, logger: Logger) async throws -> Operations {
        Operations(configuration: configuration, store: try await StateStore.open(configuration.state, logger: logger, create: false))
    }

    /// Closes the state's connections (PostgreSQL).
    public func close() { store.close() }

    /// The endpoint named `name`, or `OperationError.unknownEndpoint` listing the known ones.
    @discardableResult
    public func endpoint(named name: String) throws(OperationError) -> EndpointConfiguration {
        guard let endpoint = configuration.endpoint(named: name) else {
            throw .unknownEndpoint(name, known: configuration.endpoints.map(\.name))
        }
        return endpoint
    }

    // MARK: Payments and events

    /// A payment's timeline: what paybridge saw of it, each event with its deliveries and
    /// their attempts, and the groups it joined.
    public struct PaymentTimeline: Sendable {
        public var payment: PaymentRecord
        /// Oldest first.
        public var events: [EventSummary]
        /// Per event id, oldest first.
        public var deliveries: [String: [DeliveryRecord]]
        /// Per delivery id, oldest first.
        public var attempts: [Int64: [AttemptLog]]
        /// Per event id: the groups of grouped endpoints it joined.
        public var groups: [String: [GroupHold]]
        /// The group messages that carried them, by message id.
        public var messages: [String: DeliveryRecord]
    }

    public func payment(id: String) async throws -> PaymentTimeline {
        guard let payment = try await store.payment(id: id) else { throw OperationError.unknownPayment(id) }
        let events = Array(try await store.events(EventFilter(paymentId: id, limit: 10_000)).reversed())
        var deliveries: [String: [DeliveryRecord]] = [:]
        var attempts: [Int64: [AttemptLog]] = [:]
        for event in events {
            let rows = Array(try await store.deliveries(DeliveryFilter(eventId: event.id, limit: 1000)).reversed())
            deliveries[event.id] = rows
            for row in rows { attempts[row.id] = try await store.attempts(deliveryId: row.id) }
        }
        // Grouped endpoints get an event inside a group message, not a delivery of its own.
        let groups = Dictionary(grouping: try await store.groupHolds(eventIds: events.map(\.id)), by: \.eventId)
        var messages: [String: DeliveryRecord] = [:]
        for hold in groups.values.joined() {
            guard let message = hold.messageId else { continue }
            messages[message] = try await store.deliveries(DeliveryFilter(endpoint: hold.endpoint, eventId: message, limit: 1)).first
        }
        return PaymentTimeline(payment: payment, events: events, deliveries: deliveries, attempts: attempts, groups: groups, messages: messages)
    }

    /// Payments for a search box: the one whose id is `query`, else those whose events carry
    /// the JSON string `query` (a debtor or transaction reference), newest first.
    public func findPayments(_ query: String, limit: Int = 20) async throws -> [PaymentRecord] {
        let query = query.trimmingCharacters(in: .whitespaces)
        guard !query.isEmpty else { return [] }
        if let payment = try await store.payment(id: query) { return [payment] }
        if let payment = try await store.payment(id: query.lowercased()) { return [payment] }
        var found: [PaymentRecord] = []
        for id in try await store.paymentIds(mentioning: query, limit: limit) {
            if let payment = try await store.payment(id: id) { found.append(payment) }
        }
        return found
    }

    /// Events, newest first, with the events each group message (`payment.group`) carried.
    /// Throws `unknownEvent` for a `before` that names no event (a page after it would be
    /// empty, and look like the end).
    public func events(_ filter: EventFilter) async throws -> (events: [EventSummary], members: [String: [EventSummary]]) {
        if let before = filter.before, try await store.event(id: before) == nil { throw OperationError.unknownEvent(before) }
        let events = try await store.events(filter)
        var members: [String: [EventSummary]] = [:]
        for event in events where event.type == EventType.paymentGroup.rawValue { members[event.id] = try await store.groupMembers(messageId: event.id) }
        return (events, members)
    }

    /// Events in commit order after `after` (nil: from the first), each with its standard
    /// body: the catch-up feed.
    public func eventsAfter(_ after: String?, limit: Int, type: String?, status: String?) async throws -> [(id: String, body: [UInt8])] {
        let store = self.store
        return try await store.eventsAfter(after, limit: limit, type: type, status: status)
    }

    /// Queues an event again for one endpoint under its webhook-id, rendered as the endpoint's
    /// format says now; returns the delivery and whether its payment already has a later event
    /// delivered there (the receiver will get them out of order).
    public func redeliver(eventId: String, to name: String, at date: Date = Date()) async throws -> (delivery: Int64, outOfOrder: Bool) {
        let endpoint = try endpoint(named: name)
        guard try await store.event(id: eventId) != nil else { throw OperationError.unknownEvent(eventId) }
        var rendering: Rendering?
        if !endpoint.format.sendsStoredBody, let body = try await store.eventBody(id: eventId) {
            rendering = endpoint.format.render(try EventDocument(id: eventId, standardBody: body))
        }
        let id = try await store.redeliver(eventId: eventId, endpoint: name, rendering: rendering, at: date)
        return (id, try await store.overtaken(ids: [id]).contains(id))
    }

    // MARK: Deliveries

    /// Deliveries, newest first, and the counts per endpoint and state.
    public func deliveries(_ filter: DeliveryFilter) async throws -> (deliveries: [DeliveryRecord], counts: [String: [DeliveryState: Int]]) {
        if let endpoint = filter.endpoint { try self.endpoint(named: endpoint) }
        return (try await store.deliveries(filter), try await store.deliveryCounts())
    }

    /// One delivery with every attempt, and the events it carried if it is a group message.
    public struct DeliveryDetail: Sendable {
        public var delivery: DeliveryRecord
        public var attempts: [AttemptLog]
        public var members: [EventSummary]?
    }

    public func delivery(id: Int64) async throws -> DeliveryDetail {
        guard let delivery = try await store.delivery(id: id) else { throw OperationError.unknownDeliveries([id]) }
        let members = delivery.eventType == EventType.paymentGroup.rawValue ? try await store.groupMembers(messageId: delivery.eventId) : nil
        return DeliveryDetail(delivery: delivery, attempts: try await store.attempts(deliveryId: id), members: members)
    }

    /// An endpoint's dead letters dead-lettered since `since` (nil: all), newest first.
    public func deadLetters(endpoint name: String, since: Date? = nil) async throws -> [DeliveryRecord] {
        try endpoint(named: name)
        return try await store.deliveries(DeliveryFilter(endpoint: name, state: .dead, since: since, limit: 100_000))
    }

    /// What a replay of these deliveries would do: which exist, and which would reach their
    /// receiver out of order (the payment has a later event delivered there already).
    public struct ReplayPlan: Sendable {
        public var ids: [Int64]
        public var outOfOrder: [Int64]
    }

    public func planReplay(ids: [Int64]) async throws -> ReplayPlan {
        var unknown: [Int64] = []
        for id in ids where try await store.delivery(id: id) == nil { unknown.append(id) }
        guard unknown.isEmpty else { throw OperationError.unknownDeliveries(unknown) }
        return ReplayPlan(ids: ids, outOfOrder: try await store.overtaken(ids: ids).sorted())
    }

    /// Queues the deliveries again under their webhook-ids; returns those replayed (pending
    /// ones are left as they are).
    public func replay(ids: [Int64], at date: Date = Date()) async throws -> [Int64] {
        try await store.replay(ids: ids, at: date)
    }

    /// Dead letters of an endpoint last touched before `before` (what a purge would delete).
    public func purgeable(endpoint name: String, before: Date) async throws -> [DeliveryRecord] {
        try await deadLetters(endpoint: name).filter { $0.updatedAt < before }
    }

    /// Deletes them; returns how many.
    public func purgeDead(endpoint name: String, before: Date) async throws -> Int {
        try endpoint(named: name)
        return try await store.purgeDead(endpoint: name, before: before)
    }

    // MARK: Endpoints

    /// Every configured endpoint's queue, health and record, in the config's order.
    public func endpointOverview() async throws -> [EndpointOverview] {
        let overview = try await store.endpointOverview()
        return configuration.endpoints.map { overview[$0.name] ?? EndpointOverview(name: $0.name) }
    }

    /// Re-enables an endpoint; returns whether it was disabled.
    @discardableResult
    public func enable(endpoint name: String, at date: Date = Date()) async throws -> Bool {
        try endpoint(named: name)
        return try await store.setEndpointDisabled(name: name, disabled: false, reason: nil, at: date)
    }

    /// Disables an endpoint: its deliveries are kept and wait. Returns whether it was enabled;
    /// an endpoint already disabled keeps when and why it was (a 410 stays the reason).
    @discardableResult
    public func disable(endpoint name: String, reason: String, at date: Date = Date()) async throws -> Bool {
        try endpoint(named: name)
        return try await store.setEndpointDisabled(name: name, disabled: true, reason: reason, at: date)
    }

    // MARK: Figures

    /// Pending deliveries in all queues.
    public func pendingDeliveries() async -> Int {
        ((try? await store.queueFigures()) ?? [:]).values.reduce(0) { $0 + $1.pending }
    }

    /// Events recorded since `date`.
    public func eventCount(since date: Date) async -> Int {
        (try? await store.eventCount(since: date)) ?? 0
    }
}

/// A request an operation cannot carry out, said so an operator can act on it.
public enum OperationError: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownEndpoint(String, known: [String])
    case unknownPayment(String)
    case unknownEvent(String)
    case unknownDeliveries([Int64])

    public var description: String {
        switch self {
        case .unknownEndpoint(let name, let known):
            return "no endpoint named '\(name)'" + (known.isEmpty ? "" : " (endpoints: \(known.joined(separator: ", ")))")
        case .unknownPayment(let id): return "paybridge has not seen a payment with id \(id)"
        case .unknownEvent(let id): return "no event with id \(id)"
        case .unknownDeliveries(let ids): return "no delivery with id \(ids.map(String.init).joined(separator: ", "))"
        }
    }
}
