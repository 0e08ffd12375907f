import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// The operations API (§11): the library's operations as JSON under `/api/v1/`, described by
/// `OpenAPIDocument` (served at `/api/v1/openapi.json`). Every route needs a token (or the
/// console's session); `read` tokens see everything and act on nothing (403). Errors are
/// `{"error": {"code": …, "message": …}}`; lists page with cursors, never offsets.
enum OperationsAPI {
    static func register(on router: Router<BasicRequestContext>, bridge: Bridge, access: AdminAccess, logger: Logger) {
        let api = router.group("api/v1")
        api.get("openapi.json") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: OpenAPIDocument.text)))
        }
        // Every other method on the API's paths: 405 naming the allowed one.
        let methods = [HTTPTypes.HTTPRequest.Method.get, .post, .put, .patch, .delete, .options, .trace, .head, .connect]
            + [HTTPTypes.HTTPRequest.Method("QUERY")].compactMap { $0 }
        for (path, allowed) in [
            ("status", HTTPTypes.HTTPRequest.Method.get), ("payments", .get), ("payments/{id}", .get), ("events", .get), ("deliveries", .get),
            ("deliveries/{id}", .get), ("deliveries/replay", .post), ("events/{id}/redeliver", .post), ("endpoints/{name}/enable", .post),
            ("endpoints/{name}/disable", .post), ("stream", .get), ("openapi.json", .get),
        ] {
            for method in methods where method != allowed {
                api.on(RouterPath(path), method: method) { _, _ -> Response in
                    var response = error(APIError(.methodNotAllowed, "method_not_allowed", "\(path) takes \(allowed.rawValue)"))
                    response.headers[.allow] = allowed.rawValue
                    return response
                }
            }
        }
        // Any other path under the API: a 404 in the API's error shape. The router does not
        // fall back to `**` from a path that only leads to routes, so those are named too.
        for path in ["", "**", "endpoints", "endpoints/{name}", "events/{id}"] {
            for method in methods {
                api.on(RouterPath(path), method: method) { request, _ -> Response in
                    error(APIError(.notFound, "not_found", "no such route: \(request.method.rawValue) \(request.uri.path)"))
                }
            }
        }
        api.get("status") { request, _ -> Response in
            try await reading(request, access) { _ in try await bridge.statusJSON() }
        }
        api.get("payments") { request, _ -> Response in
            try await reading(request, access) { _ in
                guard let query = parameters(request)["q"].map(String.init), !query.isEmpty else {
                    throw APIError(.badRequest, "bad_request", "give q: a payment id or a reference")
                }
                let found = try await bridge.operations.findPayments(query)
                return .object([("payments", .array(found.map(\.json)))])
            }
        }
        api.get("payments/{id}") { request, context -> Response in
            try await reading(request, access) { _ in
                let id = context.parameters.get("id") ?? ""
                do {
                    return try await bridge.operations.payment(id: id).json
                } catch let error as OperationError {
                    throw APIError(.notFound, "not_found", "\(error)")
                }
            }
        }
        api.get("events") { request, _ -> Response in
            try await reading(request, access) { _ in
                let query = parameters(request)
                let limit = try limitParameter(query["limit"])
                let filter = EventFilter(
                    type: query["type"].map(String.init), status: query["status"].map(String.init), paymentId: query["payment"].map(String.init),
                    since: try sinceParameter(query["since"]), limit: limit + 1, before: query["cursor"].map(String.init))
                let found: (events: [EventSummary], members: [String: [EventSummary]])
                do {
                    found = try await bridge.operations.events(filter)
                } catch OperationError.unknownEvent(let id) {
                    let what = id.isEmpty ? "an empty cursor" : "cursor \(id)"
                    throw APIError(.notFound, "not_found", "\(what) names no event: use the next of the page before")
                }
                let (events, members) = found
                let page = Array(events.prefix(limit))
                let rows = page.map { event in members[event.id].map { event.json.adding([("members", GroupMembers.json($0))]) } ?? event.json }
                let next: JSONValue = events.count > limit ? .text(page.last?.id) : .null
                return .object([("events", .array(rows)), ("next", next)])
            }
        }
        api.get("deliveries") { request, _ -> Response in
            try await reading(request, access) { _ in
                let query = parameters(request)
                let limit = try limitParameter(query["limit"])
                var state: DeliveryFilter.State?
                if let text = query["state"] {
                    guard let parsed = DeliveryFilter.State(rawValue: String(text)) else {
                        throw APIError(.badRequest, "bad_request", "state must be one of: pending, failing, dead, delivered")
                    }
                    state = parsed
                }
                var before: Int64?
                if let text = query["cursor"] {
                    guard let cursor = Int64(String(text)) else { throw APIError(.badRequest, "bad_cursor", "cursor must be a delivery id") }
                    before = cursor
                }
                let filter = DeliveryFilter(
                    endpoint: query["endpoint"].map(String.init), state: state, since: try sinceParameter(query["since"]), limit: limit + 1, before: before)
                let (rows, counts) = try await operating { try await bridge.operations.deliveries(filter) }
                let page = Array(rows.prefix(limit))
                let countsJSON = JSONValue.object(
                    counts.keys.sorted().map { endpoint in
                        (endpoint, .object(DeliveryState.allCases.map { ($0.rawValue, .int(counts[endpoint]?[$0] ?? 0)) }))
                    })
                let next: JSONValue = rows.count > limit ? .text(page.last.map { String($0.id) }) : .null
                return .object([("deliveries", .array(page.map(\.json))), ("counts", countsJSON), ("next", next)])
            }
        }
        api.get("deliveries/{id}") { request, context -> Response in
            try await reading(request, access) { _ in
                guard let id = context.parameters.get("id").flatMap(Int64.init) else { throw APIError(.badRequest, "bad_request", "the id is a number") }
                return try await operating { try await bridge.operations.delivery(id: id).json }
            }
        }
        api.post("deliveries/replay") { request, _ -> Response in
            try await acting(request, access) { identity, body in
                try expect(body, ["ids": .array, "endpoint": .string, "state": .string, "since": .string, "confirm": .bool])
                let since = try body["since"]?.stringValue.flatMap { try sinceParameter(Substring($0)) }
                if let state = body["state"]?.stringValue, state != "dead" { throw APIError(.badRequest, "bad_request", "a replay takes state: dead (dead letters)") }
                let confirm = body["confirm"] == .bool(true)
                var ids: [Int64] = []
                if case .array(let items)? = body["ids"] {
                    for item in items {
                        // JSON's 1.0 is the integer 1.
                        guard case .number(let text) = item, let id = Int64(text) ?? Double(text).flatMap({ $0 == $0.rounded() && abs($0) < 9e18 ? Int64($0) : nil })
                        else { throw APIError(.badRequest, "bad_request", "ids are delivery ids (numbers)") }
                        ids.append(id)
                    }
                } else if let endpoint = body["endpoint"]?.stringValue {
                    ids = try await operating { try await bridge.operations.deadLetters(endpoint: endpoint, since: since) }.map(\.id)
                } else {
                    throw APIError(.badRequest, "bad_request", "give ids: [delivery ids], or endpoint (its dead letters)")
                }
                let plan = try await operating { try await bridge.operations.planReplay(ids: ids) }
                var replayed: [Int64] = []
                if confirm {
                    replayed = try await operating { try await bridge.operations.replay(ids: plan.ids) }
                    logger.notice(
                        "operator action: replay", metadata: ["token": "\(identity.name)", "deliveries": "\(replayed.map(String.init).joined(separator: ","))"])
                }
                return ActionJSON.replay(plan, replayed: replayed, dryRun: !confirm)
            }
        }
        api.post("events/{id}/redeliver") { request, context -> Response in
            try await acting(request, access) { identity, body in
                let eventId = context.parameters.get("id") ?? ""
                try expect(body, ["endpoint": .string])
                guard let endpoint = body["endpoint"]?.stringValue else { throw APIError(.badRequest, "bad_request", "give endpoint: the endpoint's name") }
                let (delivery, outOfOrder) = try await operating { try await bridge.operations.redeliver(eventId: eventId, to: endpoint) }
                logger.notice(
                    "operator action: redeliver",
                    metadata: ["token": "\(identity.name)", "eventId": "\(eventId)", "endpoint": "\(endpoint)", "delivery": "\(delivery)"])
                return ActionJSON.redeliver(delivery: delivery, outOfOrder: outOfOrder)
            }
        }
        for (action, enable) in [("enable", true), ("disable", false)] {
            api.post("endpoints/{name}/\(action)") { request, context -> Response in
                try await acting(request, access) { identity, body in
                    let name = context.parameters.get("name") ?? ""
                    try expect(body, ["reason": .string])
                    let reason = body["reason"]?.stringValue ?? "disabled by \(identity.name)"
                    var changed = true
                    try await operating {
                        changed =
                            enable
                            ? try await bridge.operations.enable(endpoint: name)
                            : try await bridge.operations.disable(endpoint: name, reason: reason)
                    }
                    logger.notice("operator action: \(action) endpoint", metadata: ["token": "\(identity.name)", "endpoint": "\(name)"])
                    return ActionJSON.endpoint(name, enabled: enable, changed: changed)
                }
            }
        }
        api.get("stream") { request, _ -> Response in
            guard access.identify(request) != nil else { return error(APIError(.unauthorized, "unauthorized", "a token is required")) }
            return Response(
                status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                body: ResponseBody { writer in
                    // A session signed out (or expired) ends its stream.
                    try await EventStream.run(bridge: bridge, writer: &writer, allowed: { access.identify(request) != nil })
                })
        }
    }

    /// A request the API refuses, with the status and the `code` it answers.
    struct APIError: Error {
        var status: HTTPTypes.HTTPResponse.Status
        var code: String
        var message: String

        init(_ status: HTTPTypes.HTTPResponse.Status, _ code: String, _ message: String) {
            self.status = status
            self.code = code
            self.message = message
        }
    }

    static func error(_ error: APIError) -> Response {
        let body = JSONValue.object([("error", .object([("code", .string(error.code)), ("message", .string(error.message))]))])
        var response = Response(status: error.status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: body.bytes)))
        if error.status == .unauthorized { response.headers[.wwwAuthenticate] = "Bearer" }
        return response
    }

    static func ok(_ value: JSONValue) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: value.bytes)))
    }

    /// A read: any valid token or session.
    static func reading(
        _ request: Request, _ access: AdminAccess, _ body: (AdminAccess.Identity) async throws -> JSONValue
    ) async throws -> Response {
        guard let identity = access.identify(request) else { return error(APIError(.unauthorized, "unauthorized", "a token is required")) }
        return try await answering { try await body(identity) }
    }

    /// An action: an `operate` token (or session, with its CSRF token); the body is JSON.
    static func acting(
        _ request: Request, _ access: AdminAccess, _ body: (AdminAccess.Identity, JSONValue) async throws -> JSONValue
    ) async throws -> Response {
        guard let identity = access.identify(request) else { return error(APIError(.unauthorized, "unauthorized", "a token is required")) }
        guard identity.role == .operate else {
            let why = access.open ? "no admin token is configured: actions need an operate token (admin.tokens)" : "the token '\(identity.name)' may read, not act (role: read)"
            return error(APIError(.forbidden, "forbidden", why))
        }
        guard access.allowsAction(identity, request) else {
            return error(APIError(.forbidden, "csrf", "the console's action lacks its CSRF token (X-CSRF-Token)"))
        }
        var request = request
        let bytes = try await request.collectBody(upTo: 1 << 20)
        let document: JSONValue
        if bytes.readableBytes == 0 {
            document = .object([])
        } else {
            do {
                document = try JSONValue.parse(Array(bytes.readableBytesView))
            } catch {
                return Self.error(APIError(.badRequest, "bad_request", "the body is not JSON: \(error)"))
            }
            guard case .object = document else { return Self.error(APIError(.badRequest, "bad_request", "the body is a JSON object")) }
        }
        return try await answering { try await body(identity, document) }
    }

    private static func answering(_ body: () async throws -> JSONValue) async throws -> Response {
        do {
            return ok(try await body())
        } catch let refusal as APIError {
            return error(refusal)
        } catch {
            return Self.error(APIError(.serviceUnavailable, "storage_unavailable", "the state storage cannot be read: \(error)"))
        }
    }

    /// Runs an operation; its refusals (an unknown endpoint, delivery, event) are 404s.
    static func operating<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as OperationError {
            throw APIError(.notFound, "not_found", "\(error)")
        } catch let error as InspectionError {
            throw APIError(.notFound, "not_found", "\(error)")
        }
    }

    /// The query's parameters. An empty filter counts as absent (`?endpoint=` filters
    /// nothing); an empty `since`, `limit`, `state`, `q` or `cursor` is a mistake, refused as
    /// any malformed value is (an event cursor must name an event: 404 otherwise, as the
    /// catch-up feed's `after`). `type`
    /// and `status` may be repeated or comma-separated: any of them.
    static func parameters(_ request: Request) -> [String: Substring] {
        var found: [String: Substring] = [:]
        for (name, value) in request.uri.queryParameters where !value.isEmpty || !["endpoint", "type", "status", "payment"].contains(name) {
            if ["type", "status"].contains(name), let earlier = found[String(name)] {
                found[String(name)] = earlier + "," + value
            } else {
                found[String(name)] = value
            }
        }
        return found
    }

    enum Kind { case string, bool, array }

    /// Each of these members, when present, has this kind.
    static func expect(_ body: JSONValue, _ kinds: [String: Kind]) throws {
        for (name, kind) in kinds {
            guard let value = body[name] else { continue }
            let fits: Bool
            switch (kind, value) {
            case (.string, .string), (.bool, .bool), (.array, .array): fits = true
            default: fits = false
            }
            guard fits else { throw APIError(.badRequest, "bad_request", "\(name) must be a \(kind)") }
        }
    }

    static func limitParameter(_ text: Substring?) throws -> Int {
        guard let text else { return 50 }
        guard let limit = Int(text), (1...1000).contains(limit) else { throw APIError(.badRequest, "bad_request", "limit must be from 1 to 1000") }
        return limit
    }

    /// `since`: a duration back from now (`2h`) or an instant (ISO 8601).
    static func sinceParameter(_ text: Substring?) throws -> Date? {
        guard let text else { return nil }
        if let duration = DurationText.parse(String(text)) { return Date().addingTimeInterval(-duration.seconds) }
        // Longer ago than a duration can say (a century): everything.
        if text.wholeMatch(of: /[0-9]+(ms|s|m|h|d)/) != nil { return .distantPast }
        if let date = Timestamp.parse(String(text)) { return date }
        throw APIError(.badRequest, "bad_request", "since is a duration (2h) or an ISO 8601 time")
    }
}

