/// What a route looks at: the event's type and, for payment events, its statuses and watch.
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

/// A route's `when`: every named field must hold one of its listed values. An empty
/// matcher matches every event.
public struct RouteMatcher: Sendable, Equatable {
    public var status: Set<String>?
    public var previousStatus: Set<String>?
    public var type: Set<String>?
    public var watch: Set<String>?

    public init(status: Set<String>? = nil, previousStatus: Set<String>? = nil, type: Set<String>? = nil, watch: Set<String>? = nil) {
        self.status = status
        self.previousStatus = previousStatus
        self.type = type
        self.watch = watch
    }

    public func matches(_ event: RoutableEvent) -> Bool {
        Self.accepts(status, event.status) && Self.accepts(previousStatus, event.previousStatus)
            && Self.accepts(type, event.type) && Self.accepts(watch, event.watch)
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
public struct Route: Sendable, Equatable {
    public var when: RouteMatcher
    public var to: [String]
    public var routes: [Route]
    public var continueMatching: Bool

    public init(when: RouteMatcher = RouteMatcher(), to: [String], routes: [Route] = [], continueMatching: Bool = false) {
        self.when = when
        self.to = to
        self.routes = routes
        self.continueMatching = continueMatching
    }

    /// The endpoints this node sends `event` to, or nil when the node does not match.
    func endpoints(for event: RoutableEvent) -> [String]? {
        guard when.matches(event) else { return nil }
        var chosen: [String] = []
        var childMatched = false
        for child in routes {
            guard let names = child.endpoints(for: event) else { continue }
            childMatched = true
            chosen.append(contentsOf: names)
            if !child.continueMatching { break }
        }
        return childMatched ? chosen : to
    }
}

/// The top-level routes: every one that matches delivers.
public struct RouteTable: Sendable {
    public var routes: [Route]

    public init(routes: [Route]) { self.routes = routes }

    /// Endpoint names for `event`, each once, in the order routes name them.
    public func endpoints(for event: RoutableEvent) -> [String] {
        var seen = Set<String>()
        var result: [String] = []
        for route in routes {
            for name in route.endpoints(for: event) ?? [] where seen.insert(name).inserted {
                result.append(name)
            }
        }
        return result
    }
}
