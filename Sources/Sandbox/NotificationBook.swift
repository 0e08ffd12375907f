import Foundation

/// The payment event types of Banking Circle's notifications, with the numbers its API uses.
enum NotificationEventType: Int, CaseIterable, Sendable {
    case incomingPaymentProcessed = 1
    case outgoingPaymentRejected = 2
    case outgoingPaymentProcessed = 3
    case missingFunding = 4
    case reversed = 5
    case outgoingPaymentBooked = 6
    case paymentRouting = 7
    case incomingPaymentBooked = 8
    case outgoingDirectDebitPendingProcessing = 10
    case paymentStatus = 13

    var name: String {
        switch self {
        case .incomingPaymentProcessed: "IncomingPaymentProcessed"
        case .outgoingPaymentRejected: "OutgoingPaymentRejected"
        case .outgoingPaymentProcessed: "OutgoingPaymentProcessed"
        case .missingFunding: "MissingFunding"
        case .reversed: "Reversed"
        case .outgoingPaymentBooked: "OutgoingPaymentBooked"
        case .paymentRouting: "PaymentRouting"
        case .incomingPaymentBooked: "IncomingPaymentBooked"
        case .outgoingDirectDebitPendingProcessing: "OutgoingDirectDebitPendingProcessing"
        case .paymentStatus: "PaymentStatus"
        }
    }

    /// A create body names the type (`"OutgoingPaymentRejected"`) or gives its number (`2`,
    /// or `"2"`); clients of the bank's OpenAPI send either.
    init?(json value: Any?) {
        if let text = value as? String {
            if let number = Int(text) {
                self.init(rawValue: number)
                return
            }
            guard let match = Self.allCases.first(where: { $0.name.caseInsensitiveCompare(text) == .orderedSame }) else { return nil }
            self = match
        } else if let number = value as? NSNumber {
            self.init(rawValue: number.intValue)
        } else {
            return nil
        }
    }

    /// What a sandbox payment (always outgoing) moving to `status` notifies. Booked comes with
    /// Processed (the sandbox books as it processes); PendingProcessing, Hold, Cancelled and the
    /// rest notify nothing, as at the bank.
    static func forOutgoing(status: String) -> [NotificationEventType] {
        switch status {
        case "Rejected": [.outgoingPaymentRejected]
        case "Processed": [.outgoingPaymentProcessed, .outgoingPaymentBooked]
        case "MissingFunding": [.missingFunding]
        case "Reversed": [.reversed]
        default: []
        }
    }
}

/// A subscription's status, as the self-service API numbers it.
enum SubscriptionStatus: Int, Sendable {
    case none = 0
    case inactive = 1
    case active = 2
    case retired = 4

    init?(json value: Any?) {
        if let number = value as? NSNumber {
            self.init(rawValue: number.intValue)
        } else if let text = value as? String {
            switch text.lowercased() {
            case "none", "0": self = .none
            case "inactive", "1": self = .inactive
            case "active", "2": self = .active
            case "retired", "4": self = .retired
            default: return nil
            }
        } else {
            return nil
        }
    }
}

/// One event type a subscription asked for.
struct SubscriptionEvent: Sendable {
    var id: String
    var type: NotificationEventType
    /// Company or account ids, kept and shown; the sandbox does not filter on them (its
    /// payments' accounts are made up), so every payment matches.
    var targets: [String]

    func json(subscriptionId: String?) -> String {
        let owner = subscriptionId.map { "\"subscriptionId\":\(JSONText.string($0))," } ?? ""
        let targets = self.targets.map(JSONText.string).joined(separator: ",")
        return "{\"id\":\(JSONText.string(id)),\(owner)\"eventType\":\(JSONText.string(type.name)),\"targets\":[\(targets)]}"
    }
}

/// One notification waiting to be sent: its id and its JSON object.
struct QueuedNotification: Sendable {
    var eventId: String
    var json: String
}

/// A batch of notifications on its way to an endpoint. Fixed once formed, so a retry sends
/// exactly what the failed attempt sent (under a fresh nonce).
struct NotificationMessage: Sendable {
    var number: Int
    var eventIds: [String]
    var plaintext: [UInt8]
    /// Attempts made so far.
    var attempts = 0
    var nextAttemptAt: Date
    /// An attempt is on the wire; the next waits for its answer (one message in flight per
    /// subscription keeps the order).
    var sending = false
}

/// What the notifier is asked to do: one attempt at one message, with what it needs to
/// encrypt it and where to send it (read at the attempt, so a changed endpoint or key counts).
struct NotificationAttempt: Sendable {
    var messageNumber: Int
    var subscriptionId: String
    var endpoint: String
    var encryptionKey: String
    var eventIds: [String]
    var plaintext: [UInt8]
    /// 1 for the first try, 2 for the first retry, …
    var attempt: Int
}

