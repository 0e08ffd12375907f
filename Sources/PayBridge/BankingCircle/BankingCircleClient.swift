import Foundation
import Logging
import Metrics

/// Banking Circle's payments API: authorize, list single payments page by page, look one up.
public final class BankingCircleClient: PaymentSource {
    public static let listPath = "/api/v1/payments/singles"
    public static let authorizePath = "/api/v1/authorizations/authorize"

    private let apiURL: String
    private let authURL: String
    private let source: SourceConfiguration
    private let http: any HTTPClient
    private let logger: Logger
    private let clock: WallClock
    private let random: @Sendable () -> Double
    private let sleep: @Sendable (Duration) async -> Void
    private let tokens: TokenCache

    /// - Parameters:
    ///   - apiURL: overrides `source.apiURL` (the in-process sandbox has no URL in the config).
    ///   - random: a number in 0..<1 for backoff jitter.
    public init(
        source: SourceConfiguration, apiURL: String? = nil, authURL: String? = nil, http: any HTTPClient, logger: Logger,
        clock: WallClock = .system,
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
        sleep: @escaping @Sendable (Duration) async -> Void = { try? await Task.sleep(for: $0) }
    ) {
        let api = apiURL ?? source.apiURL ?? ""
        self.apiURL = api
        self.authURL = authURL ?? source.authURL ?? api
        self.source = source
        self.http = http
        self.logger = logger
        self.clock = clock
        self.random = random
        self.sleep = sleep
        let authorize = Self.authorizeCall(
            url: self.authURL + Self.authorizePath, source: source, http: http, logger: logger, clock: clock, random: random, sleep: sleep)
        self.tokens = TokenCache(now: clock.now, fetch: authorize)
    }

    // MARK: PaymentSource

    public func fetchPage(watch: Watch, pageNumber: Int, pageSize: Int, pollStartedAt: Date) async throws -> PaymentPage {
        var items = QueryText.items(watch.query, at: pollStartedAt)
        items.append(("PageNumber", String(pageNumber)))
        items.append(("PageSize", String(pageSize)))
        let path = Self.listPath + "?" + QueryText.encode(items)
        let (response, requestId, attempts) = try await get(path)
        do {
            var page = try PaymentPageScanner.scanList(response.body)
            page.requestId = requestId
            return page
        } catch {
            throw BankError(reason: .malformed(error), call: "GET \(path)", requestId: requestId, attempts: attempts)
        }
    }

    public func recycle(_ page: consuming PaymentPage) {
        http.recycle(page.body)
    }

    public func fetchPayment(id: String) async throws -> PaymentPage {
        let path = Self.listPath + "/" + QueryText.percentEncode(id)
        let (response, requestId, attempts) = try await get(path, notFoundIsNil: true)
        guard response.status != 404 else { return PaymentPage(body: [], payments: [], requestId: requestId) }
        do {
            var page = try PaymentPageScanner.scanPayment(response.body)
            page.requestId = requestId
            return page
        } catch {
            throw BankError(reason: .malformed(error), call: "GET \(path)", requestId: requestId, attempts: attempts)
        }
    }

    // MARK: Calls

    private func get(_ path: String, notFoundIsNil: Bool = false) async throws(BankError) -> (HTTPResponse, String, Int) {
        try await call(.get, path, notFoundIsNil: notFoundIsNil)
    }

