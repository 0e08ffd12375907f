import Foundation

/// A subscription of the bank's Notification Self Service, as paybridge reads it.
public struct NotificationSubscription: Sendable, Equatable {
    public struct Event: Sendable, Equatable {
        public var id: String?
        /// The event type's name (numbers are named).
        public var eventType: String
    }

    public var id: String
    public var endpoint: String
    /// The bank's status: `Active`, `Inactive`, `None`, `Retired` (numbers are named).
    public var status: String
    public var isActive: Bool?
    public var statusMessage: String?
    public var rowVersion: String?
    public var events: [Event]

    /// Active by its status (2 or "Active", in any case); `isActive` speaks only when there is
    /// no status.
    public var active: Bool { status.caseInsensitiveCompare("Active") == .orderedSame || (status.isEmpty && isActive == true) }

    static func statusName(_ value: Any?) -> String {
        switch value {
        case let text as String: return text
        case let number as NSNumber:
            return [0: "None", 1: "Inactive", 2: "Active", 4: "Retired"][number.intValue] ?? String(number.intValue)
        default: return ""
        }
    }

    /// A JSON array of subscriptions, one subscription, or the `{"result": …}` envelope
    /// around either.
    static func parseList(_ body: [UInt8]) throws -> [NotificationSubscription] {
        let parsed = try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])
        let items: [Any]
        if let array = parsed as? [Any] {
            items = array
        } else if let object = parsed as? [String: Any] {
            let one = (object["result"] as? [String: Any]).map { [$0] as [Any] }
            items = (object["result"] as? [Any]) ?? one ?? (object["subscriptions"] as? [Any]) ?? [object]
        } else {
            throw SourceContractError("the subscription list is neither an array nor an object")
        }
        return items.compactMap { ($0 as? [String: Any]).flatMap(parse) }
    }

    static func parse(_ object: [String: Any]) -> NotificationSubscription? {
        func field(_ name: String) -> Any? { object[name] ?? object.first { $0.key.caseInsensitiveCompare(name) == .orderedSame }?.value }
        guard let id = field("id").map({ "\($0)" }) else { return nil }
        let events = (field("subscriptionEvents") as? [Any] ?? []).compactMap { item -> Event? in
            guard let event = item as? [String: Any] else { return nil }
            let type = event["eventType"] ?? event["EventType"]
            let name: String
            switch type {
            case let text as String: name = text
            case let number as NSNumber: name = NotificationEventType(rawValue: number.intValue)?.name ?? String(number.intValue)
            default: return nil
            }
            return Event(id: (event["id"] ?? event["Id"]).map { "\($0)" }, eventType: name)
        }
        let rowVersion = field("rowVersion").flatMap { value -> String? in
            if value is NSNull { return nil }
            return value as? String ?? "\(value)"
        }
        return NotificationSubscription(
            id: id, endpoint: field("endpoint") as? String ?? "", status: statusName(field("status")), isActive: field("isActive") as? Bool,
            statusMessage: field("statusMessage") as? String, rowVersion: rowVersion, events: events)
    }
}

/// The Notification Self Service calls (§10), with the client's token and certificate.
extension BankingCircleClient {
    public static let subscriptionPath = "/api/v1/notificationselfservice/subscription"
    public static let subscriptionEventPath = "/api/v1/notificationselfservice/subscriptionEvent"

    public func subscriptions() async throws -> [NotificationSubscription] {
        let (response, requestId, attempts) = try await call(.get, Self.subscriptionPath, notFoundIsNil: true)
        if response.status == 404 { return [] }
        do {
            return try NotificationSubscription.parseList(response.body)
        } catch {
            throw BankError(
                reason: .malformed(PageScanError(offset: 0, line: 1, column: 1, message: "the subscription list is not JSON: \(error)")),
                call: "GET \(Self.subscriptionPath)", requestId: requestId, attempts: attempts)
        }
    }

    /// The subscription whose endpoint is `publicURL` (trailing slashes aside), if any.
    public func subscription(for publicURL: String) async throws -> NotificationSubscription? {
        func normal(_ url: String) -> String { url.hasSuffix("/") ? String(url.dropLast()) : url }
        return try await subscriptions().first { normal($0.endpoint).caseInsensitiveCompare(normal(publicURL)) == .orderedSame }
    }

    /// Creates an Active subscription for `endpoint` encrypted with `key`.
    public func createSubscription(endpoint: String, key: Secret) async throws -> NotificationSubscription {
        let body = try JSONSerialization.data(withJSONObject: ["endpoint": endpoint, "status": 2, "encryptionKey": key.value] as [String: Any])
        let (response, requestId, attempts) = try await call(.post, Self.subscriptionPath, body: Array(body))
        guard let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
            let created = NotificationSubscription.parse(object)
        else {
            throw BankError(
                reason: .malformed(PageScanError(offset: 0, line: 1, column: 1, message: "the created subscription has no id")),
                call: "POST \(Self.subscriptionPath)",
                requestId: requestId, attempts: attempts)
        }
        return created
    }

    /// Sets the subscription's endpoint and key and makes it Active (`If-Match` its row version).
    public func updateSubscription(_ subscription: NotificationSubscription, endpoint: String, key: Secret) async throws {
        let body = try JSONSerialization.data(withJSONObject: ["endpoint": endpoint, "status": 2, "encryptionKey": key.value] as [String: Any])
        _ = try await call(
            .put, Self.subscriptionPath + "/" + QueryText.percentEncode(subscription.id), body: Array(body),
            headers: subscription.rowVersion.map { [("If-Match", $0)] } ?? [])
    }

    /// Activates an inactive subscription (`If-Match` its row version).
    public func activateSubscription(_ subscription: NotificationSubscription) async throws {
        _ = try await call(
            .put, Self.subscriptionPath + "/" + QueryText.percentEncode(subscription.id) + "/activate",
            headers: subscription.rowVersion.map { [("If-Match", $0)] } ?? [])
    }

    public func addSubscriptionEvent(subscriptionId: String, eventType: String) async throws {
        let body = try JSONSerialization.data(withJSONObject: ["subscriptionId": subscriptionId, "eventType": eventType] as [String: Any])
        _ = try await call(.post, Self.subscriptionEventPath, body: Array(body))
    }

    public func removeSubscriptionEvent(id: String) async throws {
        _ = try await call(.delete, Self.subscriptionEventPath + "/" + QueryText.percentEncode(id))
    }

    /// Asks the bank's sandbox for a mocked notification.
    public func requestTestNotification(subscriptionId: String) async throws {
        _ = try await call(.post, "/api/v1/notificationselfservice/clienttest/" + QueryText.percentEncode(subscriptionId))
    }
}
