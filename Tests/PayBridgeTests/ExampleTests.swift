import Foundation
import Testing

@testable import PayBridge

/// The shipped examples do what their comments say: each loads (`ConfigTests`), and the
/// event of a rejected payment renders in each as its receiver expects.
@Suite struct ExampleTests {
    static func rendering(_ example: String, event: Event = PipelineTests.rejectedEvent()) throws -> (endpoint: String, body: [String: Any], raw: [UInt8])? {
        let path = ConfigTests.root.appendingPathComponent("examples/\(example)").path
        let configuration = try ConfigLoader.load(file: path, environment: ConfigTests.exampleEnvironment).configuration
        let entry = Pipeline(configuration).entry(for: event, payment: PipelineTests.paymentBytes[...])
        guard let delivery = entry.deliveries.first(where: { $0.rendering != nil }), let index = delivery.rendering else { return nil }
        let raw = entry.renderings[index].body
        let body = try #require(try JSONSerialization.jsonObject(with: Data(raw)) as? [String: Any], "\(example) renders JSON")
        return (delivery.endpoint, body, raw)
    }

    @Test func pagerDutyGetsAnEventsV2Trigger() throws {
        let (endpoint, body, _) = try #require(try Self.rendering("pagerduty.yaml"))
        #expect(endpoint == "pagerduty")
        #expect(body["routing_key"] as? String == "R0UTINGKEY", "read from the environment")
        #expect(body["event_action"] as? String == "trigger")
        #expect(body["dedup_key"] as? String == PipelineTests.rejectedEvent().id)
        let payload = try #require(body["payload"] as? [String: Any])
        let summary = try #require(payload["summary"] as? String)
        #expect(summary == "Payment 0b9f6a52-3c1e-4d8a-9f0e-2a7d5c1b8e44 Rejected (was PendingProcessing): 1234.50 EUR")
        #expect(summary.count <= 1024)
        #expect(["critical", "error", "warning", "info"].contains(payload["severity"] as? String ?? ""))
        #expect(payload["source"] as? String == "paybridge/failures")
        #expect(payload["timestamp"] as? String == "2026-11-22T10:00:00.123Z")
        let details = try #require(payload["custom_details"] as? [String: Any])
        #expect(details["reasons"] as? String == "AC04 Closed account number. ")
        #expect(details["creditor"] as? String == "Müller & Söhne <GmbH>")
    }

    @Test func opsgenieGetsAnAlertWithinItsLimits() throws {
        let (_, body, _) = try #require(try Self.rendering("opsgenie.yaml"))
        let message = try #require(body["message"] as? String)
        #expect(message == "Payment Rejected: 1234.50 EUR (0b9f6a52-3c1e-4d8a-9f0e-2a7d5c1b8e44)")
        #expect(message.count <= 130, "Opsgenie truncates messages over 130 characters")
        #expect((body["alias"] as? String)?.count ?? 0 <= 512)
        #expect(body["priority"] as? String == "P2")
        #expect(body["tags"] as? [String] == ["paybridge", "Rejected"])
        #expect((body["description"] as? String)?.contains("Reason: AC04 Closed account number.") == true)
        let path = ConfigTests.root.appendingPathComponent("examples/opsgenie.yaml").path
        let configuration = try ConfigLoader.load(file: path, environment: ConfigTests.exampleEnvironment).configuration
        #expect(configuration.endpoint(named: "opsgenie")?.headers.first { $0.name == "Authorization" }?.value == "GenieKey genie")
    }

    @Test func slackAndTeamsExamplesPassTheirParsers() async throws {
        let directory = try TemporaryDirectory()
        let big = PipelineTests.rejectedEvent(
            payment: Array(String(decoding: PipelineTests.paymentBytes, as: UTF8.self).replacingOccurrences(of: "1234.50", with: "12345.00").utf8))
        for (example, kind, event) in [("slack-redacted.yaml", "slack", PipelineTests.rejectedEvent()), ("teams.yaml", "teams", big)] {
            let path = ConfigTests.root.appendingPathComponent("examples/\(example)").path
            let configuration = try ConfigLoader.load(file: path, environment: ConfigTests.exampleEnvironment).configuration
            let payment = Array(String(decoding: PipelineTests.paymentBytes, as: UTF8.self).replacingOccurrences(of: "1234.50", with: "12345.00").utf8)
            let entry = Pipeline(configuration).entry(for: event, payment: (example == "teams.yaml" ? payment : PipelineTests.paymentBytes)[...])
            var bodies: [[UInt8]] = entry.renderings.map(\.body)
            // A grouped endpoint gets the event in a group message: render that too.
            if let membership = entry.memberships.first {
                let group = PendingGroup(
                    endpoint: membership.endpoint, key: membership.key, sequence: 0,
                    members: [PendingGroup.Member(eventRow: 1, eventId: event.id, body: event.body)])
                let message = GroupMessage.event(for: group, max: 10, at: Date(timeIntervalSince1970: 1_795_341_630))
                bodies += Pipeline(configuration).groupEntry(for: message, endpoint: membership.endpoint).renderings.map(\.body)
            }
            #expect(!bodies.isEmpty, "\(example) routes the event")
            for body in bodies {
                let text = String(decoding: body, as: UTF8.self)
                #expect(!text.contains("DK5000400440116453") && !text.contains("Müller"), "\(example) redacts")
            }
            let file = directory.file("\(kind).json")
            let requests = bodies.map { ["headers": [String: String](), "body": String(decoding: $0, as: UTF8.self)] as [String: Any] }
            try JSONSerialization.data(withJSONObject: requests).write(to: URL(fileURLWithPath: file))
            let check = try await FormatDeliveryTests.check(kind, file)
            #expect(check.status == 0, "\(example): \(check.stdout)")
        }
    }
}
