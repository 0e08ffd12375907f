import Foundation

/// CloudEvents 1.0 over HTTP (§8 `format: cloudevents`): structured mode (the whole event as
/// `application/cloudevents+json`) or binary mode (`ce-*` headers, `data` as the body).
enum CloudEventsFormat {
    static func render(_ document: EventDocument, mode: EventFormat.CloudEventsMode, source: String?) -> Rendering {
        let watch = document.data["watch"]?.stringValue
        let source = source ?? ("/paybridge" + (watch.map { "/\($0)" } ?? ""))
        let subject = document.data["paymentId"]?.stringValue ?? document.data["endpoint"]?.stringValue ?? groupSubject(document)
        switch mode {
        case .structured:
            var members: [(key: String, value: JSONValue)] = [
                ("specversion", .string("1.0")), ("id", .string(document.id)), ("source", .string(source)), ("type", .string(document.type)),
            ]
            if let subject { members.append(("subject", .string(subject))) }
            members += [("time", .string(document.timestamp)), ("datacontenttype", .string("application/json")), ("data", document.data)]
            return Rendering(contentType: "application/cloudevents+json", body: JSONValue.object(members).bytes)
        case .binary:
            var headers = [
                Rendering.Header("ce-specversion", "1.0"), Rendering.Header("ce-id", document.id), Rendering.Header("ce-source", source),
                Rendering.Header("ce-type", document.type),
            ]
            if let subject { headers.append(Rendering.Header("ce-subject", subject)) }
            headers.append(Rendering.Header("ce-time", document.timestamp))
            return Rendering(contentType: "application/json", headers: headers, body: document.data.bytes)
        }
    }

    /// A group message's subject: its values, `status=Rejected`.
    private static func groupSubject(_ document: EventDocument) -> String? {
        guard document.isGroup, case .object(let members)? = document.data["group"] else { return nil }
        let text = members.map { "\($0.key)=\($0.value.stringValue ?? "")" }.joined(separator: ",")
        return text.isEmpty ? nil : text
    }
}