    /// A call with a bearer token and a fresh `X-Request-ID` on every attempt; a 401 renews
    /// the token once. For a GET, 5xx, 429, timeouts and connection errors are retried with
    /// backoff (other methods are not retried: they may have been done).
    func call(
        _ method: HTTPRequest.Method, _ path: String, body: [UInt8] = [], headers extra: [(name: String, value: String)] = [],
        notFoundIsNil: Bool = false
    ) async throws(BankError) -> (HTTPResponse, String, Int) {
        let call = "\(method.rawValue) \(path)"
        var attempts = 0
        var renewedAfter401 = false
        while true {
            attempts += 1
            let token = try await tokens.token()
            let requestId = UUID().uuidString.lowercased()
            var headers: [(name: String, value: String)] = [
                ("Authorization", "Bearer \(token.value.value)"), ("X-Request-ID", requestId), ("Accept", "application/json"),
            ] + extra
            if !body.isEmpty { headers.append(("Content-Type", "application/json")) }
            // Each attempt has its own request id, so each is signed afresh.
            if let signing = source.signing { headers += signing.headers(requestId: requestId, body: body) }
            let request = HTTPRequest(
                method: method, url: apiURL + path, headers: headers, body: body, timeout: source.timeout, connectTimeout: source.connectTimeout,
                tls: source.tls, proxy: source.proxy)
            let retryable: BankError.Reason
            var retryAfter: Duration?
            switch await http.send(request) {
            case .failure(let error):
                retryable = .transport(error)
            case .success(let response):
                switch response.status {
                case 200..<300:
                    return (response, requestId, attempts)
                case 404 where notFoundIsNil:
                    return (response, requestId, attempts)
                case 401:
                    let detail = BankError.describe(response)
                    guard !renewedAfter401 else {
                        throw BankError(reason: .unauthorized(detail: detail), call: call, requestId: requestId, attempts: attempts)
                    }
                    renewedAfter401 = true
                    attempts -= 1
                    logger.info(
                        "bank answered 401; renewing the token once",
                        metadata: ["requestId": "\(requestId)", "detail": "\(detail)"])
                    await tokens.invalidate(token)
                    continue
                case 408, 429, 500...599:
                    retryable = .http(status: response.status, detail: BankError.describe(response))
                    retryAfter = RetryAfter.parse(response.header("retry-after"), now: clock.now())
                default:
                    let error = BankError(
                        reason: .http(status: response.status, detail: BankError.describe(response)), call: call,
                        requestId: requestId, attempts: attempts)
                    logger.error("bank refused the request", metadata: ["error": "\(error)", "requestId": "\(requestId)"])
                    error.count()
                    throw error
                }
            }
            let error = BankError(reason: retryable, call: call, requestId: requestId, attempts: attempts)
            error.count()
            guard attempts <= source.retries, method == .get else { throw error }
            let wait = Self.backoff(attempt: attempts, base: source.retryBackoff, retryAfter: retryAfter, random: random())
            logger.warning(
                "bank call failed; retrying", metadata: ["error": "\(error)", "requestId": "\(requestId)", "retryIn": "\(DurationText.format(wait))"])
            await sleep(wait)
        }
    }

    /// Exponential backoff with ±25 % jitter; a `Retry-After` is honoured up to a minute (one
    /// of now, 0 or a past date, keeps the backoff: retries are few, and the bank is busy).
    static func backoff(attempt: Int, base: Duration, retryAfter: Duration?, random: Double) -> Duration {
        if let retryAfter, retryAfter > .zero { return min(retryAfter, .seconds(60)) }
        let exponential = base * (1 << min(attempt - 1, 10))
        return exponential * (0.75 + 0.5 * random)
    }

