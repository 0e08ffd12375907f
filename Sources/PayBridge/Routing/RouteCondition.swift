import Foundation
import Synchronization

/// A condition on the payment object of an event (`data.payment`), compiled when the config
/// loads: JSON-path comparisons, the shorthand keys (`currency`, `amount`, …) and `all`,
/// `any`, `not`.
public indirect enum RouteCondition: Sendable {
    /// An event field (`type`, `status`, `previousStatus`, `watch`) holds one of the values.
    case event(EventField, Set<String>)
    /// The value at the first of `paths` that holds one (the shorthand keys fall back, e.g.
    /// `debitAmount` then `transfer.amount`), tested by `test`.
    case value(paths: [JSONPath], test: ValueTest)
    case all([RouteCondition])
    case any([RouteCondition])
    case not(RouteCondition)

    public enum EventField: String, Sendable, CaseIterable {
        case type, status, previousStatus, watch
    }

    /// `payment` is parsed only if a condition looks inside it.
    public func holds(for event: RoutableEvent, payment: PaymentView?) -> Bool {
        switch self {
        case .event(let field, let allowed):
            let value: String?
            switch field {
            case .type: value = event.type
            case .status: value = event.status
            case .previousStatus: value = event.previousStatus
            case .watch: value = event.watch
            }
            return value.map(allowed.contains) ?? false
        case .value(let paths, let test):
            return test.holds(for: payment?.value.flatMap { Self.first(paths, in: $0) })
        case .all(let conditions): return conditions.allSatisfy { $0.holds(for: event, payment: payment) }
        case .any(let conditions): return conditions.contains { $0.holds(for: event, payment: payment) }
        case .not(let condition): return !condition.holds(for: event, payment: payment)
        }
    }

    /// The value at the first path that holds one; a null only when no path holds more
    /// (a shorthand's fallback skips a null `debitAmount`, a path condition sees `eq: null`).
    static func first(_ paths: [JSONPath], in root: JSONValue) -> JSONValue? {
        var null: JSONValue?
        for path in paths {
            guard let value = path.value(in: root) else { continue }
            if !value.isNull { return value }
            null = null ?? value
        }
        return null
    }

    /// Whether the condition looks inside the payment.
    var needsPayment: Bool {
        switch self {
        case .event: return false
        case .value: return true
        case .all(let conditions), .any(let conditions): return conditions.contains { $0.needsPayment }
        case .not(let condition): return condition.needsPayment
        }
    }
}

/// One operator and its operand. Numbers compare as decimals (`13.00` equals `13`); strings
/// compare as text (so ISO 8601 timestamps order correctly).
public enum ValueTest: Sendable {
    case eq(Operand)
    case ne(Operand)
    case isIn([Operand])
    case gt(Operand)
    case gte(Operand)
    case lt(Operand)
    case lte(Operand)
    /// A search, not a full match: `"^S"` finds values starting with S.
    case regex(Pattern)
    /// `true`: present and not null.
    case exists(Bool)

    public static let operators = ["eq", "ne", "in", "gt", "gte", "lt", "lte", "regex", "exists"]

    func holds(for value: JSONValue?) -> Bool {
        switch self {
        case .eq(let operand): return value.map { operand.equals($0) } ?? false
        case .ne(let operand): return !(value.map { operand.equals($0) } ?? false)
        case .isIn(let operands): return value.map { value in operands.contains { $0.equals(value) } } ?? false
        case .gt(let operand): return operand.order(value).map { $0 == .orderedDescending } ?? false
        case .gte(let operand): return operand.order(value).map { $0 != .orderedAscending } ?? false
        case .lt(let operand): return operand.order(value).map { $0 == .orderedAscending } ?? false
        case .lte(let operand): return operand.order(value).map { $0 != .orderedDescending } ?? false
        case .regex(let pattern):
            switch value {
            case .string(let text), .number(let text): return pattern.finds(in: text)
            default: return false
            }
        case .exists(let wanted):
            let present = value.map { !$0.isNull } ?? false
            return present == wanted
        }
    }
}

/// A config value to compare with: YAML writes every scalar as text, so it is compared as a
/// decimal with numbers, as text with strings, as true/false with booleans.
public struct Operand: Sendable, Equatable {
    public var text: String
    let decimal: Decimal?

    public init(_ text: String) {
        self.text = text
        decimal = Self.decimal(text)
    }

    static func decimal(_ text: String) -> Decimal? {
        // Only what reads as a number in full (Decimal(string:) accepts a numeric prefix).
        guard let first = text.first, first == "-" || first.isNumber,
            text.allSatisfy({ $0.isNumber || $0 == "." || $0 == "-" || $0 == "+" || $0 == "e" || $0 == "E" })
        else { return nil }
        return Decimal(string: text, locale: Locale(identifier: "en_US_POSIX"))
    }

    func equals(_ value: JSONValue) -> Bool {
        switch value {
        case .number: return decimal != nil && value.decimalValue == decimal
        case .string(let string): return string == text
        case .bool(let flag): return text == (flag ? "true" : "false")
        case .null: return text == "null"
        case .object, .array: return false
        }
    }

    /// How `value` compares with this operand (nil when they cannot be ordered).
    func order(_ value: JSONValue?) -> ComparisonResult? {
        switch value {
        case .number:
            guard let decimal, let other = value?.decimalValue else { return nil }
            return other == decimal ? .orderedSame : (other < decimal ? .orderedAscending : .orderedDescending)
        case .string(let string):
            return string == text ? .orderedSame : (string < text ? .orderedAscending : .orderedDescending)
        default:
            return nil
        }
    }
}

/// A compiled regular expression (matching with one is thread-safe).
public final class Pattern: @unchecked Sendable {
    // @unchecked: both fields are immutable, and an `NSRegularExpression` is immutable and
    // safe to match from several threads at once (Foundation documents it so); it is only not
    // marked `Sendable` in corelibs-foundation.
    public let source: String
    private let expression: NSRegularExpression

    /// Nil when `source` does not compile.
    public init?(_ source: String) {
        guard let expression = try? NSRegularExpression(pattern: source) else { return nil }
        self.source = source
        self.expression = expression
    }

    func finds(in text: String) -> Bool {
        expression.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }
}

/// The payment of an event, parsed on first use: most routes look only at the type and
/// statuses and never pay for parsing.
public final class PaymentView: Sendable {
    private let raw: [UInt8]
    private let parsed = Mutex<JSONValue??>(nil)

    public init<C: Collection>(_ bytes: C) where C.Element == UInt8 { raw = Array(bytes) }

    /// The payment object, or nil when its bytes are not JSON.
    public var value: JSONValue? {
        parsed.withLock { cache in
            if let cache { return cache }
            let value = try? JSONValue.parse(raw)
            cache = .some(value)
            return value
        }
    }
}

/// The shorthand keys of `when`: where each looks in the payment.
enum ShorthandField: String, CaseIterable {
    case classification, currency, accountId, debtorReference, amount

    var paths: [JSONPath] {
        func path(_ text: String) -> JSONPath { JSONPath(text) ?? JSONPath(segments: []) }
        switch self {
        case .classification: return [path("$.classification")]
        case .currency: return [path("$.debtorInformation.debitAmount.currency"), path("$.transfer.amount.currency")]
        case .amount: return [path("$.debtorInformation.debitAmount.amount"), path("$.transfer.amount.amount")]
        case .accountId: return [path("$.debtorInformation.accountId"), path("$.creditorInformation.accountId")]
        case .debtorReference: return [path("$.debtorInformation.instruction.debtorReference")]
        }
    }
}
