import Foundation
import Sandbox
import Synchronization
import Testing

@testable import PayBridge

/// Receiver authentication (§8 `auth`): a bearer token, and OAuth2 client credentials
/// against a test token server: one fetch shared by concurrent deliveries, the token cached,
/// a new one fetched once after a 401; none of it in any output.
@Suite(.serialized) struct ReceiverAuthTests {
    /// Issues `tok-1`, `tok-2`, … after a short delay (so concurrent deliveries pile up on one fetch).
    final class TokenServer: Sendable {
        final class Issued: Sendable {
            let tokens = Mutex<[String]>([])
        }

        let server: TestReceiver
        private let issued = Issued()
        private let revoked = Mutex<Set<String>>([])
        /// The first two tokens are held until the test has seen their requests arrive, so the
        /// attempts that need them are all waiting for that one fetch.
        let held = [ReplyGate(), ReplyGate()]

        init() async throws {
            let (issued, held) = (self.issued, self.held)
            server = try await TestReceiver.start { request, _ in
                let form = String(decoding: request.body, as: UTF8.self)
                let basic = "Basic " + Data("paybridge-client:s3cret%2B%2F".utf8).base64EncodedString()
                guard request.headers["authorization"] == basic, form.contains("grant_type=client_credentials"),
                    request.headers["content-type"] == "application/x-www-form-urlencoded"
                else {
                    // As some token servers do: the refusal repeats the secret it was sent.
                    let sent = request.headers["authorization"].flatMap { Data(base64Encoded: String($0.dropFirst(6))) }
                        .map { String(decoding: $0, as: UTF8.self) }?.split(separator: ":").last.map(String.init) ?? ""
                    return TestReceiver.Reply(status: 401, body: #"{"error":"invalid_client","error_description":"bad secret \#(sent)"}"#)
                }
                let (token, number) = issued.tokens.withLock { tokens -> (String, Int) in
                    tokens.append("tok-\(tokens.count + 1)")
                    return (tokens[tokens.count - 1], tokens.count)
                }
                var reply = TestReceiver.Reply(status: 200, body: #"{"access_token":"\#(token)","token_type":"Bearer","expires_in":3600}"#)
                reply.heldUntil = number <= held.count ? held[number - 1] : nil
                return reply
            }
        }

        var tokens: [String] { issued.tokens.withLock { $0 } }
        func revoke(_ token: String) { _ = revoked.withLock { $0.insert(token) } }
        func accepts(_ authorization: String?) -> Bool {
            guard let authorization, authorization.hasPrefix("Bearer ") else { return false }
            let token = String(authorization.dropFirst(7))
            return tokens.contains(token) && !revoked.withLock { $0.contains(token) }
        }
    }

    @Test func oauth2TokensAreSharedCachedAndRenewedOnceAfterA401() async throws {
        let harness = try await Harness.start()
        let tokens = try await TokenServer()
        let receiver = try await TestReceiver.start { request, _ in tokens.accepts(request.headers["authorization"]) ? .ok : .status(401) }
        let plain = try await TestReceiver.start { request, _ in request.headers["authorization"] == "Bearer static-Token-77" ? .ok : .status(401) }
        let ids = harness.createPayments(8)
        let endpoints = """
              oauth:
                url: \(receiver.url)
                secret: \(Fixtures.secret)
                concurrency: 8
                retry: [1h]
                auth:
                  oauth2:
                    tokenURL: \(tokens.server.url)
                    clientId: paybridge-client
                    clientSecret: ${CLIENT_SECRET}
                    scope: hooks.write
              plain:
                url: \(plain.url)
                auth: { bearer: "${HOOK_TOKEN}" }
            """
        let text = Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: endpoints)
            .replacingOccurrences(of: "every: 1s", with: "every: 200ms")
        let path = try harness.directory.write("pb.yaml", text)
        let environment = ["CLIENT_SECRET": "s3cret+/", "HOOK_TOKEN": "static-Token-77", "PAYBRIDGE_LOG_LEVEL": "trace"]
        let (process, _, errors) = try Binary.start(["run", "--config", path], environment: environment)
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let log = PipeReader(errors)
        #expect(try await OperationsTests.waitForBaseline(harness.statePath))

        // Concurrent deliveries: one token fetch, which they all wait for.
        for id in ids.prefix(4) { harness.bank.bank.setStatus(id, "Rejected") }
        #expect(await tokens.server.waitFor(count: 1))
        tokens.held[0].open()
        #expect(await receiver.waitFor(count: 4))
        #expect(tokens.tokens == ["tok-1"])
        #expect(receiver.requests.allSatisfy { $0.headers["authorization"] == "Bearer tok-1" })
        #expect(tokens.server.requests.first.map { String(decoding: $0.body, as: UTF8.self) } == "grant_type=client_credentials&scope=hooks.write")

        // Later deliveries reuse the cached token.
        harness.bank.bank.setStatus(ids[4], "Rejected")
        #expect(await receiver.waitFor(count: 5))
        #expect(tokens.tokens == ["tok-1"])

        // The receiver stops accepting it: one 401, one new token, the same attempt sent again.
        tokens.revoke("tok-1")
        for id in ids.suffix(3) { harness.bank.bank.setStatus(id, "Rejected") }
        #expect(await tokens.server.waitFor(count: 2))
        tokens.held[1].open()
        #expect(await receiver.waitFor(count: 11, timeout: .seconds(10)))
        #expect(tokens.tokens == ["tok-1", "tok-2"], "one renewal shared by the refused attempts")
        let accepted = receiver.requests.filter { $0.headers["authorization"] == "Bearer tok-2" }
        #expect(Set(accepted.map(\.paymentId)) == Set(ids.suffix(3)))
        #expect(await plain.waitFor(count: 8))
        #expect(plain.requests.allSatisfy { $0.headers["authorization"] == "Bearer static-Token-77" })
        try await until("the run has recorded every delivery") {
            try await Binary.run(["deliveries", "--config", path, "--endpoint", "oauth"], environment: environment).stdout
                .contains("oauth: pending=0 delivered=8 dead=0")
        }
        process.terminate()
        #expect(await Binary.exitStatus(of: process) == 0)

        // Delivered on their first attempt: a renewal after a 401 is not a failed attempt.
        let listing = try await Binary.run(["deliveries", "--config", path, "--endpoint", "oauth"], environment: environment)
        #expect(listing.stdout.contains("oauth: pending=0 delivered=8 dead=0"), "\(listing.stdout)")
        let json = try await Binary.run(["deliveries", "list", "--config", path, "--endpoint", "oauth", "--json"], environment: environment)
        let rows = ((try? JSONSerialization.jsonObject(with: Data(json.stdout.utf8))) as? [String: Any])?["deliveries"] as? [[String: Any]] ?? []
        #expect(rows.count == 8 && rows.allSatisfy { $0["attempts"] as? Int == 1 }, "\(rows)")
        let output = await log.text() + listing.stdout + listing.stderr
        #expect(output.contains("fetching a new one"))
        for secret in ["s3cret", "tok-1", "tok-2", "static-Token-77", Data("paybridge-client:s3cret%2B%2F".utf8).base64EncodedString()] {
            #expect(!output.contains(secret), "\(secret) appeared in the output")
        }
        await receiver.stop()
        await plain.stop()
        for gate in tokens.held { gate.open() }  // nothing left waiting if the test failed early
        await tokens.server.stop()
        await harness.stop()
    }

