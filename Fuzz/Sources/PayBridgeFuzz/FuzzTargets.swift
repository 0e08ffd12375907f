import Foundation

@testable import PayBridge

/// libFuzzer's driver, called from our own `main` (SwiftPM names an executable's entry point
/// itself, so libFuzzer's `main` is never linked in).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

@main
enum FuzzMain {
    static func main() {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        _ = FuzzTarget.current  // fails at once, naming the targets, when none is chosen
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzOneInput))
    }
}

/// libFuzzer's entry: the target named by `PAYBRIDGE_FUZZ_TARGET` gets every input. Each
/// target calls the real parser with the fuzzer's bytes; a crash, a trap or an oracle's
/// disagreement (a `fatalError` naming it) is a finding. Built and run by `scripts/fuzz`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    FuzzTarget.current.run(bytes)
    return 0
}

enum FuzzTarget: String, CaseIterable {
    case pageList = "page-list"
    case pagePayment = "page-payment"
    case token
    case bankError = "bank-error"
    case headers
    case config
    case signing
    case notification

    static let current: FuzzTarget = {
        let name = ProcessInfo.processInfo.environment["PAYBRIDGE_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            fatalError("PAYBRIDGE_FUZZ_TARGET must be one of: \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return target
    }()

    func run(_ bytes: [UInt8]) {
        switch self {
        case .pageList: PageOracle.list(bytes)
        case .pagePayment: PageOracle.payment(bytes)
        case .token: _ = try? AccessTokenResponse.parse(bytes, receivedAt: Date(timeIntervalSince1970: 1_800_000_000))
        case .bankError: _ = BankError.describeBody(bytes)
        case .headers: Headers.run(bytes)
        case .config: ConfigText.run(bytes)
        case .signing: Signing.run(bytes)
        case .notification:
            // The bank's notifications once decrypted (UTF-8 or UTF-16LE), and its subscription list.
            let text = NotificationMessage.decodeText(bytes)
            if let notifications = try? NotificationMessage.read(text), notifications.contains(where: { $0.eventId.isEmpty }) {
                fatalError("oracle: a notification without an eventId was accepted")
            }
            _ = try? NotificationSubscription.parseList(bytes)
        }
    }
}

/// The page scanner against an independent parser: where the scanner accepts a page,
/// `JSONSerialization` must read the same payments (ids, statuses, each payment's raw bytes
/// parsing to the same object); where `JSONSerialization` rejects the bytes, the scanner must
/// too, unless the difference is one the scanner is right about (listed in `Disagreement`).
enum PageOracle {
    static func list(_ bytes: [UInt8]) {
        let scanned = Result { () throws(PageScanError) in try PaymentPageScanner.scanList(bytes) }
        check(bytes, scanned) { object in
            guard let envelope = object as? NSDictionary, let result = field(envelope, "result") as? NSArray else { return nil }
            return result.map { $0 }
        }
        if case .success(let page) = scanned, let envelope = reference(bytes) as? NSDictionary,
            let info = field(envelope, "pageInfo") as? NSDictionary
        {
            // The integers paybridge reads from pageInfo, where they are plain integers.
            for (key, value) in [("currentPage", page.currentPage), ("pageSize", page.pageSize), ("rowCount", page.rowCount)] {
                if let value, let number = field(info, key) as? NSNumber, "\(number)" == "\(value)", number.intValue != value {
                    fatalError("oracle: pageInfo.\(key) is \(number), the scanner read \(value)")
                }
            }
        }
    }

    static func payment(_ bytes: [UInt8]) {
        let scanned = Result { () throws(PageScanError) in try PaymentPageScanner.scanPayment(bytes) }
        check(bytes, scanned) { object in object is NSDictionary ? [object] : nil }
    }

    /// A member by name, as the bank's API reads names: without regard to case.
    static func field(_ object: NSDictionary, _ name: String) -> Any? {
        for case let (key as String, value) in object where key.lowercased() == name.lowercased() { return value }
        return nil
    }

    /// `JSONSerialization`'s reading, or nil where it rejects the bytes.
    static func reference(_ bytes: [UInt8]) -> Any? {
        try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
    }

