import Foundation
import Testing

@testable import PayBridge

@Suite struct ConfigTests {
    let directory: TemporaryDirectory

    init() throws { directory = try TemporaryDirectory() }

    static let valid = """
        source:
          kind: banking-circle
          apiURL: https://api.example
          username: u
          password: hunter2-password
          pageSize: 500
          watches:
            - name: recent
              every: 30s
              query:
                InstructedDateFrom: -3d
                Status: [Rejected, MissingFunding]
        endpoints:
          erp:
            url: https://erp.example/hooks
            secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
            retry: [5s, 5m]
        routes:
          - to: [erp]
        """

    func load(_ text: String, environment: [String: String] = [:]) throws(ConfigurationError) -> LoadedConfiguration {
        try ConfigLoader.load(text: text, file: "pb.yaml", baseDirectory: directory.path, environment: environment)
    }

    func errors(_ text: String, environment: [String: String] = [:]) -> [String] {
        do {
            _ = try load(text, environment: environment)
            return []
        } catch {
            return error.errors.map(\.description)
        }
    }

    @Test func loadsTheContractsExample() throws {
        let configuration = try load(Self.valid).configuration
        #expect(configuration.source.pageSize == 500)
        #expect(configuration.source.watches[0].query == [
            QueryParameter(name: "InstructedDateFrom", value: .relativeTime(.seconds(3 * 86400))),
            QueryParameter(name: "Status", value: .list(["Rejected", "MissingFunding"])),
        ])
        #expect(configuration.source.watches[0].statusFilter == ["Rejected", "MissingFunding"])
        #expect(configuration.endpoints[0].retry.waits == [.seconds(5), .seconds(300)])
        #expect(configuration.state.path == directory.path + "/paybridge-data")
        #expect(configuration.source.authURL == nil)
    }

    /// A PostgreSQL URL is read whole: `?sslmode=` (a provider's URL; it was ignored, so
    /// `verify-full` connected without TLS) is state.tls, the other parameters are a warning,
    /// and a port past 65535 (it was dialled modulo 65536) is an error at the URL's place.
    @Test func aStateURLsSSLModeIsReadAndABadPortRefused() throws {
        func state(_ url: String, _ extra: String = "") -> String { Self.valid + "\nstate:\n  kind: postgres\n  url: \"\(url)\"\n" + extra }
        let line = state("").split(separator: "\n", omittingEmptySubsequences: false).count - 1
        #expect(errors(state("postgres://pb@db.example:99999/pb")) == ["pb.yaml:\(line):8: state.url: the URL's port 99999 is not a port (1 to 65535)"])
        #expect(try load(state("postgres://pb@db.example/pb?sslmode=verify-full")).configuration.state.tls == .verifyFull)
        #expect(try load(state("postgres://pb@db.example/pb?sslmode=require", "  tls: require\n")).configuration.state.tls == .require)
        #expect(errors(state("postgres://pb@db.example/pb?sslmode=prefer")) == [
            "pb.yaml:\(line):8: state.url: sslmode=prefer is not one paybridge offers: disable, require or verify-full"
        ])
        #expect(errors(state("postgres://pb@db.example/pb?sslmode=require", "  tls: disable\n")) == [
            "pb.yaml:\(line + 1):8: state.tls is disable but the URL says sslmode=require: keep one"
        ])
        let loaded = try load(state("postgres://pb@db.example/pb?application_name=erp"))
        #expect(loaded.warnings.map(\.message) == ["state.url: the parameter 'application_name' is not read (paybridge reads sslmode only)"])
        #expect(loaded.configuration.state.tls == .disable)
    }

    /// The bank's pitfalls of LastChangedTimestampFrom are warnings at its place: ignored
    /// without Status, read only with four statuses, 30 days back at most. The contract's
    /// own example (`failures`) has none.
    @Test func lastChangedTimestampFromWarnsOfTheBanksPitfalls() throws {
        func warnings(_ query: String) throws -> [String] {
            let text = Self.valid.replacingOccurrences(of: "        Status: [Rejected, MissingFunding]\n", with: query)
            return try load(text).warnings.map(\.message)
        }
        #expect(try warnings("        LastChangedTimestampFrom: -2h\n") == [
            "source.watches[0].query.LastChangedTimestampFrom: the bank ignores it without Status (it answers its 50 latest payments instead); add Status"
        ])
        #expect(try warnings("        Status: Processed\n        LastChangedTimestampFrom: -40d\n") == [
            "source.watches[0].query.LastChangedTimestampFrom: the bank reads it only when Status holds Rejected, MissingFunding, DeclinedByApprover or DeclinedByAuthorizer",
            "source.watches[0].query.LastChangedTimestampFrom: the bank reaches back 30 days at most",
        ])
        #expect(try warnings("        Status: [Rejected, MissingFunding, DeclinedByApprover, DeclinedByAuthorizer]\n        LastChangedTimestampFrom: -2h\n").isEmpty)
    }

    @Test func jsonTextIsAcceptedToo() throws {
        let json = """
            {"source": {"apiURL": "http://127.0.0.1:9", "username": "u", "password": "p",
              "watches": [{"name": "w", "every": "5s"}]},
             "endpoints": {"e": {"url": "http://127.0.0.1:8/x", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}},
             "routes": [{"to": ["e"], "when": {"status": ["Rejected"]}}]}
            """
        let configuration = try load(json).configuration
        let table = RouteTable(routes: configuration.routes)
        #expect(table.endpoints(for: RoutableEvent(type: "payment.status_changed", status: "Rejected")) == ["e"])
        #expect(table.endpoints(for: RoutableEvent(type: "payment.status_changed", status: "Processed")).isEmpty)
    }

    @Test func reportsEachErrorWithItsLineAndColumn() {
        let text = """
            source:
              apiURL: https://api.example
              username: u
              password: p
              pageSize: 9000
              watches:
                - name: recent
                  every: 30x
            endpoints:
              erp:
                url: https://erp.example
                timeout: soon
            routes:
              - to: [erp, alerts]
            """
        let found = errors(text)
        #expect(found.contains("pb.yaml:5:13: source.pageSize must be a whole number from 1 to 5000"))
        #expect(found.contains { $0.hasPrefix("pb.yaml:8:14: source.watches[0].every: '30x' is not a duration") })
        #expect(found.contains { $0.hasPrefix("pb.yaml:12:14: endpoints.erp.timeout: 'soon' is not a duration") })
        #expect(found.contains("pb.yaml:14:15: routes[0].to: unknown endpoint 'alerts' (endpoints: erp)"))
        #expect(found.count == 4)
    }

    /// Found by fuzzing (scripts/fuzz config): `validate` trapped on a duration too long for
    /// its milliseconds instead of naming the place.
    @Test func anEndlessDurationIsAnErrorAtItsPlace() {
        let text = Self.valid.replacingOccurrences(of: "retry: [5s, 5m]", with: "retry: [5s, 5m]\n    disableAfter: 99999999999999999999d")
        #expect(errors(text).contains { $0.hasPrefix("pb.yaml:18:19: endpoints.erp.disableAfter: '99999999999999999999d' is not a duration") }, "\(errors(text))")
    }

    @Test func unknownKeysAreErrorsThatNeverShowTheirValue() {
        let text = Self.valid.replacingOccurrences(of: "  password: hunter2-password", with: "  pasword: hunter2-password")
        let found = errors(text)
        #expect(found.contains("pb.yaml:5:3: unknown key 'pasword' in source; did you mean 'password'?"))
        #expect(found.contains("pb.yaml:2:3: source: missing 'password'"))
        #expect(!found.joined().contains("hunter2"))
    }

    @Test func syntaxErrorsDoNotQuoteTheLine() {
        let text = Self.valid.replacingOccurrences(of: "  password: hunter2-password", with: "  password: \"hunter2-password")
        let found = errors(text)
        #expect(found.count == 1)
        #expect(found.first?.hasPrefix("pb.yaml:") == true)
        #expect(found.first?.contains("YAML syntax error") == true)
        #expect(!found.joined().contains("hunter2"))
    }

    @Test func duplicateKeysAreErrors() {
        let text = Self.valid.replacingOccurrences(of: "  pageSize: 500", with: "  pageSize: 500\n  pageSize: 600")
        #expect(errors(text).contains { $0.contains("duplicate key 'pageSize'") })
    }

    @Test func wrongTypesAreNamed() {
        let text = Self.valid.replacingOccurrences(of: "      every: 30s", with: "      every: [30s]")
            .replacingOccurrences(of: "routes:\n  - to: [erp]", with: "routes:\n  to: [erp]")
        let found = errors(text)
        #expect(found.contains("pb.yaml:9:14: source.watches[0].every must be a single value, not a list or mapping"))
        #expect(found.contains("pb.yaml:19:3: routes must be a list"))
    }

    @Test func environmentIsExpanded() throws {
        let text = Self.valid.replacingOccurrences(of: "password: hunter2-password", with: "password: ${BC_PASSWORD}")
            .replacingOccurrences(of: "apiURL: https://api.example", with: "apiURL: ${BC_URL:-https://fallback.example}")
        let configuration = try load(text, environment: ["BC_PASSWORD": "from-env"]).configuration
        #expect(configuration.source.password.value == "from-env")
        #expect(configuration.source.apiURL == "https://fallback.example")
        #expect(errors(text) == ["pb.yaml:5:13: source.password: environment variable BC_PASSWORD is not set"])
    }

    /// Credentials in a URL are refused, naming the settings that carry them instead.
    @Test func credentialsInAURLNameWhereTheyGo() {
        let endpoint = Self.valid.replacingOccurrences(of: "url: https://erp.example/hooks", with: "url: https://u:pw@erp.example/hooks")
        #expect(errors(endpoint) == ["pb.yaml:15:10: endpoints.erp.url must not carry credentials; use the endpoint's auth (bearer, oauth2) or headers"])
        let source = Self.valid.replacingOccurrences(of: "apiURL: https://api.example", with: "apiURL: https://u:pw@api.example")
        #expect(errors(source) == ["pb.yaml:3:11: source.apiURL must not carry credentials; use source.username and source.password"])
        let token = Self.valid.replacingOccurrences(
            of: "    retry: [5s, 5m]", with: "    retry: [5s, 5m]\n    auth: { oauth2: { tokenURL: \"https://u:pw@login.example/t\", clientId: c, clientSecret: s } }")
        #expect(errors(token).contains { $0.hasSuffix("endpoints.erp.auth.oauth2.tokenURL must not carry credentials; use clientId and clientSecret") }, "\(errors(token))")
    }

    @Test func aMalformedVariableIsAnErrorNotALiteral() {
        let unclosed = Self.valid.replacingOccurrences(of: "password: hunter2-password", with: "password: ${BC_PASSWORD")
        #expect(errors(unclosed) == ["pb.yaml:5:13: source.password: ${ without its closing }: write ${NAME}, or $$ for a literal $"])
        let unnamed = Self.valid.replacingOccurrences(of: "password: hunter2-password", with: "password: x${}")
        #expect(errors(unnamed) == ["pb.yaml:5:13: source.password: ${} names no environment variable: write ${NAME}"])
    }

    /// An empty admin token would match a request that sends none; two tokens with one value
    /// would give the second's holder the first's role.
    @Test func adminTokensAreNeitherEmptyNorShared() {
        let empty = Self.valid + "\nadmin:\n  listen: 127.0.0.1:9464\n  token: ${ADMIN_TOKEN}\n"
        #expect(errors(empty, environment: ["ADMIN_TOKEN": " "]).contains { $0.hasPrefix("pb.yaml:22:10: admin.token is empty") }, "\(errors(empty, environment: ["ADMIN_TOKEN": " "]))")
        let shared = Self.valid + """

            admin:
              listen: 127.0.0.1:9464
              tokens:
                - { name: oncall, token: same-token-0123456789, role: operate }
                - { name: audit, token: same-token-0123456789, role: read }
            """
        #expect(errors(shared).contains { $0.contains("admin.tokens[1].token is the same token as admin.tokens[0].token") }, "\(errors(shared))")
        #expect(!errors(shared).joined().contains("same-token-0123456789"), "the token never shows")
    }

    @Test func secretsComeFromFilesAndAreValidated() throws {
        try directory.write("erp.secret", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\n")
        let fromFile = Self.valid.replacingOccurrences(of: "secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", with: "secretFile: erp.secret")
        #expect(try load(fromFile).configuration.endpoints[0].secrets == [Secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")])
        let rotation = Self.valid.replacingOccurrences(
            of: "secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            with: "secret: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD]")
        #expect(try load(rotation).configuration.endpoints[0].secrets.count == 2)
        let broken = Self.valid.replacingOccurrences(of: "secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", with: "secret: whsec_not*base64*at-all")
        let found = errors(broken)
        #expect(found == ["pb.yaml:16:13: endpoints.erp.secret is not a Standard Webhooks secret: expected 'whsec_' followed by base64"])
        let missing = Self.valid.replacingOccurrences(of: "secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", with: "secretFile: nowhere.secret")
        #expect(errors(missing).first?.contains("cannot read") == true)
    }

    @Test func secretsNeverShowInDescriptions() throws {
        let configuration = try load(Self.valid).configuration
        let dump = "\(configuration)"
        #expect(!dump.contains("hunter2"))
        #expect(!dump.contains("MfKQ9r8GKYqrTwjUPD8"))
    }

    @Test func pagingParametersBelongToPaybridge() {
        let text = Self.valid.replacingOccurrences(of: "        InstructedDateFrom: -3d", with: "        PageSize: 10")
        #expect(errors(text) == ["pb.yaml:11:9: source.watches[0].query: 'PageSize' is set by paybridge while paging; use source.pageSize"])
    }

    @Test func warnsWhenOthersCanReadASecret() throws {
        let path = try directory.write("open.yaml", Self.valid, permissions: 0o644)
        let loaded = try ConfigLoader.load(file: path, environment: [:])
        #expect(loaded.warnings.contains { $0.message.contains("can be read by all users") })
        let closed = try directory.write("closed.yaml", Self.valid, permissions: 0o600)
        #expect(!(try ConfigLoader.load(file: closed, environment: [:])).warnings.contains { $0.message.contains("can be read") })
    }

    /// Secrets from the environment, or no secret at all (a console endpoint, the sandbox's
    /// own login): nothing to give away, nothing to warn about.
    @Test func noWarningWithoutALiteralSecret() throws {
        let fromEnvironment = Self.valid.replacingOccurrences(of: "hunter2-password", with: "${BC_PASSWORD}")
            .replacingOccurrences(of: "secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", with: "secret: ${ERP_SECRET}")
        let path = try directory.write("env.yaml", fromEnvironment, permissions: 0o644)
        let loaded = try ConfigLoader.load(file: path, environment: ["BC_PASSWORD": "pass", "ERP_SECRET": Fixtures.secret])
        #expect(!loaded.warnings.contains { $0.message.contains("can be read") }, "\(loaded.warnings)")
        let sandbox = try directory.write(
            "sandbox.yaml", "source:\n  kind: sandbox\n  watches:\n    - name: w\nendpoints:\n  out:\n    kind: console\n", permissions: 0o644)
        #expect(!(try ConfigLoader.load(file: sandbox, environment: [:])).warnings.contains { $0.message.contains("can be read") })
    }

    @Test func nestedRoutesInheritTheirParentsEndpoints() throws {
        let text = Self.valid.replacingOccurrences(
            of: "routes:\n  - to: [erp]",
            with: "routes:\n  - to: [erp]\n    routes:\n      - when: {status: [Rejected]}\n        continue: true\n      - when: {type: [payment.created]}")
        let route = try load(text).configuration.routes[0]
        #expect(route.routes.map(\.to) == [["erp"], ["erp"]])
        #expect(route.routes[0].continueMatching)
    }

    static let shipped = [
        "config/paybridge.yaml", "examples/erp-callback.yaml", "examples/failure-alerts.yaml", "examples/slack-redacted.yaml",
        "examples/teams.yaml", "examples/cloudevents-gateway.yaml", "examples/pagerduty.yaml", "examples/opsgenie.yaml",
    ]

    /// What the shipped configs read from the environment.
    static let exampleEnvironment = [
        "BC_USERNAME": "user", "BC_PASSWORD": "pass", "ERP_WEBHOOK_URL": "https://erp.example/hooks", "ERP_SECRET": Fixtures.secret,
        "ALERTS_WEBHOOK_URL": "https://alerts.example/hooks", "ALERTS_SECRET": Fixtures.secret,
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/x", "TEAMS_WEBHOOK_URL": "https://teams.example/workflows/x",
        "GATEWAY_URL": "https://gateway.example/events", "GATEWAY_TOKEN_URL": "https://login.example/token", "GATEWAY_CLIENT_ID": "id",
        "GATEWAY_CLIENT_SECRET": "secret", "PAGERDUTY_ROUTING_KEY": "R0UTINGKEY", "OPSGENIE_API_KEY": "genie",
    ]

    static var root: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    @Test(arguments: shipped)
    func shippedConfigsValidate(relativePath: String) throws {
        let path = Self.root.appendingPathComponent(relativePath).path
        let loaded = try ConfigLoader.load(file: path, environment: Self.exampleEnvironment)
        #expect(!loaded.configuration.source.watches.isEmpty)
        #expect(!loaded.configuration.endpoints.isEmpty)
        #expect(loaded.warnings.filter { !$0.message.contains("has no secret") }.isEmpty, "\(loaded.warnings)")
    }

    /// No example ships a usable secret or password: unset, they are errors naming the variable.
    @Test(arguments: shipped.filter { $0.hasPrefix("examples/") })
    func examplesShipNoSecret(relativePath: String) {
        let path = Self.root.appendingPathComponent(relativePath).path
        do {
            _ = try ConfigLoader.load(file: path, environment: [:])
            Issue.record("\(relativePath) loaded without its secrets")
        } catch {
            #expect(error.description.contains("environment variable BC_PASSWORD is not set"), "\(error.description)")
        }
    }
}
