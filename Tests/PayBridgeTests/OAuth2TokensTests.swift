import Foundation
import Testing

@testable import PayBridge

/// The OAuth2 token protocol as a pure machine: one input, the action it returns.
@Suite struct OAuth2TokensTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let settings = OAuth2Settings(tokenURL: "http://127.0.0.1:1/token", clientId: "paybridge", clientSecret: Secret("s3cret"))

    func attempt(_ id: Int64, renewed: Bool = false) -> OAuth2Tokens.Attempt {
        OAuth2Tokens.Attempt(
            delivery: QueuedDelivery(
                id: id, eventId: "evt_\(id)", eventType: "payment.status_changed", endpoint: "erp", subject: "p", sequence: 1, attempts: 0,
                createdAt: now, body: []),
            startedAt: now, renewed: renewed)
    }

    func token(_ value: String, renewAt: Date) -> AccessToken {
        AccessToken(value: Secret(value), expiresAt: renewAt.addingTimeInterval(30), renewAt: renewAt)
    }

    @Test func theFirstAttemptFetchesAndTheNextOnesWaitForThatFetch() {
        var tokens = OAuth2Tokens(settings: settings)
        #expect(tokens.authorize(attempt(1), at: now) == .fetch)
        #expect(tokens.authorize(attempt(2), at: now) == nil)
        #expect(tokens.waiting == [attempt(1), attempt(2)])
    }

    @Test func aTokenSendsEveryWaitingAttemptAndIsReusedUntilItsRenewalTime() {
        var tokens = OAuth2Tokens(settings: settings)
        _ = tokens.authorize(attempt(1), at: now)
        _ = tokens.authorize(attempt(2), at: now)
        let fresh = token("t1", renewAt: now.addingTimeInterval(60))
        #expect(tokens.received(.success(fresh)) == [.send(attempt(1), token: Secret("t1")), .send(attempt(2), token: Secret("t1"))])
        #expect(tokens.authorize(attempt(3), at: now.addingTimeInterval(59)) == .send(attempt(3), token: Secret("t1")))
        #expect(tokens.authorize(attempt(4), at: now.addingTimeInterval(60)) == .fetch)
    }

    @Test func aFailedFetchFailsEveryWaitingAttemptAndTheNextOneFetchesAgain() {
        var tokens = OAuth2Tokens(settings: settings)
        _ = tokens.authorize(attempt(1), at: now)
        _ = tokens.authorize(attempt(2), at: now)
        #expect(tokens.received(.failure(.init(description: "HTTP 500"))) == [.fail([attempt(1), attempt(2)], reason: "HTTP 500")])
        #expect(tokens.waiting == nil && tokens.held == nil)
        #expect(tokens.authorize(attempt(3), at: now) == .fetch)
    }

    @Test func a401DropsTheRefusedTokenAndFetchesOnceForThatAttempt() {
        var tokens = OAuth2Tokens(settings: settings)
        _ = tokens.authorize(attempt(1), at: now)
        _ = tokens.received(.success(token("t1", renewAt: now.addingTimeInterval(60))))
        #expect(tokens.refused(Secret("t1"), attempt(1), at: now) == .fetch)
        #expect(tokens.held == nil && tokens.waiting == [attempt(1, renewed: true)])
        // The renewed attempt's second 401 is the receiver's answer: it is sent, not renewed again.
        #expect(tokens.received(.success(token("t2", renewAt: now.addingTimeInterval(60)))) == [.send(attempt(1, renewed: true), token: Secret("t2"))])
    }

    @Test func aRefusalOfAnOlderTokenKeepsTheNewerOne() {
        var tokens = OAuth2Tokens(settings: settings)
        _ = tokens.authorize(attempt(1), at: now)
        _ = tokens.received(.success(token("t2", renewAt: now.addingTimeInterval(60))))
        #expect(tokens.refused(Secret("t1"), attempt(1), at: now) == .fetch)
        // The refused attempt waits for a fresh token; the others still use t2 meanwhile.
        #expect(tokens.authorize(attempt(2), at: now) == .send(attempt(2), token: Secret("t2")))
    }

    @Test func anAnswerWithNoFetchInFlightIsIgnored() {
        var tokens = OAuth2Tokens(settings: settings)
        #expect(tokens.received(.success(token("t1", renewAt: now.addingTimeInterval(60)))).isEmpty)
        #expect(tokens.held == nil)
    }

    /// A refusal is quoted with the client secret masked in every form a server may echo it
    /// in; the Basic credentials too (they decode to the secret).
    @Test func aRefusalNeverShowsTheSecretInAnyOfItsForms() throws {
        let secret = "a b/c+&\"é"
        let tokens = OAuth2Tokens(
            settings: OAuth2Settings(tokenURL: "http://127.0.0.1:1/token", clientId: "paybridge", clientSecret: Secret(secret)))
        let request = tokens.request(timeout: .seconds(5), tls: TLSOptions())
        let basic = try #require(request.headers.first { $0.name == "Authorization" }?.value.dropFirst("Basic ".count))
        let echoes = [
            secret, "a+b%2Fc%2B%26%22%C3%A9", "a%20b%2Fc%2B%26%22%C3%A9", "a%20b%2fc%2b%26%22%c3%a9", #"a b/c+&\"é"#, #"a b\/c+&\"é"#, String(basic),
        ]
        for echo in echoes {
            let answer = HTTPResponse(status: 401, body: Array(#"{"error":"invalid_client","error_description":"bad secret \#(echo)"}"#.utf8))
            guard case .failure(let failure) = OAuth2Tokens.parse(.success(answer), receivedAt: now, masking: tokens.secretForms) else {
                Issue.record("a 401 is a failure")
                continue
            }
            #expect(failure.description.contains("bad secret [client secret]"), "\(echo): \(failure.description)")
            #expect(!failure.description.contains("b/c") && !failure.description.contains("%2Fc"), "\(echo): \(failure.description)")
        }
    }
}
