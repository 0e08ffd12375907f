import Foundation

/// What an endpoint receives for one event: the body, its content type and the headers that
/// go with it (CloudEvents' `ce-*` in binary mode). Rendered once, when the delivery is
/// queued, and stored: every retry sends the same bytes.
public struct Rendering: Sendable, Equatable {
    public var contentType: String
    public var headers: [Header]
    public var body: [UInt8]

    public struct Header: Sendable, Equatable {
        public var name: String
        public var value: String

        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public init(contentType: String, headers: [Header] = [], body: [UInt8]) {
        self.contentType = contentType
        self.headers = headers
        self.body = body
    }

    /// The standard format: the event's stored body as it is.
    public static let standardContentType = "application/json"

    /// `Name: value` lines, as stored.
    var headerText: String? {
        headers.isEmpty ? nil : headers.map { "\($0.name): \($0.value)" }.joined(separator: "\n")
    }

    static func headers(fromText text: String?) -> [Header] {
        guard let text, !text.isEmpty else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let value = line[colon...].dropFirst()
            return Header(String(line[..<colon]), value.trimmingCharacters(in: .whitespaces))
        }
    }
}

/// An endpoint's format (§8): how one event becomes its body, with the endpoint's redaction.
public struct EventFormat: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case standard, cloudevents, slack, teams, template
    }

    public enum CloudEventsMode: String, Sendable, CaseIterable {
        case structured, binary
    }

    public var kind: Kind
    public var redaction: Redaction
    /// CloudEvents' `mode` and `source` (default `/paybridge/<watch>`).
    public var cloudEventsMode: CloudEventsMode
    public var cloudEventsSource: String?
    /// Slack and Teams: a button to this URL (a Mustache template over the event).
    public var link: EventTemplate?
    /// `template` format: the body's template and content type.
    public var template: EventTemplate?
    public var templateContentType: String

    public init(
        kind: Kind = .standard, redaction: Redaction = Redaction(), cloudEventsMode: CloudEventsMode = .structured,
        cloudEventsSource: String? = nil, link: EventTemplate? = nil, template: EventTemplate? = nil,
        templateContentType: String = "application/json"
    ) {
        self.kind = kind
        self.redaction = redaction
        self.cloudEventsMode = cloudEventsMode
        self.cloudEventsSource = cloudEventsSource
        self.link = link
        self.template = template
        self.templateContentType = templateContentType
    }

    public static let standard = EventFormat()

    /// True when the endpoint receives the event's stored body unchanged: nothing is rendered
    /// or stored for it (the hot path).
    public var sendsStoredBody: Bool { kind == .standard && redaction.isEmpty }

    /// Identifies what this format produces, so endpoints with the same format and redaction
    /// share one stored rendering of an event.
    public var key: String {
        var parts = [kind.rawValue, redaction.key]
        switch kind {
        case .cloudevents: parts += [cloudEventsMode.rawValue, cloudEventsSource ?? ""]
        case .slack, .teams: parts.append(link?.source ?? "")
        case .template: parts += [template?.source ?? "", templateContentType]
        case .standard: break
        }
        return parts.joined(separator: "\u{1F}")
    }

    /// Renders `event` (its stored standard body) for this endpoint.
    public func render(_ event: EventDocument) -> Rendering {
        let document = redaction.isEmpty ? event : redaction.apply(to: event)
        switch kind {
        case .standard:
            return Rendering(contentType: Rendering.standardContentType, body: document.standardBody)
        case .cloudevents:
            return CloudEventsFormat.render(document, mode: cloudEventsMode, source: cloudEventsSource)
        case .slack:
            return SlackFormat.render(document, link: link?.render(document, escaping: .none))
        case .teams:
            return TeamsFormat.render(document, link: link?.render(document, escaping: .none))
        case .template:
            let escaping: EventTemplate.Escaping = Self.isJSON(templateContentType) ? .json : .none
            return Rendering(contentType: templateContentType, body: Array((template?.render(document, escaping: escaping) ?? "").utf8))
        }
    }

    static func isJSON(_ contentType: String) -> Bool {
        let type = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        return type == "application/json" || type.hasSuffix("+json")
    }
}

/// An event as the formats see it: the standard body parsed into a tree (numbers keep the
/// bank's text), with the event id.
public struct EventDocument: Sendable {
    public var id: String
    public var type: String
    public var timestamp: String
    /// The standard body's `data` object.
    public var data: JSONValue

    public init(id: String, type: String, timestamp: String, data: JSONValue) {
        self.id = id
        self.type = type
        self.timestamp = timestamp
        self.data = data
    }

    /// Parses a stored standard body (`{"type":…,"timestamp":…,"data":{…}}`).
    public init(id: String, standardBody: [UInt8]) throws(JSONValue.ParseError) {
        let root = try JSONValue.parse(standardBody)
        self.init(id: id, type: root["type"]?.stringValue ?? "", timestamp: root["timestamp"]?.stringValue ?? "", data: root["data"] ?? .object([]))
    }

    /// The standard format's body.
    public var standardBody: [UInt8] {
        JSONValue.object([("type", .string(type)), ("timestamp", .string(timestamp)), ("data", data)]).bytes
    }

    public var payment: JSONValue? { data["payment"] }
    public var isGroup: Bool { type == EventType.paymentGroup.rawValue }
}
