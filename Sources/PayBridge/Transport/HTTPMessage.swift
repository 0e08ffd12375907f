import Foundation

/// TLS material for one peer. Verification of the peer is always on; `caFile` only
/// replaces the trust store (for a private CA).
public struct TLSOptions: Sendable, Equatable {
    public var caFile: String?
    public var clientCertificate: String?
    public var clientKey: String?

    public init(caFile: String? = nil, clientCertificate: String? = nil, clientKey: String? = nil) {
        self.caFile = caFile
        self.clientCertificate = clientCertificate
        self.clientKey = clientKey
    }
}

/// An outbound HTTP proxy (`source.proxy`, `endpoints.NAME.proxy`). Without one, libcurl's
/// environment variables (`https_proxy`, `no_proxy`, …) apply as before.
public struct Proxy: Sendable, Equatable {
    /// `http://host:port`, `https://…` or `socks5h://…`; may carry credentials, so it is a
    /// secret (never in logs or errors).
    public var url: Secret
    /// Hosts reached directly, libcurl's list: `localhost,.internal,10.0.0.0/8` (`*`: all).
    public var noProxy: String?

    public init(url: Secret, noProxy: String? = nil) {
        self.url = url
        self.noProxy = noProxy
    }
}

/// One outgoing HTTP request, as the transport sends it.
public struct HTTPRequest: Sendable {
    public enum Method: String, Sendable { case get = "GET", post = "POST", put = "PUT", delete = "DELETE" }

    public var method: Method
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Whole transfer, connect included.
    public var timeout: Duration
    public var connectTimeout: Duration
    public var tls: TLSOptions
    /// Response bytes kept; the rest is read and discarded so the connection stays usable.
    public var maxResponseBytes: Int
    public var proxy: Proxy?

    public init(
        method: Method, url: String, headers: [(name: String, value: String)] = [], body: [UInt8] = [],
        timeout: Duration = .seconds(30), connectTimeout: Duration = .seconds(10), tls: TLSOptions = TLSOptions(),
        maxResponseBytes: Int = 64 << 20, proxy: Proxy? = nil
    ) {
        self.proxy = proxy
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.tls = tls
        self.maxResponseBytes = maxResponseBytes
    }
}

/// A response with its status, headers and the body bytes kept.
public struct HTTPResponse: Sendable {
    public var status: Int
    /// The raw header block (`Name: value` lines); parsed only when a header is asked for,
    /// since most responses are never asked.
    public var rawHeaders: [UInt8]
    public var body: [UInt8]
    /// True when the body was longer than the request's `maxResponseBytes`.
    public var truncated: Bool

    public init(status: Int, rawHeaders: [UInt8] = [], body: [UInt8] = [], truncated: Bool = false) {
        self.status = status
        self.rawHeaders = rawHeaders
        self.body = body
        self.truncated = truncated
    }

    /// The last value of header `name` (compared without regard to case).
    public func header(_ name: String) -> String? {
        let wanted = Array(name.utf8)
        var value: String?
        for line in rawHeaders.split(separator: UInt8(ascii: "\n")) {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon - line.startIndex == wanted.count else { continue }
            var matches = true
            for (offset, byte) in line[line.startIndex..<colon].enumerated() where byte | 0x20 != wanted[offset] | 0x20 {
                matches = false
                break
            }
            guard matches else { continue }
            let text = String(decoding: line[(colon + 1)...], as: UTF8.self)
            value = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return value
    }

    /// The first bytes of the body as text, for logs and error messages.
    public func bodyExcerpt(limit: Int = 300) -> String {
        let text = String(decoding: body.prefix(limit), as: UTF8.self)
        return body.count > limit ? text + "…" : text
    }
}

/// Why a request got no HTTP response.
public enum TransportError: Error, Sendable, Equatable, CustomStringConvertible {
    case timedOut(String)
    case connectionFailed(String)
    case tls(String)
    case invalidRequest(String)
    case cancelled
    case other(String)

    public var description: String {
        switch self {
        case .timedOut(let detail): return "timed out (\(detail))"
        case .connectionFailed(let detail): return "connection failed (\(detail))"
        case .tls(let detail): return "TLS error (\(detail))"
        case .invalidRequest(let detail): return "invalid request (\(detail))"
        case .cancelled: return "cancelled"
        case .other(let detail): return detail
        }
    }
}

/// Sends HTTP requests. `CurlHTTPClient` is the real one; the rest of paybridge only
/// sees this protocol.
public protocol HTTPClient: Sendable {
    /// Sends `request`; `completion` runs on the transport's thread and must be quick.
    func submit(_ request: HTTPRequest, completion: @escaping @Sendable (Result<HTTPResponse, TransportError>) -> Void)
    /// Sends several requests at once (one wake-up of the transport for all of them).
    func submit(batch: [(HTTPRequest, @Sendable (Result<HTTPResponse, TransportError>) -> Void)])
    /// Takes back a large response body the caller is done with, to receive the next one in.
    func recycle(_ body: [UInt8])
}

extension HTTPClient {
    public func recycle(_ body: [UInt8]) {}

    public func submit(batch: [(HTTPRequest, @Sendable (Result<HTTPResponse, TransportError>) -> Void)]) {
        for (request, completion) in batch { submit(request, completion: completion) }
    }

    public func send(_ request: HTTPRequest) async -> Result<HTTPResponse, TransportError> {
        await withCheckedContinuation { continuation in
            submit(request) { continuation.resume(returning: $0) }
        }
    }
}
