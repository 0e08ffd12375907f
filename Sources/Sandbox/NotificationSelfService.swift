import Foundation

/// Banking Circle's "Notification Self Service" (`/api/v1/notificationselfservice/…`): the
/// subscriptions, their event types, and the sandbox-only client test. Access is checked by
/// the bank before this is reached.
extension NotificationBook {
    /// `path` is what follows `api/v1/notificationselfservice/`; `samplePayment` is the JSON of
    /// a payment for the client test (nil when the bank has none, then one is made up).
    mutating func handle(
        _ request: SandboxRequest, path: [String], at date: Date, random: inout SplitMix64, samplePayment: String?
    ) -> SandboxResponse {
        switch (request.method, path.count, path.first) {
        case ("GET", 1, "subscription"):
            return .json(200, "[" + order.compactMap { subscriptions[$0]?.json }.joined(separator: ",") + "]")
        case ("POST", 1, "subscription"):
            return create(request, random: &random)
        case (_, 2, "subscription"), (_, 3, "subscription"):
            guard let id = subscriptionId(path[1]) else {
                return .error(404, code: "SubscriptionNotFound", description: "no subscription with this id", property: "subscriptionId")
            }
            return change(request, id: id, action: path.count == 3 ? path[2] : nil)
        case ("POST", 1, "subscriptionEvent"):
            return addEvent(request, random: &random)
        case ("DELETE", 2, "subscriptionEvent"):
            return removeEvent(path[1])
        case ("POST", 2, "clienttest"):
            return clientTest(path[1], at: date, random: &random, samplePayment: samplePayment)
        case (_, 1...3, "subscription"), (_, 1...2, "subscriptionEvent"), (_, 2, "clienttest"):
            return .error(405, code: "MethodNotAllowed", description: "\(request.method) is not supported here")
        default:
            return .error(404, code: "NotFound", description: "no such resource")
        }
    }

    /// Ids are UUIDs, matched whatever their case.
    private func subscriptionId(_ text: String) -> String? {
        subscriptions[text] != nil ? text : subscriptions.keys.first { $0.caseInsensitiveCompare(text) == .orderedSame }
    }

