import Foundation
import Sandbox
import Testing

@testable import PayBridge

/// Every format delivered over HTTP by the real binary, and judged by the receivers' own
/// parsers (cloudevents 2.x, slack_sdk, the Adaptive Card 1.4 schema, standardwebhooks).
@Suite(.serialized) struct FormatDeliveryTests {
    /// Writes captured requests as the Python checkers read them.
    static func capture(_ requests: [TestReceiver.Received], in directory: TemporaryDirectory, _ name: String, extra: [String: Any] = [:]) throws -> String {
        let file = directory.file(name)
        let items = requests.map { ["headers": $0.headers, "body": String(decoding: $0.body, as: UTF8.self)] as [String: Any] }
        let document: Any = extra.isEmpty ? items : extra.merging(["deliveries": items]) { $1 }
        try JSONSerialization.data(withJSONObject: document).write(to: URL(fileURLWithPath: file))
        return file
    }

    /// `python3 Fixtures/check_formats.py KIND FILE`.
    static func check(_ kind: String, _ file: String) async throws -> Binary.Output {
        try await RequestSigningTests.python(["Tests/PayBridgeTests/Fixtures/check_formats.py", kind, file])
    }

    @Test func eachFormatPassesItsReceiversParser() async throws {
        let harness = try await Harness.start()
        let receivers = try await (0..<4).asyncMap { _ in try await TestReceiver.start() }
        let ids = harness.createPayments(2)
        let endpoints = """
              structured:
                url: \(receivers[0].url)
                secret: \(Fixtures.secret)
                format: cloudevents
              binary:
                url: \(receivers[1].url)
                secret: \(Fixtures.secret)
                format: cloudevents
                mode: binary
                source: /erp/bridge
              slack:
                url: \(receivers[2].url)
                secret: \(Fixtures.secret)
                format: slack
                link: "https://erp.example/payments/{{data.paymentId}}"
                redact: [iban, names, remittance]
              teams:
                url: \(receivers[3].url)
                format: teams
            """
        let path = try harness.directory.write("pb.yaml", Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: endpoints))
        let baseline = try await Binary.run(["poll", "--once", "--config", path])
        #expect(baseline.status == 0, "\(baseline.stderr)")
        harness.bank.bank.setStatus(ids[0], "Rejected")
        harness.bank.bank.setStatus(ids[1], "MissingFunding")
        let changed = try await Binary.run(["poll", "--once", "--config", path])
        #expect(changed.status == 0, "\(changed.stderr)")
        for receiver in receivers { #expect(receiver.requests.count == 2) }

        // CloudEvents, both modes.
        let events = try await Self.check("cloudevents", try Self.capture(receivers[0].requests + receivers[1].requests, in: harness.directory, "ce.json"))
        #expect(events.status == 0, "\(events.stdout)\(events.stderr)")
        let parsed = (try? JSONSerialization.jsonObject(with: Data(events.stdout.utf8))) as? [String: Any]
        let attributes = (parsed?["requests"] as? [[String: Any]]) ?? []
        #expect(attributes.count == 4)
        #expect(Set(attributes.compactMap { $0["subject"] as? String }) == Set(ids))
        #expect(attributes.compactMap { $0["source"] as? String }.sorted() == ["/erp/bridge", "/erp/bridge", "/paybridge/recent", "/paybridge/recent"])
        #expect(Set(attributes.compactMap { $0["id"] as? String }) == Set(receivers[0].requests.map(\.webhookId)), "id is the event id")
        #expect(receivers[0].requests.allSatisfy { $0.headers["content-type"] == "application/cloudevents+json" })
        #expect(receivers[1].requests.allSatisfy { $0.headers["ce-type"] == "payment.status_changed" })

        // Slack: its SDK's parser, no full IBAN or name, and a signature that verifies.
        let slack = try await Self.check("slack", try Self.capture(receivers[2].requests, in: harness.directory, "slack.json"))
        #expect(slack.status == 0, "\(slack.stdout)\(slack.stderr)")
        for request in receivers[2].requests {
            let body = String(decoding: request.body, as: UTF8.self)
            #expect(body.firstMatch(of: /DK50[0-9]{14}/) == nil && body.firstMatch(of: /DE89[0-9]{18}/) == nil, "an IBAN reached Slack: \(body)")
            #expect(!body.contains("Müller"))
            #expect(body.contains("https://erp.example/payments/"))
        }
        let bodies = receivers[2].requests.map { String(decoding: $0.body, as: UTF8.self) }
        #expect(bodies.contains { $0.contains("AC04 Closed account number") }, "the bank's rejection reason is shown")
        #expect(bodies.contains { $0.contains("AM04") })
        let signed = try Self.capture(receivers[2].requests, in: harness.directory, "signed.json", extra: ["secret": Fixtures.secret])
        let verified = try await RequestSigningTests.python(["Tests/PayBridgeTests/Fixtures/verify_standard_webhooks.py", signed])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")

        // Teams: the Adaptive Card 1.4 schema.
        let teams = try await Self.check("teams", try Self.capture(receivers[3].requests, in: harness.directory, "teams.json"))
        #expect(teams.status == 0, "\(teams.stdout)\(teams.stderr)")
        #expect(receivers[3].requests.allSatisfy { $0.headers["webhook-signature"] == nil }, "no secret: unsigned")

        for receiver in receivers { await receiver.stop() }
        await harness.stop()
    }

