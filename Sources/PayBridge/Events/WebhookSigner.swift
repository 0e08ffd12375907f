import Crypto
import Foundation

/// Standard Webhooks v1 signatures: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
/// keyed by the base64 part of a `whsec_` secret; one signature per secret, space-separated,
/// so receivers keep verifying while a secret is rotated.
public struct WebhookSigner: Sendable {
    private let keys: [SymmetricKey]

    public init(secrets: [Secret]) {
        keys = secrets.compactMap { Self.key(fromSecret: $0.value) }
    }

    public var isSigning: Bool { !keys.isEmpty }

    /// The HMAC key of a secret, or nil when it is not `whsec_` + base64 (the prefix is optional).
    public static func key(fromSecret secret: String) -> SymmetricKey? {
        let encoded = secret.hasPrefix("whsec_") ? String(secret.dropFirst(6)) : secret
        guard let data = Data(base64Encoded: encoded), !data.isEmpty else { return nil }
        return SymmetricKey(data: data)
    }

    /// The `webhook-signature` header value, or nil when the endpoint has no secret.
    public func signature(id: String, timestamp: Int, body: [UInt8]) -> String? {
        guard !keys.isEmpty else { return nil }
        let prefix = Array("\(id).\(timestamp).".utf8)
        return keys.map { key in
            var mac = HMAC<SHA256>(key: key)
            mac.update(data: prefix)
            mac.update(data: body)
            return "v1," + Data(mac.finalize()).base64EncodedString()
        }.joined(separator: " ")
    }
}
