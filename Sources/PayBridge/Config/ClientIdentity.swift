import Foundation
import SwiftASN1
import X509

/// A client certificate and its key for mutual TLS, checked when the config loads.
enum ClientIdentity {
    /// What is wrong with the pair, nil when it is fine (or the key is encrypted: libcurl
    /// asks for its passphrase, so it is not opened here).
    static func problem(certificateFile: String, keyFile: String) -> (inKey: Bool, text: String)? {
        guard let certificateText = try? String(contentsOfFile: certificateFile, encoding: .utf8),
            let certificate = try? Certificate(pemEncoded: certificateText)
        else { return (false, "\(certificateFile) is not a PEM certificate") }
        guard let keyText = try? String(contentsOfFile: keyFile, encoding: .utf8) else { return (true, "\(keyFile) is not a PEM private key") }
        if keyText.contains("ENCRYPTED") { return nil }
        guard let key = try? Certificate.PrivateKey(pemEncoded: keyText) else {
            return (true, "\(keyFile) is not a PEM private key (RSA, EC or Ed25519)")
        }
        guard key.publicKey == certificate.publicKey else {
            return (true, "\(keyFile) does not belong to the certificate \(certificateFile) (their public keys differ)")
        }
        return nil
    }
}