    @Test func routesTestSaysWhereAnEventGoesAndWhy() async throws {
        let directory = try TemporaryDirectory()
        let config = """
            source:
              apiURL: http://127.0.0.1:9
              username: u
              password: p
              watches:
                - name: failures
            endpoints:
              erp: { url: "http://127.0.0.1:9/erp" }
              alerts: { url: "http://127.0.0.1:9/alerts", format: slack, group: { by: [status] } }
              big: { url: "http://127.0.0.1:9/big" }
            routes:
              - to: [erp]
              - when: { status: [Rejected, MissingFunding] }
                to: [alerts]
                routes:
                  - when: { amount: { gte: 10000 } }
                    to: [big]
                    continue: true
                  - to: [alerts]
            """
        let path = try directory.write("pb.yaml", config)
        let payment = String(decoding: PipelineTests.paymentBytes, as: UTF8.self)
        let event = try directory.write("rejected.json", String(decoding: PipelineTests.rejectedEvent().body, as: UTF8.self))
        // Like every command, it takes the logging options after the subcommand.
        let text = try await Binary.run(["routes", "test", "--config", path, event, "--log-level", "debug", "--log-format", "json"])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("payment.status_changed Rejected from PendingProcessing reaches 2 endpoints:"), "\(text.stdout)")
        #expect(text.stdout.contains("  erp\tvia routes[0]\t(format standard)"))
        #expect(text.stdout.contains("  alerts\tvia routes[1].routes[1]\t(format slack, grouped by status)"))

        let json = try await Binary.run(["routes", "test", "--config", path, event, "--json"])
        let document = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let endpoints = try #require(document["endpoints"] as? [[String: Any]])
        #expect(endpoints.map { $0["endpoint"] as? String } == ["erp", "alerts"])
        #expect(endpoints.map { $0["route"] as? String } == ["routes[0]", "routes[1].routes[1]"])
        #expect((document["event"] as? [String: Any])?["status"] as? String == "Rejected")

        let big = try directory.write(
            "big.json",
            String(decoding: PipelineTests.rejectedEvent(payment: Array(payment.replacingOccurrences(of: "1234.50", with: "25000.00").utf8)).body, as: UTF8.self))
        let bigOutput = try await Binary.run(["routes", "test", "--config", path, big, "--json"])
        let bigEndpoints = ((try? JSONSerialization.jsonObject(with: Data(bigOutput.stdout.utf8))) as? [String: Any])?["endpoints"] as? [[String: Any]]
        #expect(bigEndpoints?.map { $0["endpoint"] as? String } == ["erp", "big", "alerts"], "\(bigOutput.stdout)")

        let processed = try directory.write(
            "processed.json", String(decoding: PipelineTests.rejectedEvent().body, as: UTF8.self).replacingOccurrences(of: "\"status\":\"Rejected\",\"previousStatus\"", with: "\"status\":\"Processed\",\"previousStatus\""))
        let only = try await Binary.run(["routes", "test", "--config", path, processed])
        #expect(only.stdout.contains("reaches 1 endpoint:"), "\(only.stdout)")

        // An endpoint.disabled never goes to the endpoint it is about, as in `run`: about erp
        // (which only routes[0] reaches), it goes nowhere; about big, it still reaches erp.
        let disabled = try directory.write(
            "disabled.json", #"{"type":"endpoint.disabled","timestamp":"2026-12-07T10:00:00Z","data":{"endpoint":"erp","reason":"410"}}"#)
        let notToItself = try await Binary.run(["routes", "test", "--config", path, disabled])
        #expect(notToItself.status == 0, "\(notToItself.stderr)")
        #expect(notToItself.stdout.contains("endpoint.disabled: routes reach only erp, and erp is left out"), "\(notToItself.stdout)")
        let aboutBig = try directory.write("big-disabled.json", String(decoding: try Data(contentsOf: URL(fileURLWithPath: disabled)), as: UTF8.self).replacingOccurrences(of: #""endpoint":"erp""#, with: #""endpoint":"big""#))
        let toOthers = try await Binary.run(["routes", "test", "--config", path, aboutBig])
        #expect(toOthers.stdout.contains("reaches 1 endpoint:") && toOthers.stdout.contains("  erp\tvia routes[0]"), "\(toOthers.stdout)")

        let notJSON = try directory.write("bad.json", "{nope")
        let bad = try await Binary.run(["routes", "test", "--config", path, notJSON])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("is not JSON"))
    }
}

extension Sequence where Element: Sendable {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
