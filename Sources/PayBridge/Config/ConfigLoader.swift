import Foundation
import Yams

/// Reads a YAML (or JSON) config into a `Configuration`, reporting every problem with the
/// file, line and column where it is.
public enum ConfigLoader {
    /// Loads `path`; relative paths inside the file are taken from the file's folder.
    public static func load(
        file path: String, environment: [String: String] = ProcessInfo.processInfo.environment,
        unsetVariables: UnsetVariables = .error
    ) throws(ConfigurationError) -> LoadedConfiguration {
        let url = URL(fileURLWithPath: path)
        let text: String
        do {
            let data = try Data(contentsOf: url)
            guard let decoded = String(data: data, encoding: .utf8) else {
                throw ConfigurationError(issues: [ConfigIssue(file: path, line: 1, column: 1, message: "the file is not UTF-8 text")])
            }
            text = decoded
        } catch let error as ConfigurationError {
            throw error
        } catch {
            throw ConfigurationError(
                issues: [ConfigIssue(file: path, line: 1, column: 1, message: "cannot read the config file: \(FileProblem.describe(error, path: path))")])
        }
        var loaded = try load(
            text: text, file: path, baseDirectory: url.deletingLastPathComponent().path, environment: environment,
            unsetVariables: unsetVariables)
        if let first = loaded.literalSecrets.first {
            loaded.warnings.append(contentsOf: FilePermissions.warnings(forConfig: path, secret: first))
        }
        return loaded
    }

    /// Loads config text; `file` names it in messages and `baseDirectory` anchors relative paths.
    public static func load(
        text: String, file: String, baseDirectory: String, environment: [String: String] = [:], unsetVariables: UnsetVariables = .error
    ) throws(ConfigurationError) -> LoadedConfiguration {
        let reader = ConfigReader(file: file, baseDirectory: baseDirectory, environment: environment, unsetVariables: unsetVariables)
        let configuration = reader.read(text)
        let errors = reader.issues.filter { $0.severity == .error }
        guard let configuration, errors.isEmpty else {
            throw ConfigurationError(
                issues: reader.issues.sorted { ($0.line, $0.column) < ($1.line, $1.column) }, unsetVariables: reader.unsetVariables)
        }
        return LoadedConfiguration(
            configuration: configuration, warnings: reader.issues, literalSecrets: reader.literalSecrets, unsetVariables: reader.unsetVariables)
    }

    /// What an unset `${NAME}` (without a default) is.
    public enum UnsetVariables: Sendable {
        /// An error where it is used: `run` and `poll` need every value.
        case error
        /// Listed in `LoadedConfiguration.unsetVariables`, the setting left out: for commands
        /// that only read the state (which need `state.*` and the endpoints' names, not the
        /// bank's password) and for `validate`, which still checks the rest. `state.*` must
        /// still resolve.
        case deferred
    }
}

/// One pass over a composed YAML tree. Collects issues instead of stopping at the first.
final class ConfigReader {
    let file: String
    let baseDirectory: String
    let environment: [String: String]
    let unsetPolicy: ConfigLoader.UnsetVariables
    var issues: [ConfigIssue] = []
    /// Unset variables, when they are deferred (`ConfigLoader.UnsetVariables.deferred`).
    var unsetVariables: [ConfigIssue] = []
    /// Secrets (password, webhook secret, token, passphrase) written in the file itself, at
    /// their keys' places.
    var literalSecrets: [ConfigIssue] = []

    init(file: String, baseDirectory: String, environment: [String: String], unsetVariables: ConfigLoader.UnsetVariables = .error) {
        self.file = file
        self.baseDirectory = baseDirectory
        self.environment = environment
        self.unsetPolicy = unsetVariables
    }

    func literalSecret(_ node: Node, _ path: String) {
        let mark = node.mark
        literalSecrets.append(ConfigIssue(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1, message: path, severity: .warning))
    }

    // MARK: Issues

    func error(_ node: Node?, _ message: String) {
        let mark = node?.mark
        issues.append(ConfigIssue(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1, message: message))
    }

    func warning(_ node: Node?, _ message: String) {
        let mark = node?.mark
        issues.append(
            ConfigIssue(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1, message: message, severity: .warning))
    }

    // MARK: Whole file

    func read(_ text: String) -> Configuration? {
        let root: Node
        do {
            guard let composed = try Yams.compose(yaml: text) else {
                error(nil, "the config is empty")
                return nil
            }
            root = composed
        } catch let yamlError as YamlError {
            reportSyntax(yamlError, text: text)
            return nil
        } catch {
            self.error(nil, "cannot parse the config")
            return nil
        }
        guard let entries = mapping(root, "the config") else { return nil }
        let keys = checkKeys(entries, allowed: ["source", "state", "endpoints", "routes", "delivery", "admin"], in: "the config")

        var source: SourceConfiguration?
        if let entry = keys["source"] {
            source = readSource(entry.value)
        } else {
            error(root, "missing 'source' (the bank to poll and its watches)")
        }
        let state = keys["state"].map { readState($0.value) } ?? StateConfiguration(path: resolvePath("./paybridge-data"))
        let endpoints = keys["endpoints"].map { readEndpoints($0.value) } ?? []
        var watchNames = Set(source?.watches.map(\.name) ?? [])
        if source?.notifications != nil { watchNames.insert(NotificationsConfiguration.watchName) }
        let routes: [Route]
        if let entry = keys["routes"] {
            routes = readRoutes(entry.value, endpoints: endpoints, watches: watchNames, inherited: nil, path: "routes")
        } else {
            // No routes at all: every event goes to every endpoint.
            routes = endpoints.isEmpty ? [] : [Route(to: endpoints.map(\.name))]
        }
        let delivery = keys["delivery"].map { readDelivery($0.value) } ?? DeliveryConfiguration()
        let admin = keys["admin"].flatMap { readAdmin($0.value) }
        if endpoints.isEmpty {
            warning(root, "no endpoints: changes are recorded but delivered nowhere")
        }
        guard let source else { return nil }
        return Configuration(source: source, state: state, endpoints: endpoints, routes: routes, delivery: delivery, admin: admin)
    }

