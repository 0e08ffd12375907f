import Foundation

/// What one event becomes in the outbox, decided before the write transaction: which
/// endpoints it goes to, what each receives, which groups it joins. The transaction only
/// persists it.
public struct OutboxEntry: Sendable {
    public var event: Event
    /// One delivery per endpoint; `rendering` indexes `renderings` (nil: the event's stored
    /// body, as the standard format sends it).
    public var deliveries: [(endpoint: String, rendering: Int?)]
    /// Each distinct rendering once, however many endpoints receive it.
    public var renderings: [Rendering]
    /// Grouped endpoints: the event waits in a group for its message.
    public var memberships: [GroupMembership]

    public init(event: Event, deliveries: [(endpoint: String, rendering: Int?)] = [], renderings: [Rendering] = [], memberships: [GroupMembership] = []) {
        self.event = event
        self.deliveries = deliveries
        self.renderings = renderings
        self.memberships = memberships
    }

    /// Whether committing it queues something for the dispatcher.
    public var queuesWork: Bool { !deliveries.isEmpty || !memberships.isEmpty }
}

/// An event joining a group of a grouped endpoint.
public struct GroupMembership: Sendable, Equatable {
    public var endpoint: String
    /// The `by` values as JSON text (the group's identity).
    public var key: String
    /// The `by` values as an object (`{"status":"Rejected"}`), for the message.
    public var values: JSONValue
    public var wait: Duration
    public var interval: Duration
}

/// The pipeline stage between detection and the outbox: routes an event, renders it for each
/// endpoint (once per distinct format) and sorts grouped endpoints into groups. Pure: no
/// store, no clock.
public struct Pipeline: Sendable {
    public let routes: RouteTable
    private let endpoints: [String: EndpointConfiguration]
    /// Whether any endpoint needs more than the stored body (then the event is parsed).
    private let anyRendering: Bool

    public init(routes: RouteTable, endpoints: [EndpointConfiguration]) {
        self.routes = routes
        self.endpoints = Dictionary(endpoints.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        anyRendering = endpoints.contains { !$0.format.sendsStoredBody || $0.group != nil }
    }

    public init(_ configuration: Configuration) {
        self.init(routes: RouteTable(routes: configuration.routes), endpoints: configuration.endpoints)
    }

    /// The outbox entry for `event`. `payment` is the payment's raw bytes (payment events):
    /// parsed only when a route or a group looks inside it.
    /// - Parameter excluding: an endpoint never to send it to (the one an `endpoint.disabled` is about).
    public func entry(for event: Event, payment: ArraySlice<UInt8>? = nil, excluding: String? = nil) -> OutboxEntry {
        let view = payment.flatMap { routes.needsPayment || anyRendering ? PaymentView($0) : nil }
        let targets = routes.endpoints(for: event.routable, payment: view).filter { $0 != excluding }
        var entry = OutboxEntry(event: event)
        guard anyRendering else {
            entry.deliveries = targets.map { ($0, nil) }
            return entry
        }
        var document: EventDocument?
        var renderingIndex: [String: Int] = [:]
        for name in targets {
            guard let endpoint = endpoints[name] else { continue }
            if let group = endpoint.group, event.type == .paymentCreated || event.type == .paymentStatusChanged {
                entry.memberships.append(membership(of: event, in: group, endpoint: name, payment: view))
                continue
            }
            if endpoint.format.sendsStoredBody {
                entry.deliveries.append((name, nil))
                continue
            }
            let key = endpoint.format.key
            if let index = renderingIndex[key] {
                entry.deliveries.append((name, index))
                continue
            }
            if document == nil { document = try? EventDocument(id: event.id, standardBody: event.body) }
            guard let document else {
                entry.deliveries.append((name, nil))  // a body paybridge wrote itself always parses
                continue
            }
            entry.renderings.append(endpoint.format.render(document))
            renderingIndex[key] = entry.renderings.count - 1
            entry.deliveries.append((name, entry.renderings.count - 1))
        }
        return entry
    }

    /// The group of a grouped endpoint `event` joins: its `by` values.
    func membership(of event: Event, in group: GroupSettings, endpoint: String, payment: PaymentView?) -> GroupMembership {
        var values: [(key: String, value: JSONValue)] = []
        for field in group.by {
            let value: String?
            switch field {
            case .type: value = event.type.rawValue
            case .status: value = event.routable.status
            case .previousStatus: value = event.routable.previousStatus
            case .watch: value = event.routable.watch
            case .currency, .accountId, .classification:
                let shorthand: ShorthandField = field == .currency ? .currency : field == .accountId ? .accountId : .classification
                value = payment?.value.flatMap { root in shorthand.paths.lazy.compactMap { $0.value(in: root)?.stringValue }.first }
            }
            values.append((field.rawValue, value.map { .string($0) } ?? .null))
        }
        let object = JSONValue.object(values)
        return GroupMembership(
            endpoint: endpoint, key: String(decoding: object.bytes, as: UTF8.self), values: object, wait: group.wait, interval: group.interval)
    }

    /// A group's message for its endpoint, rendered in the endpoint's format.
    public func groupEntry(for message: Event, endpoint name: String) -> OutboxEntry {
        guard let format = endpoints[name]?.format, !format.sendsStoredBody,
            let document = try? EventDocument(id: message.id, standardBody: message.body)
        else { return OutboxEntry(event: message, deliveries: [(name, nil)]) }
        return OutboxEntry(event: message, deliveries: [(name, 0)], renderings: [format.render(document)])
    }

    public func endpoint(named name: String) -> EndpointConfiguration? { endpoints[name] }
}
