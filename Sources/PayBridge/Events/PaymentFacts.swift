import Foundation

/// The facts a person reads first about a payment event, taken from the bank's object:
/// what Slack, Teams and the console show.
struct PaymentFacts {
    var paymentId: String
    var status: String
    var previousStatus: String?
    var watch: String?
    /// `19.00 EUR`, the bank's text of the number.
    var amount: String?
    var currency: String?
    var amountText: String?
    var creditor: String?
    var reference: String?
    /// `AC04 Closed account number`, from `statusReasons` and `errors`.
    var reasons: [String]

    init(data: JSONValue) {
        paymentId = data["paymentId"]?.stringValue ?? ""
        status = data["status"]?.stringValue ?? ""
        previousStatus = data["previousStatus"]?.stringValue
        watch = data["watch"]?.stringValue
        let payment = data["payment"] ?? .null
        let money = Self.first(payment, ["$.debtorInformation.debitAmount", "$.transfer.amount"]) { $0["amount"] != nil }
        if case .number(let text)? = money?["amount"] { amount = text } else { amount = money?["amount"]?.stringValue }
        currency = money?["currency"]?.stringValue
        let currency = self.currency
        amountText = amount.map { [$0, currency].compactMap { $0 }.joined(separator: " ") }
        creditor = Self.first(payment, ["$.transfer.creditorName", "$.creditorName"]) { $0.stringValue != nil }?.stringValue
        reference = Self.first(payment, ["$.debtorInformation.instruction.debtorReference", "$.transactionReference"]) {
            $0.stringValue != nil
        }?.stringValue
        reasons = Self.reasons(in: payment)
    }

    private static func first(_ root: JSONValue, _ paths: [String], where accept: (JSONValue) -> Bool) -> JSONValue? {
        for text in paths {
            if let path = JSONPath(text), let value = path.value(in: root), !value.isNull, accept(value) { return value }
        }
        return nil
    }

    /// The bank's reasons, each once: `statusReasons` (`code`, `description`) and `errors`
    /// (`errorCode`, `errorText`/`errorDescription`); an item that is plain text is the reason.
    static func reasons(in payment: JSONValue) -> [String] {
        var lines: [String] = []
        for (list, codeKey, textKeys) in [
            ("statusReasons", ["code", "reasonCode"], ["description", "reasonDescription", "text"]),
            ("errors", ["errorCode"], ["errorText", "errorDescription"]),
        ] {
            guard case .array(let items)? = payment[list] else { continue }
            for item in items {
                if let text = item.stringValue {
                    if !text.isEmpty, !lines.contains(text) { lines.append(text) }
                    continue
                }
                let code = codeKey.lazy.compactMap { item[$0]?.stringValue }.first
                let text = textKeys.lazy.compactMap { item[$0]?.stringValue }.first
                let line = [code, text].compactMap { $0 }.joined(separator: " ")
                if !line.isEmpty, !lines.contains(line) { lines.append(line) }
            }
        }
        return lines
    }

    /// The facts a message shows, in order, with their labels (absent ones left out).
    var labelled: [(title: String, value: String)] {
        [("Status", status), ("Previous status", previousStatus), ("Amount", amountText), ("Creditor", creditor), ("Reference", reference),
         ("Payment id", paymentId)].compactMap { title, value in value.map { (title, $0) } }
    }

    /// `19.00 EUR to Müller & Söhne GmbH, ref INV-1`: one line for lists and fallbacks.
    var summary: String {
        var parts: [String] = []
        if let amountText { parts.append(amountText) }
        if let creditor { parts.append("to \(creditor)") }
        var line = parts.joined(separator: " ")
        if let reference { line += (line.isEmpty ? "" : ", ") + "ref \(reference)" }
        return line
    }
}

/// A group message's facts (`payment.group`).
struct GroupFacts {
    var values: [(key: String, value: String)]
    var count: Int
    var totals: [String]
    var events: [PaymentFacts]
    var truncated: Int

    init(data: JSONValue) {
        if case .object(let members)? = data["group"] {
            values = members.map { ($0.key, $0.value.stringValue ?? "") }
        } else {
            values = []
        }
        count = Int(data["count"].flatMap { if case .number(let text) = $0 { return text } else { return nil } } ?? "") ?? 0
        if case .array(let items)? = data["totals"] {
            totals = items.map { "\($0["amount"]?.stringValue ?? "") \($0["currency"]?.stringValue ?? "")" }
        } else {
            totals = []
        }
        if case .array(let items)? = data["events"] { events = items.map(PaymentFacts.init) } else { events = [] }
        truncated = Int(data["truncated"].flatMap { if case .number(let text) = $0 { return text } else { return nil } } ?? "") ?? 0
    }

    /// The count, the totals and the group's values, labelled.
    var labelled: [(title: String, value: String)] {
        var facts = [("Payments", String(count))]
        if !totals.isEmpty { facts.append(("Total", totals.joined(separator: ", "))) }
        return facts + values.map { (SlackFormat.label($0.key), $0.value) }
    }

    /// `20 payments Rejected` (the group's values after the count).
    var title: String {
        let noun = count == 1 ? "payment" : "payments"
        let described = values.map(\.value).filter { !$0.isEmpty }.joined(separator: " ")
        return "\(count) \(noun)" + (described.isEmpty ? "" : " \(described)")
    }
}
