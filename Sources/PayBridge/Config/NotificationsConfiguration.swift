import Yams
import Foundation

/// `source.notifications` (§10): where the bank's own notifications arrive, and the
/// subscription that sends them.
public struct NotificationsConfiguration: Sendable {
    /// The watch name of the look-ups notifications trigger (reserved: no watch may use it).
    public static let watchName = "notifications"
    public static let defaultPath = "/bc/notifications"
    /// What `events` is when the config does not say.
    public static let defaultEvents = [
        "OutgoingPaymentRejected", "MissingFunding", "OutgoingPaymentProcessed", "IncomingPaymentProcessed", "Reversed",
    ]
    /// The bank's limit on a notification body.
    public static let maxBody = 50_000_000

    /// `host:port` the listener binds.
    public var listen: String
    public var path: String
    /// The URL the bank calls (the subscription's `endpoint`).
    public var publicURL: String
    /// The subscription's 32-character encryption key.
    public var key: Secret
    /// Certificate and key (PEM files) to serve HTTPS; nil: plain HTTP behind a TLS proxy.
    public var tls: (certificate: String, key: String)?
    /// Source addresses accepted; empty: any.
    public var allowFrom: [AddressRange]
    public var checkEvery: Duration
    /// Event type names the subscription asks for.
    public var events: [String]

    public init(
        listen: String, path: String = Self.defaultPath, publicURL: String, key: Secret, tls: (certificate: String, key: String)? = nil,
        allowFrom: [AddressRange] = [], checkEvery: Duration = .seconds(300), events: [String] = Self.defaultEvents
    ) {
        self.listen = listen
        self.path = path
        self.publicURL = publicURL
        self.key = key
        self.tls = tls
        self.allowFrom = allowFrom
        self.checkEvery = checkEvery
        self.events = events
    }

    public var host: String { String(listen[..<(listen.lastIndex(of: ":") ?? listen.endIndex)]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")) }
    public var port: Int { Int(listen[listen.index(after: listen.lastIndex(of: ":") ?? listen.startIndex)...]) ?? 8443 }

    /// Whether `address` (textual IPv4 or IPv6) may send notifications.
    public func allows(_ address: String) -> Bool {
        allowFrom.isEmpty || allowFrom.contains { $0.contains(address) }
    }
}

/// A CIDR block (`203.0.113.0/24`, `2001:db8::/32`) or one address.
public struct AddressRange: Sendable, Equatable, CustomStringConvertible {
    public let bytes: [UInt8]
    public let prefix: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bytes = Self.parse(String(parts[0])) else { return nil }
        let bits = bytes.count * 8
        if parts.count == 2 {
            guard let prefix = Int(parts[1]), (0...bits).contains(prefix) else { return nil }
            self.prefix = prefix
        } else {
            prefix = bits
        }
        self.bytes = bytes
    }

    public var description: String { "\(Self.format(bytes))/\(prefix)" }

    public func contains(_ address: String) -> Bool {
        var text = address
        // An IPv4 client on a dual-stack socket: ::ffff:203.0.113.7.
        if text.lowercased().hasPrefix("::ffff:"), text.contains(".") { text = String(text.dropFirst(7)) }
        guard let other = Self.parse(text), other.count == bytes.count else { return false }
        var remaining = prefix
        for index in bytes.indices where remaining > 0 {
            let take = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - take))
            if bytes[index] & mask != other[index] & mask { return false }
            remaining -= take
        }
        return true
    }

    static func parse(_ text: String) -> [UInt8]? {
        var storage = [UInt8](repeating: 0, count: 16)
        if inet_pton(AF_INET, text, &storage) == 1 { return Array(storage.prefix(4)) }
        if inet_pton(AF_INET6, text, &storage) == 1 { return storage }
        return nil
    }

    static func format(_ bytes: [UInt8]) -> String {
        bytes.count == 4 ? bytes.map(String.init).joined(separator: ".") : stride(from: 0, to: bytes.count, by: 2).map {
            String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16)
        }.joined(separator: ":")
    }
}

