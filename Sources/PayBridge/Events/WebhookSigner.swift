import Crypto
import Foundation

/// Standard Webhooks v1 signatures: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
/// keyed by the base64 part of a `whsec_` secret; one signature per secret, space-separated,
/// so receivers keep verifying while a secret is rotated.
public struct WebhookSigner: Sendable {
    /// One HMAC already keyed per secret; each signature starts from a copy, so the key
    /// schedule is not redone for every request.
    private let keyed: [HMAC<SHA256>]

    public init(secrets: [Secret]) {
        keyed = secrets.compactMap { Self.key(fromSecret: $0.value) }.map { HMAC<SHA256>(key: $0) }
    }

    public var isSigning: Bool { !keyed.isEmpty }

    /// The HMAC key of a secret, or nil when it is not `whsec_` + base64 (the prefix is optional).
    public static func key(fromSecret secret: String) -> SymmetricKey? {
        let encoded = secret.hasPrefix("whsec_") ? String(secret.dropFirst(6)) : secret
        guard let data = Data(base64Encoded: encoded), !data.isEmpty else { return nil }
        return SymmetricKey(data: data)
    }

    /// The `webhook-signature` header value, or nil when the endpoint has no secret.
    public func signature(id: String, timestamp: Int, body: [UInt8]) -> String? {
        guard !keyed.isEmpty else { return nil }
        let prefix = Array("\(id).\(timestamp).".utf8)
        return keyed.map { template in
            var mac = template
            mac.update(data: prefix)
            mac.update(data: body)
            return "v1," + Data(mac.finalize()).base64EncodedString()
        }.joined(separator: " ")
    }
}
