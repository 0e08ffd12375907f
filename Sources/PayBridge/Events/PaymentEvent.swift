import Crypto
import Foundation

/// The kinds of event paybridge emits.
public enum EventType: String, Sendable, CaseIterable {
    case paymentCreated = "payment.created"
    case paymentStatusChanged = "payment.status_changed"
}

/// One detected change, ready for the outbox: its id is stable, its body final.
public struct PaymentEvent: Sendable, Equatable {
    public var id: String
    public var type: EventType
    public var paymentId: String
    public var status: String
    public var previousStatus: String?
    public var watch: String
    /// The payment's change number: 1 for its first event, then 2, 3, …
    public var sequence: Int
    public var createdAt: Date
    /// The JSON body sent to every endpoint, byte for byte on every attempt.
    public var body: [UInt8]

    public init(
        type: EventType, paymentId: String, status: String, previousStatus: String?, watch: String, sequence: Int,
        createdAt: Date, payment: ArraySlice<UInt8>
    ) {
        self.id = Self.id(paymentId: paymentId, sequence: sequence, status: status)
        self.type = type
        self.paymentId = paymentId
        self.status = status
        self.previousStatus = previousStatus
        self.watch = watch
        self.sequence = sequence
        self.createdAt = createdAt
        self.body = Self.body(
            type: type, timestamp: createdAt, paymentId: paymentId, status: status, previousStatus: previousStatus,
            watch: watch, payment: payment)
    }

    public var routable: RoutableEvent {
        RoutableEvent(type: type.rawValue, status: status, previousStatus: previousStatus, watch: watch)
    }

    /// `evt_` + 32 hex digits derived from the payment, its change number and new status, so a
    /// poll re-run after a crash names the same change the same way.
    public static func id(paymentId: String, sequence: Int, status: String) -> String {
        let digest = SHA256.hash(data: Array("\(paymentId)\n\(sequence)\n\(status)".utf8))
        return "evt_" + digest.prefix(16).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    static func body(
        type: EventType, timestamp: Date, paymentId: String, status: String, previousStatus: String?, watch: String,
        payment: ArraySlice<UInt8>
    ) -> [UInt8] {
        var json = JSONWriter(capacity: payment.count + 256)
        json.raw("{\"type\":")
        json.string(type.rawValue)
        json.raw(",\"timestamp\":")
        json.string(Timestamp.iso8601(timestamp))
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
        return json.output
    }
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

    mutating func string(_ text: String) {
        output.append(UInt8(ascii: "\""))
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
}