/// One POST of notifications to a subscriber, as the sandbox made it.
public struct SandboxNotificationDelivery: Sendable {
    /// When the POST was sent and when its answer (or failure) came, on the bank's clock.
    public var sentAt: Date
    public var answeredAt: Date
    public var subscriptionId: String
    public var endpoint: String
    public var eventIds: [String]
    /// 1 for the first try, 2 for the first retry, …
    public var attempt: Int
    /// The HTTP status answered; nil when none came (connection refused, timeout, …).
    public var status: Int?
    /// Why no status came, or why the message could not be sent.
    public var error: String?

    public var succeeded: Bool { status.map { (200..<300).contains($0) } ?? false }
}

/// A subscription of the bank's Notification Self Service and its delivery state.
struct Subscription: Sendable {
    var id: String
    var endpoint: String
    /// Never shown back: the bank does not echo it either.
    var encryptionKey: String
    var email: String?
    var status: SubscriptionStatus
    var statusMessage: String?
    var rowVersion: String
    var maxNotificationsPerMessage: Int
    var events: [SubscriptionEvent] = []
    /// Notifications not yet in a message, oldest first.
    var pending: [QueuedNotification] = []
    var message: NotificationMessage?

    var isActive: Bool { status == .active }

    var json: String {
        let events = self.events.map { $0.json(subscriptionId: nil) }.joined(separator: ",")
        return "{\"id\":\(JSONText.string(id)),\"endpoint\":\(JSONText.string(endpoint)),\"email\":\(JSONText.optional(email)),"
            + "\"status\":\(status.rawValue),\"isActive\":\(isActive),\"statusMessage\":\(JSONText.optional(statusMessage)),"
            + "\"rowVersion\":\(JSONText.string(rowVersion)),\"maxNotificationsPerMessage\":\(maxNotificationsPerMessage),"
            + "\"subscriptionEvents\":[\(events)]}"
    }

    /// Stops delivery: as at the bank, what is queued is dropped and what happens while the
    /// subscription is inactive is never sent.
    mutating func stopDelivery() {
        pending.removeAll()
        message = nil
    }
}

/// The subscriptions, their queues and the record of deliveries: the bank's notification
/// state, kept inside `SandboxBank`'s lock so a status change and its notification are one step.
struct NotificationBook: Sendable {
    /// Banking Circle's retry schedule after a failed delivery; after the last retry fails the
    /// subscription is deactivated.
    static let retrySchedule: [Duration] = [
        .seconds(15), .seconds(30), .seconds(60), .seconds(600), .seconds(1_800), .seconds(3_600), .seconds(7_200),
        .seconds(21_600), .seconds(43_200), .seconds(86_400), .seconds(172_800),
    ]
    /// Enough record for any test, bounded for a demo left running.
    static let deliveriesKept = 10_000

    var subscriptions: [String: Subscription] = [:]
    /// Subscription ids in creation order: the list call's order, and the order in which
    /// subscriptions hear of an event (so a seed replays the same ids).
    var order: [String] = []
    var deliveries: [SandboxNotificationDelivery] = []
    private var rowVersionCounter: UInt64 = 2_000
    private var messageCounter = 0

    /// A SQL Server-style rowversion: a database-wide counter, base64 of its 8 bytes.
    mutating func nextRowVersion() -> String {
        rowVersionCounter += 1
        return Data(withUnsafeBytes(of: rowVersionCounter.bigEndian) { Array($0) }).base64EncodedString()
    }

    /// Whether any subscription can be sent something: else the notifier's tick leaves the
    /// bank lazy (no advance of every payment ten times a second for nobody).
    var isListening: Bool {
        subscriptions.values.contains { $0.isActive && (!$0.events.isEmpty || !$0.pending.isEmpty || $0.message != nil) }
    }

    /// Whether a payment moving to `status` would queue anything.
    func listens(to status: String) -> Bool {
        let types = NotificationEventType.forOutgoing(status: status)
        guard !types.isEmpty else { return false }
        return subscriptions.values.contains { subscription in
            subscription.isActive && subscription.events.contains { types.contains($0.type) }
        }
    }

    /// Queues, for every active subscription with an event for it, the notification of a
    /// payment that moved to its current status at `date`.
    mutating func paymentMoved(_ payment: Payment, at date: Date, random: inout SplitMix64) {
        let types = NotificationEventType.forOutgoing(status: payment.status)
        guard !types.isEmpty else { return }
        var paymentJSON: String?
        for id in order {
            guard let subscription = subscriptions[id], subscription.isActive else { continue }
            for type in types {
                for event in subscription.events where event.type == type {
                    let json = paymentJSON ?? payment.json
                    paymentJSON = json
                    queue(type: type, paymentJSON: json, subscriptionId: id, eventId: event.id, at: date, random: &random)
                }
            }
        }
    }

