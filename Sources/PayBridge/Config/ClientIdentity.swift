import Foundation
import SwiftASN1
import X509

/// A client certificate and its key for mutual TLS, checked when the config loads.
enum ClientIdentity {
    /// What is certainly wrong with the pair (libcurl would fail every handshake), nil
    /// otherwise. Files may hold a chain, or the certificate and key together; what this PEM
    /// reader cannot read (lines wrapped at 76, a curve it lacks, an encrypted key, whose
    /// passphrase libcurl asks for) is left to libcurl.
    static func problem(certificateFile: String, keyFile: String) -> (inKey: Bool, text: String)? {
        guard let certificateText = try? String(contentsOfFile: certificateFile, encoding: .utf8), certificateText.contains("-----BEGIN ") else {
            return (false, "\(certificateFile) is not a PEM certificate")
        }
        guard let keyText = try? String(contentsOfFile: keyFile, encoding: .utf8), keyText.contains("-----BEGIN ") else {
            return (true, "\(keyFile) is not a PEM private key")
        }
        guard let certificates = try? PEMDocument.parseMultiple(pemString: certificateText),
            let keys = try? PEMDocument.parseMultiple(pemString: keyText)
        else { return nil }
        guard let leaf = certificates.first(where: { $0.discriminator == "CERTIFICATE" }) else {
            return (false, "\(certificateFile) holds no CERTIFICATE")
        }
        guard let keyDocument = keys.first(where: { $0.discriminator.hasSuffix("PRIVATE KEY") }) else {
            return (true, "\(keyFile) holds no PRIVATE KEY")
        }
        guard !keyText.contains("ENCRYPTED"), let certificate = try? Certificate(derEncoded: leaf.derBytes),
            let key = try? Certificate.PrivateKey(pemDocument: keyDocument)
        else { return nil }
        guard key.publicKey == certificate.publicKey else {
            return (true, "\(keyFile) does not belong to the certificate \(certificateFile) (their public keys differ)")
        }
        return nil
    }
}
