import Foundation
import Sandbox
import Synchronization
import Testing

@testable import PayBridge

/// Token handling, request ids and retries, against the sandbox on 127.0.0.1.
@Suite(.serialized) struct BankClientTests {
    func bridge(_ harness: Harness) async throws -> Bridge {
        try await harness.bridge(
            Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: "http://127.0.0.1:9/none")))
    }

    @Test func renewsTheTokenBeforeItExpires() async throws {
        // The bank's tokens live 300 s; paybridge renews 30 s before expiry, on its own clock.
        let harness = try await Harness.start(SandboxOptions(tokenLifetime: .seconds(300), processingDelay: .seconds(3600)))
        _ = harness.createPayments(2)
        let time = ManualClock(Date())
        let bridge = try await Bridge(
            configuration: try Fixtures.load(
                Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: "http://127.0.0.1:9/none")),
                in: harness.directory),
            logger: Fixtures.quietLogger, clock: time.clock)
        #expect(await bridge.pollOnce().failures.isEmpty)
        #expect(harness.bank.authorizeRequests.count == 1)
        time.advance(by: 260)
        #expect(await bridge.pollOnce().failures.isEmpty)
        #expect(harness.bank.authorizeRequests.count == 1)  // still valid: cached
        time.advance(by: 11)  // 271 s old: inside the renewal margin, not yet expired
        #expect(await bridge.pollOnce().failures.isEmpty)
        #expect(harness.bank.authorizeRequests.count == 2)
        // Never a 401: exactly one list request per poll.
        #expect(harness.bank.paymentRequests.count == 3)
        bridge.close()
        await harness.stop()
    }

    @Test func acceptsExpiresInAsANumber() async throws {
        let harness = try await Harness.start(SandboxOptions(expiresInAsString: false, processingDelay: .seconds(3600)))
        let bridge = try await bridge(harness)
        #expect(await bridge.pollOnce().failures.isEmpty)
        bridge.close()
        await harness.stop()
    }

    @Test func a401RenewsTheTokenOnceAndRetries() async throws {
        let harness = try await Harness.start()
        _ = harness.createPayments(2)
        let bridge = try await bridge(harness)
        #expect(await bridge.pollOnce().failures.isEmpty)
        harness.bank.bank.revokeTokens()
        #expect(await bridge.pollOnce().failures.isEmpty)
        #expect(harness.bank.authorizeRequests.count == 2)
        #expect(harness.bank.paymentRequests.count == 3)  // ok, 401, ok
        let tokens = harness.bank.paymentRequests.map { $0.headers["authorization"] ?? "" }
        #expect(tokens[1] == tokens[0])
        #expect(tokens[2] != tokens[1])
        bridge.close()
        await harness.stop()
    }

    @Test func a401LoopFailsThePollInsteadOfHammeringAuth() async throws {
        let harness = try await Harness.start()
        harness.bank.bank.setInterceptor { request in request.path.hasPrefix("/api/v1/payments") ? SandboxResponse(status: 401) : nil }
        let bridge = try await bridge(harness)
        let result = await bridge.pollOnce()
        #expect(result.failures.count == 1)
        #expect(result.failures.first.map { "\($0)".contains("HTTP 401 even with a fresh token") } == true)
        #expect(harness.bank.authorizeRequests.count == 2)
        #expect(harness.bank.paymentRequests.count == 2)
        bridge.close()
        await harness.stop()
    }

    @Test func wrongCredentialsFailClearlyWithoutShowingThem() async throws {
        let harness = try await Harness.start()
        let text = Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: "http://127.0.0.1:9/x"))
            .replacingOccurrences(of: "password: sandbox", with: "password: very-secret-pw")
        let bridge = try await harness.bridge(text)
        let result = await bridge.pollOnce()
        let message = result.failures.first.map { "\($0)" } ?? ""
        #expect(message.contains("authentication failed: HTTP 401: InvalidCredentials: The username or password is incorrect"))
        #expect(!message.contains("very-secret-pw"))
        #expect(harness.bank.authorizeRequests.count == 1)  // a 401 on authorize is not retried
        bridge.close()
        await harness.stop()
    }

    @Test func everyRequestCarriesAFreshUUIDEvenOnRetries() async throws {
        let harness = try await Harness.start()
        _ = harness.createPayments(30)
        let failures = Counter()
        harness.bank.bank.setInterceptor { request in
            // Fail the first attempt of every page: each page is then sent twice.
            guard request.path.hasPrefix("/api/v1/payments") else { return nil }
            return failures.next() % 2 == 0 ? .json(503, "{}") : nil
        }
        let text = Fixtures.config(
            bankURL: harness.bank.url, state: harness.statePath, pageSize: 10, endpoints: Fixtures.endpoint("erp", url: "http://127.0.0.1:9/x"))
        let bridge = try await harness.bridge(text)
        #expect(await bridge.pollOnce().failures.isEmpty)
        let ids = harness.bank.bank.requests.map { $0.headers["x-request-id"] ?? "" }
        #expect(ids.count == 9)  // authorize + 4 pages × 2
        #expect(ids.allSatisfy { UUID(uuidString: $0) != nil })
        #expect(Set(ids).count == ids.count)
        bridge.close()
        await harness.stop()
    }

    @Test func fourHundredsAreNotRetriedAndTheBankErrorIsShown() async throws {
        let harness = try await Harness.start()
        // A value `validate` lets through that the bank refuses anyway (its rules may change).
        let asked = Tally()
        harness.bank.bank.setInterceptor { request in
            guard request.path.hasPrefix("/api/v1/payments") else { return nil }
            asked.add()
            return .json(
                400, #"{"errorCode":"InvalidDate","errorDescription":"InstructedDateFrom must be YYYY-MM-DD","propertyName":"InstructedDateFrom"}"#)
        }
        let bridge = try await harness.bridge(
            Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: "http://127.0.0.1:9/x")))
        let result = await bridge.pollOnce()
        let message = result.failures.first.map { "\($0)" } ?? ""
        #expect(message.contains("HTTP 400: InvalidDate: InstructedDateFrom must be YYYY-MM-DD (property InstructedDateFrom)"), "\(message)")
        #expect(asked.value == 1)
        bridge.close()
        await harness.stop()
    }

    /// ASP.NET's validation problem names its fields under `errors`, and a redirect (never
    /// followed: the token would go along) says where it pointed, without its query: both are
    /// in the failed poll's line, through the binary.
    @Test func aValidationProblemNamesItsFieldsAndARedirectItsTarget() async throws {
        let harness = try await Harness.start()
        let path = try harness.directory.write(
            "pb.yaml", Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: "http://127.0.0.1:9/x")))
        harness.bank.bank.setInterceptor { request in
            guard request.path.hasPrefix("/api/v1/payments") else { return nil }
            return .json(
                400,
                #"{"type":"https://tools.ietf.org/html/rfc9110#section-15.5.1","title":"One or more validation errors occurred.","status":400,"#
                    + #""errors":{"InstructedDateFrom":["The value '-3d' is not valid."],"PageSize":["Must be 1 to 5000.","Required."]}}"#)
        }
        let problem = try await Binary.run(["poll", "--once", "--config", path])
        #expect(problem.status == 1)
        #expect(
            problem.stderr.contains(
                "HTTP 400: One or more validation errors occurred.; InstructedDateFrom: The value '-3d' is not valid.; PageSize: Must be 1 to 5000. Required."),
            "\(problem.stderr)")
        harness.bank.bank.setInterceptor { request in
            guard request.path.hasPrefix("/api/v1/payments") else { return nil }
            return SandboxResponse(status: 302, headers: [("Location", "https://login.example/sso?ticket=secret-ticket")], body: [])
        }
        let redirect = try await Binary.run(["poll", "--once", "--config", path])
        #expect(redirect.status == 1)
        #expect(redirect.stderr.contains("HTTP 302: redirected to https://login.example/sso (not followed)"), "\(redirect.stderr)")
        #expect(!redirect.stderr.contains("secret-ticket"))
        await harness.stop()
    }

    @Test func relativeDatesAreResolvedAtEachPoll() {
        let now = Date(timeIntervalSince1970: 1_795_000_000)  // 2026-11-18T11:06:40Z
        let items = QueryText.items(
            [
                QueryParameter(name: "InstructedDateFrom", value: .relativeTime(.seconds(3 * 86400))),
                QueryParameter(name: "LastChangedTimestampFrom", value: .relativeTime(.seconds(7200))),
                QueryParameter(name: "Status", value: .list(["Rejected", "MissingFunding"])),
            ], at: now)
        #expect(items.map(\.1) == ["2026-11-15", "2026-11-18T09:06:40.000Z", "Rejected,MissingFunding"])
        #expect(QueryText.encode(items) == "InstructedDateFrom=2026-11-15&LastChangedTimestampFrom=2026-11-18T09:06:40.000Z&Status=Rejected,MissingFunding")
        #expect(QueryText.encode([("DebtorReference", "a+b c&d")]) == "DebtorReference=a%2Bb%20c%26d")
    }

    @Test func tokenLifetimeAcceptsBothForms() throws {
        let at = Date(timeIntervalSince1970: 1000)
        let text = try AccessTokenResponse.parse(Array(#"{"access_token":"t","expires_in":"300"}"#.utf8), receivedAt: at)
        let number = try AccessTokenResponse.parse(Array(#"{"access_token":"t","expires_in":300}"#.utf8), receivedAt: at)
        #expect(text.expiresAt == Date(timeIntervalSince1970: 1300))
        #expect(number == text)
        #expect(text.renewAt == Date(timeIntervalSince1970: 1270))
        #expect(throws: AccessTokenResponse.Invalid.self) {
            _ = try AccessTokenResponse.parse(Array(#"{"expires_in":"300"}"#.utf8), receivedAt: at)
        }
    }
}

/// `expires_in` as a number or a string of digits, decoded as typed values (on Linux an
/// `NSNumber` of 0 or 1 passes `is Bool`, so 1 used to be refused).
@Suite struct TokenAnswerTests {
    let at = Date(timeIntervalSince1970: 1000)

    func lifetime(_ json: String) throws(AccessTokenResponse.Invalid) -> TimeInterval {
        try AccessTokenResponse.parse(Array(json.utf8), receivedAt: at).expiresAt.timeIntervalSince(at)
    }

    @Test(arguments: [
        (#"0"#, 0.0), (#"1"#, 1), (#"300"#, 300), (#""300""#, 300), (#"299.5"#, 299.5), (#"" 45 ""#, 45),
    ])
    func lifetimesThatAreSeconds(value: String, seconds: Double) throws {
        #expect(try lifetime(#"{"access_token":"t","expires_in":\#(value)}"#) == seconds)
    }

    @Test func anAbsentLifetimeIsTheDocumentedOne() throws {
        #expect(try lifetime(#"{"access_token":"t"}"#) == 300)
        #expect(try lifetime(#"{"access_token":"t","expires_in":null}"#) == 300)
    }

    @Test(arguments: [
        (#"-5"#, "expires_in is negative"), (#""-5""#, "expires_in is negative"),
        (#"true"#, "expires_in is not a number of seconds"), (#"false"#, "expires_in is not a number of seconds"),
        (#""abc""#, "expires_in is not a number of seconds"), (#"[300]"#, "expires_in is not a number of seconds"),
    ])
    func lifetimesThatAreNot(value: String, message: String) {
        #expect(throws: AccessTokenResponse.Invalid.self) { try lifetime(#"{"access_token":"t","expires_in":\#(value)}"#) }
        do {
            _ = try lifetime(#"{"access_token":"t","expires_in":\#(value)}"#)
        } catch {
            #expect(error.description == message)
        }
    }

    @Test func aShortLifetimeRenewsEarlyAndZeroServesOneCall() throws {
        let one = try AccessTokenResponse.parse(Array(#"{"access_token":"t","expires_in":1}"#.utf8), receivedAt: at)
        #expect(one.renewAt == at + 0.8)
        let zero = try AccessTokenResponse.parse(Array(#"{"access_token":"t","expires_in":0}"#.utf8), receivedAt: at)
        #expect(zero.renewAt == at)
    }

    @Test func notAnObjectOrNoTokenIsRefused() {
        for body in [#"[]"#, #"not json"#, #"{"expires_in":300}"#, #"{"access_token":"","expires_in":300}"#, #"{"access_token":7}"#] {
            #expect(throws: AccessTokenResponse.Invalid.self, "\(body)") {
                _ = try AccessTokenResponse.parse(Array(body.utf8), receivedAt: at)
            }
        }
    }
}

/// A thread-safe counter for interceptors.
final class Counter: Sendable {
    private let value = Mutex(0)

    func next() -> Int { value.withLock { count in defer { count += 1 }; return count } }

    func peek() -> Int { value.withLock { $0 } }
}

@Suite struct TokenCacheTests {
    @Test func oneRenewalServesEveryoneWaiting() async throws {
        let fetches = Counter()
        let cache = TokenCache(now: Date.init) { () async throws(BankError) -> AccessToken in
            let number = fetches.next()
            try? await Task.sleep(for: .milliseconds(100))
            let now = Date()
            return AccessToken(value: Secret("t\(number)"), expiresAt: now + 300, renewAt: now + 270)
        }
        let tokens = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<20 { group.addTask { try await cache.token().value.value } }
            return try await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(Set(tokens) == ["t0"])
        #expect(fetches.next() == 1)
    }

    /// The watches of one round share a failed authorize (and its retries): asked again within
    /// the hold, the cache answers with the same error; later it asks the bank again.
    @Test func aFailedRenewalAnswersEveryoneWithinTheHoldThenIsTriedAgain() async throws {
        let fetches = Counter()
        let clock = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
        let cache = TokenCache(now: { clock.withLock { $0 } }) { () async throws(BankError) -> AccessToken in
            _ = fetches.next()
            throw BankError(reason: .authentication("HTTP 503"), call: "GET /api/v1/authorizations/authorize", requestId: "r1", attempts: 3)
        }
        for advance in [0.0, 0.5, 0.4] {
            clock.withLock { $0 += advance }
            await #expect(throws: BankError.self) { _ = try await cache.token() }
        }
        #expect(fetches.peek() == 1, "one authorize for every watch within the hold")
        clock.withLock { $0 += TokenCache.failureHold }
        await #expect(throws: BankError.self) { _ = try await cache.token() }
        #expect(fetches.peek() == 2, "after the hold the bank is asked again")
    }

    @Test func aRefusedTokenIsDroppedButANewerOneKept() async throws {
        let fetches = Counter()
        let cache = TokenCache(now: Date.init) { () async throws(BankError) -> AccessToken in
            let now = Date()
            return AccessToken(value: Secret("t\(fetches.next())"), expiresAt: now + 300, renewAt: now + 270)
        }
        let first = try await cache.token()
        await cache.invalidate(first)
        let second = try await cache.token()
        #expect(second.value.value == "t1")
        await cache.invalidate(first)  // stale: the current token stays
        #expect(try await cache.token().value.value == "t1")
    }
}
