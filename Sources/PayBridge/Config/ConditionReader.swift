import Foundation
import Yams

/// The bank's own names, for "did you mean" warnings: a status or a query parameter that is
/// not among them still passes (the bank may add some), but a misspelling never goes unseen.
enum BankVocabulary {
    static let statuses = [
        "Unknown", "ScaExpired", "ScaFailed", "ScaPending", "PendingApproval", "MissingFunding", "PendingProcessing", "Hold",
        "PendingCancellation", "PendingCancellationApproval", "DeclinedByApprover", "DeclinedByAuthorizer", "Rejected",
        "Cancelled", "Processed", "Reversed", "ScaDeclined", "Approved",
    ]

    static let queryParameters = [
        "PaymentId", "PaymentBulkId", "BulkId", "AccountId", "DebtorReference", "Viban", "Classification", "Status",
        "InstructedDateFrom", "InstructedDateTo", "RequestedExecutionDateFrom", "RequestedExecutionDateTo", "ValueDateFrom",
        "ValueDateTo", "AmountFrom", "AmountTo", "LastChangedTimestampFrom", "RemittanceInformation", "PartialPartyName",
        "PartyAccount",
    ]

    static let classifications = ["Incoming", "Outgoing", "Own"]

    /// What a query parameter's value must look like, by its name.
    enum QueryKind: Equatable {
        /// `…DateFrom` / `…DateTo`: relative (`-3d`) or `YYYY-MM-DD`.
        case date
        /// `LastChangedTimestampFrom`: relative, a date, or an ISO 8601 timestamp.
        case timestamp
        /// `AmountFrom` / `AmountTo`: a number (negative finds reversals).
        case amount
        case other

        init(_ name: String) {
            let lower = name.lowercased()
            if lower.hasPrefix("amount") {
                self = .amount
            } else if lower.contains("timestamp") {
                self = .timestamp
            } else if lower.hasSuffix("datefrom") || lower.hasSuffix("dateto") {
                self = .date
            } else {
                self = .other
            }
        }

        /// What `text` should have been, or nil when it is fine.
        func problem(with text: String) -> String? {
            switch self {
            case .date:
                return Self.isDate(text) ? nil : "relative (-90m, -2h, -3d) or a date (YYYY-MM-DD)"
            case .timestamp:
                // ISO 8601 as the bank's ASP.NET reads it: the seconds, fraction and offset optional.
                let date = String(text.prefix(10))
                let rest = text.dropFirst(10)
                let time = rest.isEmpty || rest.wholeMatch(of: /[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?/) != nil
                return Self.isDate(date) && time ? nil : "relative (-90m, -2h, -3d), a date (YYYY-MM-DD) or a timestamp (YYYY-MM-DDTHH:MM:SSZ)"
            case .amount:
                return text.wholeMatch(of: /-?\d+(\.\d+)?([eE][+-]?\d+)?/) != nil ? nil : "a number"
            case .other:
                return nil
            }
        }

        /// `YYYY-MM-DD`, a day that exists.
        static func isDate(_ text: String) -> Bool {
            guard let match = text.wholeMatch(of: /(\d{4})-(\d{2})-(\d{2})/), let year = Int(match.1), let month = Int(match.2), let day = Int(match.3)
            else { return false }
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
            return DateComponents(year: year, month: month, day: day).isValidDate(in: calendar)
        }
    }
}

/// Reads a route's `when` and the conditions inside it (§8 of the contract): sibling keys are
/// ANDed; shorthand keys, `path` with one operator, `all`, `any`, `not`. Everything is
/// compiled here, so a bad regex or path is a `file:line:col` error at load time.
extension ConfigReader {
    static let conditionKeys: [String] =
        RouteCondition.EventField.allCases.map(\.rawValue) + ShorthandField.allCases.map(\.rawValue) + ["path"]
        + ValueTest.operators + ["all", "any", "not"]