extension ConfigReader {
    /// `source.notifications`.
    func readNotifications(_ node: Node) -> NotificationsConfiguration? {
        let path = "source.notifications"
        guard let entries = mapping(node, path) else { return nil }
        let keys = checkKeys(entries, allowed: ["listen", "path", "publicURL", "key", "keyFile", "tls", "allowFrom", "checkEvery", "events"], in: path)
        var listen: String?
        if let entry = keys["listen"], let text = string(entry.value, "\(path).listen") {
            let colon = text.lastIndex(of: ":")
            if let colon, colon != text.startIndex, let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) {
                listen = text
            } else {
                error(entry.value, "\(path).listen must be HOST:PORT, e.g. 0.0.0.0:8443")
            }
        } else if keys["listen"] == nil {
            error(node, "\(path): missing 'listen' (HOST:PORT where the bank POSTs, e.g. 0.0.0.0:8443)")
        }
        var notificationPath = NotificationsConfiguration.defaultPath
        if let entry = keys["path"], let text = string(entry.value, "\(path).path") {
            if text.hasPrefix("/"), !text.contains("?"), !text.contains(" ") {
                notificationPath = text
            } else {
                error(entry.value, "\(path).path must be a path starting with '/', e.g. /bc/notifications")
            }
        }
        let publicURL = keys["publicURL"].flatMap { url($0.value, "\(path).publicURL") }
        if keys["publicURL"] == nil { error(node, "\(path): missing 'publicURL' (the URL the bank calls, e.g. https://bridge.example.com/bc/notifications)") }
        var key: String?
        if let entry = keys["key"] {
            key = secretString(entry.value, "\(path).key")
        } else if let entry = keys["keyFile"] {
            key = string(entry.value, "\(path).keyFile").flatMap { readSecretFile($0, entry.value, "\(path).keyFile") }
        } else {
            error(node, "\(path): missing 'key' (the subscription's 32-character encryption key, or keyFile)")
        }
        if keys["key"] != nil, keys["keyFile"] != nil { error(node, "\(path): use key or keyFile, not both") }
        if let text = key, text.utf8.count != 32 {
            // The length only: the key itself never appears in a message.
            error(keys["key"]?.value ?? keys["keyFile"]?.value, "\(path).key must be exactly 32 characters (it has \(text.utf8.count) bytes)")
            key = nil
        }
        var tls: (certificate: String, key: String)?
        if let entry = keys["tls"], let tlsEntries = mapping(entry.value, "\(path).tls") {
            let tlsKeys = checkKeys(tlsEntries, allowed: ["certificate", "key"], in: "\(path).tls")
            let certificate = tlsKeys["certificate"].flatMap { existingFile($0.value, "\(path).tls.certificate") }
            let tlsKey = tlsKeys["key"].flatMap { existingFile($0.value, "\(path).tls.key") }
            if tlsKeys["certificate"] == nil || tlsKeys["key"] == nil {
                error(entry.value, "\(path).tls needs both 'certificate' and 'key' (PEM files)")
            }
            if let certificate, let tlsKey { tls = (certificate, tlsKey) }
        }
        var allowFrom: [AddressRange] = []
        if let entry = keys["allowFrom"], let items = stringList(entry.value, "\(path).allowFrom") {
            for (index, item) in items.enumerated() {
                if let range = AddressRange(item) {
                    allowFrom.append(range)
                } else {
                    error(entry.value, "\(path).allowFrom[\(index)]: '\(item)' is not an address or a CIDR block like 203.0.113.0/24")
                }
            }
        }
        let checkEvery = keys["checkEvery"].flatMap { duration($0.value, "\(path).checkEvery", positive: true) } ?? .seconds(300)
        var events = NotificationsConfiguration.defaultEvents
        if let entry = keys["events"], let items = stringList(entry.value, "\(path).events") {
            if items.isEmpty { error(entry.value, "\(path).events is empty: name at least one event type, e.g. OutgoingPaymentRejected") }
            for item in items where NotificationEventType(name: item) == nil {
                let known = NotificationEventType.allCases.map(\.name).joined(separator: ", ")
                error(entry.value, "\(path).events: '\(item)' is not one of the bank's notification types (\(known))")
            }
            events = items
        }
        guard let listen, let publicURL, let key else { return nil }
        return NotificationsConfiguration(
            listen: listen, path: notificationPath, publicURL: publicURL, key: Secret(key), tls: tls, allowFrom: allowFrom,
            checkEvery: checkEvery, events: events)
    }
}