    private static func authorizeCall(
        url: String, source: SourceConfiguration, http: any HTTPClient, logger: Logger, clock: WallClock,
        random: @escaping @Sendable () -> Double, sleep: @escaping @Sendable (Duration) async -> Void
    ) -> TokenCache.Fetch {
        let credentials = Data("\(source.username.value):\(source.password.value)".utf8).base64EncodedString()
        return { () async throws(BankError) -> AccessToken in
            let call = "GET \(authorizePath)"
            var attempts = 0
            while true {
                attempts += 1
                let requestId = UUID().uuidString.lowercased()
                var headers: [(name: String, value: String)] = [
                    ("Authorization", "Basic \(credentials)"), ("X-Request-ID", requestId), ("Accept", "application/json"),
                ]
                if let signing = source.signing { headers += signing.authorizeHeaders }
                let request = HTTPRequest(
                    method: .get, url: url, headers: headers, timeout: source.timeout, connectTimeout: source.connectTimeout,
                    tls: source.tls, proxy: source.proxy)
                let reason: BankError.Reason
                switch await http.send(request) {
                case .failure(let error):
                    reason = .transport(error)
                case .success(let response) where (200..<300).contains(response.status):
                    do throws(AccessTokenResponse.Invalid) {
                        let token = try AccessTokenResponse.parse(response.body, receivedAt: clock.now())
                        Counter(label: "paybridge_token_fetches_total", dimensions: [("outcome", "ok")]).increment()
                        logger.debug("bank token fetched", metadata: ["requestId": "\(requestId)"])
                        return token
                    } catch {
                        Counter(label: "paybridge_token_fetches_total", dimensions: [("outcome", "failed")]).increment()
                        throw BankError(reason: .authentication(error.description), call: call, requestId: requestId, attempts: attempts)
                    }
                case .success(let response) where response.status == 429 || response.status >= 500:
                    reason = .http(status: response.status, detail: BankError.describe(response))
                case .success(let response):
                    let detail = BankError.describe(response)
                    Counter(label: "paybridge_token_fetches_total", dimensions: [("outcome", "failed")]).increment()
                    let error = BankError(
                        reason: .authentication("HTTP \(response.status)" + (detail.isEmpty ? "" : ": \(detail)")), call: call,
                        requestId: requestId, attempts: attempts)
                    error.count()
                    throw error
                }
                let error = BankError(reason: reason, call: call, requestId: requestId, attempts: attempts)
                error.count()
                Counter(label: "paybridge_token_fetches_total", dimensions: [("outcome", "failed")]).increment()
                guard attempts <= source.retries else { throw error }
                let wait = backoff(attempt: attempts, base: source.retryBackoff, retryAfter: nil, random: random())
                logger.warning("authorize call failed; retrying", metadata: ["error": "\(error)", "requestId": "\(requestId)"])
                await sleep(wait)
            }
        }
    }
}

/// The authorize call's answer: `{"access_token": "…", "expires_in": 300 | "300"}`.
///
/// Decoded with typed values, not `JSONSerialization`: on Linux an `NSNumber` holding 0 or 1
/// passes `is Bool`, which turned `"expires_in": 1` into "not a number".
enum AccessTokenResponse {
    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    /// The bank documents 300 s; an answer without `expires_in` is taken to mean that.
    static let documentedLifetime: TimeInterval = 300

    private struct Body: Decodable {
        var accessToken: String?
        var expiresIn: Lifetime?

        enum CodingKeys: String, CodingKey {
            case accessToken = "access_token"
            case expiresIn = "expires_in"
        }
    }

    /// `expires_in` as the bank sends it: a JSON number or a string of digits.
    private enum Lifetime: Decodable {
        case seconds(Double)
        case notSeconds

        init(from decoder: any Decoder) throws {
            let value = try decoder.singleValueContainer()
            if value.decodeNil() {
                self = .seconds(AccessTokenResponse.documentedLifetime)
            } else if let number = try? value.decode(Double.self) {
                self = .seconds(number)
            } else if let text = try? value.decode(String.self), let number = Double(text.trimmingCharacters(in: .whitespaces)),
                number.isFinite
            {
                self = .seconds(number)
            } else {
                self = .notSeconds
            }
        }
    }

    /// A lifetime of 0 is a token already expiring: it serves the call that fetched it and
    /// the next call fetches another.
    static func parse(_ body: [UInt8], receivedAt: Date) throws(Invalid) -> AccessToken {
        let decoded: Body
        do {
            decoded = try JSONDecoder().decode(Body.self, from: Data(body))
        } catch {
            throw Invalid(description: "the token response is not a JSON object with access_token and expires_in")
        }
        guard let value = decoded.accessToken, !value.isEmpty else {
            throw Invalid(description: "the token response has no access_token")
        }
        let lifetime: TimeInterval
        switch decoded.expiresIn {
        case nil: lifetime = documentedLifetime
        case .seconds(let seconds): lifetime = seconds
        case .notSeconds: throw Invalid(description: "expires_in is not a number of seconds")
        }
        guard lifetime >= 0 else { throw Invalid(description: "expires_in is negative") }
        let expiresAt = receivedAt.addingTimeInterval(lifetime)
        return AccessToken(
            value: Secret(value), expiresAt: expiresAt,
            renewAt: expiresAt.addingTimeInterval(-TokenCache.renewalMargin(lifetime: lifetime)))
    }
}