    func readWhen(_ node: Node, path: String, watches: Set<String>) -> RouteMatcher? {
        guard let conditions = readCondition(node, path: path, watches: watches) else { return nil }
        return RouteMatcher(conditions: conditions)
    }

    /// The conditions of one mapping (ANDed), or nil when it has errors.
    func readCondition(_ node: Node, path: String, watches: Set<String>) -> [RouteCondition]? {
        guard let entries = mapping(node, path) else { return nil }
        let keys = checkKeys(entries, allowed: Self.conditionKeys, in: path)
        var conditions: [RouteCondition] = []
        var failed = keys.count < entries.count
        for field in RouteCondition.EventField.allCases {
            guard let entry = keys[field.rawValue] else { continue }
            guard let values = stringList(entry.value, "\(path).\(field.rawValue)") else {
                failed = true
                continue
            }
            switch field {
            case .status, .previousStatus: warnUnknown(values, known: BankVocabulary.statuses, entry.value, "\(path).\(field.rawValue)", what: "status")
            case .type: warnUnknown(values, known: EventType.allCases.map(\.rawValue), entry.value, "\(path).type", what: "event type")
            case .watch:
                if let unknown = values.first(where: { !watches.contains($0) }) {
                    error(entry.value, "\(path).watch names no watch: '\(unknown)'")
                    failed = true
                }
            }
            conditions.append(.event(field, Set(values)))
        }
        for field in ShorthandField.allCases where field != .amount {
            guard let entry = keys[field.rawValue] else { continue }
            guard let values = stringList(entry.value, "\(path).\(field.rawValue)") else {
                failed = true
                continue
            }
            if field == .classification {
                warnUnknown(values, known: BankVocabulary.classifications, entry.value, "\(path).classification", what: "classification")
            }
            let test = ValueTest.isIn(values.map(Operand.init))
            if field == .accountId {
                // The debtor's or the creditor's account.
                conditions.append(.any(field.paths.map { .value(paths: [$0], test: test) }))
            } else {
                conditions.append(.value(paths: field.paths, test: test))
            }
        }
        if let entry = keys["amount"] {
            if case .mapping = entry.value {
                guard let operators = mapping(entry.value, "\(path).amount") else { return nil }
                let known = checkKeys(operators, allowed: ["eq", "ne", "gt", "gte", "lt", "lte", "in"], in: "\(path).amount")
                if known.count < operators.count { failed = true }
                for (name, operatorEntry) in known.sorted(by: { $0.key < $1.key }) {
                    if let test = readTest(name, operatorEntry.value, path: "\(path).amount.\(name)"), numbers(test, operatorEntry.value, "\(path).amount.\(name)") {
                        conditions.append(.value(paths: ShorthandField.amount.paths, test: test))
                    } else {
                        failed = true
                    }
                }
            } else if let text = string(entry.value, "\(path).amount") {
                let test = ValueTest.eq(Operand(text))
                if numbers(test, entry.value, "\(path).amount") {
                    conditions.append(.value(paths: ShorthandField.amount.paths, test: test))
                } else {
                    failed = true
                }
            } else {
                failed = true
            }
        }
        let operators = ValueTest.operators.filter { keys[$0] != nil }
        if let entry = keys["path"] {
            if operators.isEmpty {
                error(entry.keyNode, "\(path).path needs one operator beside it: \(ValueTest.operators.joined(separator: ", "))")
                failed = true
            } else if operators.count > 1 {
                error(keys[operators[1]]?.keyNode, "\(path): one operator per condition, found \(operators.joined(separator: " and ")) (combine them with all: [...])")
                failed = true
            } else if let text = string(entry.value, "\(path).path") {
                if let jsonPath = JSONPath(text), let operatorEntry = keys[operators[0]] {
                    if let test = readTest(operators[0], operatorEntry.value, path: "\(path).\(operators[0])") {
                        conditions.append(.value(paths: [jsonPath], test: test))
                    } else {
                        failed = true
                    }
                } else {
                    error(entry.value, "\(path).path: '\(text)' is not a JSON path: write $ followed by .name or [index] segments, e.g. $.transfer.amount.amount")
                    failed = true
                }
            } else {
                failed = true
            }
        } else if let first = operators.first {
            error(keys[first]?.keyNode, "\(path).\(first) needs a 'path' beside it (or use a shorthand key such as amount)")
            failed = true
        }
        for combinator in ["all", "any"] {
            guard let entry = keys[combinator] else { continue }
            guard let items = sequence(entry.value, "\(path).\(combinator)") else {
                failed = true
                continue
            }
            var parts: [RouteCondition] = []
            for (index, item) in items.enumerated() {
                if let inner = readCondition(item, path: "\(path).\(combinator)[\(index)]", watches: watches) {
                    parts.append(inner.count == 1 ? inner[0] : .all(inner))
                } else {
                    failed = true
                }
            }
            conditions.append(combinator == "all" ? .all(parts) : .any(parts))
        }
        if let entry = keys["not"] {
            if let inner = readCondition(entry.value, path: "\(path).not", watches: watches) {
                conditions.append(.not(inner.count == 1 ? inner[0] : .all(inner)))
            } else {
                failed = true
            }
        }
        return failed ? nil : conditions
    }

