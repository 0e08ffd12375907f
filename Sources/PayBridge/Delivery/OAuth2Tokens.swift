import Foundation

/// An endpoint's OAuth2 client-credentials token (RFC 6749 §4.4): fetched with a
/// form-encoded POST and the client's credentials in HTTP Basic (§2.3.1), cached until
/// `expires_in` minus a margin, one fetch shared by every delivery that waits for it.
///
/// Held by the dispatcher's loop only; the fetch's answer comes back as an event.
final class OAuth2Tokens {
    let settings: OAuth2Settings
    var current: AccessToken?
    var fetching = false
    /// Attempts waiting for a token (with whether theirs was refused once already).
    var waiting: [(delivery: QueuedDelivery, startedAt: Date, renewed: Bool)] = []

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    init(settings: OAuth2Settings) { self.settings = settings }

    /// The cached token while it is good.
    func valid(at date: Date) -> Secret? {
        guard let current, date < current.renewAt else { return nil }
        return current.value
    }

    /// Drops the token the receiver refused (a newer one is kept).
    func forget(_ token: Secret) {
        if current?.value == token { current = nil }
    }

    func request(timeout: Duration, tls: TLSOptions) -> HTTPRequest {
        var form = "grant_type=client_credentials"
        if let scope = settings.scope { form += "&scope=" + Self.formEncode(scope) }
        let credentials = Self.formEncode(settings.clientId) + ":" + Self.formEncode(settings.clientSecret.value)
        return HTTPRequest(
            method: .post, url: settings.tokenURL,
            headers: [
                ("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json"),
                ("Authorization", "Basic " + Data(credentials.utf8).base64EncodedString()),
            ],
            body: Array(form.utf8), timeout: timeout, tls: tls, maxResponseBytes: 64 << 10)
    }

    /// The token server's answer; its error body is quoted, a token never is.
    static func parse(_ result: Result<HTTPResponse, TransportError>, receivedAt: Date) -> Result<AccessToken, Failure> {
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
            let detail = response.bodyExcerpt(limit: 200)
            return .failure(Failure(description: "HTTP \(response.status)" + (detail.isEmpty ? "" : ": \(detail)")))
        }
    }

    /// `application/x-www-form-urlencoded`, as RFC 6749 Appendix B asks for credentials too.
    static func formEncode(_ text: String) -> String {
        let allowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._*")
        return (text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text).replacingOccurrences(of: "%20", with: "+")
    }
}