/// `GET /api/v1/stream`: server-sent events. `event: event` for each new event (its summary),
/// `event: delivery` for each delivery whose state or attempts changed, `event: endpoint`
/// when an endpoint's health changes. Read from the state every second; a stream ends after
/// ten minutes or at shutdown (an `EventSource` reconnects by itself).
enum EventStream {
    static func run(bridge: Bridge, writer: inout any ResponseBodyWriter, allowed: @Sendable () -> Bool) async throws {
        try await writer.write(ByteBuffer(string: "retry: 2000\n: paybridge\n\n"))
        var lastEvent = try await bridge.operations.events(EventFilter(limit: 1)).events.first?.id
        var seenDeliveries: [Int64: String] = [:]
        for delivery in try await bridge.operations.deliveries(DeliveryFilter(limit: 200)).deliveries {
            seenDeliveries[delivery.id] = "\(delivery.stateText) \(delivery.attempts)"
        }
        var health: [String: String] = [:]
        for entry in try await bridge.operations.endpointOverview() { health[entry.name] = entry.health }
        let started = ContinuousClock.now
        while !Task.isCancelled, !Task.isShuttingDownGracefully, ContinuousClock.now - started < .seconds(600), allowed() {
            try await Task.sleep(for: .seconds(1))
            var frames = ""
            // New events, oldest first.
            let recent = try await bridge.operations.events(EventFilter(limit: 200)).events
            let fresh = recent.prefix { $0.id != lastEvent }.reversed()
            if let newest = recent.first { lastEvent = newest.id }
            for event in fresh { frames += frame("event", event.json) }
            for delivery in try await bridge.operations.deliveries(DeliveryFilter(limit: 200)).deliveries.reversed() {
                let mark = "\(delivery.stateText) \(delivery.attempts)"
                if seenDeliveries[delivery.id] != mark {
                    seenDeliveries[delivery.id] = mark
                    frames += frame("delivery", delivery.json)
                }
            }
            if seenDeliveries.count > 5000 { seenDeliveries = seenDeliveries.filter { $0.key > (seenDeliveries.keys.max() ?? 0) - 1000 } }
            for entry in try await bridge.operations.endpointOverview() where health[entry.name] != entry.health {
                health[entry.name] = entry.health
                frames += frame("endpoint", .object([("name", .string(entry.name)), ("health", .string(entry.health))]))
            }
            try await writer.write(ByteBuffer(string: frames.isEmpty ? ": keep-alive\n\n" : frames))
        }
        try await writer.finish(nil)
    }

    static func frame(_ name: String, _ value: JSONValue) -> String {
        "event: \(name)\ndata: \(String(decoding: value.bytes, as: UTF8.self))\n\n"
    }
}
