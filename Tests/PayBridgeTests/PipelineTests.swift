import Foundation
import Testing

@testable import PayBridge

/// The event pipeline's pure parts: filters compiled from YAML, redaction, every format's
/// body (golden files, reviewed once by eye, then asserted), group messages.
@Suite struct PipelineTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/golden")
    /// The payment object's bytes, as the page scanner hands them over (no trailing newline).
    static var paymentBytes: [UInt8] {
        let text = (try? String(contentsOf: fixtures.appendingPathComponent("payment-rejected.json"), encoding: .utf8)) ?? ""
        return Array(text.trimmingCharacters(in: .whitespacesAndNewlines).utf8)
    }

    /// The fixture payment's Rejected event, at a fixed time.
    static func rejectedEvent(payment: [UInt8] = paymentBytes) -> Event {
        Event.payment(
            type: .paymentStatusChanged, paymentId: "0b9f6a52-3c1e-4d8a-9f0e-2a7d5c1b8e44", status: "Rejected",
            previousStatus: "PendingProcessing", watch: "failures", sequence: 2, createdAt: Date(timeIntervalSince1970: 1_795_341_600.123),
            payment: payment[...])
    }

    /// Routes of a config with endpoints a, b, c and the given route list (YAML).
    static func routes(_ yaml: String, environment: [String: String] = [:]) throws(ConfigurationError) -> Configuration {
        let text = """
            source:
              apiURL: http://127.0.0.1:9
              username: u
              password: p
              watches:
                - name: failures
                  query: { Status: [Rejected] }
            endpoints:
              a: { url: "http://127.0.0.1:9/a" }
              b: { url: "http://127.0.0.1:9/b" }
              c: { url: "http://127.0.0.1:9/c" }
            routes:
            \(yaml)
            """
        return try ConfigLoader.load(text: text, file: "pb.yaml", baseDirectory: "/tmp", environment: environment).configuration
    }

    func reached(_ yaml: String, by event: Event = rejectedEvent(), payment: [UInt8] = paymentBytes) throws -> [String] {
        let configuration = try Self.routes(yaml)
        return Pipeline(configuration).entry(for: event, payment: payment[...]).deliveries.map(\.endpoint)
    }

    /// A route to `a` with `when` as given (a flow mapping).
    func matches(_ when: String) throws -> Bool {
        try reached("  - when: \(when)\n    to: [a]") == ["a"]
    }

    // MARK: Filters

    @Test(arguments: [
        ("{ path: \"$.transfer.amount.amount\", gt: 999.99 }", true),
        ("{ path: \"$.transfer.amount.amount\", gt: 1234.50 }", false),
        ("{ path: \"$.transfer.amount.amount\", gte: 1234.5 }", true),
        ("{ path: \"$.transfer.amount.amount\", lt: 1234.51 }", true),
        ("{ path: \"$.transfer.amount.amount\", lte: 1234.49 }", false),
        ("{ path: \"$.transfer.amount.amount\", eq: 1234.5 }", true),
        ("{ path: \"$.transfer.amount.amount\", eq: 1234.500 }", true),
        ("{ path: \"$.transfer.amount.amount\", ne: 1234.50 }", false),
        ("{ path: \"$.transfer.amount.currency\", eq: EUR }", true),
        ("{ path: \"$.transfer.amount.currency\", in: [DKK, EUR] }", true),
        ("{ path: \"$.transfer.amount.currency\", in: [DKK, SEK] }", false),
        ("{ path: \"$.transfer.creditorName\", regex: \"^M\" }", true),
        ("{ path: \"$.transfer.creditorName\", regex: \"GmbH\" }", true),
        ("{ path: \"$.transfer.creditorName\", regex: \"^GmbH\" }", false),
        ("{ path: \"$.errors[0].errorCode\", eq: AC04 }", true),
        ("{ path: \"$.errors[1].errorCode\", exists: true }", false),
        ("{ path: \"$.creditorInformation\", exists: true }", false),
        ("{ path: \"$.creditorInformation\", exists: false }", true),
        ("{ path: \"$.statusReasons\", exists: true }", true),
        ("{ path: \"$.booked\", eq: false }", true),
        ("{ path: \"$.subClassification\", eq: null }", true),
        ("{ path: \"$.lastChangedTimestamp\", gte: \"2026-11-22\" }", true),
        ("{ path: \"$.nowhere\", ne: x }", true),
    ])
    func pathConditions(when: String, expected: Bool) throws {
        #expect(try matches(when) == expected, "\(when)")
    }

    @Test func numbersCompareAsDecimals() throws {
        var payment = String(decoding: Self.paymentBytes, as: UTF8.self)
        payment = payment.replacingOccurrences(of: "\"amount\":1234.50", with: "\"amount\":13.00")
        let event = Self.rejectedEvent(payment: Array(payment.utf8))
        #expect(try reached("  - when: { amount: 13 }\n    to: [a]", by: event, payment: Array(payment.utf8)) == ["a"])
        #expect(try reached("  - when: { path: \"$.transfer.amount.amount\", eq: \"13\" }\n    to: [a]", by: event, payment: Array(payment.utf8)) == ["a"])
        #expect(try reached("  - when: { amount: 13.01 }\n    to: [a]", by: event, payment: Array(payment.utf8)).isEmpty)
    }

    @Test(arguments: [
        ("{ currency: [EUR] }", true), ("{ currency: [DKK] }", false),
        ("{ amount: { gte: 1000, lt: 5000 } }", true), ("{ amount: { gte: 5000 } }", false),
        ("{ classification: [Outgoing] }", true), ("{ classification: [Incoming] }", false),
        ("{ accountId: [5a1e6c3d-8f2b-4e9a-b7c1-0d4f2e6a9b13] }", true), ("{ accountId: [nobody] }", false),
        ("{ debtorReference: [INV-482913] }", true),
        ("{ status: [Rejected], currency: [EUR] }", true), ("{ status: [Rejected], currency: [DKK] }", false),
        ("{ previousStatus: [PendingProcessing], watch: [failures], type: [payment.status_changed] }", true),
    ])
    func shorthandKeys(when: String, expected: Bool) throws {
        #expect(try matches(when) == expected, "\(when)")
    }

    @Test func theCurrencyFallsBackToTheTransferAmount() throws {
        var payment = String(decoding: Self.paymentBytes, as: UTF8.self)
        payment = payment.replacingOccurrences(of: "\"debitAmount\":{\"currency\":\"EUR\",\"amount\":1234.50}", with: "\"debitAmount\":null")
        payment = payment.replacingOccurrences(of: "\"amount\":{\"currency\":\"EUR\",\"amount\":1234.50}", with: "\"amount\":{\"currency\":\"SEK\",\"amount\":99}")
        let bytes = Array(payment.utf8)
        #expect(try reached("  - when: { currency: [SEK], amount: 99 }\n    to: [a]", by: Self.rejectedEvent(payment: bytes), payment: bytes) == ["a"])
    }

    @Test(arguments: [
        ("{ all: [{ currency: [EUR] }, { amount: { gt: 1000 } }] }", true),
        ("{ all: [{ currency: [EUR] }, { amount: { gt: 5000 } }] }", false),
        ("{ any: [{ currency: [DKK] }, { path: \"$.errors[0].errorCode\", eq: AC04 }] }", true),
        ("{ any: [{ currency: [DKK] }, { currency: [SEK] }] }", false),
        ("{ not: { currency: [DKK] } }", true),
        ("{ not: { any: [{ status: [Rejected] }, { currency: [DKK] }] } }", false),
        ("{ status: [Rejected], not: { amount: { lt: 100 } } }", true),
    ])
    func combinators(when: String, expected: Bool) throws {
        #expect(try matches(when) == expected, "\(when)")
    }

    @Test func nestedRoutesFirstMatchWinsUnlessContinue() throws {
        let tree = """
              - to: [a]
                routes:
                  - when: { currency: [EUR] }
                    to: [b]
                  - when: { status: [Rejected] }
                    to: [c]
            """
        #expect(try reached(tree) == ["b"])
        #expect(try reached(tree.replacingOccurrences(of: "to: [b]", with: "to: [b]\n        continue: true")) == ["b", "c"])
        #expect(try reached(tree.replacingOccurrences(of: "[EUR]", with: "[DKK]")) == ["c"])
        let noChild = tree.replacingOccurrences(of: "[EUR]", with: "[DKK]").replacingOccurrences(of: "[Rejected]", with: "[Processed]")
        #expect(try reached(noChild) == ["a"])
        let matches = RouteTable(routes: try Self.routes(tree).routes).matches(
            for: Self.rejectedEvent().routable, payment: PaymentView(Self.paymentBytes))
        #expect(matches.map(\.route) == ["routes[0].routes[0]"])
    }

    @Test func routesThatNeverLookInsideThePaymentNeverParseIt() throws {
        #expect(!RouteTable(routes: try Self.routes("  - when: { status: [Rejected] }\n    to: [a]").routes).needsPayment)
        #expect(RouteTable(routes: try Self.routes("  - when: { currency: [EUR] }\n    to: [a]").routes).needsPayment)
        // An unparsable payment fails payment conditions, never the route table.
        #expect(try reached("  - when: { currency: [EUR] }\n    to: [a]", payment: Array("not json".utf8)).isEmpty)
        #expect(try reached("  - when: { status: [Rejected] }\n    to: [a]", payment: Array("not json".utf8)) == ["a"])
    }

    /// Each bad condition, the text its error points at, and the message.
    @Test(arguments: [
        ("{ path: \"$.a\", gt: 1, lt: 5 }", "lt", "routes[0].when: one operator per condition, found gt and lt"),
        ("{ path: \"$.a\", between: 1 }", "between", "unknown key 'between' in routes[0].when"),
        ("{ path: \"$.a\" }", "path", "routes[0].when.path needs one operator beside it"),
        ("{ gt: 5 }", "gt", "routes[0].when.gt needs a 'path' beside it"),
        ("{ path: \"$.a\", regex: \"(unclosed\" }", "\"(unclosed", "routes[0].when.regex: the regular expression does not compile"),
        ("{ path: \"transfer.amount\", eq: 1 }", "\"transfer", "routes[0].when.path: 'transfer.amount' is not a JSON path"),
        ("{ path: \"$.a..b\", eq: 1 }", "\"$.a..b", "routes[0].when.path: '$.a..b' is not a JSON path"),
        ("{ amount: { above: 5 } }", "above", "unknown key 'above' in routes[0].when.amount"),
        ("{ all: [{ path: \"$.a\", in: 5 }] }", "5 }", "routes[0].when.all[0].in must be a list of values"),
        ("{ path: \"$.a\", exists: maybe }", "maybe", "routes[0].when.exists must be true or false"),
        ("{ amount: { gte: abc } }", "abc", "routes[0].when.amount.gte: 'abc' is not a number"),
        ("{ amount: { in: [10, ten] } }", "[10", "routes[0].when.amount.in: 'ten' is not a number"),
        ("{ amount: lots }", "lots", "routes[0].when.amount: 'lots' is not a number"),
    ])
    func badConditionsAreErrorsAtTheirPlace(when: String, at token: String, message: String) throws {
        let line = "  - when: \(when)"
        let column = try #require(line.range(of: token)).lowerBound.utf16Offset(in: line) + 1
        do {
            _ = try Self.routes(line + "\n    to: [a]")
            Issue.record("expected an error for \(when)")
        } catch {
            #expect(error.description.contains("pb.yaml:13:\(column): \(message)"), "\(error.description)")
        }
    }

    @Test func misspeltStatusesAndQueryParametersAreWarnedAbout() throws {
        let text = """
            source:
              apiURL: http://127.0.0.1:9
              username: u
              password: p
              watches:
                - name: w
                  query: { InstuctedDateFrom: -3d, Status: [rejected] }
            endpoints:
              a: { url: "http://127.0.0.1:9/a" }
            routes:
              - when: { status: [rejected, SomethingNew] }
                to: [a]
            """
        let loaded = try ConfigLoader.load(text: text, file: "pb.yaml", baseDirectory: "/tmp")
        let warnings = loaded.warnings.map(\.description)
        #expect(warnings.contains { $0.contains("pb.yaml:7:16: warning: source.watches[0].query: 'InstuctedDateFrom' is not a Banking Circle query parameter paybridge knows; did you mean 'InstructedDateFrom'?") }, "\(warnings)")
        #expect(warnings.contains { $0.contains("'rejected' is not a status paybridge knows; did you mean 'Rejected'?") })
        #expect(warnings.contains { $0.contains("pb.yaml:11:21: warning: routes[0].when.status: 'rejected'") }, "\(warnings)")
        #expect(warnings.contains { $0.contains("'SomethingNew' is not a status") })
        // Still accepted: the bank may send a status paybridge has not seen.
        #expect(loaded.configuration.routes.count == 1)
    }

    // MARK: Redaction

    @Test func redactionMasksIBANsNamesAndRemittanceForThatEndpointOnly() throws {
        let configuration = try Self.routes("  - to: [a, b]").withEndpoint(
            "b", format: EventFormat(redaction: Redaction(iban: true, names: true, remittance: true, paths: [JSONPath("$.debtorInformation.accountId")!])))
        let entry = Pipeline(configuration).entry(for: Self.rejectedEvent(), payment: Self.paymentBytes[...])
        #expect(entry.deliveries.map(\.endpoint) == ["a", "b"])
        #expect(entry.deliveries[0].rendering == nil, "a gets the stored bytes")
        let index = try #require(entry.deliveries[1].rendering)
        let body = String(decoding: entry.renderings[index].body, as: UTF8.self)
        for full in ["DK5000400440116453", "DE89370400440532013000", "Müller", "Paybridge Demo", "Invoice INV-482913", "5a1e6c3d-8f2b-4e9a-b7c1-0d4f2e6a9b13"] {
            #expect(!body.contains(full), "\(full) is still in \(body)")
        }
        #expect(body.contains("\"account\":\"DK50 **** **** 6453\""))
        #expect(body.contains("\"account\":\"DE89 **** **** 3000\""))
        #expect(body.contains("\"creditorName\":\"M***\""))
        #expect(body.contains("\"line1\":\"***\",\"line2\":null"))
        #expect(body.contains("\"accountId\":null"))
        #expect(body.contains("\"amount\":1234.50"), "numbers keep the bank's text")
        // The stored event keeps the bank's bytes.
        #expect(String(decoding: entry.event.body, as: UTF8.self).contains("DK5000400440116453"))
    }

    @Test func ibansAreFoundInsideTextToo() {
        #expect(Redaction.maskIBANs("paid from DK50 0040 0440 1164 53 today") == "paid from DK50 **** **** 6453 today")
        #expect(Redaction.maskIBANs("GB82WEST12345698765432") == "GB82 **** **** 5432")
        #expect(Redaction.maskIBANs("INV-482913 and AB12 short") == "INV-482913 and AB12 short")
    }

    @Test func endpointsWithTheSameFormatShareOneRendering() throws {
        let slack = EventFormat(kind: .slack)
        let configuration = try Self.routes("  - to: [a, b, c]").withEndpoint("a", format: slack).withEndpoint("b", format: slack)
        let entry = Pipeline(configuration).entry(for: Self.rejectedEvent(), payment: Self.paymentBytes[...])
        #expect(entry.renderings.count == 1)
        #expect(entry.deliveries.map(\.rendering) == [0, 0, nil])
    }

    // MARK: Formats

    /// Renders the fixture event in `format`; compares with (or, with PAYBRIDGE_RECORD_GOLDEN=1,
    /// writes) the golden file `name`.
    func golden(_ name: String, _ format: EventFormat, event: Event = rejectedEvent()) throws -> Rendering {
        let rendering = format.render(try EventDocument(id: event.id, standardBody: event.body))
        let file = Self.fixtures.appendingPathComponent(name)
        if ProcessInfo.processInfo.environment["PAYBRIDGE_RECORD_GOLDEN"] == "1" {
            try Data(rendering.body).write(to: file)
        }
        let expected = try String(contentsOf: file, encoding: .utf8)
        #expect(String(decoding: rendering.body, as: UTF8.self) == expected, "\(name) differs from its golden file")
        return rendering
    }

    @Test func theStandardFormatIsTheStoredBodyUnchanged() throws {
        let event = Self.rejectedEvent()
        let rendering = EventFormat.standard.render(try EventDocument(id: event.id, standardBody: event.body))
        #expect(rendering.body == event.body, "rebuilt from the tree, byte for byte")
        #expect(EventFormat.standard.sendsStoredBody)
    }

    @Test func cloudEventsStructuredAndBinary() throws {
        let structured = try golden("cloudevents-structured.json", EventFormat(kind: .cloudevents))
        #expect(structured.contentType == "application/cloudevents+json")
        let binary = try golden("cloudevents-binary.json", EventFormat(kind: .cloudevents, cloudEventsMode: .binary, cloudEventsSource: "/erp/bridge"))
        #expect(binary.contentType == "application/json")
        #expect(binary.headers.map(\.name) == ["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-subject", "ce-time"])
        #expect(binary.headers.first { $0.name == "ce-source" }?.value == "/erp/bridge")
    }

    @Test func slackShowsTheFactsAndTheBanksReasons() throws {
        let link = try EventTemplate("https://erp.example/payments/{{data.paymentId}}")
        let rendering = try golden("slack.json", EventFormat(kind: .slack, link: link))
        let body = String(decoding: rendering.body, as: UTF8.self)
        #expect(body.contains("AC04 Closed account number"))
        #expect(body.contains("Müller &amp; Söhne &lt;GmbH&gt;"), "mrkdwn escaped")
        #expect(body.contains("\"url\":\"https://erp.example/payments/0b9f6a52-3c1e-4d8a-9f0e-2a7d5c1b8e44\""))
    }

    @Test func teamsCarriesAnAdaptiveCard14() throws {
        let rendering = try golden("teams.json", EventFormat(kind: .teams))
        let body = String(decoding: rendering.body, as: UTF8.self)
        #expect(body.contains("\"version\":\"1.4\""))
        #expect(body.contains("Rejection reasons: AC04 Closed account number"))
        #expect(rendering.body.count < TeamsFormat.sizeLimit)
    }

    /// The bank's reasons as plain text are shown too; pages of them keep a Teams card under
    /// 28 KB (the last ones counted), alone or first in a group.
    @Test func manyLongReasonsStayWithinTeamsLimits() throws {
        let long = String(repeating: "the creditor's bank refused the transfer; ", count: 20)
        let reasons = (0..<120).map { #"{"code":"R\#($0)","description":"\#(long)"}"# } + [#""AC04 Closed account number""#]
        let payment = String(decoding: Self.paymentBytes, as: UTF8.self).replacingOccurrences(
            of: #""statusReasons":[{"code":"AC04","description":"Closed account number"}]"#, with: #""statusReasons":["# + reasons.joined(separator: ",") + "]")
        let event = Self.rejectedEvent(payment: Array(payment.utf8))
        let document = try EventDocument(id: event.id, standardBody: event.body)
        let plain = try EventDocument(id: event.id, standardBody: Self.rejectedEvent(payment: Array(String(decoding: Self.paymentBytes, as: UTF8.self)
            .replacingOccurrences(of: #"{"code":"AC04","description":"Closed account number"}"#, with: #""Insufficient funds""#).utf8)).body)
        for kind in [EventFormat.Kind.slack, .teams] {
            #expect(String(decoding: EventFormat(kind: kind).render(plain).body, as: UTF8.self).contains("Insufficient funds"), "\(kind)")
        }
        let card = EventFormat(kind: .teams).render(document)
        #expect(card.body.count < TeamsFormat.sizeLimit, "\(card.body.count) bytes")
        let text = String(decoding: card.body, as: UTF8.self)
        #expect(text.contains("Rejection reasons: R0 the creditor"))
        #expect(text.contains(" more\""), "the reasons left out are counted")

        var group = Self.members(30)
        let first = Event.payment(
            type: .paymentStatusChanged, paymentId: "payment-0", status: "Rejected", previousStatus: "PendingProcessing", watch: "failures",
            sequence: 2, createdAt: Date(timeIntervalSince1970: 1_795_341_600), payment: Array(payment.utf8)[...])
        group.members[0] = PendingGroup.Member(eventRow: 1, eventId: first.id, body: first.body)
        let message = GroupMessage.event(for: group, max: 30, at: Date(timeIntervalSince1970: 1_795_341_630))
        let teams = EventFormat(kind: .teams).render(try EventDocument(id: message.id, standardBody: message.body))
        #expect(teams.body.count < TeamsFormat.sizeLimit)
        let groupText = String(decoding: teams.body, as: UTF8.self)
        #expect(groupText.contains("payment-0: "), "the first payment is listed, clipped")
        #expect(groupText.contains("payment-29: "), "and the others still fit")
    }

    @Test func templatesRenderTheBanksNumbersAndEscapeForJSON() throws {
        let template = try EventTemplate(
            #"{"id":"{{id}}","amount":"{{data.payment.transfer.amount.amount}}","line":"{{data.payment.transfer.remittanceInformation.line1}}","who":"{{data.payment.transfer.creditorName}}","prev":"{{data.previousStatus}}"{{#data.payment.creditorInformation}},"has":true{{/data.payment.creditorInformation}}}"#)
        let rendering = try golden("template.json", EventFormat(kind: .template, template: template))
        let object = try JSONSerialization.jsonObject(with: Data(rendering.body)) as? [String: Any]
        #expect(object?["amount"] as? String == "1234.50")
        #expect(object?["line"] as? String == "Invoice INV-482913 \"Q4\"")
        #expect(object?["who"] as? String == "Müller & Söhne <GmbH>", "JSON escaping, not HTML")
        #expect(object?["has"] == nil, "null is false in a section")
        let text = EventFormat(kind: .template, template: try EventTemplate("{{data.payment.transfer.creditorName}}"), templateContentType: "text/plain")
        #expect(String(decoding: text.render(try EventDocument(id: "e", standardBody: Self.rejectedEvent().body)).body, as: UTF8.self) == "Müller & Söhne <GmbH>")
    }

    /// A list or an object in `{{…}}` is its JSON text (not a Swift type's name); sections still
    /// iterate lists and look into objects.
    @Test func templatesRenderListsAndObjectsAsJSON() throws {
        let body = #"{"type":"payment.status_changed","timestamp":"2026-12-07T10:00:00Z","data":{"list":[1,"a"],"obj":{"k":"v","n":2.50}}}"#
        let document = try EventDocument(id: "e", standardBody: Array(body.utf8))
        let text = EventFormat(
            kind: .template, template: try EventTemplate("{{data.list}}|{{#data.list}}<{{.}}>{{/data.list}}|{{{data.obj}}}|{{#data.obj}}{{k}}{{/data.obj}}"),
            templateContentType: "text/plain")
        #expect(String(decoding: text.render(document).body, as: UTF8.self) == #"[1,"a"]|<1><a>|{"k":"v","n":2.50}|v"#)
        // Transforms and sections as swift-mustache gives them to arrays and dictionaries.
        let transforms = EventFormat(
            kind: .template,
            template: try EventTemplate(
                "{{count(data.list)}} {{count(data.obj)}} {{#first(data.list)}}{{.}}{{/first(data.list)}} {{^empty(data.list)}}some{{/empty(data.list)}}"
                    + " {{^empty(data.none)}}none{{/empty(data.none)}}{{#data.none}}x{{/data.none}}{{^data.none}}[]{{/data.none}}"),
            templateContentType: "text/plain")
        let withEmpty = try EventDocument(id: "e", standardBody: Array(body.replacingOccurrences(of: #""obj""#, with: #""none":[],"obj""#).utf8))
        #expect(String(decoding: transforms.render(withEmpty).body, as: UTF8.self) == "2 2 1 some []")
        let json = EventFormat(kind: .template, template: try EventTemplate(#"{"obj":"{{data.obj}}"}"#))
        let object = try JSONSerialization.jsonObject(with: Data(json.render(document).body)) as? [String: Any]
        #expect(object?["obj"] as? String == #"{"k":"v","n":2.50}"#, "escaped inside a JSON string")
    }

    @Test func aTemplateThatDoesNotParseSaysWhere() {
        #expect(throws: EventTemplate.ParseError.self) { try EventTemplate("line one\n{{#open}}never closed") }
        do {
            _ = try EventTemplate("line one\nsecond {{#open}} and {{/shut}}")
        } catch {
            #expect(error.line == 2, "\(error)")
            #expect(error.description.contains("does not parse"))
        }
    }

    // MARK: Groups

    static func members(_ count: Int) -> PendingGroup {
        let members = (0..<count).map { index -> PendingGroup.Member in
            var payment = String(decoding: paymentBytes, as: UTF8.self)
            payment = payment.replacingOccurrences(of: "0b9f6a52-3c1e-4d8a-9f0e-2a7d5c1b8e44", with: "payment-\(index)")
            if index % 2 == 1 {
                payment = payment.replacingOccurrences(of: "\"currency\":\"EUR\",\"amount\":1234.50", with: "\"currency\":\"DKK\",\"amount\":10.25")
            }
            let event = Event.payment(
                type: .paymentStatusChanged, paymentId: "payment-\(index)", status: "Rejected", previousStatus: "PendingProcessing",
                watch: "failures", sequence: 2, createdAt: Date(timeIntervalSince1970: 1_795_341_600), payment: Array(payment.utf8)[...])
            return PendingGroup.Member(eventRow: Int64(index + 1), eventId: event.id, body: event.body)
        }
        return PendingGroup(endpoint: "alerts", key: #"{"status":"Rejected"}"#, sequence: 0, members: members)
    }

    @Test func aGroupMessageCountsTotalsAndTruncates() throws {
        let message = GroupMessage.event(for: Self.members(60), max: 10, at: Date(timeIntervalSince1970: 1_795_341_630))
        #expect(message.id.hasPrefix("grp_"))
        #expect(message.id == GroupMessage.event(for: Self.members(60), max: 10, at: Date()).id, "the id is stable")
        let document = try EventDocument(id: message.id, standardBody: message.body)
        #expect(document.type == "payment.group")
        #expect(document.data["count"] == .number("60"))
        #expect(document.data["truncated"] == .number("50"))
        #expect(document.data["group"] == .object([("status", .string("Rejected"))]))
        #expect(document.data["totals"] == .array([
            .object([("currency", .string("EUR")), ("amount", .string("37035.00"))]),
            .object([("currency", .string("DKK")), ("amount", .string("307.50"))]),
        ]))
        if case .array(let events)? = document.data["events"] { #expect(events.count == 10) } else { Issue.record("no events") }
    }

    @Test func slackAndTeamsRenderAGroupOf60WithinTheirLimits() throws {
        let message = GroupMessage.event(for: Self.members(60), max: 60, at: Date(timeIntervalSince1970: 1_795_341_630))
        let document = try EventDocument(id: message.id, standardBody: message.body)
        let slack = EventFormat(kind: .slack).render(document)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(slack.body)) as? [String: Any])
        let blocks = try #require(object["blocks"] as? [[String: Any]])
        #expect(blocks.count <= 50)
        #expect((object["text"] as? String) == "60 payments Rejected")
        let teams = EventFormat(kind: .teams).render(document)
        #expect(teams.body.count < TeamsFormat.sizeLimit)
        #expect(String(decoding: teams.body, as: UTF8.self).contains("60 payments Rejected"))
    }
}

extension Configuration {
    /// The same configuration with endpoint `name`'s format replaced.
    func withEndpoint(_ name: String, format: EventFormat) -> Configuration {
        var copy = self
        if let index = copy.endpoints.firstIndex(where: { $0.name == name }) { copy.endpoints[index].format = format }
        return copy
    }
}
