import Foundation

/// An endpoint's OAuth2 client-credentials token (RFC 6749 §4.4): fetched with a
/// form-encoded POST and the client's credentials in HTTP Basic (§2.3.1), cached until
/// `expires_in` minus a margin, one fetch shared by every attempt that waits for it, fetched
/// again once when a receiver refuses it (401).
///
/// A pure state machine: the dispatcher feeds it attempts that need a token and the token
/// server's answers, and carries out the actions it returns (send, fetch, fail).
struct OAuth2Tokens: Sendable {
    /// An attempt that needs the token.
    struct Attempt: Sendable, Equatable {
        var delivery: QueuedDelivery
        var startedAt: Date
        /// Its token was refused once already: a second 401 is the receiver's answer.
        var renewed: Bool
    }

    enum Action: Sendable, Equatable {
        case send(Attempt, token: Secret)
        /// Ask the token server (its answer goes to `received`).
        case fetch
        /// The token server failed: these attempts fail with its reason.
        case fail([Attempt], reason: String)
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    let settings: OAuth2Settings
    /// The token held, while the receiver has not refused it.
    private(set) var held: AccessToken?
    /// The attempts waiting for the fetch in flight (nil: none in flight).
    private(set) var waiting: [Attempt]?

    init(settings: OAuth2Settings) { self.settings = settings }

    /// An attempt needs the token: sent with the one held while it is good, else it waits
    /// for a fetch (started if none is in flight).
    mutating func authorize(_ attempt: Attempt, at now: Date) -> Action? {
        if !attempt.renewed, let held, now < held.renewAt { return .send(attempt, token: held.value) }
        if waiting != nil {
            waiting?.append(attempt)
            return nil
        }
        waiting = [attempt]
        return .fetch
    }

    /// The receiver answered 401 to `token`: drop it (unless a newer one is held) and send
    /// the attempt once more with a fresh one.
    mutating func refused(_ token: Secret, _ attempt: Attempt, at now: Date) -> Action? {
        if held?.value == token { held = nil }
        var again = attempt
        again.renewed = true
        return authorize(again, at: now)
    }

    /// The token server's answer to the fetch in flight.
    mutating func received(_ result: Result<AccessToken, Failure>) -> [Action] {
        guard let waiting else { return [] }
        self.waiting = nil
        switch result {
        case .success(let token):
            held = token
            return waiting.map { .send($0, token: token.value) }
        case .failure(let failure):
            return [.fail(waiting, reason: failure.description)]
        }
    }

    func request(timeout: Duration, tls: TLSOptions) -> HTTPRequest {
        var form = "grant_type=client_credentials"
        if let scope = settings.scope { form += "&scope=" + Self.formEncode(scope) }
        return HTTPRequest(
            method: .post, url: settings.tokenURL,
            headers: [
                ("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json"),
                ("Authorization", "Basic " + basicCredentials),
            ],
            body: Array(form.utf8), timeout: timeout, tls: tls, maxResponseBytes: 64 << 10)
    }

    private var basicCredentials: String {
        Data((Self.formEncode(settings.clientId) + ":" + Self.formEncode(settings.clientSecret.value)).utf8).base64EncodedString()
    }

    /// Each form a token server may repeat the client secret in: as given, form-encoded as
    /// sent (`+`) or with `%20`, as a JSON string's inside (with or without `\/`), and the
    /// Basic credentials it came in. Longest first, so no form is masked only in part.
    var secretForms: [String] {
        let secret = settings.clientSecret.value
        guard !secret.isEmpty else { return [] }
        var json = JSONWriter()
        json.string(secret)
        let escaped = String(decoding: json.output.dropFirst().dropLast(), as: UTF8.self)
        let form = Self.formEncode(secret)
        let percent = form.replacingOccurrences(of: "+", with: "%20")
        let forms = [
            secret, form, percent, Self.lowercasingEscapes(form), Self.lowercasingEscapes(percent), escaped,
            escaped.replacingOccurrences(of: "/", with: "\\/"), basicCredentials,
        ]
        return Set(forms).sorted { $0.count > $1.count }
    }

    /// The token server's answer; its error body is quoted, a token never is, and the client
    /// secret is masked should the server repeat it (`invalid_client: bad secret …`) in any of
    /// `secretForms`.
    static func parse(_ result: Result<HTTPResponse, TransportError>, receivedAt: Date, masking secretForms: [String]) -> Result<AccessToken, Failure> {
        switch result {
        case .failure(let error):
            return .failure(Failure(description: "\(error)"))
        case .success(let response) where (200..<300).contains(response.status):
            do throws(AccessTokenResponse.Invalid) {
                return .success(try AccessTokenResponse.parse(response.body, receivedAt: receivedAt))
            } catch {
                return .failure(Failure(description: error.description))
            }
        case .success(let response):
            // Masked in the whole answer before it is cut.
            var text = String(decoding: response.body, as: UTF8.self)
            for form in secretForms { text = text.replacingOccurrences(of: form, with: "[client secret]") }
            let detail = text.count > 200 ? String(text.prefix(200)) + "…" : text
            return .failure(Failure(description: "HTTP \(response.status)" + (detail.isEmpty ? "" : ": \(detail)")))
        }
    }

    /// `%2F` as `%2f`: percent-encoding's hex digits in either case mean the same.
    private static func lowercasingEscapes(_ text: String) -> String {
        var result = ""
        var hexDigitsLeft = 0
        for character in text {
            if hexDigitsLeft > 0 {
                result += character.lowercased()
                hexDigitsLeft -= 1
            } else {
                result.append(character)
                if character == "%" { hexDigitsLeft = 2 }
            }
        }
        return result
    }

    /// `application/x-www-form-urlencoded`, as RFC 6749 Appendix B asks for credentials too.
    static func formEncode(_ text: String) -> String {
        let allowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._*")
        return (text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text).replacingOccurrences(of: "%20", with: "+")
    }
}