    /// Queues one notification for one subscription.
    @discardableResult
    mutating func queue(
        type: NotificationEventType, paymentJSON: String, subscriptionId: String, eventId subscriptionEventId: String, at date: Date,
        random: inout SplitMix64
    ) -> String {
        let eventId = random.uuid()
        let json = "{\"eventId\":\"\(eventId)\",\"subscriptionId\":\(JSONText.string(subscriptionId)),"
            + "\"subscriptionEventId\":\(JSONText.string(subscriptionEventId)),\"notificationType\":\"\(type.name)\","
            + "\"timestamp\":\"\(Payment.timestamp(date))\",\"payment\":\(paymentJSON)}"
        subscriptions[subscriptionId]?.pending.append(QueuedNotification(eventId: eventId, json: json))
        return eventId
    }

    // MARK: Delivery

    /// The attempts due at `date`: a new message for each subscription with queued
    /// notifications and none in flight, and the retries whose time has come.
    mutating func dueAttempts(at date: Date) -> [NotificationAttempt] {
        var due: [NotificationAttempt] = []
        for id in order {
            guard var subscription = subscriptions[id], subscription.isActive else { continue }
            if subscription.message == nil, !subscription.pending.isEmpty {
                let batch = subscription.pending.prefix(subscription.maxNotificationsPerMessage)
                subscription.pending.removeFirst(batch.count)
                messageCounter += 1
                let plaintext = Array(("[" + batch.map(\.json).joined(separator: ",") + "]").utf8)
                subscription.message = NotificationMessage(
                    number: messageCounter, eventIds: batch.map(\.eventId), plaintext: plaintext, nextAttemptAt: date)
            }
            guard var message = subscription.message, !message.sending, message.nextAttemptAt <= date else {
                subscriptions[id] = subscription
                continue
            }
            message.sending = true
            message.attempts += 1
            subscription.message = message
            subscriptions[id] = subscription
            due.append(
                NotificationAttempt(
                    messageNumber: message.number, subscriptionId: id, endpoint: subscription.endpoint,
                    encryptionKey: subscription.encryptionKey, eventIds: message.eventIds, plaintext: message.plaintext,
                    attempt: message.attempts))
        }
        return due
    }

    /// Records an attempt's outcome: a 2xx ends the message; anything else schedules the next
    /// retry (`retryScale` times the bank's wait) or, after the last, deactivates the
    /// subscription, whose status message is then returned.
    @discardableResult
    mutating func settle(
        _ attempt: NotificationAttempt, status: Int?, error: String?, sentAt: Date, at date: Date, retryScale: Double
    ) -> String? {
        deliveries.append(
            SandboxNotificationDelivery(
                sentAt: sentAt, answeredAt: date, subscriptionId: attempt.subscriptionId, endpoint: attempt.endpoint,
                eventIds: attempt.eventIds, attempt: attempt.attempt, status: status, error: error))
        if deliveries.count > Self.deliveriesKept { deliveries.removeFirst(deliveries.count - Self.deliveriesKept) }
        // The subscription may have been deactivated, changed or deleted while the POST was out:
        // then this message is no longer its business.
        guard var subscription = subscriptions[attempt.subscriptionId], var message = subscription.message,
            message.number == attempt.messageNumber
        else { return nil }
        if let status, (200..<300).contains(status) {
            subscription.message = nil
        } else if attempt.attempt > Self.retrySchedule.count {
            let outcome = status.map { "HTTP \($0)" } ?? (error ?? "no answer")
            subscription.status = .inactive
            subscription.statusMessage =
                "Deactivated: \(attempt.attempt) attempts to deliver to \(subscription.endpoint) failed (the last: \(outcome)); "
                + "activate the subscription to receive notifications again"
            subscription.rowVersion = nextRowVersion()
            subscription.stopDelivery()
            subscriptions[attempt.subscriptionId] = subscription
            return subscription.statusMessage
        } else {
            let wait = Self.retrySchedule[attempt.attempt - 1].timeInterval * max(0, retryScale)
            message.sending = false
            message.nextAttemptAt = date.addingTimeInterval(wait)
            subscription.message = message
        }
        subscriptions[attempt.subscriptionId] = subscription
        return nil
    }
}

/// JSON text for values the sandbox writes by hand (its style, see `Payment.json`), escaped
/// fully because these come from clients.
enum JSONText {
    static func string(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let control where control.value < 0x20:
                let hex = String(control.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static func optional(_ text: String?) -> String { text.map(string) ?? "null" }
}
