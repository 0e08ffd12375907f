import Crypto
import Foundation

/// The kinds of event paybridge emits.
public enum EventType: String, Sendable, CaseIterable {
    case paymentCreated = "payment.created"
    case paymentStatusChanged = "payment.status_changed"
    /// An endpoint was disabled (410 Gone, or failing for longer than `disableAfter`).
    case endpointDisabled = "endpoint.disabled"
    /// The bank has been unreachable for longer than `source.unavailableAfter`.
    case sourceUnavailable = "source.unavailable"
    /// The bank answers again after a `source.unavailable`.
    case sourceRecovered = "source.recovered"
    /// A group message: several payment events for one endpoint in one delivery.
    case paymentGroup = "payment.group"
    /// The bank's notification subscription is missing or not Active (§10).
    case sourceNotificationsInactive = "source.notifications.inactive"
    /// The subscription is Active again after a `source.notifications.inactive`.
    case sourceNotificationsActive = "source.notifications.active"
}

/// One event, ready for the outbox: its id is stable and its body final.
///
/// `subject` orders deliveries: for one endpoint, events of the same subject are delivered
/// in `sequence` order. It is the payment id for payment events, `endpoint:NAME` and
/// `source` for the operational ones.
public struct Event: Sendable, Equatable {
    public var id: String
    public var type: EventType
    public var subject: String
    public var sequence: Int
    public var createdAt: Date
    public var routable: RoutableEvent
    /// The JSON body sent to every endpoint, byte for byte on every attempt.
    public var body: [UInt8]

    /// A payment event; `sequence` is the payment's change number (1 for its first event).
    public static func payment(
        type: EventType, paymentId: String, status: String, previousStatus: String?, watch: String, sequence: Int,
        createdAt: Date, payment: ArraySlice<UInt8>
    ) -> Event {
        var json = JSONWriter(capacity: payment.count + 256)
        json.header(type: type, timestamp: createdAt)
        json.raw(",\"data\":{\"paymentId\":")
        json.string(paymentId)
        json.raw(",\"status\":")
        json.string(status)
        json.raw(",\"previousStatus\":")
        if let previousStatus { json.string(previousStatus) } else { json.raw("null") }
        json.raw(",\"watch\":")
        json.string(watch)
        json.raw(",\"payment\":")
        json.bytes(payment)
        json.raw("}}")
        return Event(
            id: id(subject: paymentId, sequence: sequence, discriminator: status), type: type, subject: paymentId,
            sequence: sequence, createdAt: createdAt,
            routable: RoutableEvent(type: type.rawValue, status: status, previousStatus: previousStatus, watch: watch),
            body: json.output)
    }

    /// A value in an operational event's `data`.
    public enum Value: Sendable, Equatable {
        case string(String)
        case number(Int)
        case null
    }

    /// An operational event (`endpoint.*`, `source.*`) with `data` as given.
    public static func operational(
        type: EventType, subject: String, sequence: Int, createdAt: Date, data: KeyValuePairs<String, Value>
    ) -> Event {
        var json = JSONWriter()
        json.header(type: type, timestamp: createdAt)
        json.raw(",\"data\":{")
        var first = true
        for (key, value) in data {
            if !first { json.raw(",") }
            first = false
            json.string(key)
            json.raw(":")
            switch value {
            case .string(let text): json.string(text)
            case .number(let number): json.bytes(String(number).utf8)
            case .null: json.raw("null")
            }
        }
        json.raw("}}")
        // The time is part of the id: the subject and its number are the same in every
        // installation and after a fresh state, and receivers drop an id they have seen.
        let moment = Int64((createdAt.timeIntervalSince1970 * 1000).rounded())
        return Event(
            id: id(subject: subject, sequence: sequence, discriminator: "\(type.rawValue)\n\(moment)"), type: type, subject: subject,
            sequence: sequence, createdAt: createdAt, routable: RoutableEvent(type: type.rawValue), body: json.output)
    }

