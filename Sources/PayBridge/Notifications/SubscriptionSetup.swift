import Foundation
import Logging

/// The operator's commands on the bank's notification subscription (`paybridge
/// notifications subscribe | status | test`), through the self-service API.
public final class SubscriptionSetup: Sendable {
    public let configuration: NotificationsConfiguration
    private let client: BankingCircleClient
    private let http: CurlHTTPClient

    /// Fails when the config has no `source.notifications`.
    public init(source: SourceConfiguration, apiURL: String? = nil, logger: Logger) throws {
        guard let configuration = source.notifications else {
            throw SubscriptionSetupError("the config has no source.notifications (listen, publicURL, key): nothing to subscribe")
        }
        self.configuration = configuration
        let http = CurlHTTPClient()
        self.http = http
        client = BankingCircleClient(source: source, apiURL: apiURL, authURL: apiURL, http: http, logger: logger)
    }

    deinit { http.shutdown() }

    /// What `subscribe` did.
    public struct Subscribed: Sendable {
        public var subscription: NotificationSubscription
        public var created: Bool
        public var eventsAdded: [String]
        public var eventsRemoved: [String]
    }

    /// Creates the subscription for `publicURL`, or updates the existing one (its key, its
    /// status: Active; `If-Match` its row version), and makes its events those of the config.
    public func subscribe() async throws -> Subscribed {
        var created = false
        var subscription: NotificationSubscription
        if let existing = try await client.subscription(for: configuration.publicURL) {
            try await client.updateSubscription(existing, endpoint: configuration.publicURL, key: configuration.key)
            subscription = existing
        } else {
            subscription = try await client.createSubscription(endpoint: configuration.publicURL, key: configuration.key)
            created = true
        }
        let wanted = configuration.events.map { NotificationEventType(name: $0)?.name ?? $0 }
        let present = subscription.events.map(\.eventType)
        let added = wanted.filter { name in !present.contains { $0.caseInsensitiveCompare(name) == .orderedSame } }
        for name in added { try await client.addSubscriptionEvent(subscriptionId: subscription.id, eventType: name) }
        var removed: [String] = []
        for event in subscription.events where !wanted.contains(where: { $0.caseInsensitiveCompare(event.eventType) == .orderedSame }) {
            guard let id = event.id else { continue }
            try await client.removeSubscriptionEvent(id: id)
            removed.append(event.eventType)
        }
        subscription = try await client.subscription(for: configuration.publicURL) ?? subscription
        return Subscribed(subscription: subscription, created: created, eventsAdded: added, eventsRemoved: removed)
    }

    /// The subscription for `publicURL`, or nil when the bank has none.
    public func status() async throws -> NotificationSubscription? {
        try await client.subscription(for: configuration.publicURL)
    }

    /// Asks the bank (its sandbox) to send a test notification; returns the subscription.
    public func test() async throws -> NotificationSubscription {
        guard let subscription = try await client.subscription(for: configuration.publicURL) else {
            throw SubscriptionSetupError(
                "the bank has no notification subscription for \(configuration.publicURL): run `paybridge notifications subscribe` first")
        }
        try await client.requestTestNotification(subscriptionId: subscription.id)
        return subscription
    }
}

public struct SubscriptionSetupError: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}
