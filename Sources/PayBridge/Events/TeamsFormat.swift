import Foundation

/// A Microsoft Teams Workflows webhook message (§8 `format: teams`) carrying an Adaptive
/// Card 1.4 (Teams shows "this card couldn't be displayed" for 1.5 from a webhook) with the
/// same facts as the Slack message, under 28 KB.
enum TeamsFormat {
    static let sizeLimit = 28_000
    /// A payment's line in a group, a fact's value, one rejection reason.
    static let lineLimit = 500

    static func render(_ document: EventDocument, link: String?) -> Rendering {
        var body: [JSONValue] = []
        if document.isGroup {
            let group = GroupFacts(data: document.data)
            body.append(title(group.title))
            body.append(.object([("type", .string("FactSet")), ("facts", .array(group.labelled.map { fact($0.title, $0.value) }))]))
            // A line each, clipped: one payment with pages of reasons cannot crowd out the rest.
            var lines = group.events.map { payment in
                SlackFormat.clip(
                    "\(payment.paymentId): \(payment.summary)" + (payment.reasons.isEmpty ? "" : " (\(payment.reasons.joined(separator: "; ")))"), lineLimit)
            }
            // Drop lines from the end until the card fits; they are counted as "more".
            while true {
                let more = group.count - lines.count
                var items = lines.map { text(($0), subtle: false) }
                if more > 0 { items.append(text("…and \(more) more", subtle: true)) }
                let card = message(body + items + [footer(document)], link: link)
                if card.count < sizeLimit || lines.isEmpty { return Rendering(contentType: "application/json", body: card) }
                lines.removeLast(max(1, lines.count / 4))
            }
        } else if let facts = SlackFormat.paymentFacts(document) {
            body.append(title(document.type == EventType.paymentCreated.rawValue ? "New payment \(facts.status)" : "Payment \(facts.status)"))
            body.append(.object([("type", .string("FactSet")), ("facts", .array(facts.labelled.map { fact($0.title, SlackFormat.clip($0.value, lineLimit)) }))]))
            // Every reason while the card fits; past 28 KB the last ones are counted instead.
            var reasons = facts.reasons.map { SlackFormat.clip($0, lineLimit) }
            while true {
                var items: [JSONValue] = []
                if !facts.reasons.isEmpty {
                    let more = facts.reasons.count - reasons.count
                    let text = "Rejection reasons: " + (reasons + (more > 0 ? ["…and \(more) more"] : [])).joined(separator: "; ")
                    items.append(.object([("type", .string("TextBlock")), ("text", .string(text)), ("wrap", .bool(true)), ("color", .string("Attention"))]))
                }
                let card = message(body + items + [footer(document)], link: link)
                if card.count < sizeLimit || reasons.isEmpty { return Rendering(contentType: "application/json", body: card) }
                reasons.removeLast(max(1, reasons.count / 4))
            }
        } else {
            body.append(title(document.type))
            if case .object(let members) = document.data {
                let facts = members.map { fact(SlackFormat.label($0.key), $0.value.stringValue ?? String(decoding: $0.value.bytes, as: UTF8.self)) }
                if !facts.isEmpty { body.append(.object([("type", .string("FactSet")), ("facts", .array(facts))])) }
            }
        }
        body.append(footer(document))
        return Rendering(contentType: "application/json", body: message(body, link: link))
    }

    private static func message(_ body: [JSONValue], link: String?) -> [UInt8] {
        var card: [(key: String, value: JSONValue)] = [
            ("type", .string("AdaptiveCard")), ("$schema", .string("http://adaptivecards.io/schemas/adaptive-card.json")),
            ("version", .string("1.4")), ("body", .array(body)),
        ]
        if let link, !link.isEmpty {
            card.append(("actions", .array([.object([("type", .string("Action.OpenUrl")), ("title", .string("Open")), ("url", .string(link))])])))
        }
        return JSONValue.object([
            ("type", .string("message")),
            ("attachments", .array([.object([
                ("contentType", .string("application/vnd.microsoft.card.adaptive")), ("contentUrl", .null), ("content", .object(card)),
            ])])),
        ]).bytes
    }

    private static func title(_ text: String) -> JSONValue {
        .object([("type", .string("TextBlock")), ("text", .string(text)), ("weight", .string("Bolder")), ("size", .string("Medium")), ("wrap", .bool(true))])
    }

    private static func text(_ text: String, subtle: Bool) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [("type", .string("TextBlock")), ("text", .string(text)), ("wrap", .bool(true))]
        if subtle { members.append(("isSubtle", .bool(true))) }
        return .object(members)
    }

    private static func fact(_ title: String, _ value: String) -> JSONValue {
        .object([("title", .string(title)), ("value", .string(value))])
    }

    private static func footer(_ document: EventDocument) -> JSONValue {
        let watch = document.data["watch"]?.stringValue
        let line = ["paybridge", watch.map { "watch \($0)" }, document.timestamp].compactMap { $0 }.joined(separator: " · ")
        return .object([("type", .string("TextBlock")), ("text", .string(line)), ("isSubtle", .bool(true)), ("size", .string("Small")), ("wrap", .bool(true))])
    }
}