    @Test func aTokenServerThatRefusesFailsTheAttemptOnSchedule() async throws {
        let harness = try await Harness.start()
        let tokens = try await TokenServer()
        let receiver = try await TestReceiver.start()
        let ids = harness.createPayments(1)
        let endpoints = """
              oauth:
                url: \(receiver.url)
                retry: [1h]
                auth: { oauth2: { tokenURL: "\(tokens.server.url)", clientId: paybridge-client, clientSecret: "wrong secret+/&" } }
            """
        let path = try harness.directory.write("pb.yaml", Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: endpoints))
        _ = try await Binary.run(["poll", "--once", "--config", path])
        harness.bank.bank.setStatus(ids[0], "Rejected")
        let poll = try await Binary.run(["poll", "--once", "--config", path], environment: ["PAYBRIDGE_LOG_LEVEL": "trace"])
        #expect(poll.status == 0)
        #expect(receiver.requests.isEmpty, "nothing is sent without a token")
        #expect(poll.stderr.contains("cannot get a token for the endpoint"))
        #expect(poll.stderr.contains("invalid_client"))
        // The server repeats the secret as it was sent, form-encoded (wrong+secret%2B%2F%26).
        for form in ["wrong secret", "wrong+secret"] { #expect(!poll.stderr.contains(form), "\(form) in \(poll.stderr)") }
        let listing = try await Binary.run(["deliveries", "--config", path])
        #expect(listing.stdout.contains("the token request failed: HTTP 401"), "\(listing.stdout)")
        #expect(poll.stderr.contains("bad secret [client secret]"), "the refusal is quoted with the secret masked")
        #expect(!listing.stdout.contains("wrong"), "\(listing.stdout)")
        await receiver.stop()
        for gate in tokens.held { gate.open() }  // nothing left waiting if the test failed early
        await tokens.server.stop()
        await harness.stop()
    }
}