    /// One operator with its operand.
    private func readTest(_ name: String, _ node: Node, path: String) -> ValueTest? {
        switch name {
        case "in":
            guard case .sequence = node else {
                error(node, "\(path) must be a list of values")
                return nil
            }
            return stringList(node, path).map { .isIn($0.map(Operand.init)) }
        case "exists":
            return boolean(node, path).map { .exists($0) }
        case "regex":
            guard let text = string(node, path) else { return nil }
            guard let pattern = Pattern(text) else {
                error(node, "\(path): the regular expression does not compile")
                return nil
            }
            return .regex(pattern)
        default:
            guard let text = scalarText(node, path) else { return nil }
            let operand = Operand(text)
            switch name {
            case "eq": return .eq(operand)
            case "ne": return .ne(operand)
            case "gt", "gte", "lt", "lte":
                let test: ValueTest = name == "gt" ? .gt(operand) : name == "gte" ? .gte(operand) : name == "lt" ? .lt(operand) : .lte(operand)
                return test
            default: return nil
            }
        }
    }

    /// Whether the test's operands are numbers (an amount compared with `abc` never matches);
    /// says where one is not.
    private func numbers(_ test: ValueTest, _ node: Node, _ path: String) -> Bool {
        let operands: [Operand]
        switch test {
        case .eq(let operand), .ne(let operand), .gt(let operand), .gte(let operand), .lt(let operand), .lte(let operand): operands = [operand]
        case .isIn(let list): operands = list
        case .regex, .exists: return true
        }
        guard let bad = operands.first(where: { $0.decimal == nil }) else { return true }
        error(node, "\(path): '\(bad.text)' is not a number")
        return false
    }

    /// A scalar's text; `null` is allowed (to compare with a JSON null).
    private func scalarText(_ node: Node, _ path: String) -> String? {
        if case .scalar(let scalar) = node, scalar.style == .plain, ["~", "null", "Null", "NULL"].contains(scalar.string) { return "null" }
        return string(node, path)
    }

    /// Warns of values that are not the bank's (or paybridge's) names, suggesting the nearest.
    func warnUnknown(_ values: [String], known: [String], _ node: Node, _ path: String, what: String) {
        for value in values where !known.contains(value) {
            var message = "\(path): '\(value)' is not a \(what) paybridge knows"
            if let suggestion = Self.closest(to: value, in: known) { message += "; did you mean '\(suggestion)'?" }
            if what == "status" { message += " (statuses are case-sensitive; an unknown one still matches if the bank sends it)" }
            warning(node, message)
        }
    }
}
