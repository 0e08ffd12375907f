import Foundation

/// A Slack incoming-webhook message (§8 `format: slack`): a one-line `text` fallback and
/// Block Kit blocks, within Slack's limits (50 blocks, header ≤ 150 characters, section
/// text ≤ 3000, ≤ 10 fields of ≤ 2000, button text ≤ 75).
enum SlackFormat {
    static let maxBlocks = 50
    static let headerLimit = 150
    static let sectionLimit = 3000
    static let fieldLimit = 2000
    static let maxFields = 10

    static func render(_ document: EventDocument, link: String?) -> Rendering {
        var blocks: [JSONValue] = []
        let text: String
        if document.isGroup {
            let group = GroupFacts(data: document.data)
            text = group.title
            blocks.append(header(group.title))
            let fields = group.labelled.prefix(maxFields).map { field($0.title, $0.value) }
            blocks.append(.object([("type", .string("section")), ("fields", .array(Array(fields)))]))
            // One line per payment, packed into sections; whatever does not fit is counted.
            let room = maxBlocks - blocks.count - 3  // context, "…and N more", actions
            var sections: [String] = []
            var current = ""
            var shown = 0
            for payment in group.events {
                var line = "• `\(escape(payment.paymentId))` \(escape(payment.summary))"
                if !payment.reasons.isEmpty { line += " — " + escape(payment.reasons.joined(separator: "; ")) }
                line = clip(line, sectionLimit)
                if !current.isEmpty, current.count + 1 + line.count > sectionLimit {
                    sections.append(current)
                    current = ""
                }
                if sections.count >= room { break }
                current += (current.isEmpty ? "" : "\n") + line
                shown += 1
            }
            if !current.isEmpty { sections.append(current) }
            blocks += sections.map(section)
            let more = group.count - shown
            if more > 0 { blocks.append(section("…and \(more) more")) }
        } else if let facts = paymentFacts(document) {
            text = oneLine(facts, type: document.type)
            blocks.append(header(document.type == EventType.paymentCreated.rawValue ? "New payment \(facts.status)" : "Payment \(facts.status)"))
            let fields = facts.labelled.prefix(maxFields).map { fact in
                // The id in code style, so it is copied whole.
                fact.title == "Payment id"
                    ? JSONValue.object([("type", .string("mrkdwn")), ("text", .string(clip("*Payment id*\n`\(escape(fact.value))`", fieldLimit)))])
                    : field(fact.title, fact.value)
            }
            blocks.append(.object([("type", .string("section")), ("fields", .array(Array(fields)))]))
            if !facts.reasons.isEmpty {
                blocks.append(section("*Rejection reasons*\n" + facts.reasons.map { "• \(escape($0))" }.joined(separator: "\n")))
            }
        } else {
            // Operational events (endpoint.disabled, source.*): their data as fields.
            text = "paybridge: \(document.type)"
            blocks.append(header(document.type))
            if case .object(let members) = document.data {
                let fields = members.prefix(maxFields).map { member -> JSONValue in
                    field(label(member.key), member.value.stringValue ?? String(decoding: member.value.bytes, as: UTF8.self))
                }
                if !fields.isEmpty { blocks.append(.object([("type", .string("section")), ("fields", .array(Array(fields)))])) }
            }
        }
        let watch = document.data["watch"]?.stringValue
        let context = ["paybridge", watch.map { "watch \($0)" }, document.timestamp].compactMap { $0 }.joined(separator: " · ")
        blocks.append(.object([("type", .string("context")), ("elements", .array([.object([("type", .string("mrkdwn")), ("text", .string(escape(context)))])]))]))
        if let link, !link.isEmpty {
            let button: JSONValue = .object([
                ("type", .string("button")), ("text", .object([("type", .string("plain_text")), ("text", .string(document.isGroup ? "Open" : "Open payment"))])),
                ("url", .string(link)), ("action_id", .string("open")),
            ])
            blocks.append(.object([("type", .string("actions")), ("elements", .array([button]))]))
        }
        let message = JSONValue.object([("text", .string(clip(escape(text), sectionLimit))), ("blocks", .array(Array(blocks.prefix(maxBlocks))))])
        return Rendering(contentType: "application/json", body: message.bytes)
    }

    static func paymentFacts(_ document: EventDocument) -> PaymentFacts? {
        document.payment == nil ? nil : PaymentFacts(data: document.data)
    }

    /// `Payment 0b9f… Rejected (was PendingProcessing): 19.00 EUR to X, ref INV-1`.
    static func oneLine(_ facts: PaymentFacts, type: String) -> String {
        let was = facts.previousStatus.map { " (was \($0))" } ?? ""
        let summary = facts.summary
        return "Payment \(facts.paymentId) \(facts.status)\(was)" + (summary.isEmpty ? "" : ": \(summary)")
    }

    private static func header(_ text: String) -> JSONValue {
        .object([("type", .string("header")), ("text", .object([("type", .string("plain_text")), ("text", .string(clip(text, headerLimit)))]))])
    }

    private static func section(_ markdown: String) -> JSONValue {
        .object([("type", .string("section")), ("text", .object([("type", .string("mrkdwn")), ("text", .string(clip(markdown, sectionLimit)))]))])
    }

    private static func field(_ title: String, _ value: String) -> JSONValue {
        .object([("type", .string("mrkdwn")), ("text", .string(clip("*\(escape(title))*\n\(escape(value))", fieldLimit)))])
    }

    /// `pendingDeliveries` → `Pending deliveries`.
    static func label(_ key: String) -> String {
        var words = ""
        for character in key {
            if character.isUppercase, !words.isEmpty { words.append(" ") }
            words.append(words.isEmpty ? Character(character.uppercased()) : Character(character.lowercased()))
        }
        return words
    }

    /// Slack's mrkdwn control characters.
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    static func clip(_ text: String, _ limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(limit - 1)) + "…"
    }
}