    private static func object(_ request: SandboxRequest) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(request.body))) as? [String: Any]
    }

    private static func subscriptionResponse(_ status: Int, _ subscription: Subscription) -> SandboxResponse {
        var response = SandboxResponse.json(status, subscription.json)
        response.headers.append(("ETag", "\"\(subscription.rowVersion)\""))
        return response
    }

    // MARK: Subscriptions

    private mutating func create(_ request: SandboxRequest, random: inout SplitMix64) -> SandboxResponse {
        guard let object = Self.object(request) else {
            return .error(400, code: "InvalidBody", description: "the body is not a JSON object")
        }
        guard object["endpoint"] != nil, !(object["endpoint"] is NSNull) else {
            return .error(400, code: "InvalidEndpoint", description: "endpoint is required", property: "endpoint")
        }
        guard object["encryptionKey"] != nil, !(object["encryptionKey"] is NSNull) else {
            return .error(400, code: "InvalidEncryptionKey", description: "encryptionKey is required", property: "encryptionKey")
        }
        var subscription = Subscription(
            id: random.uuid(), endpoint: "", encryptionKey: "", email: nil, status: .active, statusMessage: nil, rowVersion: "",
            maxNotificationsPerMessage: 1_000)
        if let refusal = Self.apply(object, to: &subscription) { return refusal }
        subscription.rowVersion = nextRowVersion()
        subscriptions[subscription.id] = subscription
        order.append(subscription.id)
        return Self.subscriptionResponse(201, subscription)
    }

    /// Sets the fields a create or update body gives, checking each as the bank does; on a
    /// refusal nothing is applied.
    private static func apply(_ object: [String: Any], to subscription: inout Subscription) -> SandboxResponse? {
        var changed = subscription
        if let value = object["endpoint"], !(value is NSNull) {
            guard let text = value as? String, let url = URL(string: text), let scheme = url.scheme?.lowercased(),
                ["http", "https"].contains(scheme), url.host?.isEmpty == false
            else {
                return .error(400, code: "InvalidEndpoint", description: "endpoint must be an http(s) URL", property: "endpoint")
            }
            changed.endpoint = text
        }
        if let value = object["encryptionKey"], !(value is NSNull) {
            // The key is used as its characters' bytes (AES-256 wants 32 of them), so a
            // character outside ASCII would not make a key either.
            guard let key = value as? String, key.count == 32, key.utf8.count == 32 else {
                return .error(
                    400, code: "InvalidEncryptionKey", description: "encryptionKey must be exactly 32 (ASCII) characters",
                    property: "encryptionKey")
            }
            changed.encryptionKey = key
        }
        if let value = object["status"], !(value is NSNull) {
            guard let status = SubscriptionStatus(json: value) else {
                return .error(
                    400, code: "InvalidStatus", description: "status must be 0 (None), 1 (Inactive), 2 (Active) or 4 (Retired)",
                    property: "status")
            }
            setStatus(status, of: &changed)
        }
        if let value = object["email"] {
            guard value is NSNull || value is String else {
                return .error(400, code: "InvalidEmail", description: "email must be a string", property: "email")
            }
            changed.email = value as? String
        }
        if let value = object["maxNotificationsPerMessage"], !(value is NSNull) {
            guard let number = (value as? NSNumber)?.intValue, (5...1_000).contains(number) else {
                return .error(
                    400, code: "InvalidMaxNotificationsPerMessage", description: "maxNotificationsPerMessage must be from 5 to 1000",
                    property: "maxNotificationsPerMessage")
            }
            changed.maxNotificationsPerMessage = number
        }
        subscription = changed
        return nil
    }

    private static func setStatus(_ status: SubscriptionStatus, of subscription: inout Subscription) {
        guard status != subscription.status else { return }
        subscription.status = status
        subscription.statusMessage = nil
        if status != .active { subscription.stopDelivery() }
    }

    /// `GET|PUT|DELETE subscription/{id}` and `PUT subscription/{id}/activate|deactivate`; every
    /// change needs the current rowVersion in `If-Match` (optimistic concurrency, as the bank's).
    private mutating func change(_ request: SandboxRequest, id: String, action: String?) -> SandboxResponse {
        guard var subscription = subscriptions[id] else {
            return .error(404, code: "SubscriptionNotFound", description: "no subscription with this id", property: "subscriptionId")
        }
        switch (request.method, action) {
        case ("GET", nil):
            return Self.subscriptionResponse(200, subscription)
        case ("PUT", nil), ("DELETE", nil), ("PUT", "activate"), ("PUT", "deactivate"):
            break
        case (_, nil), (_, "activate"), (_, "deactivate"):
            return .error(405, code: "MethodNotAllowed", description: "\(request.method) is not supported here")
        default:
            return .error(404, code: "NotFound", description: "no such resource")
        }
        if let refusal = Self.precondition(request, subscription) { return refusal }
        switch action {
        case "activate":
            Self.setStatus(.active, of: &subscription)
        case "deactivate":
            Self.setStatus(.inactive, of: &subscription)
        default:
            if request.method == "DELETE" {
                subscriptions[id] = nil
                order.removeAll { $0 == id }
                return SandboxResponse(status: 204)
            }
            guard let object = Self.object(request) else {
                return .error(400, code: "InvalidBody", description: "the body is not a JSON object")
            }
            if let refusal = Self.apply(object, to: &subscription) { return refusal }
        }
        subscription.rowVersion = nextRowVersion()
        subscriptions[id] = subscription
        return Self.subscriptionResponse(200, subscription)
    }

    /// 428 without `If-Match`, 412 when it is not the current rowVersion (quotes and a weak
    /// `W/` prefix allowed, as HTTP writes entity tags).
    private static func precondition(_ request: SandboxRequest, _ subscription: Subscription) -> SandboxResponse? {
        guard var given = request.headers["if-match"]?.trimmingCharacters(in: .whitespaces), !given.isEmpty else {
            return .error(
                428, code: "PreconditionRequired", description: "If-Match with the subscription's rowVersion is required",
                property: "If-Match")
        }
        if given.hasPrefix("W/") { given.removeFirst(2) }
        if given.count >= 2, given.hasPrefix("\""), given.hasSuffix("\"") { given = String(given.dropFirst().dropLast()) }
        guard given == subscription.rowVersion else {
            return .error(
                412, code: "PreconditionFailed", description: "the subscription changed: If-Match is not its current rowVersion",
                property: "If-Match")
        }
        return nil
    }

    // MARK: Subscription events

    private mutating func addEvent(_ request: SandboxRequest, random: inout SplitMix64) -> SandboxResponse {
        guard let object = Self.object(request) else {
            return .error(400, code: "InvalidBody", description: "the body is not a JSON object")
        }
        guard let given = object["subscriptionId"] as? String else {
            return .error(400, code: "InvalidSubscriptionId", description: "subscriptionId is required", property: "subscriptionId")
        }
        guard let id = subscriptionId(given), var subscription = subscriptions[id] else {
            return .error(404, code: "SubscriptionNotFound", description: "no subscription with this id", property: "subscriptionId")
        }
        guard let type = NotificationEventType(json: object["eventType"]) else {
            let known = NotificationEventType.allCases.map { "\($0.rawValue) \($0.name)" }.joined(separator: ", ")
            return .error(400, code: "InvalidEventType", description: "eventType must be one of: \(known)", property: "eventType")
        }
        var targets: [String] = []
        if let value = object["targets"], !(value is NSNull) {
            guard let list = value as? [Any], list.allSatisfy({ $0 is String }) else {
                return .error(400, code: "InvalidTargets", description: "targets must be a list of ids", property: "targets")
            }
            targets = list.compactMap { $0 as? String }
        }
        guard !subscription.events.contains(where: { $0.type == type }) else {
            return .error(
                409, code: "DuplicateSubscriptionEvent", description: "the subscription already has \(type.name)", property: "eventType")
        }
        // Events are rows of their own, so the subscription's rowVersion stays as it is.
        let event = SubscriptionEvent(id: random.uuid(), type: type, targets: targets)
        subscription.events.append(event)
        subscriptions[id] = subscription
        return .json(201, event.json(subscriptionId: id))
    }

    private mutating func removeEvent(_ eventId: String) -> SandboxResponse {
        for id in order {
            guard let index = subscriptions[id]?.events.firstIndex(where: { $0.id.caseInsensitiveCompare(eventId) == .orderedSame })
            else { continue }
            subscriptions[id]?.events.remove(at: index)
            return SandboxResponse(status: 204)
        }
        return .error(404, code: "SubscriptionEventNotFound", description: "no subscription event with this id", property: "id")
    }

    // MARK: Client test

    /// Sandbox only at the bank: queues one mocked notification (of the subscription's first
    /// event type, about a real sandbox payment when there is one) to check an endpoint.
    private mutating func clientTest(
        _ given: String, at date: Date, random: inout SplitMix64, samplePayment: String?
    ) -> SandboxResponse {
        guard let id = subscriptionId(given), let subscription = subscriptions[id] else {
            return .error(404, code: "SubscriptionNotFound", description: "no subscription with this id", property: "subscriptionId")
        }
        guard subscription.isActive else {
            return .error(409, code: "SubscriptionInactive", description: "the subscription is not active", property: "subscriptionId")
        }
        let event = subscription.events.first
        let type = event?.type ?? .outgoingPaymentProcessed
        let subscriptionEventId = event?.id ?? random.uuid()
        let payment =
            samplePayment
            ?? Payment.make(id: random.uuid(), amountCents: 12_000, createdAt: date, status: "Processed", random: &random).json
        let eventId = queue(
            type: type, paymentJSON: payment, subscriptionId: id, eventId: subscriptionEventId, at: date, random: &random)
        return .json(202, "{\"eventId\":\"\(eventId)\",\"notificationType\":\"\(type.name)\"}")
    }
}
