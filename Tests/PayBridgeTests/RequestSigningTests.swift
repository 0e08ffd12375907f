import Foundation
import Sandbox
import Testing

@testable import PayBridge

/// AISP / PISP access: QSEAL-signed requests, checked by the sandbox (as the bank checks
/// them) and, independently, by Python's `cryptography` against the certificate.
@Suite(.serialized) struct RequestSigningTests {
    static let opensslAvailable = FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")
    static let passphrase = "qseal-Passphrase-9931"

    /// A test CA, a QSEAL certificate it issued with its key (plain and encrypted), and a
    /// second, unrelated certificate and key.
    struct QSEAL {
        let directory: TemporaryDirectory
        var certificate: String { directory.file("qseal.pem") }
        var key: String { directory.file("qseal.key") }
        var encryptedKey: String { directory.file("qseal-encrypted.key") }
        var otherCertificate: String { directory.file("other.pem") }
        var otherKey: String { directory.file("other.key") }

        static func make() async throws -> QSEAL {
            let qseal = QSEAL(directory: try TemporaryDirectory())
            let d = qseal.directory
            let steps: [[String]] = [
                ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/C=DK/O=paybridge test/CN=paybridge QSEAL CA",
                 "-keyout", d.file("ca.key"), "-out", d.file("ca.pem")],
                ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/C=DK/O=Example PISP ApS/CN=example-pisp", "-keyout", qseal.key,
                 "-out", d.file("qseal.csr")],
                ["x509", "-req", "-in", d.file("qseal.csr"), "-CA", d.file("ca.pem"), "-CAkey", d.file("ca.key"), "-CAcreateserial",
                 "-days", "1", "-out", qseal.certificate],
                ["pkey", "-in", qseal.key, "-aes-256-cbc", "-passout", "pass:\(RequestSigningTests.passphrase)", "-out", qseal.encryptedKey],
                ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=someone else", "-keyout", qseal.otherKey,
                 "-out", qseal.otherCertificate],
            ]
            for step in steps {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
                process.arguments = step
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
                #expect(await Binary.exitStatus(of: process) == 0, "openssl \(step.joined(separator: " "))")
            }
            return qseal
        }

        func requirement(psuId: String? = nil) throws -> SignatureRequirement {
            try SignatureRequirement(certificatePEM: String(contentsOfFile: certificate, encoding: .utf8), psuId: psuId)
        }
    }

    static let failuresWatch = """
            - name: failures
              every: 1s
              query:
                Status: [Rejected, MissingFunding]
                InstructedDateFrom: -3d
        """

    func config(_ harness: Harness, receiver: TestReceiver, signing: String) -> String {
        Fixtures.config(
            bankURL: harness.bank.url, state: harness.statePath, watches: Self.failuresWatch,
            endpoints: Fixtures.endpoint("erp", url: receiver.url), extraSource: signing)
    }

    static func signing(certificate: String, key: String, extra: String = "") -> String {
        """
          signing:
            certificate: \(certificate)
            key: \(key)
        \(extra)
        """
    }

    @Test(.enabled(if: opensslAvailable, "needs /usr/bin/openssl"), arguments: ["rsa-sha256", "rsa-sha512"])
    func signedPollsPassTheBanksCheckWithRetriesAndLookUps(algorithm: String) async throws {
        let qseal = try await QSEAL.make()
        let harness = try await Harness.start(SandboxOptions(processingDelay: .seconds(3600), signature: try qseal.requirement(psuId: "PSU-7")))
        let receiver = try await TestReceiver.start()
        let rejected = harness.bank.bank.createPayment(amount: 19, status: "Rejected")
        _ = harness.createPayments(2)
        let signing = Self.signing(
            certificate: qseal.certificate, key: qseal.encryptedKey,
            extra: "    keyPassphrase: ${QSEAL_PASSPHRASE}\n    algorithm: \(algorithm)\n    psuId: PSU-7\n    certificateHeader: X-BC-ClientCert")
        let path = try harness.directory.write("pb.yaml", config(harness, receiver: receiver, signing: signing))
        let environment = ["QSEAL_PASSPHRASE": Self.passphrase, "PAYBRIDGE_LOG_LEVEL": "trace"]

        let validate = try await Binary.run(["validate", "--config", path], environment: environment)
        #expect(validate.status == 0, "\(validate.stderr)")
        let baseline = try await Binary.run(["poll", "--once", "--config", path], environment: environment)
        #expect(baseline.status == 0, "\(baseline.stderr)")

        // The rejected payment leaves the watch (looked up by id); the first page answers 500
        // once (retried with a fresh X-Request-ID, signed afresh).
        harness.bank.bank.setStatus(rejected, "Processed")
        let failed = Counter()
        harness.bank.bank.setInterceptor { request in
            guard request.path == "/api/v1/payments/singles", failed.next() == 0 else { return nil }
            return .json(500, #"{"errorCode":"InternalError","errorDescription":"try again"}"#)
        }
        let changed = try await Binary.run(["poll", "--once", "--config", path], environment: environment)
        #expect(changed.status == 0, "\(changed.stderr)")
        #expect(receiver.requests.map(\.paymentId) == [rejected])
        #expect(receiver.requests.first?.status == "Processed")

        let calls = harness.bank.paymentRequests
        #expect(calls.contains { $0.path == "/api/v1/payments/singles/\(rejected)" }, "a by-id look-up was made")
        #expect(calls.count >= 4, "baseline page, a 500, its retry, the look-up")
        #expect(Set(calls.compactMap { $0.headers["x-request-id"] }).count == calls.count, "every attempt has its own id")
        let authorize = try #require(harness.bank.authorizeRequests.first)
        #expect(authorize.headers["x-bc-clientcert"] != nil)
        #expect(authorize.headers["x-arr-clientcert"] == nil)

        // The independent check.
        let capture: [String: Any] = [
            "certificate": qseal.certificate, "psuId": "PSU-7",
            "requests": calls.map { ["headers": $0.headers, "body": ""] },
        ]
        let file = harness.directory.file("capture.json")
        try JSONSerialization.data(withJSONObject: capture).write(to: URL(fileURLWithPath: file))
        let check = try await Self.python(["Tests/PayBridgeTests/Fixtures/verify_request_signatures.py", file])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(check.stdout.contains("verified \(calls.count)"))

        // No key material, passphrase or certificate body in any output.
        let output = validate.stdout + validate.stderr + baseline.stdout + baseline.stderr + changed.stdout + changed.stderr
        #expect(output.contains("bank call failed; retrying"), "the log is at trace level and was read")
        let keyLines = try String(contentsOfFile: qseal.key, encoding: .utf8).split(separator: "\n").filter { !$0.hasPrefix("-----") }
        let encryptedLines = try String(contentsOfFile: qseal.encryptedKey, encoding: .utf8).split(separator: "\n").filter { !$0.hasPrefix("-----") }
        for line in keyLines + encryptedLines { #expect(!output.contains(line), "key material leaked") }
        #expect(!output.contains(Self.passphrase))
        #expect(!output.contains(String(authorize.headers["x-bc-clientcert"]?.prefix(40) ?? "<none>")))
        await receiver.stop()
        await harness.stop()
    }

    @Test(.enabled(if: opensslAvailable, "needs /usr/bin/openssl"))
    func aTamperedDigestIsRefusedAndReportedWithTheRequestId() async throws {
        let qseal = try await QSEAL.make()
        let harness = try await Harness.start(SandboxOptions(processingDelay: .seconds(3600), signature: try qseal.requirement()))
        let receiver = try await TestReceiver.start()
        _ = harness.createPayments(1)
        let path = try harness.directory.write(
            "pb.yaml", config(harness, receiver: receiver, signing: Self.signing(certificate: qseal.certificate, key: qseal.key)))
        // Something between paybridge and the bank alters the Digest.
        let bank = harness.bank.bank
        bank.setInterceptor { request in
            guard request.path.hasPrefix("/api/v1/payments") else { return nil }
            var altered = request
            altered.headers["digest"] = "SHA-256=" + Data(repeating: 7, count: 32).base64EncodedString()
            return bank.handleWithoutInterceptor(altered)
        }
        let output = try await Binary.run(["poll", "--once", "--config", path])
        #expect(output.status == 1)
        let lastId = harness.bank.paymentRequests.last?.headers["x-request-id"] ?? "?"
        #expect(output.stderr.contains("HTTP 401 even with a fresh token (InvalidSignature: Digest does not match the body"), "\(output.stderr)")
        #expect(output.stderr.contains("request id \(lastId)"))
        await receiver.stop()
        await harness.stop()
    }

    @Test(.enabled(if: opensslAvailable, "needs /usr/bin/openssl"))
    func aCertificateTheBankDoesNotKnowIsRefusedAtTheAuthorizeCall() async throws {
        let qseal = try await QSEAL.make()
        let harness = try await Harness.start(SandboxOptions(processingDelay: .seconds(3600), signature: try qseal.requirement()))
        let receiver = try await TestReceiver.start()
        // A valid pair, but not the one registered with the bank.
        let path = try harness.directory.write(
            "pb.yaml", config(harness, receiver: receiver, signing: Self.signing(certificate: qseal.otherCertificate, key: qseal.otherKey)))
        let output = try await Binary.run(["poll", "--once", "--config", path])
        #expect(output.status == 1)
        let requestId = harness.bank.authorizeRequests.last?.headers["x-request-id"] ?? "?"
        #expect(output.stderr.contains("GET /api/v1/authorizations/authorize failed: authentication failed: HTTP 401"), "\(output.stderr)")
        #expect(output.stderr.contains("the certificate presented is not the registered QSEAL certificate"))
        #expect(output.stderr.contains("request id \(requestId)"))
        #expect(harness.bank.paymentRequests.isEmpty)
        await receiver.stop()
        await harness.stop()
    }

    @Test(.enabled(if: opensslAvailable, "needs /usr/bin/openssl"))
    func validateNamesABadCertificateKeyOrPassphraseAtItsPlace() async throws {
        let qseal = try await QSEAL.make()
        let directory = try TemporaryDirectory()
        let notPEM = try directory.write("notes.txt", "not a certificate\n")
        func validate(_ signing: String, environment: [String: String] = [:]) async throws -> (String, Binary.Output) {
            let text = """
                source:
                  apiURL: https://bank.example
                  username: u
                  password: p
                \(signing)
                  watches:
                    - name: all
                """
            let path = try directory.write("pb-\(UUID().uuidString.prefix(6)).yaml", text)
            return (path, try await Binary.run(["validate", "--config", path], environment: environment))
        }

        // Line 6 is `certificate:`, line 7 `key:`, line 8 `keyPassphrase:`; values at column 18, 10 and 20.
        var (path, output) = try await validate(Self.signing(certificate: qseal.certificate, key: qseal.otherKey))
        #expect(output.status == 1)
        #expect(output.stderr.contains("\(path):7:10: source.signing.key: \(qseal.otherKey) does not belong to the certificate"), "\(output.stderr)")

        (path, output) = try await validate(Self.signing(certificate: qseal.certificate, key: qseal.encryptedKey, extra: "    keyPassphrase: wrong-one"))
        #expect(output.status == 1)
        #expect(output.stderr.contains("\(path):8:20: source.signing.keyPassphrase does not decrypt the key"), "\(output.stderr)")
        #expect(!output.stderr.contains("wrong-one"))

        (path, output) = try await validate(Self.signing(certificate: qseal.certificate, key: qseal.encryptedKey))
        #expect(output.stderr.contains("\(path):7:10: source.signing.key: \(qseal.encryptedKey) is encrypted: give its passphrase in keyPassphrase"))

        (path, output) = try await validate(Self.signing(certificate: notPEM, key: qseal.key))
        #expect(output.stderr.contains("\(path):6:18: source.signing.certificate: \(notPEM) is not a PEM certificate"), "\(output.stderr)")

        (path, output) = try await validate(Self.signing(certificate: qseal.certificate, key: notPEM))
        #expect(output.stderr.contains("\(path):7:10: source.signing.key: \(notPEM) is not an RSA private key in PEM"), "\(output.stderr)")

        (path, output) = try await validate(
            Self.signing(certificate: qseal.certificate, key: qseal.encryptedKey, extra: "    keyPassphrase: ${QSEAL_PASSPHRASE}\n    algorithm: rsa-sha1"),
            environment: ["QSEAL_PASSPHRASE": Self.passphrase])
        #expect(output.stderr.contains("\(path):9:16: source.signing.algorithm: 'rsa-sha1' is not one of: rsa-sha256, rsa-sha512"), "\(output.stderr)")

        (path, output) = try await validate(
            Self.signing(certificate: qseal.certificate, key: qseal.encryptedKey, extra: "    keyPassphrase: ${QSEAL_PASSPHRASE}"),
            environment: ["QSEAL_PASSPHRASE": Self.passphrase])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(!(output.stdout + output.stderr).contains(Self.passphrase))
    }

    @Test(.enabled(if: opensslAvailable, "needs /usr/bin/openssl"))
    func theSandboxCommandChecksSignatures() async throws {
        let qseal = try await QSEAL.make()
        let (process, output, _) = try Binary.start([
            "sandbox", "--port", "0", "--initial-payments", "2", "--new-payment-every", "0s", "--require-signature", qseal.certificate,
        ])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let lines = LineCollector(output.fileHandleForReading)
        var url: String?
        for _ in 0..<200 where url == nil {
            try await Task.sleep(for: .milliseconds(50))
            url = lines.first.flatMap { $0.components(separatedBy: "listening on ").last }
        }
        let base = try #require(url)
        let directory = try TemporaryDirectory()
        func poll(_ certificate: String, _ key: String) async throws -> Binary.Output {
            let path = try directory.write(
                "pb-\(UUID().uuidString.prefix(6)).yaml", """
                    source:
                      kind: sandbox
                      apiURL: \(base)
                      retries: 0
                    \(Self.signing(certificate: certificate, key: key))
                      watches:
                        - name: all
                          baseline: emit
                    state:
                      path: \(directory.file("state-\(UUID().uuidString.prefix(6))"))
                    endpoints:
                      out:
                        kind: console
                    """)
            return try await Binary.run(["poll", "--once", "--config", path])
        }
        let good = try await poll(qseal.certificate, qseal.key)
        let bad = try await poll(qseal.otherCertificate, qseal.otherKey)
        process.terminate()
        _ = await Binary.exitStatus(of: process)
        #expect(good.status == 0, "\(good.stderr)")
        #expect(good.stdout.split(separator: "\n").count == 2)
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("not the registered QSEAL certificate"), "\(bad.stderr)")
    }

    @Test func theSandboxGivesRejectionReasons() throws {
        let bank = SandboxBank(options: SandboxOptions(processingDelay: .seconds(3600)))
        let rejected = bank.createPayment(amount: 19, status: "Rejected")
        let short = bank.createPayment(amount: 13, status: "MissingFunding")
        let fine = bank.createPayment(amount: 10, status: "Processed")
        func object(_ id: String) -> [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data((bank.json(of: id) ?? "").utf8))) as? [String: Any] ?? [:]
        }
        let reasons = object(rejected)["statusReasons"] as? [[String: Any]]
        #expect(reasons?.first?["code"] as? String == "AC04")
        #expect(reasons?.first?["description"] as? String == "Closed account number")
        #expect((object(rejected)["errors"] as? [[String: Any]])?.first?["errorCode"] as? String == "AC04")
        #expect((object(short)["statusReasons"] as? [[String: Any]])?.first?["code"] as? String == "AM04")
        #expect(object(fine)["statusReasons"] is NSNull)
        #expect(object(fine)["errors"] is NSNull)
    }

    static func python(_ arguments: [String]) async throws -> Binary.Output {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        process.currentDirectoryURL = root
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = PipeReader(out)
        let stderr = PipeReader(err)
        let status = await Binary.exitStatus(of: process)
        return Binary.Output(status: status, stdout: await stdout.text(), stderr: await stderr.text())
    }
}
