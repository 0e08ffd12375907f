import Foundation
import Metrics

/// A bank call that failed, with the `X-Request-ID` of its last attempt so the bank's
/// support can find it.
public struct BankError: Error, Sendable, CustomStringConvertible {
    public enum Reason: Sendable {
        /// Non-2xx after the retries (or at once for a 4xx).
        case http(status: Int, detail: String)
        case transport(TransportError)
        /// 401 again with a freshly issued token; `detail` is the bank's reason, if it gave one.
        case unauthorized(detail: String)
        /// The authorize call itself failed.
        case authentication(String)
        /// The body is not what the API promises.
        case malformed(PageScanError)
    }

    public var reason: Reason
    /// "GET /api/v1/payments/singles?…" with the query (never credentials).
    public var call: String
    public var requestId: String
    public var attempts: Int

    public var description: String {
        let tries = attempts > 1 ? ", after \(attempts) attempts" : ""
        let what: String
        switch reason {
        case .http(let status, let detail):
            what = "HTTP \(status)" + (detail.isEmpty ? "" : ": \(detail)")
        case .transport(let error):
            what = "\(error)"
        case .unauthorized(let detail):
            what = "HTTP 401 even with a fresh token" + (detail.isEmpty ? "" : " (\(detail))")
                + ": check the credentials, the IP allow-list and, for AISP/PISP access, source.signing"
        case .authentication(let detail):
            what = "authentication failed: \(detail)"
        case .malformed(let error):
            what = "malformed response: \(error)"
        }
        return "\(call) failed: \(what) (request id \(requestId)\(tries))"
    }

    /// `paybridge_bank_errors_total{code}`: `http_503`, `timeout`, `connection`, `tls`,
    /// `unauthorized`, `authentication`, `malformed`.
    public var code: String {
        switch reason {
        case .http(let status, _): return "http_\(status)"
        case .transport(let error):
            switch error {
            case .timedOut: return "timeout"
            case .tls: return "tls"
            case .connectionFailed: return "connection"
            default: return "transport"
            }
        case .unauthorized: return "unauthorized"
        case .authentication: return "authentication"
        case .malformed: return "malformed"
        }
    }

    func count() {
        Counter(label: "paybridge_bank_errors_total", dimensions: [("code", code)]).increment()
    }

    /// What a refusal said: its body, and for a redirect (never followed) where it pointed,
    /// without the query.
    static func describe(_ response: HTTPResponse) -> String {
        let body = describeBody(response.body)
        guard (300..<400).contains(response.status), let location = response.header("location"), !location.isEmpty else { return body }
        let shown = "redirected to \(location.split(separator: "?", maxSplits: 1).first.map(String.init) ?? location) (not followed)"
        return body.isEmpty ? shown : "\(shown): \(body)"
    }

    /// The bank's error body (`errorCode`, `errorDescription`, `propertyName`; one object or a
    /// list; ASP.NET's validation problem with its `errors` by field) in one line, or an
    /// excerpt of whatever else came back.
    static func describeBody(_ body: [UInt8]) -> String {
        guard !body.isEmpty else { return "" }
        let parsed = try? JSONSerialization.jsonObject(with: Data(body))
        let items: [[String: Any]]
        var fields: [String] = []
        if let object = parsed as? [String: Any] {
            items = (object["errors"] as? [[String: Any]]) ?? [object]
            if let problems = object["errors"] as? [String: Any] {
                fields = problems.sorted { $0.key < $1.key }.map { field, messages in
                    "\(field): " + ((messages as? [Any])?.map { "\($0)" }.joined(separator: " ") ?? "\(messages)")
                }
            }
        } else if let list = parsed as? [[String: Any]] {
            items = list
        } else {
            return HTTPResponse(status: 0, body: body).bodyExcerpt(limit: 200)
        }
        let parts = items.compactMap { item -> String? in
            let code = item["errorCode"].map { "\($0)" }
            let text = (item["errorDescription"] ?? item["errorText"] ?? item["title"]).map { "\($0)" }
            let property = item["propertyName"].map { "\($0)" }
            guard code != nil || text != nil else { return nil }
            var line = [code, text].compactMap { $0 }.joined(separator: ": ")
            if let property, !property.isEmpty, property != "<null>" { line += " (property \(property))" }
            return line
        }
        return parts.isEmpty ? HTTPResponse(status: 0, body: body).bodyExcerpt(limit: 200) : (parts + fields).joined(separator: "; ")
    }
}