/// Builds the query string of a watch.
enum QueryText {
    /// The watch's parameters with relative times resolved: `*Date*` parameters as
    /// `YYYY-MM-DD` (UTC), the others (`LastChangedTimestampFrom`) as an ISO 8601 instant.
    static func items(_ parameters: [QueryParameter], at date: Date) -> [(String, String)] {
        parameters.map { parameter in
            switch parameter.value {
            case .text(let text):
                return (parameter.name, text)
            case .list(let values):
                return (parameter.name, values.joined(separator: ","))
            case .relativeTime(let offset):
                let instant = date.addingTimeInterval(-offset.seconds)
                let stamp = Timestamp.iso8601(instant)
                return (parameter.name, BankVocabulary.QueryKind(parameter.name) == .date ? String(stamp.prefix(10)) : stamp)
            }
        }
    }

    static func encode(_ items: [(String, String)]) -> String {
        items.map { "\(percentEncode($0.0))=\(percentEncode($0.1))" }.joined(separator: "&")
    }

    private static let allowed: CharacterSet = {
        var set = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
        set.insert(charactersIn: ",:")
        return set
    }()

    static func percentEncode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}

/// `Retry-After`: seconds or an HTTP date.
public enum RetryAfter {
    public static func parse(_ value: String?, now: Date) -> Duration? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        // RFC 9110: a non-negative number of seconds; a negative one is no Retry-After.
        if let seconds = Int(value) { return seconds >= 0 ? .seconds(seconds) : nil }
        guard let date = HTTPDate.parse(value) else { return nil }
        return .milliseconds(Int64(max(0, date.timeIntervalSince(now)) * 1000))
    }
}

/// RFC 9110 §5.6.7's HTTP dates, read by hand: Foundation's DateFormatter leaked 128 bytes on
/// some inputs (found by fuzzing: `scripts/fuzz headers`), once per bank or endpoint answer.
enum HTTPDate {
    private static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

    /// `Sun, 06 Nov 1994 08:49:37 GMT` (IMF-fixdate), `Sunday, 06-Nov-94 08:49:37 GMT`
    /// (RFC 850) or `Sun Nov  6 08:49:37 1994` (asctime); nil for anything else.
    static func parse(_ text: String) -> Date? {
        let parts = text.split(separator: " ", omittingEmptySubsequences: true)
        let day: Int?, month: Int?, year: Int?, time: Substring
        if parts.count == 6, parts[0].hasSuffix(","), parts[5] == "GMT" {
            (day, month, year, time) = (Int(parts[1]), monthNumber(parts[2]), Int(parts[3]), parts[4])
        } else if parts.count == 4, parts[0].hasSuffix(","), parts[3] == "GMT" {
            let fields = parts[1].split(separator: "-")
            guard fields.count == 3, let short = Int(fields[2]), fields[2].count == 2 else { return nil }
            // RFC 9110: a two-digit year more than 50 years ahead is in the past century.
            (day, month, year, time) = (Int(fields[0]), monthNumber(fields[1]), short < 70 ? 2000 + short : 1900 + short, parts[2])
        } else if parts.count == 5 {
            (day, month, year, time) = (Int(parts[2]), monthNumber(parts[1]), Int(parts[4]), parts[3])
        } else {
            return nil
        }
        let clock = time.split(separator: ":").compactMap { Int($0) }
        guard let day, let month, let year, (1...31).contains(day), (1000...9999).contains(year), clock.count == 3,
            (0...23).contains(clock[0]), (0...59).contains(clock[1]), (0...60).contains(clock[2])
        else { return nil }
        let seconds = daysFromCivil(year: year, month: month, day: day) * 86400 + clock[0] * 3600 + clock[1] * 60 + clock[2]
        return Date(timeIntervalSince1970: TimeInterval(seconds))
    }

    private static func monthNumber(_ text: Substring) -> Int? {
        months.firstIndex(of: text.lowercased()).map { $0 + 1 }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    private static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146097 + dayOfEra - 719468
    }
}
