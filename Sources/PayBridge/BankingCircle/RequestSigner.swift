import Crypto
import Foundation
import SwiftASN1
import X509
import _CryptoExtras

/// Signs requests to the bank with a QSEAL certificate, as licensed AISPs and PISPs must
/// ("Connecting to our APIs as an AISP and PISP"): the certificate on the authorize call,
/// and `Digest`, `Signature`, `TPP-Signature-Certificate` and `PSU-ID` on every API call.
///
/// The key is read once, when the config loads; neither it nor its passphrase is kept in
/// any form that prints.
public struct RequestSigner: Sendable, CustomStringConvertible {
    public enum Algorithm: String, Sendable, CaseIterable {
        case rsaSHA256 = "rsa-sha256"
        case rsaSHA512 = "rsa-sha512"

        /// The `Digest` header's prefix.
        var digestName: String { self == .rsaSHA256 ? "SHA-256" : "SHA-512" }
    }

    /// Where the authorize call carries the certificate.
    public enum CertificateHeader: String, Sendable, CaseIterable {
        case arr = "X-ARR-ClientCert"
        case bc = "X-BC-ClientCert"
    }

    public let algorithm: Algorithm
    public let certificateHeader: CertificateHeader
    public let psuId: String?
    /// `SN=<serial, hex>,CA=<issuer DN>`.
    public let keyId: String
    /// The certificate's DER, base64: `TPP-Signature-Certificate` and the authorize header.
    public let certificateBase64: String
    private let key: _RSA.Signing.PrivateKey

    /// Why a certificate or key cannot be used; `field` is the config key to point at.
    public struct SetupError: Error, Sendable, CustomStringConvertible {
        public enum Field: Sendable { case certificate, key, keyPassphrase }
        public var field: Field
        public var description: String
    }

    /// Loads the certificate and key and checks that they belong together.
    public static func load(
        certificatePEM: String, keyPEM: String, passphrase: Secret?, algorithm: Algorithm = .rsaSHA256,
        certificateHeader: CertificateHeader = .arr, psuId: String? = nil
    ) throws(SetupError) -> RequestSigner {
        let document: PEMDocument
        let certificate: Certificate
        do {
            document = try PEMDocument(pemString: certificatePEM)
            guard document.discriminator == "CERTIFICATE" else {
                throw SetupError(field: .certificate, description: "holds a \(document.discriminator), not a CERTIFICATE")
            }
            certificate = try Certificate(derEncoded: document.derBytes)
        } catch let error as SetupError {
            throw error
        } catch {
            throw SetupError(field: .certificate, description: "is not a PEM certificate")
        }
        let key = try loadKey(keyPEM, passphrase: passphrase)
        guard let certified = _RSA.Signing.PublicKey(certificate.publicKey) else {
            throw SetupError(field: .certificate, description: "does not hold an RSA public key (QSEAL signing here is RSA)")
        }
        guard certified.derRepresentation == key.publicKey.derRepresentation else {
            throw SetupError(field: .key, description: "does not belong to the certificate (their public keys differ)")
        }
        return RequestSigner(
            algorithm: algorithm, certificateHeader: certificateHeader, psuId: psuId,
            keyId: "SN=\(serialHex(certificate.serialNumber)),CA=\(certificate.issuer)",
            certificateBase64: Data(document.derBytes).base64EncodedString(), key: key)
    }

    private static func loadKey(_ pem: String, passphrase: Secret?) throws(SetupError) -> _RSA.Signing.PrivateKey {
        let encrypted = pem.contains("ENCRYPTED")
        if encrypted, passphrase == nil {
            throw SetupError(field: .key, description: "is encrypted: give its passphrase in keyPassphrase")
        }
        do {
            if let passphrase, encrypted {
                return try _RSA.Signing.PrivateKey(encryptedPEMRepresentation: pem) { (set: (Data) -> Void) in set(Data(passphrase.value.utf8)) }
            }
            return try _RSA.Signing.PrivateKey(pemRepresentation: pem)
        } catch {
            if encrypted { throw SetupError(field: .keyPassphrase, description: "does not decrypt the key (a wrong passphrase?)") }
            throw SetupError(field: .key, description: "is not an RSA private key in PEM (of 2048 bits or more)")
        }
    }

    /// The serial number as a hexadecimal integer, upper case, no leading zeros.
    static func serialHex(_ serial: Certificate.SerialNumber) -> String {
        let digits = Array("0123456789ABCDEF")
        var text = ""
        for byte in serial.bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        let trimmed = text.drop { $0 == "0" }
        return trimmed.isEmpty ? "0" : String(trimmed)
    }

    /// The header the authorize call adds.
    public var authorizeHeaders: [(name: String, value: String)] { [(certificateHeader.rawValue, certificateBase64)] }

    /// `Digest`, `TPP-Signature-Certificate`, `PSU-ID` and `Signature` for one API call.
    public func headers(requestId: String, body: [UInt8] = []) -> [(name: String, value: String)] {
        let digest: String
        switch algorithm {
        case .rsaSHA256: digest = "SHA-256=" + Data(SHA256.hash(data: body)).base64EncodedString()
        case .rsaSHA512: digest = "SHA-512=" + Data(SHA512.hash(data: body)).base64EncodedString()
        }
        var names = ["digest", "x-request-id"]
        var signed = "digest: \(digest)\nx-request-id: \(requestId)"
        if let psuId {
            names.append("psu-id")
            signed += "\npsu-id: \(psuId)"
        }
        let signature: Data
        do {
            switch algorithm {
            case .rsaSHA256:
                signature = try key.signature(for: SHA256.hash(data: Data(signed.utf8)), padding: .insecurePKCS1v1_5).rawRepresentation
            case .rsaSHA512:
                signature = try key.signature(for: SHA512.hash(data: Data(signed.utf8)), padding: .insecurePKCS1v1_5).rawRepresentation
            }
        } catch {
            // Signing with a key that loaded cannot fail short of memory exhaustion; a request
            // without its signature is refused by the bank and reported with its request id.
            signature = Data()
        }
        var headers: [(name: String, value: String)] = [("Digest", digest), ("TPP-Signature-Certificate", certificateBase64)]
        if let psuId { headers.append(("PSU-ID", psuId)) }
        headers.append(
            (
                "Signature",
                "keyId=\"\(keyId)\",algorithm=\"\(algorithm.rawValue)\",headers=\"\(names.joined(separator: " "))\","
                    + "signature=\"\(signature.base64EncodedString())\""
            ))
        return headers
    }

    public var description: String { "RequestSigner(\(keyId), \(algorithm.rawValue))" }
}
