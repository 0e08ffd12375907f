import Foundation
import Yams

/// The pipeline's endpoint keys (§8): `format` with its options, `redact`, `group`, `auth`.
extension ConfigReader {
    func readFormat(_ keys: [String: Entry], path: String) -> EventFormat {
        let kind = keys["format"].flatMap { enumValue($0.value, EventFormat.Kind.self, "\(path).format") } ?? .standard
        var format = EventFormat(kind: kind)
        func only(_ key: String, for kinds: [EventFormat.Kind]) -> Entry? {
            guard let entry = keys[key] else { return nil }
            guard kinds.contains(kind) else {
                error(entry.keyNode, "\(path).\(key) applies to format: \(kinds.map(\.rawValue).joined(separator: " or ")) only")
                return nil
            }
            return entry
        }
        if let entry = only("mode", for: [.cloudevents]) {
            format.cloudEventsMode = enumValue(entry.value, EventFormat.CloudEventsMode.self, "\(path).mode") ?? .structured
        }
        if let entry = only("source", for: [.cloudevents]) { format.cloudEventsSource = string(entry.value, "\(path).source") }
        if let entry = only("link", for: [.slack, .teams]), let text = string(entry.value, "\(path).link") {
            do {
                format.link = try EventTemplate(text)
            } catch {
                self.error(entry.value, "\(path).link: \(error.description) (line \(error.line), column \(error.column) of the link)")
            }
        }
        if let entry = only("contentType", for: [.template]), let text = string(entry.value, "\(path).contentType") {
            format.templateContentType = text
        }
        if kind == .template {
            if let entry = keys["template"], let file = string(entry.value, "\(path).template") {
                format.template = readTemplate(file, entry.value, path: "\(path).template")
            } else if keys["template"] == nil {
                error(keys["format"]?.value, "\(path): format: template needs 'template' (a Mustache file)")
            }
        } else if let entry = keys["template"] {
            error(entry.keyNode, "\(path).template applies to format: template only")
        }
        if let entry = keys["redact"] { format.redaction = readRedaction(entry.value, path: "\(path).redact") }
        return format
    }

    /// A Mustache file; one that does not parse is an error at its own line and column.
    /// `${NAME}` in it is read from the environment when the config loads (a PagerDuty
    /// routing key belongs in the body, not in the repository).
    private func readTemplate(_ file: String, _ node: Node, path: String) -> EventTemplate? {
        let resolved = resolvePath(file)
        guard let data = FileManager.default.contents(atPath: resolved), let raw = String(data: data, encoding: .utf8) else {
            error(node, "\(path): cannot read \(resolved)")
            return nil
        }
        guard let text = expand(raw, node, "\(path) (\(resolved))") else { return nil }
        do {
            return try EventTemplate(text)
        } catch {
            issues.append(ConfigIssue(file: resolved, line: error.line, column: error.column, message: error.description))
            self.error(node, "\(path): \(resolved) does not parse (see above)")
            return nil
        }
    }

    private func readRedaction(_ node: Node, path: String) -> Redaction {
        var redaction = Redaction()
        guard let items = sequence(node, path) else { return redaction }
        for item in items {
            guard let text = string(item, path) else { continue }
            switch text {
            case "iban": redaction.iban = true
            case "names": redaction.names = true
            case "remittance": redaction.remittance = true
            default:
                if let jsonPath = JSONPath(text), !jsonPath.segments.isEmpty {
                    redaction.paths.append(jsonPath)
                } else {
                    error(item, "\(path): '\(text)' is neither iban, names, remittance nor a JSON path like $.transfer.creditorName")
                }
            }
        }
        return redaction
    }

    func readGroup(_ node: Node, path: String) -> GroupSettings? {
        guard let entries = mapping(node, path) else { return nil }
        let keys = checkKeys(entries, allowed: ["by", "wait", "interval", "max"], in: path)
        var group = GroupSettings()
        if let entry = keys["by"], let names = stringList(entry.value, "\(path).by") {
            group.by = names.compactMap { name in
                guard let field = GroupSettings.Field(rawValue: name) else {
                    error(entry.value, "\(path).by: '\(name)' is not one of: \(GroupSettings.Field.allCases.map(\.rawValue).joined(separator: ", "))")
                    return nil
                }
                return field
            }
        }
        group.wait = keys["wait"].flatMap { duration($0.value, "\(path).wait", positive: false) } ?? group.wait
        group.interval = keys["interval"].flatMap { duration($0.value, "\(path).interval", positive: false) } ?? group.interval
        group.max = keys["max"].flatMap { integer($0.value, "\(path).max", in: 1...1000) } ?? group.max
        return group
    }

    func readAuth(_ node: Node, path: String) -> EndpointAuth? {
        guard let entries = mapping(node, path) else { return nil }
        let keys = checkKeys(entries, allowed: ["bearer", "bearerFile", "oauth2"], in: path)
        guard keys.count == 1 else {
            if keys.count > 1 { error(node, "\(path): use one of bearer, bearerFile or oauth2") }
            if keys.isEmpty, entries.isEmpty { error(node, "\(path): say bearer, bearerFile or oauth2") }
            return nil
        }
        if let entry = keys["bearer"] { return secretString(entry.value, "\(path).bearer").map { .bearer(Secret($0)) } }
        if let entry = keys["bearerFile"] {
            return string(entry.value, "\(path).bearerFile").flatMap { readSecretFile($0, entry.value, "\(path).bearerFile") }.map {
                .bearer(Secret($0))
            }
        }
        guard let entry = keys["oauth2"], let fields = mapping(entry.value, "\(path).oauth2") else { return nil }
        let oauth = checkKeys(fields, allowed: ["tokenURL", "clientId", "clientSecret", "clientSecretFile", "scope"], in: "\(path).oauth2")
        let tokenURL = oauth["tokenURL"].flatMap { url($0.value, "\(path).oauth2.tokenURL") }
        let clientId = oauth["clientId"].flatMap { string($0.value, "\(path).oauth2.clientId") }
        var secret: String?
        if let entry = oauth["clientSecret"] {
            secret = secretString(entry.value, "\(path).oauth2.clientSecret")
        } else if let entry = oauth["clientSecretFile"] {
            secret = string(entry.value, "\(path).oauth2.clientSecretFile").flatMap { readSecretFile($0, entry.value, "\(path).oauth2.clientSecretFile") }
        }
        if oauth["tokenURL"] == nil { error(entry.value, "\(path).oauth2: missing 'tokenURL'") }
        if oauth["clientId"] == nil { error(entry.value, "\(path).oauth2: missing 'clientId'") }
        if oauth["clientSecret"] == nil, oauth["clientSecretFile"] == nil { error(entry.value, "\(path).oauth2: missing 'clientSecret' or 'clientSecretFile'") }
        guard let tokenURL, let clientId, let secret else { return nil }
        return .oauth2(
            OAuth2Settings(tokenURL: tokenURL, clientId: clientId, clientSecret: Secret(secret), scope: oauth["scope"].flatMap { string($0.value, "\(path).oauth2.scope") }))
    }
}