    private func reportSyntax(_ yamlError: YamlError, text: String) {
        // Yams' own description quotes the offending line, which may hold a secret: use the
        // problem and the position only.
        switch yamlError {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
            let .composer(context, problem, mark, _):
            let during = context.map { " (\($0.text))" } ?? ""
            issues.append(ConfigIssue(file: file, line: mark.line, column: mark.column, message: "YAML syntax error: \(problem)\(during)"))
        case let .duplicatedKeysInMapping(duplicates, context):
            let names = duplicates.map { "'\($0)'" }.joined(separator: ", ")
            issues.append(
                ConfigIssue(file: file, line: context.mark.line, column: context.mark.column, message: "duplicate key \(names) in a mapping"))
        case let .reader(problem, offset, _, _):
            let prefix = text.utf8.prefix(offset ?? 0)
            let line = prefix.filter { $0 == UInt8(ascii: "\n") }.count + 1
            let column = (prefix.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).last?.count ?? 0) + 1
            issues.append(ConfigIssue(file: file, line: line, column: column, message: "cannot read the YAML: \(problem)"))
        default:
            issues.append(ConfigIssue(file: file, line: 1, column: 1, message: "cannot parse the YAML"))
        }
    }

    // MARK: Sections

    private func readSource(_ node: Node) -> SourceConfiguration? {
        guard let entries = mapping(node, "source") else { return nil }
        let keys = checkKeys(
            entries,
            allowed: [
                "kind", "apiURL", "authURL", "username", "password", "clientCertificate", "clientKey", "caFile", "pageSize",
                "timeout", "connectTimeout", "retries", "retryBackoff", "unavailableAfter", "maxBackoff", "watches", "signing",
                "proxy", "noProxy", "notifications",
            ], in: "source")
        let kind = keys["kind"].flatMap { enumValue($0.value, SourceConfiguration.Kind.self, "source.kind") } ?? .bankingCircle
        let apiURL = keys["apiURL"].flatMap { url($0.value, "source.apiURL") }
        let authURL = keys["authURL"].flatMap { url($0.value, "source.authURL") }
        if kind == .bankingCircle, apiURL == nil, keys["apiURL"] == nil {
            error(node, "source: missing 'apiURL' (the base URL of the Banking Circle API)")
        }
        var username = keys["username"].flatMap { string($0.value, "source.username") }
        var password = keys["password"].flatMap { secretString($0.value, "source.password") }
        if kind == .bankingCircle {
            if keys["username"] == nil { error(node, "source: missing 'username'") }
            if keys["password"] == nil { error(node, "source: missing 'password'") }
        } else {
            username = username ?? "sandbox"
            password = password ?? "sandbox"
        }
        let tls = tlsOptions(keys, node, "source")
        let pageSize = keys["pageSize"].flatMap { integer($0.value, "source.pageSize", in: 1...5000) } ?? 1000
        let timeout = keys["timeout"].flatMap { duration($0.value, "source.timeout", positive: true) } ?? .seconds(30)
        let connectTimeout = keys["connectTimeout"].flatMap { duration($0.value, "source.connectTimeout", positive: true) } ?? .seconds(10)
        let retries = keys["retries"].flatMap { integer($0.value, "source.retries", in: 0...10) } ?? 2
        let backoff = keys["retryBackoff"].flatMap { duration($0.value, "source.retryBackoff", positive: false) } ?? .milliseconds(500)
        let unavailableAfter = keys["unavailableAfter"].flatMap { duration($0.value, "source.unavailableAfter", positive: false) } ?? .seconds(300)
        let maxBackoff = keys["maxBackoff"].flatMap { duration($0.value, "source.maxBackoff", positive: true) } ?? .seconds(300)
        var watches: [Watch] = []
        if let entry = keys["watches"] {
            watches = readWatches(entry.value)
        } else {
            error(node, "source: missing 'watches' (what to poll and how often)")
        }
        let signing = keys["signing"].flatMap { readSigning($0.value) }
        var source = SourceConfiguration(
            kind: kind, apiURL: apiURL, authURL: authURL, username: Secret(username ?? ""), password: Secret(password ?? ""),
            tls: tls, pageSize: pageSize, timeout: timeout, connectTimeout: connectTimeout, retries: retries,
            retryBackoff: backoff, unavailableAfter: unavailableAfter, maxBackoff: maxBackoff, watches: watches, signing: signing)
        source.proxy = readProxy(keys, path: "source", node: node)
        source.notifications = keys["notifications"].flatMap { readNotifications($0.value) }
        return source
    }

    /// `source.signing`: the QSEAL certificate and key of an AISP or PISP. Both are loaded
    /// here, so `validate` reports a bad file, a wrong passphrase or a key that does not
    /// belong to the certificate at the key's place.
    private func readSigning(_ node: Node) -> RequestSigner? {
        let path = "source.signing"
        guard let entries = mapping(node, path) else { return nil }
        let keys = checkKeys(
            entries, allowed: ["certificate", "key", "keyPassphrase", "algorithm", "psuId", "certificateHeader"], in: path)
        guard let certificateEntry = keys["certificate"], let keyEntry = keys["key"] else {
            if keys["certificate"] == nil { error(node, "\(path): missing 'certificate' (the QSEAL certificate, PEM)") }
            if keys["key"] == nil { error(node, "\(path): missing 'key' (the certificate's private key, PEM)") }
            return nil
        }
        let algorithm = keys["algorithm"].flatMap { enumValue($0.value, RequestSigner.Algorithm.self, "\(path).algorithm") } ?? .rsaSHA256
        let header =
            keys["certificateHeader"].flatMap { enumValue($0.value, RequestSigner.CertificateHeader.self, "\(path).certificateHeader") } ?? .arr
        let psuId = keys["psuId"].flatMap { string($0.value, "\(path).psuId") }
        let passphraseEntry = keys["keyPassphrase"]
        let passphrase = passphraseEntry.flatMap { secretString($0.value, "\(path).keyPassphrase") }
        guard let certificatePath = existingFile(certificateEntry.value, "\(path).certificate"),
            let keyPath = existingFile(keyEntry.value, "\(path).key")
        else { return nil }
        guard let certificateText = try? String(contentsOfFile: certificatePath, encoding: .utf8) else {
            error(certificateEntry.value, "\(path).certificate: \(certificatePath) is not text (PEM expected)")
            return nil
        }
        guard let keyText = try? String(contentsOfFile: keyPath, encoding: .utf8) else {
            error(keyEntry.value, "\(path).key: \(keyPath) is not text (PEM expected)")
            return nil
        }
        if passphraseEntry != nil, passphrase == nil { return nil }  // its own error is reported
        do {
            return try RequestSigner.load(
                certificatePEM: certificateText, keyPEM: keyText, passphrase: passphrase.map(Secret.init), algorithm: algorithm,
                certificateHeader: header, psuId: psuId)
        } catch {
            switch error.field {
            case .certificate: self.error(certificateEntry.value, "\(path).certificate: \(certificatePath) \(error.description)")
            case .key: self.error(keyEntry.value, "\(path).key: \(keyPath) \(error.description)")
            case .keyPassphrase: self.error(passphraseEntry?.value ?? keyEntry.value, "\(path).keyPassphrase \(error.description)")
            }
            return nil
        }
    }

    private func readWatches(_ node: Node) -> [Watch] {
        guard let items = sequence(node, "source.watches") else { return [] }
        if items.isEmpty { error(node, "source.watches is empty: add at least one watch") }
        var watches: [Watch] = []
        var names = Set<String>()
        for (index, item) in items.enumerated() {
            let path = "source.watches[\(index)]"
            guard let entries = mapping(item, path) else { continue }
            let keys = checkKeys(entries, allowed: ["name", "every", "query", "baseline"], in: path)
            guard let nameEntry = keys["name"] else {
                error(item, "\(path): missing 'name'")
                continue
            }
            guard let name = identifier(nameEntry.value, "\(path).name") else { continue }
            if !names.insert(name).inserted { error(nameEntry.value, "a second watch is named '\(name)'") }
            if name == NotificationsConfiguration.watchName {
                error(nameEntry.value, "\(path).name: '\(name)' is reserved for the look-ups the bank's notifications trigger; name the watch otherwise")
            }
            let every = keys["every"].flatMap { duration($0.value, "\(path).every", positive: true) } ?? .seconds(30)
            let baseline = keys["baseline"].flatMap { enumValue($0.value, Watch.Baseline.self, "\(path).baseline") } ?? .silent
            let query = keys["query"].map { readQuery($0.value, path: "\(path).query") } ?? []
            watches.append(Watch(name: name, every: every, query: query, baseline: baseline))
        }
        return watches
    }

    private func readQuery(_ node: Node, path: String) -> [QueryParameter] {
        guard let entries = mapping(node, path) else { return [] }
        var parameters: [QueryParameter] = []
        for entry in entries {
            if ["pagenumber", "pagesize"].contains(entry.key.lowercased()) {
                error(entry.keyNode, "\(path): '\(entry.key)' is set by paybridge while paging; use source.pageSize")
                continue
            }
            // The bank ignores a parameter it does not know: the watch would fetch everything.
            warnUnknown([entry.key], known: BankVocabulary.queryParameters, entry.keyNode, path, what: "Banking Circle query parameter")
            if entry.key == "Status" {
                let values = stringList(entry.value, "\(path).Status") ?? []
                warnUnknown(values, known: BankVocabulary.statuses, entry.value, "\(path).Status", what: "status")
            }
            if case .sequence = entry.value {
                let values = stringList(entry.value, "\(path).\(entry.key)") ?? []
                parameters.append(QueryParameter(name: entry.key, value: .list(values)))
            } else if let text = string(entry.value, "\(path).\(entry.key)") {
                // An empty value (`${MIN:-}`) is a filter not set: nothing to send.
                if text.isEmpty { continue }
                let kind = BankVocabulary.QueryKind(entry.key)
                if kind != .amount, text.hasPrefix("-"), let offset = DurationText.parse(String(text.dropFirst())) {
                    parameters.append(QueryParameter(name: entry.key, value: .relativeTime(offset)))
                    continue
                }
                // What the bank cannot read it would ignore or refuse at every poll: say so now.
                if let expected = kind.problem(with: text) { error(entry.value, "\(path).\(entry.key): '\(text)' is not \(expected)") }
                parameters.append(QueryParameter(name: entry.key, value: .text(text)))
            }
        }
        // As sent (an empty value is not), names in any case as the bank reads them.
        if parameters.contains(where: { $0.name.lowercased() == "lastchangedtimestampfrom" }),
            let entry = entries.first(where: { $0.key.lowercased() == "lastchangedtimestampfrom" })
        {
            warnAboutLastChanged(entry, parameters, path: path)
        }
        return parameters
    }

    /// The bank's pitfalls of `LastChangedTimestampFrom` (deprecated): ignored without
    /// `Status` (the 50 latest payments come instead), read only with one of four statuses,
    /// and never more than 30 days back.
    private func warnAboutLastChanged(_ entry: Entry, _ parameters: [QueryParameter], path: String) {
        let name = "\(path).\(entry.key)"
        let statuses: [String]? = parameters.first { $0.name.lowercased() == "status" }.map { status in
            switch status.value {
            case .list(let values): values
            case .text(let text): text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            case .relativeTime: []
            }
        }
        let readable = ["Rejected", "MissingFunding", "DeclinedByApprover", "DeclinedByAuthorizer"]
        if statuses == nil {
            warning(entry.keyNode, "\(name): the bank ignores it without Status (it answers its 50 latest payments instead); add Status")
        } else if let statuses, !statuses.contains(where: readable.contains) {
            warning(entry.keyNode, "\(name): the bank reads it only when Status holds Rejected, MissingFunding, DeclinedByApprover or DeclinedByAuthorizer")
        }
        if case .relativeTime(let offset) = parameters.first(where: { $0.name == entry.key })?.value, offset > .seconds(30 * 86400) {
            warning(entry.value, "\(name): the bank reaches back 30 days at most")
        }
    }

    private func readState(_ node: Node) -> StateConfiguration {
        guard let entries = mapping(node, "state") else { return StateConfiguration(path: resolvePath("./paybridge-data")) }
        let keys = checkKeys(entries, allowed: ["kind", "path", "retention", "busyTimeout", "url", "tls", "caFile", "lease"], in: "state")
        let kind = keys["kind"].flatMap { enumValue($0.value, StateConfiguration.Kind.self, "state.kind") } ?? .sqlite
        let path = keys["path"].flatMap { string($0.value, "state.path") } ?? "./paybridge-data"
        let retention = keys["retention"].flatMap { duration($0.value, "state.retention", positive: true) } ?? .seconds(30 * 86400)
        let busy = keys["busyTimeout"].flatMap { duration($0.value, "state.busyTimeout", positive: false) } ?? .seconds(5)
        var url: Secret?
        var sslmode: StateConfiguration.TLSMode?
        if let entry = keys["url"], let text = string(entry.value, "state.url") {
            do {
                let parsed = try PostgresURL(text)
                // A secret only when it carries a password written in the file itself.
                if parsed.password != nil, case .scalar(let scalar) = entry.value, !scalar.string.contains("${") {
                    literalSecret(entry.value, "state.url")
                }
                // libpq's `sslmode` (a provider's URL) is read as state.tls; the rest are not read.
                for (name, value) in parsed.parameters {
                    if name.lowercased() == "sslmode" {
                        sslmode = StateConfiguration.TLSMode(rawValue: value.lowercased())
                        if sslmode == nil { self.error(entry.value, "state.url: sslmode=\(value) is not one paybridge offers: disable, require or verify-full") }
                    } else {
                        warning(entry.value, "state.url: the parameter '\(name)' is not read (paybridge reads sslmode only)")
                    }
                }
                url = Secret(text)
            } catch {
                self.error(entry.value, error.description)
            }
        }
        if kind == .postgres, keys["url"] == nil { error(node, "state: kind: postgres needs 'url' (postgres://user:password@host:5432/database)") }
        for key in ["url", "tls", "caFile", "lease"] where kind == .sqlite {
            if let entry = keys[key] { error(entry.keyNode, "state.\(key) applies to kind: postgres only") }
        }
        if kind == .postgres, let entry = keys["path"] { error(entry.keyNode, "state.path applies to kind: sqlite only") }
        let tlsKey = keys["tls"].flatMap { enumValue($0.value, StateConfiguration.TLSMode.self, "state.tls") }
        if let tlsKey, let sslmode, tlsKey != sslmode, let entry = keys["tls"] {
            error(entry.value, "state.tls is \(tlsKey.rawValue) but the URL says sslmode=\(sslmode.rawValue): keep one")
        }
        let tls = tlsKey ?? sslmode ?? .disable
        let caFile = keys["caFile"].flatMap { existingFile($0.value, "state.caFile") }
        let lease = keys["lease"].flatMap { duration($0.value, "state.lease", positive: true) } ?? .seconds(10)
        var state = StateConfiguration(
            path: resolvePath(path), retention: retention, busyTimeout: busy, kind: kind, url: url, tls: tls, caFile: caFile, lease: lease)
        if let mark = keys["path"]?.value.mark {
            state.line = mark.line
            state.column = mark.column
        }
        return state
    }

    private func readAdmin(_ node: Node) -> AdminConfiguration? {
        guard let entries = mapping(node, "admin") else { return nil }
        let keys = checkKeys(entries, allowed: ["listen", "token", "tokenFile", "tokens", "tls"], in: "admin")
        guard let entry = keys["listen"] else {
            error(node, "admin: missing 'listen' (HOST:PORT, e.g. 127.0.0.1:9464)")
            return nil
        }
        guard let text = string(entry.value, "admin.listen") else { return nil }
        let colon = text.lastIndex(of: ":")
        guard let colon, colon != text.startIndex, let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            error(entry.value, "admin.listen must be HOST:PORT, e.g. 127.0.0.1:9464")
            return nil
        }
        var token: Secret?
        if let entry = keys["token"] {
            token = secretString(entry.value, "admin.token").map(Secret.init)
        } else if let entry = keys["tokenFile"] {
            token = string(entry.value, "admin.tokenFile").flatMap { readSecretFile($0, entry.value, "admin.tokenFile") }.map(Secret.init)
        }
        if keys["token"] != nil, keys["tokenFile"] != nil { error(node, "admin: use token or tokenFile, not both") }
        // Short tokens work on loopback (the contract's own example is `token: T`) but are easy
        // to guess: beyond loopback they are refused (checked once the address is known).
        var shortTokens: [(node: Node?, key: String)] = []
        // An empty token would let in whoever sends none: it is never a token.
        var seen: [String: String] = [:]
        func checkToken(_ secret: String, _ node: Node?, _ key: String) -> Bool {
            if secret.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                error(node, "\(key) is empty: set a token of 16 characters or more (or remove it: without a token the admin server on loopback only reads)")
                return false
            }
            if let other = seen[secret] {
                error(node, "\(key) is the same token as \(other): each token must be different, or one of them would never be recognised")
                return false
            }
            seen[secret] = key
            if secret.count < 16 { shortTokens.append((node, key)) }
            return true
        }
        if let secret = token?.value, !checkToken(secret, keys["token"]?.value ?? keys["tokenFile"]?.value, "admin.token") { token = nil }
        var tokens: [AdminConfiguration.Token] = []
        if let entry = keys["tokens"], let items = sequence(entry.value, "admin.tokens") {
            var names: Set<String> = token == nil ? [] : ["admin"]
            for (index, item) in items.enumerated() {
                let path = "admin.tokens[\(index)]"
                guard let fields = mapping(item, path) else { continue }
                let itemKeys = checkKeys(fields, allowed: ["name", "token", "tokenFile", "role"], in: path)
                guard let nameEntry = itemKeys["name"], let name = identifier(nameEntry.value, "\(path).name") else {
                    if itemKeys["name"] == nil { error(item, "\(path): missing 'name' (it names the token in the log of every action)") }
                    continue
                }
                if !names.insert(name).inserted { error(nameEntry.value, "a second admin token is named '\(name)'") }
                var secret: String?
                if let value = itemKeys["token"] {
                    secret = secretString(value.value, "\(path).token")
                } else if let value = itemKeys["tokenFile"] {
                    secret = string(value.value, "\(path).tokenFile").flatMap { readSecretFile($0, value.value, "\(path).tokenFile") }
                } else {
                    error(item, "\(path): missing 'token' (or tokenFile)")
                }
                if itemKeys["token"] != nil, itemKeys["tokenFile"] != nil { error(item, "\(path): use token or tokenFile, not both") }
                if let value = secret, !checkToken(value, itemKeys["token"]?.value ?? itemKeys["tokenFile"]?.value, "\(path).token") { secret = nil }
                guard let roleEntry = itemKeys["role"] else {
                    error(item, "\(path): missing 'role' (read: sees everything, acts on nothing; operate: acts too)")
                    continue
                }
                guard let role = enumValue(roleEntry.value, AdminConfiguration.Token.Role.self, "\(path).role"), let secret else { continue }
                tokens.append(AdminConfiguration.Token(name: name, token: Secret(secret), role: role))
            }
        }
        var tls: (certificate: String, key: String)?
        if let entry = keys["tls"], let tlsEntries = mapping(entry.value, "admin.tls") {
            let tlsKeys = checkKeys(tlsEntries, allowed: ["certificate", "key"], in: "admin.tls")
            let certificate = tlsKeys["certificate"].flatMap { existingFile($0.value, "admin.tls.certificate") }
            let key = tlsKeys["key"].flatMap { existingFile($0.value, "admin.tls.key") }
            if tlsKeys["certificate"] == nil || tlsKeys["key"] == nil { error(entry.value, "admin.tls needs both 'certificate' and 'key' (PEM files)") }
            if let certificate, let key { tls = (certificate, key) }
        }
        let admin = AdminConfiguration(listen: text, token: token, tokens: tokens, tls: tls)
        for short in shortTokens {
            if admin.isLoopback {
                warning(short.node, "\(short.key) is short: use 16 characters or more, or it can be guessed")
            } else {
                error(short.node, "\(short.key) is too short for an address beyond loopback: use 16 characters or more")
            }
        }
        if !admin.isLoopback, admin.tokens.isEmpty {
            error(entry.value, "admin.listen \(text) is not a loopback address: set admin.token or admin.tokens, or listen on 127.0.0.1")
        }
        return admin
    }

    private func readDelivery(_ node: Node) -> DeliveryConfiguration {
        guard let entries = mapping(node, "delivery") else { return DeliveryConfiguration() }
        let keys = checkKeys(entries, allowed: ["shutdownGrace"], in: "delivery")
        let grace = keys["shutdownGrace"].flatMap { duration($0.value, "delivery.shutdownGrace", positive: false) } ?? .seconds(10)
        return DeliveryConfiguration(shutdownGrace: grace)
    }

    private func readEndpoints(_ node: Node) -> [EndpointConfiguration] {
        guard let entries = mapping(node, "endpoints") else { return [] }
        var endpoints: [EndpointConfiguration] = []
        for entry in entries {
            guard let name = identifier(entry.keyNode, "an endpoint name") else { continue }
            if let endpoint = readEndpoint(name: name, entry.value) { endpoints.append(endpoint) }
        }
        return endpoints
    }

    private func readEndpoint(name: String, _ node: Node) -> EndpointConfiguration? {
        let path = "endpoints.\(name)"
        guard let entries = mapping(node, path) else { return nil }
        let keys = checkKeys(
            entries,
            allowed: [
                "kind", "url", "secret", "secretFile", "timeout", "connectTimeout", "concurrency", "retry", "format", "headers",
                "caFile", "clientCertificate", "clientKey", "rateLimit", "disableAfter", "breaker", "mode", "source", "link", "template",
                "contentType", "redact", "group", "auth", "proxy", "noProxy",
            ], in: path)
        let kind = keys["kind"].flatMap { enumValue($0.value, EndpointConfiguration.Kind.self, "\(path).kind") } ?? .http
        var url = ""
        if kind == .http {
            if let entry = keys["url"] {
                url = self.url(entry.value, "\(path).url") ?? ""
            } else {
                error(node, "\(path): missing 'url'")
            }
        }
        var secrets: [Secret] = []
        if let entry = keys["secret"] {
            let isList: Bool = { if case .sequence = entry.value { return true } else { return false } }()
            for (index, text) in (secretList(entry.value, "\(path).secret") ?? []).enumerated() {
                if let secret = webhookSecret(text, entry.value, "\(path).secret", index: isList ? index : nil) { secrets.append(secret) }
            }
        }
        if let entry = keys["secretFile"] {
            for file in stringList(entry.value, "\(path).secretFile") ?? [] {
                guard let text = readSecretFile(file, entry.value, "\(path).secretFile") else { continue }
                if let secret = webhookSecret(text, entry.value, "\(path).secretFile", index: nil) { secrets.append(secret) }
            }
        }
        let timeout = keys["timeout"].flatMap { duration($0.value, "\(path).timeout", positive: true) } ?? .seconds(10)
        let connectTimeout =
            keys["connectTimeout"].flatMap { duration($0.value, "\(path).connectTimeout", positive: true) } ?? min(timeout, .seconds(5))
        let concurrency = keys["concurrency"].flatMap { integer($0.value, "\(path).concurrency", in: 1...1000) } ?? 8
        var retry = RetrySchedule.standard
        if let entry = keys["retry"], let items = sequence(entry.value, "\(path).retry") {
            let waits = items.enumerated().compactMap { duration($1, "\(path).retry[\($0)]", positive: false) }
            if waits.count == items.count { retry = RetrySchedule(waits: waits) }
        }
        let format = readFormat(keys, path: path)
        var headers: [(name: String, value: String)] = []
        if let entry = keys["headers"], let pairs = mapping(entry.value, "\(path).headers") {
            for pair in pairs {
                let lowered = pair.key.lowercased()
                if lowered.hasPrefix("webhook-") || lowered == "content-type" || lowered == "content-length" || lowered.hasPrefix("ce-") {
                    error(pair.keyNode, "\(path).headers: '\(pair.key)' is set by paybridge")
                } else if let value = string(pair.value, "\(path).headers.\(pair.key)") {
                    headers.append((name: pair.key, value: value))
                }
            }
        }
        let tls = tlsOptions(keys, node, path)
        let rateLimit = keys["rateLimit"].flatMap { rate($0.value, "\(path).rateLimit") }
        let disableAfter = keys["disableAfter"].flatMap { duration($0.value, "\(path).disableAfter", positive: true) } ?? .seconds(5 * 86400)
        var breaker = BreakerSettings()
        if let entry = keys["breaker"], let fields = mapping(entry.value, "\(path).breaker") {
            let settings = checkKeys(fields, allowed: ["failures", "minimumDuration", "openFor"], in: "\(path).breaker")
            breaker.failures = settings["failures"].flatMap { integer($0.value, "\(path).breaker.failures", in: 1...100_000) } ?? breaker.failures
            breaker.minimumDuration =
                settings["minimumDuration"].flatMap { duration($0.value, "\(path).breaker.minimumDuration", positive: false) }
                ?? breaker.minimumDuration
            breaker.openFor = settings["openFor"].flatMap { duration($0.value, "\(path).breaker.openFor", positive: true) } ?? breaker.openFor
        }
        let group = keys["group"].flatMap { readGroup($0.value, path: "\(path).group") }
        let auth = keys["auth"].flatMap { readAuth($0.value, path: "\(path).auth") }
        // Only receivers of the standard and CloudEvents formats check a signature; Slack,
        // Teams, templates (PagerDuty, Opsgenie) and endpoints with `auth` authenticate otherwise.
        let signatureChecked = [.standard, .cloudevents].contains(format.kind) && keys["auth"] == nil
        let secretProblem = (issues + unsetVariables).contains { $0.message.hasPrefix("\(path).secret") }
        if kind == .http, signatureChecked, secrets.isEmpty, !secretProblem {
            warning(node, "\(path) has no secret: its events are sent unsigned (set secret or secretFile)")
        }
        if let auth, case .bearer = auth, headers.contains(where: { $0.name.lowercased() == "authorization" }) {
            error(keys["auth"]?.keyNode, "\(path): 'auth' and an Authorization header in 'headers' cannot both be set")
        }
        var endpoint = EndpointConfiguration(
            name: name, kind: kind, url: url, secrets: secrets, timeout: timeout, connectTimeout: connectTimeout,
            concurrency: concurrency, retry: retry, format: format, headers: headers, tls: tls, rateLimit: rateLimit,
            breaker: breaker, disableAfter: disableAfter, group: group, auth: auth)
        endpoint.proxy = readProxy(keys, path: path, node: node)
        return endpoint
    }

    /// `proxy: http://proxy.internal:3128` and `noProxy: "localhost,.internal"`. The proxy's URL
    /// may carry credentials (then it is a secret: take it from ${ENV}).
    private func readProxy(_ keys: [String: Entry], path: String, node: Node) -> Proxy? {
        guard let entry = keys["proxy"] else {
            if let noProxy = keys["noProxy"] { error(noProxy.keyNode, "\(path).noProxy goes with \(path).proxy") }
            return nil
        }
        guard let text = string(entry.value, "\(path).proxy") else { return nil }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            ["http", "https", "socks5", "socks5h", "socks4", "socks4a"].contains(scheme), let host = components.host, !host.isEmpty
        else {
            error(entry.value, "\(path).proxy must be a URL like http://proxy.internal:3128 (http, https, socks5, socks5h)")
            return nil
        }
        if components.password != nil, case .scalar(let scalar) = entry.value, !scalar.string.contains("${") {
            literalSecret(entry.value, "\(path).proxy")
        }
        let noProxy = keys["noProxy"].flatMap { stringList($0.value, "\(path).noProxy") }.map { $0.joined(separator: ",") }
        return Proxy(url: Secret(text), noProxy: noProxy)
    }

    private func readRoutes(
        _ node: Node, endpoints: [EndpointConfiguration], watches: Set<String>, inherited: [String]?, path: String
    ) -> [Route] {
        guard let items = sequence(node, path) else { return [] }
        var routes: [Route] = []
        for (index, item) in items.enumerated() {
            let itemPath = "\(path)[\(index)]"
            guard let entries = mapping(item, itemPath) else { continue }
            let keys = checkKeys(entries, allowed: ["when", "to", "routes", "continue"], in: itemPath)
            var matcher = RouteMatcher()
            if let entry = keys["when"], let when = readWhen(entry.value, path: "\(itemPath).when", watches: watches) {
                matcher = when
            }
            var to = inherited ?? []
            if let entry = keys["to"] {
                to = []
                let targets: [Node] = {
                    if case .sequence(let sequence) = entry.value { return Array(sequence) }
                    return [entry.value]
                }()
                for target in targets {
                    guard let name = string(target, "\(itemPath).to") else { continue }
                    if endpoints.contains(where: { $0.name == name }) {
                        to.append(name)
                    } else {
                        let known = endpoints.map(\.name).joined(separator: ", ")
                        error(target, "\(itemPath).to: unknown endpoint '\(name)'" + (known.isEmpty ? " (no endpoints are defined)" : " (endpoints: \(known))"))
                    }
                }
            }
            let children = keys["routes"].map {
                readRoutes($0.value, endpoints: endpoints, watches: watches, inherited: to, path: "\(itemPath).routes")
            } ?? []
            if keys["to"] == nil, inherited == nil, children.isEmpty {
                error(item, "\(itemPath): missing 'to' (the endpoints this route delivers to)")
            }
            let continueMatching = keys["continue"].flatMap { boolean($0.value, "\(itemPath).continue") } ?? false
            routes.append(Route(when: matcher, to: to, routes: children, continueMatching: continueMatching, path: itemPath))
        }
        return routes
    }

    // MARK: Node readers

    typealias Entry = (key: String, keyNode: Node, value: Node)

    func mapping(_ node: Node, _ path: String) -> [Entry]? {
        guard case .mapping(let mapping) = node else {
            if isNull(node) { error(node, "\(path) is empty: expected a mapping") } else { error(node, "\(path) must be a mapping") }
            return nil
        }
        var entries: [Entry] = []
        for (key, value) in mapping {
            guard case .scalar(let scalar) = key else {
                error(key, "\(path): keys must be plain names")
                continue
            }
            entries.append((scalar.string, key, value))
        }
        return entries
    }

    func sequence(_ node: Node, _ path: String) -> [Node]? {
        guard case .sequence(let sequence) = node else {
            error(node, "\(path) must be a list")
            return nil
        }
        return Array(sequence)
    }

    /// Reports keys that are not in `allowed` (by name only: their values may be secrets).
    func checkKeys(_ entries: [Entry], allowed: [String], in path: String) -> [String: Entry] {
        var known: [String: Entry] = [:]
        for entry in entries {
            if allowed.contains(entry.key) {
                known[entry.key] = entry
            } else {
                var message = "unknown key '\(entry.key)' in \(path)"
                if let suggestion = Self.closest(to: entry.key, in: allowed) { message += "; did you mean '\(suggestion)'?" }
                error(entry.keyNode, message)
            }
        }
        return known
    }

    private func isNull(_ node: Node) -> Bool {
        if case .scalar(let scalar) = node, scalar.style == .plain, ["", "~", "null", "Null", "NULL"].contains(scalar.string) {
            return true
        }
        return false
    }

    /// A scalar's text with `${VAR}` / `${VAR:-default}` expanded.
    func string(_ node: Node, _ path: String) -> String? {
        guard case .scalar(let scalar) = node else {
            error(node, "\(path) must be a single value, not a list or mapping")
            return nil
        }
        if isNull(node) {
            error(node, "\(path) is empty")
            return nil
        }
        return expand(scalar.string, node, path)
    }

    func expand(_ text: String, _ node: Node, _ path: String) -> String? {
        guard text.contains("$") else { return text }
        var result = ""
        var rest = Substring(text)
        while let dollar = rest.firstIndex(of: "$") {
            result += rest[..<dollar]
            let after = rest[rest.index(after: dollar)...]
            if after.hasPrefix("$") {
                result += "$"
                rest = after.dropFirst()
                continue
            }
            guard after.hasPrefix("{") else {
                result += "$"
                rest = after
                continue
            }
            guard let close = after.firstIndex(of: "}") else {
                error(node, "\(path): ${ without its closing }: write ${NAME}, or $$ for a literal $")
                return nil
            }
            let body = after[after.index(after: after.startIndex)..<close]
            let name: Substring
            let fallback: Substring?
            if let separator = body.range(of: ":-") {
                name = body[..<separator.lowerBound]
                fallback = body[separator.upperBound...]
            } else {
                name = body
                fallback = nil
            }
            guard !name.isEmpty else {
                error(node, "\(path): ${} names no environment variable: write ${NAME}")
                return nil
            }
            let value = environment[String(name)]
            if let value, !value.isEmpty || fallback == nil {
                result += value
            } else if let fallback {
                result += fallback
            } else if case .deferred = unsetPolicy, !path.hasPrefix("state.") {
                let mark = node.mark
                unsetVariables.append(
                    ConfigIssue(
                        file: file, line: mark?.line ?? 1, column: mark?.column ?? 1,
                        message: "\(path): environment variable \(name) is not set"))
                return nil
            } else {
                error(node, "\(path): environment variable \(name) is not set")
                return nil
            }
            rest = after[after.index(after: close)...]
        }
        return result + rest
    }

    func stringList(_ node: Node, _ path: String) -> [String]? {
        if case .sequence(let sequence) = node {
            var values: [String] = []
            for item in sequence {
                guard let value = string(item, path) else { return nil }
                values.append(value)
            }
            return values
        }
        return string(node, path).map { text in
            text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
    }

    /// Secrets: a single value or a list (rotation), never split on commas.
    private func secretList(_ node: Node, _ path: String) -> [String]? {
        if case .sequence(let sequence) = node {
            return sequence.compactMap { secretString($0, path) }
        }
        return secretString(node, path).map { [$0] }
    }

    /// A secret's value; remembered when it is written in the file itself rather than taken
    /// from the environment (only then does a readable config file give it away).
    func secretString(_ node: Node, _ path: String) -> String? {
        if case .scalar(let scalar) = node, !scalar.string.contains("${") { literalSecret(node, path) }
        return string(node, path)
    }

    func integer(_ node: Node, _ path: String, in range: ClosedRange<Int>) -> Int? {
        guard let text = string(node, path) else { return nil }
        guard let value = Int(text), range.contains(value) else {
            error(node, "\(path) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            return nil
        }
        return value
    }

    func boolean(_ node: Node, _ path: String) -> Bool? {
        guard let text = string(node, path) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            error(node, "\(path) must be true or false")
            return nil
        }
    }

    func duration(_ node: Node, _ path: String, positive: Bool) -> Duration? {
        guard let text = string(node, path) else { return nil }
        guard let value = DurationText.parse(text) else {
            error(node, "\(path): \(Self.quoted(text)) is not a duration (write it like 250ms, 30s, 5m, 2h or 1d)")
            return nil
        }
        if positive, value <= .zero {
            error(node, "\(path) must be longer than zero")
            return nil
        }
        return value
    }

    /// `50/s`, `600/m`, `1000/h`: requests per second.
    func rate(_ node: Node, _ path: String) -> Double? {
        guard let text = string(node, path) else { return nil }
        let parts = text.split(separator: "/")
        let per: Double? = parts.count == 2 ? ["s": 1, "m": 60, "h": 3600][String(parts[1])] : nil
        guard let per, let count = Double(parts[0]), count > 0 else {
            error(node, "\(path): \(Self.quoted(text)) is not a rate (write it like 50/s, 600/m or 1000/h)")
            return nil
        }
        return count / per
    }

    func enumValue<E: RawRepresentable & CaseIterable>(_ node: Node, _ type: E.Type, _ path: String) -> E? where E.RawValue == String {
        guard let text = string(node, path) else { return nil }
        guard let value = E(rawValue: text) else {
            let allowed = E.allCases.map(\.rawValue).joined(separator: ", ")
            error(node, "\(path): \(Self.quoted(text)) is not one of: \(allowed)")
            return nil
        }
        return value
    }

    func identifier(_ node: Node, _ path: String) -> String? {
        guard let text = string(node, path) else { return nil }
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_."))
        guard !text.isEmpty, text.unicodeScalars.allSatisfy({ allowed.contains($0) && $0.isASCII }) else {
            error(node, "\(path) may hold only letters, digits, '-', '_' and '.'")
            return nil
        }
        return text
    }

    func url(_ node: Node, _ path: String) -> String? {
        guard let text = string(node, path) else { return nil }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty
        else {
            error(node, "\(path) must be an http:// or https:// URL with a host")
            return nil
        }
        if components.user != nil || components.password != nil {
            let instead: String
            if path.hasSuffix(".tokenURL") {
                instead = "use clientId and clientSecret"
            } else if path.hasPrefix("endpoints.") {
                instead = "use the endpoint's auth (bearer, oauth2) or headers"
            } else if path == "source.apiURL" || path == "source.authURL" {
                instead = "use source.username and source.password"
            } else {
                instead = "remove them"
            }
            error(node, "\(path) must not carry credentials; \(instead)")
            return nil
        }
        return text.hasSuffix("/") ? String(text.dropLast()) : text
    }

    func resolvePath(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        if path.hasPrefix("~/") { return NSString(string: path).expandingTildeInPath }
        return URL(fileURLWithPath: baseDirectory).appendingPathComponent(path).standardizedFileURL.path
    }

    /// `caFile`, `clientCertificate` and `clientKey`: readable files, and a client
    /// certificate with its key, in PEM, that belong together (else every call would fail its
    /// handshake with an error from deep inside TLS).
    func tlsOptions(_ keys: [String: Entry], _ node: Node, _ path: String) -> TLSOptions {
        let options = TLSOptions(
            caFile: keys["caFile"].flatMap { existingFile($0.value, "\(path).caFile") },
            clientCertificate: keys["clientCertificate"].flatMap { existingFile($0.value, "\(path).clientCertificate") },
            clientKey: keys["clientKey"].flatMap { existingFile($0.value, "\(path).clientKey") })
        if (keys["clientCertificate"] == nil) != (keys["clientKey"] == nil) {
            error(node, "\(path): 'clientCertificate' and 'clientKey' go together (mutual TLS needs both)")
        }
        if let certificate = options.clientCertificate, let key = options.clientKey,
            let problem = ClientIdentity.problem(certificateFile: certificate, keyFile: key)
        {
            let field = problem.inKey ? "clientKey" : "clientCertificate"
            error(keys[field]?.value, "\(path).\(field): \(problem.text)")
        }
        return options
    }

    func existingFile(_ node: Node, _ path: String) -> String? {
        guard let text = string(node, path) else { return nil }
        let resolved = resolvePath(text)
        guard FileManager.default.isReadableFile(atPath: resolved) else {
            error(node, "\(path): cannot read \(resolved)")
            return nil
        }
        return resolved
    }

    func readSecretFile(_ file: String, _ node: Node, _ path: String) -> String? {
        let resolved = resolvePath(file)
        guard let data = FileManager.default.contents(atPath: resolved), let text = String(data: data, encoding: .utf8) else {
            error(node, "\(path): cannot read \(resolved)")
            return nil
        }
        if let who = FilePermissions.readableByOthers(resolved) {
            warning(node, "\(path): \(resolved) holds a secret and can be read by \(who); run chmod 600 on it")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A Standard Webhooks secret: `whsec_` and base64 (the prefix may be left out).
    private func webhookSecret(_ text: String, _ node: Node, _ path: String, index: Int?) -> Secret? {
        let which = index.map { "\(path)[\($0)]" } ?? path
        guard WebhookSigner.key(fromSecret: text) != nil else {
            error(node, "\(which) is not a Standard Webhooks secret: expected 'whsec_' followed by base64")
            return nil
        }
        return Secret(text)
    }

    // MARK: Helpers

    private static func quoted(_ text: String) -> String {
        text.count <= 40 ? "'\(text)'" : "the value"
    }

    /// The allowed name nearest to a misspelt key (edit distance ≤ 2, or a case slip).
    static func closest(to key: String, in allowed: [String]) -> String? {
        let lowered = key.lowercased()
        if let match = allowed.first(where: { $0.lowercased() == lowered }) { return match }
        let scored = allowed.map { ($0, editDistance(lowered, $0.lowercased())) }.filter { $0.1 <= 2 }
        return scored.min { $0.1 < $1.1 }?.0
    }

    private static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