    /// `evt_` + 32 hex digits derived from the subject, its change number and what changed
    /// (a payment's new status), so a poll re-run after a crash names the same change the same way.
    public static func id(subject: String, sequence: Int, discriminator: String) -> String {
        var hasher = SHA256()
        hasher.update(data: Array(subject.utf8))
        hasher.update(data: Array("\n\(sequence)\n".utf8))
        hasher.update(data: Array(discriminator.utf8))
        let digest = hasher.finalize()
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        var text: [UInt8] = Array("evt_".utf8)
        text.reserveCapacity(36)
        for byte in digest.prefix(16) {
            text.append(hex[Int(byte >> 4)])
            text.append(hex[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    // The payment fields, for storage and logs.
    public var status: String? { routable.status }
    public var previousStatus: String? { routable.previousStatus }
    public var watch: String? { routable.watch }
}

/// Appends JSON text to a byte buffer.
struct JSONWriter {
    private(set) var output: [UInt8]

    init(capacity: Int = 256) {
        output = []
        output.reserveCapacity(capacity)
    }

    mutating func raw(_ text: StaticString) {
        output.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    mutating func bytes<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        output.append(contentsOf: bytes)
    }

    /// `{"type":…,"timestamp":…`: the start every event body shares.
    mutating func header(type: EventType, timestamp: Date) {
        raw("{\"type\":")
        string(type.rawValue)
        raw(",\"timestamp\":")
        string(Timestamp.iso8601(timestamp))
    }

    mutating func string(_ text: String) {
        output.append(UInt8(ascii: "\""))
        // Most strings (ids, statuses) need no escaping: copy them whole.
        if !text.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            output.append(contentsOf: text.utf8)
            output.append(UInt8(ascii: "\""))
            return
        }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\n"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case UInt8(ascii: "\t"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                output.append(hex[Int(byte >> 4)])
                output.append(hex[Int(byte & 0xF)])
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }
}

/// `2026-11-22T10:00:00.123Z`: UTC with milliseconds, as events carry it.
public enum Timestamp {
    public static func iso8601(_ date: Date) -> String {
        var milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var seconds = time_t(milliseconds / 1000)
        milliseconds %= 1000
        if milliseconds < 0 {
            milliseconds += 1000
            seconds -= 1
        }
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(milliseconds), 3))Z"
    }

    /// Reads `YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM]` (the bank's seven-digit fractions
    /// too; no zone is UTC), or nil.
    public static func parse(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= bytes.count else { return nil }
            var value = 0
            for byte in bytes[range] {
                guard (48...57).contains(byte) else { return nil }
                value = value * 10 + Int(byte - 48)
            }
            return value
        }
        guard bytes.count >= 19, bytes[4] == 45, bytes[7] == 45, bytes[10] == 84 || bytes[10] == 32, bytes[13] == 58, bytes[16] == 58,
            let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13),
            let minute = number(14..<16), let second = number(17..<19)
        else { return nil }
        var index = 19
        var fraction = 0.0
        if index < bytes.count, bytes[index] == 46 {
            index += 1
            var scale = 0.1
            while index < bytes.count, (48...57).contains(bytes[index]) {
                fraction += Double(bytes[index] - 48) * scale
                scale /= 10
                index += 1
            }
        }
        var offset = 0
        if index < bytes.count {
            switch bytes[index] {
            case 90, 122: index += 1
            case 43, 45:
                guard let hours = number(index + 1..<index + 3) else { return nil }
                let minutesStart = index + 3 < bytes.count && bytes[index + 3] == 58 ? index + 4 : index + 3
                let minutes = number(minutesStart..<minutesStart + 2) ?? 0
                offset = (hours * 3600 + minutes * 60) * (bytes[index] == 45 ? -1 : 1)
                index = min(bytes.count, minutesStart + 2)
            default: return nil
            }
        }
        guard index == bytes.count, (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let seconds = timegm(&parts)
        return Date(timeIntervalSince1970: Double(seconds - offset) + fraction)
    }
}
