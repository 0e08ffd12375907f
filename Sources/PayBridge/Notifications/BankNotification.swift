import Crypto
import Foundation

/// The bank's notification types (its self-service API names them or numbers them).
public enum NotificationEventType: Int, CaseIterable, Sendable {
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

    public var name: String {
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

    public init?(name: String) {
        guard let found = Self.allCases.first(where: { $0.name.caseInsensitiveCompare(name) == .orderedSame }) else { return nil }
        self = found
    }
}

/// One notification as paybridge keeps it: a trigger, never the truth. The payment itself
/// is read from the bank.
public struct BankNotification: Sendable, Equatable {
    public var eventId: String
    public var notificationType: String?
    public var subscriptionId: String?
    /// Nil when the notification names no payment (recorded and answered, triggers nothing).
    public var paymentId: String?

    public init(eventId: String, notificationType: String? = nil, subscriptionId: String? = nil, paymentId: String? = nil) {
        self.eventId = eventId
        self.notificationType = notificationType
        self.subscriptionId = subscriptionId
        self.paymentId = paymentId
    }
}

/// Why a notification body was refused (`400`, with this one-line reason). It never holds
/// the key or the plaintext.
public struct NotificationRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String

    public init(_ reason: String) { self.reason = reason }

    public var description: String { reason }
}

/// The bank's wire format: AES-256-GCM with the subscription's 32-character key, no
/// additional data; `Nonce`, `AuthenticationTag` and `Checksum` (SHA-256 of the plaintext)
/// as base64 headers.
public enum NotificationMessage {
    /// Decrypts, verifies and reads a body. Throws a refusal for anything that does not
    /// decrypt, verify or read as notifications.
    public static func open(
        _ body: [UInt8], nonce: String?, tag: String?, checksum: String?, key: Secret
    ) throws(NotificationRefusal) -> [BankNotification] {
        guard let nonce, let nonceBytes = Data(base64Encoded: nonce.trimmingCharacters(in: .whitespaces)) else {
            throw NotificationRefusal("missing or malformed Nonce header (base64 of 12 bytes expected)")
        }
        guard let tag, let tagBytes = Data(base64Encoded: tag.trimmingCharacters(in: .whitespaces)), tagBytes.count == 16 else {
            throw NotificationRefusal("missing or malformed AuthenticationTag header (base64 of 16 bytes expected)")
        }
        guard let checksum, let checksumBytes = Data(base64Encoded: checksum.trimmingCharacters(in: .whitespaces)), checksumBytes.count == 32 else {
            throw NotificationRefusal("missing or malformed Checksum header (base64 of a SHA-256 expected)")
        }
        let plaintext: [UInt8]
        do {
            let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: nonceBytes), ciphertext: body, tag: tagBytes)
            plaintext = Array(try AES.GCM.open(box, using: SymmetricKey(data: Array(key.value.utf8))))
        } catch {
            throw NotificationRefusal("the body does not decrypt with the subscription's key (wrong key, changed bytes or a bad tag)")
        }
        let text = decodeText(plaintext)
        let digest = Array(SHA256.hash(data: plaintext))
        guard digest == Array(checksumBytes) || Array(SHA256.hash(data: Array(text.utf8))) == Array(checksumBytes) else {
            throw NotificationRefusal("the Checksum does not match the decrypted body")
        }
        return try read(text)
    }

    /// Encrypts `plaintext` as the bank does: the body and its headers (tests, and the
    /// `notifications test` command's local check).
    public static func seal(_ plaintext: [UInt8], key: Secret, nonce: [UInt8]? = nil) throws -> (body: [UInt8], headers: [(name: String, value: String)]) {
        let gcmNonce = try nonce.map { try AES.GCM.Nonce(data: $0) } ?? AES.GCM.Nonce()
        let box = try AES.GCM.seal(plaintext, using: SymmetricKey(data: Array(key.value.utf8)), nonce: gcmNonce)
        let headers: [(name: String, value: String)] = [
            ("Content-Type", "application/octet-stream"),
            ("Nonce", Data(Array(gcmNonce)).base64EncodedString()),
            ("AuthenticationTag", Data(box.tag).base64EncodedString()),
            ("Checksum", Data(SHA256.hash(data: plaintext)).base64EncodedString()),
            ("SubscriptionVersion", "1"),
        ]
        return (Array(box.ciphertext), headers)
    }

    /// UTF-8, or UTF-16LE with or without its byte-order mark.
    static func decodeText(_ bytes: [UInt8]) -> String {
        var start = 0
        var utf16 = false
        if bytes.count >= 2, bytes[0] == 0xFF, bytes[1] == 0xFE {
            utf16 = true
            start = 2
        } else if bytes.count >= 2, bytes[0] != 0, bytes[1] == 0 {
            utf16 = true
        }
        guard utf16 else {
            if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { return String(decoding: bytes[3...], as: UTF8.self) }
            return String(decoding: bytes, as: UTF8.self)
        }
        var units: [UInt16] = []
        units.reserveCapacity((bytes.count - start) / 2)
        var index = start
        while index + 1 < bytes.count {
            units.append(UInt16(bytes[index]) | UInt16(bytes[index + 1]) << 8)
            index += 2
        }
        return String(decoding: units, as: UTF16.self)
    }

    /// A JSON array of notifications, one notification, or `{"notifications": [...]}`.
    /// Unknown fields are ignored; items that are not objects or carry no `eventId` cannot
    /// be deduplicated and are skipped.
    static func read(_ text: String) throws(NotificationRefusal) -> [BankNotification] {
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        } catch {
            throw NotificationRefusal("the decrypted body is not JSON")
        }
        let items: [Any]
        if let array = parsed as? [Any] {
            items = array
        } else if let object = parsed as? [String: Any] {
            if let wrapped = value(object, "notifications") as? [Any] { items = wrapped } else { items = [object] }
        } else {
            throw NotificationRefusal("the decrypted body is neither a notification nor a list of them")
        }
        let notifications = items.compactMap { item -> BankNotification? in
            guard let object = item as? [String: Any] else { return nil }
            let id = value(object, "eventId")
            guard let eventId = (id as? String) ?? (id as? NSNumber).map({ $0.stringValue }), !eventId.isEmpty else { return nil }
            let payment = (value(object, "payment") ?? value(object, "payload")) as? [String: Any]
            let paymentId = payment.flatMap { value($0, "paymentId") as? String }.flatMap { $0.isEmpty ? nil : $0 }
            return BankNotification(
                eventId: eventId, notificationType: typeName(value(object, "notificationType")),
                subscriptionId: value(object, "subscriptionId") as? String, paymentId: paymentId)
        }
        // Items without an id cannot be deduplicated: skipped. A body of such items is still
        // the bank's (it decrypted and verified): refusing it would have the bank retry it for
        // two days and then deactivate the subscription.
        return notifications
    }

    /// A field by name, in any case (the bank's samples mix camelCase and PascalCase).
    private static func value(_ object: [String: Any], _ name: String) -> Any? {
        if let found = object[name] { return found }
        return object.first { $0.key.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    private static func typeName(_ value: Any?) -> String? {
        if let text = value as? String { return text }
        if let number = value as? NSNumber, let type = NotificationEventType(rawValue: number.intValue) { return type.name }
        return nil
    }
}
