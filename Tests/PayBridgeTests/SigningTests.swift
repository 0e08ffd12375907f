import Foundation
import Testing

@testable import PayBridge

/// The vector in ../shared/spec was computed with the reference Python library; a copy lives
/// in the test folder so the tests do not depend on anything outside the repository.
@Suite struct SigningTests {
    struct Vector: Decodable {
        var secret: String
        var rotatedSecret: String
        var webhookId: String
        var webhookTimestamp: Int
        var body: String
        var signature: String
        var signatureWithRotatedSecret: String
        var headerDuringRotation: String
    }

    static func vector() throws -> Vector {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/standard-webhooks-vector.json")
        return try JSONDecoder().decode(Vector.self, from: Data(contentsOf: url))
    }

    @Test func matchesTheReferenceVector() throws {
        let vector = try Self.vector()
        let signer = WebhookSigner(secrets: [Secret(vector.secret)])
        #expect(signer.signature(id: vector.webhookId, timestamp: vector.webhookTimestamp, body: Array(vector.body.utf8)) == vector.signature)
    }

    @Test func signsWithEverySecretDuringARotation() throws {
        let vector = try Self.vector()
        let signer = WebhookSigner(secrets: [Secret(vector.secret), Secret(vector.rotatedSecret)])
        #expect(
            signer.signature(id: vector.webhookId, timestamp: vector.webhookTimestamp, body: Array(vector.body.utf8))
                == vector.headerDuringRotation)
        let rotated = WebhookSigner(secrets: [Secret(vector.rotatedSecret)])
        #expect(
            rotated.signature(id: vector.webhookId, timestamp: vector.webhookTimestamp, body: Array(vector.body.utf8))
                == vector.signatureWithRotatedSecret)
    }

    @Test func noSecretMeansNoSignature() {
        #expect(WebhookSigner(secrets: []).signature(id: "evt_1", timestamp: 1, body: []) == nil)
        #expect(WebhookSigner.key(fromSecret: "whsec_not base64!") == nil)
    }

    @Test func eventIdsAreStableAndDistinct() {
        let first = Event.id(subject: "p1", sequence: 1, discriminator: "Rejected")
        #expect(first == Event.id(subject: "p1", sequence: 1, discriminator: "Rejected"))
        #expect(first != Event.id(subject: "p1", sequence: 2, discriminator: "Rejected"))
        #expect(first != Event.id(subject: "p2", sequence: 1, discriminator: "Rejected"))
        #expect(first.hasPrefix("evt_") && first.count == 36)
    }

    /// An operational event's subject and number are the same in every installation (the
    /// first `source.notifications.inactive` of any state is number 1): its time keeps its id
    /// apart from another's, which a receiver would otherwise drop as already seen.
    @Test func operationalEventIdsDifferAcrossInstallations() {
        func inactive(at seconds: Double) -> Event {
            .operational(
                type: .sourceNotificationsInactive, subject: "source.notifications", sequence: 1,
                createdAt: Date(timeIntervalSince1970: seconds), data: ["status": .string("Missing")])
        }
        #expect(inactive(at: 1_800_000_000).id == inactive(at: 1_800_000_000).id)
        #expect(inactive(at: 1_800_000_000).id != inactive(at: 1_800_000_000.5).id)
        #expect(inactive(at: 1_800_000_000).id.hasPrefix("evt_") && inactive(at: 1_800_000_000).id.count == 36)
    }

    @Test func eventBodyCarriesThePaymentVerbatim() throws {
        let payment = Array(#"{"paymentId":"p1","status":"Rejected","amount":13.00,"t":"2023-09-23T15:33:51.0133333+00:00","x":null}"#.utf8)
        let event = Event.payment(
            type: .paymentStatusChanged, paymentId: "p1", status: "Rejected", previousStatus: "PendingProcessing", watch: "w\"1",
            sequence: 2, createdAt: Date(timeIntervalSince1970: 1_795_000_000.123), payment: payment[...])
        let text = String(decoding: event.body, as: UTF8.self)
        #expect(text.hasPrefix(#"{"type":"payment.status_changed","timestamp":"2026-11-18T"#))
        #expect(text.contains(#".123Z","data":{"paymentId":"p1","status":"Rejected","previousStatus":"PendingProcessing","watch":"w\"1","payment":"#))
        #expect(text.hasSuffix(String(decoding: payment, as: UTF8.self) + "}}"))
        #expect((try? JSONSerialization.jsonObject(with: Data(event.body))) != nil)
    }
}
