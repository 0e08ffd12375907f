import Foundation
import Mustache

/// A Mustache template over an event (swift-mustache): the context is the standard event
/// object (`type`, `timestamp`, `data.*`) plus `id`; numbers render as the bank's own text
/// (`13.00`). With a JSON content type `{{x}}` escapes for a JSON string, not for HTML.
public struct EventTemplate: Sendable {
    public enum Escaping: Sendable { case json, none }

    public let source: String
    private let json: MustacheTemplate
    private let plain: MustacheTemplate

    /// Where a template does not parse.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var line: Int
        public var column: Int
        public var description: String
    }

    public init(_ source: String) throws(ParseError) {
        self.source = source
        Self.registerContentTypes
        // The content type is a pragma placed before the text, on its first line: line
        // numbers stay, columns on line 1 shift by the pragma's length.
        do {
            json = try MustacheTemplate(string: Self.jsonPragma + source)
            plain = try MustacheTemplate(string: Self.textPragma + source)
        } catch let error as MustacheTemplate.ParserError {
            let shift = error.context.lineNumber == 1 ? Self.jsonPragma.count : 0
            throw ParseError(
                line: error.context.lineNumber, column: max(1, error.context.columnNumber - shift),
                description: "the template does not parse: \(Self.describe(error.error))")
        } catch {
            throw ParseError(line: 1, column: 1, description: "the template does not parse: \(error)")
        }
    }

    static let jsonPragma = "{{% CONTENT_TYPE: PAYBRIDGE_JSON}}"
    static let textPragma = "{{% CONTENT_TYPE: TEXT}}"

    private static let registerContentTypes: Void = {
        MustacheContentTypes.register(JSONStringContentType(), named: "PAYBRIDGE_JSON")
    }()

    private static func describe(_ error: any Error) -> String {
        switch error {
        case MustacheTemplate.Error.sectionCloseNameIncorrect: return "a section is closed with another name than it opened"
        case MustacheTemplate.Error.unfinishedName: return "a tag is not closed"
        case MustacheTemplate.Error.expectedSectionEnd: return "a section is never closed"
        default: return "\(error)"
        }
    }

    public func render(_ document: EventDocument, escaping: Escaping) -> String {
        let context: [String: Any] = [
            "id": document.id, "type": document.type, "timestamp": document.timestamp, "data": Self.context(document.data),
        ]
        return (escaping == .json ? json : plain).render(context)
    }

    /// A JSON tree as Mustache's context: objects and lists to look into and iterate, each
    /// rendering as its JSON text; numbers as their text; null as a value that renders empty
    /// and counts as false in sections.
    static func context(_ value: JSONValue) -> Any {
        switch value {
        case .object(let members):
            var dictionary: [String: Any] = [:]
            for member in members { dictionary[member.key] = context(member.value) }
            return ObjectContext(members: dictionary, value: value)
        case .array(let items): return ListContext(items: items.map(context), value: value)
        case .string(let text): return text
        case .number(let text): return NumberText(text: text)
        case .bool(let flag): return flag
        case .null: return NullValue()
        }
    }

    /// `{{data.payment}}` is the object's JSON (escaped as any text is); `{{data.payment.x}}`
    /// looks into it; transforms (`count`, `empty`, `sorted`) are a dictionary's.
    struct ObjectContext: MustacheParent, MustacheCustomRenderable, MustacheTransformable {
        var members: [String: Any]
        var value: JSONValue
        func child(named name: String) -> Any? { members[name] }
        func transform(_ name: String) -> Any? { members.transform(name) }
        var renderText: String { String(decoding: value.bytes, as: UTF8.self) }
        var isNull: Bool { false }
    }

    /// `{{#list}}…{{/list}}` iterates; `{{list}}` is its JSON; transforms (`count`, `empty`,
    /// `first`, `last`, `reversed`) are an array's. It has no names of its own to look up.
    struct ListContext: MustacheSequence, MustacheParent, MustacheCustomRenderable, MustacheTransformable {
        var items: [Any]
        var value: JSONValue
        func makeIterator() -> IndexingIterator<[Any]> { items.makeIterator() }
        func child(named name: String) -> Any? { nil }
        func transform(_ name: String) -> Any? { items.transform(name) }
        var renderText: String { String(decoding: value.bytes, as: UTF8.self) }
        var isNull: Bool { false }
    }

    struct NumberText: MustacheCustomRenderable {
        var text: String
        var renderText: String { text }
        var isNull: Bool { false }
    }

    struct NullValue: MustacheCustomRenderable {
        var renderText: String { "" }
        var isNull: Bool { true }
    }
}

/// Escapes for the inside of a JSON string: `"`, `\` and control characters.
struct JSONStringContentType: MustacheContentType {
    func escapeText(_ text: String) -> String {
        var writer = JSONWriter()
        writer.string(text)
        // The writer adds the quotes; the template has its own.
        return String(decoding: writer.output.dropFirst().dropLast(), as: UTF8.self)
    }
}
