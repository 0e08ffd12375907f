/// What a route looks at: the event's type and, for payment events, its statuses and watch
/// (the payment itself comes beside it, parsed only if a condition needs it).
public struct RoutableEvent: Sendable, Equatable {
    public var type: String
    public var status: String?
    public var previousStatus: String?
    public var watch: String?

    public init(type: String, status: String? = nil, previousStatus: String? = nil, watch: String? = nil) {
        self.type = type
        self.status = status
        self.previousStatus = previousStatus
        self.watch = watch
    }
}

/// A route's `when`: every named field must hold one of its listed values, and every
/// condition on the payment must hold. An empty matcher matches every event.
public struct RouteMatcher: Sendable {
    public var status: Set<String>?
    public var previousStatus: Set<String>?
    public var type: Set<String>?
    public var watch: Set<String>?
    /// Conditions on `data.payment` (shorthand keys, JSON paths, combinators), ANDed.
    public var conditions: [RouteCondition]

    public init(
        status: Set<String>? = nil, previousStatus: Set<String>? = nil, type: Set<String>? = nil, watch: Set<String>? = nil,
        conditions: [RouteCondition] = []
    ) {
        self.status = status
        self.previousStatus = previousStatus
        self.type = type
        self.watch = watch
        self.conditions = conditions
    }

    public func matches(_ event: RoutableEvent, payment: PaymentView? = nil) -> Bool {
        guard
            Self.accepts(status, event.status) && Self.accepts(previousStatus, event.previousStatus)
                && Self.accepts(type, event.type) && Self.accepts(watch, event.watch)
        else { return false }
        return conditions.allSatisfy { $0.holds(for: event, payment: payment) }
    }

    private static func accepts(_ allowed: Set<String>?, _ value: String?) -> Bool {
        guard let allowed else { return true }
        guard let value else { return false }
        return allowed.contains(value)
    }
}

/// One node of the routing tree (Alertmanager's model). Children are tried in order and
/// the first that matches wins unless it says `continue`; when none matches, the node's own
/// `to` applies. A child without `to` inherits its parent's (resolved when the config loads).
public struct Route: Sendable {
    public var when: RouteMatcher
    public var to: [String]
    public var routes: [Route]
    public var continueMatching: Bool
    /// Where the route is in the config (`routes[1].routes[0]`), to say which route sent an event.
    public var path: String

    public init(
        when: RouteMatcher = RouteMatcher(), to: [String], routes: [Route] = [], continueMatching: Bool = false, path: String = "routes[0]"
    ) {
        self.when = when
        self.to = to
        self.routes = routes
        self.continueMatching = continueMatching
        self.path = path
    }

    /// The endpoints this node sends `event` to, each with the route that chose it, or nil
    /// when the node does not match.
    func matches(_ event: RoutableEvent, payment: PaymentView?) -> [(endpoint: String, route: String)]? {
        guard when.matches(event, payment: payment) else { return nil }
        var chosen: [(endpoint: String, route: String)] = []
        var childMatched = false
        for child in routes {
            guard let names = child.matches(event, payment: payment) else { continue }
            childMatched = true
            chosen.append(contentsOf: names)
            if !child.continueMatching { break }
        }
        return childMatched ? chosen : to.map { ($0, path) }
    }
}

/// The top-level routes: every one that matches delivers.
public struct RouteTable: Sendable {
    public let routes: [Route]
    /// Whether some route looks inside the payment (only then is it parsed).
    public let needsPayment: Bool

    public init(routes: [Route]) {
        self.routes = routes
        func needs(_ route: Route) -> Bool { route.when.conditions.contains { $0.needsPayment } || route.routes.contains(where: needs) }
        needsPayment = routes.contains(where: needs)
    }

    /// Endpoint names for `event`, each once, in the order routes name them.
    public func endpoints(for event: RoutableEvent, payment: PaymentView? = nil) -> [String] {
        matches(for: event, payment: payment).map(\.endpoint)
    }

    /// Each endpoint `event` reaches (once), with the route that first sent it there.
    public func matches(for event: RoutableEvent, payment: PaymentView? = nil) -> [(endpoint: String, route: String)] {
        var seen = Set<String>()
        var result: [(endpoint: String, route: String)] = []
        for route in routes {
            for match in route.matches(event, payment: payment) ?? [] where seen.insert(match.endpoint).inserted {
                result.append(match)
            }
        }
        return result
    }
}