    static func check(_ bytes: [UInt8], _ scanned: Result<PaymentPage, PageScanError>, payments: (Any) -> [Any]?) {
        let object = reference(bytes)
        switch scanned {
        case .success(let page):
            guard let object else {
                if Disagreement.scannerRightToAccept(bytes) { return }
                fatalError("oracle: the scanner accepted a page JSONSerialization rejects: \(String(decoding: bytes.prefix(200), as: UTF8.self))")
            }
            guard let expected = payments(object), expected.count == page.payments.count else {
                fatalError("oracle: the scanner found \(page.payments.count) payments, JSONSerialization another count")
            }
            for (payment, element) in zip(page.payments, expected) {
                guard let fields = element as? NSDictionary else { fatalError("oracle: payment \(payment.paymentId) is not an object there") }
                guard field(fields, "paymentId") as? String == payment.paymentId, field(fields, "status") as? String == payment.status else {
                    fatalError("oracle: payment \(payment.paymentId) \(payment.status) reads otherwise in JSONSerialization")
                }
                let raw = Array(page.rawObject(of: payment))
                guard let again = reference(raw) as? NSDictionary, again.isEqual(fields) else {
                    fatalError("oracle: payment \(payment.paymentId)'s raw bytes do not round-trip")
                }
            }
        case .failure:
            // A rejection of JSON that JSONSerialization reads is the contract's (no "result",
            // a payment without a paymentId or status string, …): nothing to compare.
            break
        }
    }
}

/// Where the scanner and `JSONSerialization` differ and the scanner is right (see
/// docs/reliability.md, "Fuzzing").
enum Disagreement {
    /// RFC 8259 allows a `\uD800`-style escape that pairs with nothing (its grammar accepts
    /// any four hex digits); Foundation rejects the whole document. The scanner never decodes
    /// such a string unless it is a paymentId or status, which then holds U+FFFD.
    static func scannerRightToAccept(_ bytes: [UInt8]) -> Bool {
        loneSurrogateEscape(bytes) || numberBeyondDouble(bytes)
    }

    /// RFC 8259 §6 lets a parser limit numbers' range: Foundation rejects a document with a
    /// number no Double holds (`1e400`); the scanner checks the grammar only, reads no number
    /// but pageInfo's integers (skipping one that does not fit an Int), and forwards the bank's
    /// bytes as they are.
    static func numberBeyondDouble(_ bytes: [UInt8]) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let pattern = try? NSRegularExpression(pattern: #"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?"#) else { return false }
        let range = NSRange(text.startIndex..., in: text)
        return pattern.matches(in: text, range: range).contains { match in
            guard let token = Range(match.range, in: text) else { return false }
            return Double(text[token]).map { !$0.isFinite } ?? false
        }
    }

    static func loneSurrogateEscape(_ bytes: [UInt8]) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self).lowercased()
        return text.contains("\\ud8") || text.contains("\\ud9") || text.contains("\\uda") || text.contains("\\udb")
            || text.contains("\\udc") || text.contains("\\udd") || text.contains("\\ude") || text.contains("\\udf")
    }
}

/// `Retry-After` (seconds or an HTTP date) through the retry wait it feeds, and header lookup
/// in raw response headers (the status line included).
enum Headers {
    static func run(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let wait = RetryAfter.parse(text, now: now)
        _ = BankingCircleClient.backoff(attempt: Int(bytes.first ?? 1), base: .milliseconds(500), retryAfter: wait, random: 0.5)
        let response = HTTPResponse(status: 503, rawHeaders: bytes, body: bytes)
        for name in ["retry-after", "content-type", "content-length", "x-request-id", ""] {
            _ = response.header(name)
        }
        _ = response.bodyExcerpt(limit: 200)
    }
}

/// Config text as the loader reads a file: YAML or JSON, `${ENV}` expansion, durations,
/// filters with regexes and JSON paths, Mustache templates.
enum ConfigText {
    static let environment = ["BC_USERNAME": "user", "BC_PASSWORD": "secret", "ERP_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "EMPTY": ""]

    static func run(_ bytes: [UInt8]) {
        guard let text = String(validating: bytes, as: UTF8.self) else { return }
        for policy in [ConfigLoader.UnsetVariables.error, .deferred] {
            _ = try? ConfigLoader.load(text: text, file: "fuzz.yaml", baseDirectory: "/nonexistent-fuzz", environment: environment, unsetVariables: policy)
        }
    }
}

/// Standard Webhooks signing with any secret text and body; the QSEAL signer's key and
/// certificate readers with any PEM text.
enum Signing {
    static func run(_ bytes: [UInt8]) {
        let split = bytes.firstIndex(of: 0) ?? bytes.count / 2
        let secret = String(decoding: bytes[..<split], as: UTF8.self)
        let body = Array(bytes[split...])
        _ = WebhookSigner(secrets: [Secret(secret)]).signature(id: "msg_fuzz", timestamp: 1_800_000_000, body: body)
        let text = String(decoding: bytes, as: UTF8.self)
        _ = try? RequestSigner.load(certificatePEM: text, keyPEM: text, passphrase: Secret(secret))
        _ = try? RequestSigner.load(certificatePEM: secret, keyPEM: String(decoding: body, as: UTF8.self), passphrase: nil)
    }
}
