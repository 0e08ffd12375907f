import Crypto
import Foundation

/// Builds a group's message (`payment.group`, §8): one event with its own stable id, listing
/// the first `max` members' data, the count, per-currency totals and how many were left out.
/// Pure: the members come from the store, the time from the caller.
enum GroupMessage {
    /// `grp_` + 32 hex digits of the endpoint, the group and the message's number, so a
    /// message flushed again after a crash has the same id.
    static func id(endpoint: String, key: String, sequence: Int) -> String {
        var hasher = SHA256()
        hasher.update(data: Array("\(endpoint)\n\(key)\n\(sequence)".utf8))
        let hex = Array("0123456789abcdef".utf8)
        var text = Array("grp_".utf8)
        for byte in hasher.finalize().prefix(16) {
            text.append(hex[Int(byte >> 4)])
            text.append(hex[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    static func event(for group: PendingGroup, max: Int, at date: Date) -> Event {
        let sequence = group.sequence + 1
        var events: [JSONValue] = []
        var totals: [String: DecimalText] = [:]
        var currencies: [String] = []
        for (index, member) in group.members.enumerated() {
            guard let data = (try? JSONValue.parse(member.body))?["data"] else { continue }
            if index < max { events.append(data) }
            let facts = PaymentFacts(data: data)
            if let amount = facts.amount, let currency = facts.currency, let value = DecimalText(amount) {
                if totals[currency] == nil { currencies.append(currency) }
                totals[currency] = (totals[currency] ?? DecimalText(units: 0, scale: value.scale)).adding(value)
            }
        }
        let values = (try? JSONValue.parse(Array(group.key.utf8))) ?? .object([])
        let data = JSONValue.object([
            ("group", values), ("count", .number(String(group.members.count))),
            ("totals", .array(currencies.map { .object([("currency", .string($0)), ("amount", .string(totals[$0]?.text ?? "0"))]) })),
            ("events", .array(events)), ("truncated", .number(String(Swift.max(0, group.members.count - max)))),
        ])
        let timestamp = Timestamp.iso8601(date)
        let body = JSONValue.object([("type", .string(EventType.paymentGroup.rawValue)), ("timestamp", .string(timestamp)), ("data", data)]).bytes
        return Event(
            id: id(endpoint: group.endpoint, key: group.key, sequence: sequence), type: .paymentGroup,
            subject: "group:\(group.endpoint):\(group.key)", sequence: sequence, createdAt: date,
            routable: RoutableEvent(type: EventType.paymentGroup.rawValue), body: body)
    }
}

/// An amount as the bank writes it (`1234.50`), added exactly: an integer of units at the
/// largest scale seen, so totals keep the bank's decimals.
struct DecimalText {
    var units: Int64
    var scale: Int

    init(units: Int64, scale: Int) {
        self.units = units
        self.scale = scale
    }

    init?(_ text: String) {
        var digits = text
        let negative = digits.hasPrefix("-")
        if negative { digits.removeFirst() }
        let parts = digits.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let whole = Int64(parts[0]), parts.count == 1 || parts[1].allSatisfy(\.isNumber) else {
            return nil
        }
        let fraction = parts.count == 2 ? String(parts[1]) : ""
        guard fraction.count <= 9 else { return nil }
        scale = fraction.count
        var value = whole
        for _ in 0..<scale { value *= 10 }
        value += Int64(fraction) ?? 0
        units = negative ? -value : value
    }

    func rescaled(to target: Int) -> DecimalText {
        var value = units
        for _ in scale..<Swift.max(scale, target) { value *= 10 }
        return DecimalText(units: value, scale: Swift.max(scale, target))
    }

    func adding(_ other: DecimalText) -> DecimalText {
        let scale = Swift.max(self.scale, other.scale)
        return DecimalText(units: rescaled(to: scale).units + other.rescaled(to: scale).units, scale: scale)
    }

    var text: String {
        let negative = units < 0
        var digits = String(units.magnitude)
        if scale > 0 {
            if digits.count <= scale { digits = String(repeating: "0", count: scale - digits.count + 1) + digits }
            digits.insert(".", at: digits.index(digits.endIndex, offsetBy: -scale))
        }
        return (negative ? "-" : "") + digits
    }
}
