import Crypto
import Foundation
import SwiftASN1
import X509
import _CryptoExtras

/// What the sandbox demands of an AISP or PISP when started with its QSEAL certificate
/// (`paybridge sandbox --require-signature CERT.pem`): the certificate on the authorize
/// call, and on every API call a `Digest` of the body, the certificate in
/// `TPP-Signature-Certificate`, and a `Signature` over the listed headers that verifies with
/// the certificate's key. A request that fails gets the 401 a bank would give, with the
/// reason in the body.
public struct SignatureRequirement: Sendable {
    let certificateBase64: String
    let keyId: String
    let publicKey: _RSA.Signing.PublicKey
    /// When set, every API call must carry this `PSU-ID`, signed.
    public let psuId: String?

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    public init(certificatePEM: String, psuId: String? = nil) throws(Invalid) {
        guard let document = try? PEMDocument(pemString: certificatePEM), document.discriminator == "CERTIFICATE" else {
            throw Invalid(description: "not a PEM certificate")
        }
        try self.init(certificateDER: document.derBytes, psuId: psuId)
    }

    public init(certificateDER: [UInt8], psuId: String? = nil) throws(Invalid) {
        guard let certificate = try? Certificate(derEncoded: certificateDER) else { throw Invalid(description: "not an X.509 certificate") }
        guard let key = _RSA.Signing.PublicKey(certificate.publicKey) else { throw Invalid(description: "the certificate's key is not RSA") }
        certificateBase64 = Data(certificateDER).base64EncodedString()
        publicKey = key
        var serial = certificate.serialNumber.bytes.map { String($0, radix: 16, uppercase: true) }
            .map { $0.count == 1 ? "0" + $0 : $0 }.joined()
        while serial.hasPrefix("0"), serial.count > 1 { serial.removeFirst() }
        keyId = "SN=\(serial),CA=\(certificate.issuer)"
        self.psuId = psuId
    }

    /// Why the authorize call is refused, or nil.
    func refusal(ofAuthorize request: SandboxRequest) -> String? {
        let presented = request.headers["x-arr-clientcert"] ?? request.headers["x-bc-clientcert"]
        guard let presented else { return "the QSEAL certificate is missing (X-ARR-ClientCert or X-BC-ClientCert)" }
        return presented == certificateBase64 ? nil : "the certificate presented is not the registered QSEAL certificate"
    }

    /// Why an API call is refused, or nil.
    func refusal(of request: SandboxRequest) -> String? {
        guard let certificate = request.headers["tpp-signature-certificate"] else { return "TPP-Signature-Certificate is missing" }
        guard certificate == certificateBase64 else { return "TPP-Signature-Certificate is not the registered QSEAL certificate" }
        guard let digest = request.headers["digest"] else { return "Digest is missing" }
        let expected: String
        if digest.hasPrefix("SHA-256=") {
            expected = "SHA-256=" + Data(SHA256.hash(data: request.body)).base64EncodedString()
        } else if digest.hasPrefix("SHA-512=") {
            expected = "SHA-512=" + Data(SHA512.hash(data: request.body)).base64EncodedString()
        } else {
            return "Digest must be SHA-256=… or SHA-512=…"
        }
        guard digest == expected else { return "Digest does not match the body" }
        guard let header = request.headers["signature"] else { return "Signature is missing" }
        let fields = Self.fields(of: header)
        guard fields["keyId"] == keyId else { return "Signature's keyId does not name the certificate (expected \(keyId))" }
        let algorithm = fields["algorithm"]
        guard algorithm == "rsa-sha256" || algorithm == "rsa-sha512" else { return "Signature's algorithm must be rsa-sha256 or rsa-sha512" }
        guard (algorithm == "rsa-sha256") == digest.hasPrefix("SHA-256=") else { return "Digest and Signature use different hashes" }
        let names = (fields["headers"] ?? "").split(separator: " ").map { $0.lowercased() }
        guard names.contains("digest"), names.contains("x-request-id") else { return "Signature must cover digest and x-request-id" }
        if request.headers["psu-id"] != nil, !names.contains("psu-id") { return "PSU-ID is sent but not signed" }
        if let psuId, request.headers["psu-id"] != psuId { return "PSU-ID is missing or not the registered one" }
        var lines: [String] = []
        for name in names {
            guard let value = request.headers[name] else { return "\(name), listed in Signature's headers, is missing" }
            lines.append("\(name): \(value)")
        }
        guard let signature = fields["signature"].flatMap({ Data(base64Encoded: $0) }) else { return "Signature's signature is not base64" }
        let message = Data(lines.joined(separator: "\n").utf8)
        let valid =
            algorithm == "rsa-sha256"
            ? publicKey.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature), for: SHA256.hash(data: message), padding: .insecurePKCS1v1_5)
            : publicKey.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature), for: SHA512.hash(data: message), padding: .insecurePKCS1v1_5)
        return valid ? nil : "Signature does not verify with the certificate's key"
    }

    /// `keyId="…",algorithm="…",headers="…",signature="…"` as a dictionary.
    static func fields(of header: String) -> [String: String] {
        var fields: [String: String] = [:]
        var rest = Substring(header)
        while let equals = rest.firstIndex(of: "=") {
            let name = rest[..<equals].trimmingCharacters(in: CharacterSet(charactersIn: " ,"))
            var after = rest[rest.index(after: equals)...]
            guard after.first == "\"" else { break }
            after = after.dropFirst()
            guard let close = after.firstIndex(of: "\"") else { break }
            fields[name] = String(after[..<close])
            rest = after[after.index(after: close)...]
        }
        return fields
    }
}
