import Foundation
import Testing

@testable import PayBridge

/// Mutual TLS to the bank, against a Python HTTPS server that requires a client certificate
/// issued by a CA made for the test with `openssl`.
@Suite(.serialized) struct TLSTests {
    static let opensslAvailable = FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")

    struct Certificates {
        let directory: TemporaryDirectory
        var ca: String { directory.file("ca.pem") }
        var serverCertificate: String { directory.file("server.pem") }
        var serverKey: String { directory.file("server.key") }
        var clientCertificate: String { directory.file("client.pem") }
        var clientKey: String { directory.file("client.key") }

        static func make() async throws -> Certificates {
            let certificates = Certificates(directory: try TemporaryDirectory())
            let d = certificates.directory
            try d.write("server.ext", "subjectAltName=IP:127.0.0.1\n")
            let steps: [[String]] = [
                ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=paybridge test CA", "-keyout", d.file("ca.key"), "-out", certificates.ca],
                ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", certificates.serverKey, "-out", d.file("server.csr")],
                ["x509", "-req", "-in", d.file("server.csr"), "-CA", certificates.ca, "-CAkey", d.file("ca.key"), "-CAcreateserial", "-days", "1",
                 "-extfile", d.file("server.ext"), "-out", certificates.serverCertificate],
                ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=paybridge-client", "-keyout", certificates.clientKey, "-out", d.file("client.csr")],
                ["x509", "-req", "-in", d.file("client.csr"), "-CA", certificates.ca, "-CAkey", d.file("ca.key"), "-CAcreateserial", "-days", "1",
                 "-out", certificates.clientCertificate],
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
            return certificates
        }
    }

    func source(_ url: String, _ tls: String) -> String {
        """
        source:
          apiURL: \(url)
          username: sandbox
          password: sandbox
          retries: 0
        \(tls)
          watches:
            - name: all
        state:
          path: ./state
        """
    }

    @Test(.enabled(if: opensslAvailable, "needs /usr/bin/openssl"))
    func theClientCertificateIsPresentedAndTheServerVerified() async throws {
        let certificates = try await Certificates.make()
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/mtls_bank.py").path
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["python3", script, certificates.serverCertificate, certificates.serverKey, certificates.ca]
        let output = Pipe()
        server.standardOutput = output
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { kill(server.processIdentifier, SIGKILL) }
        let lines = LineCollector(output.fileHandleForReading)
        var port: String?
        for _ in 0..<200 where port == nil {
            try await Task.sleep(for: .milliseconds(25))
            port = lines.first.flatMap { $0.hasPrefix("port ") ? String($0.dropFirst(5)) : nil }
        }
        let url = "https://127.0.0.1:\(try #require(port))"
        let directory = certificates.directory

        let mutual = source(url, "  caFile: \(certificates.ca)\n  clientCertificate: \(certificates.clientCertificate)\n  clientKey: \(certificates.clientKey)")
        let bridge = try await Bridge(configuration: try Fixtures.load(mutual, in: directory), logger: Fixtures.quietLogger)
        let result = await bridge.pollOnce()
        bridge.close()
        #expect(result.failures.isEmpty, "\(result.failures)")
        #expect(result.reports.first?.recorded == 1)

        // Without the client certificate the server refuses the handshake.
        let anonymous = source(url, "  caFile: \(certificates.ca)")
        let refused = try await Bridge(configuration: try Fixtures.load(anonymous, in: directory), logger: Fixtures.quietLogger)
        let failed = await refused.pollOnce()
        refused.close()
        #expect(failed.failures.count == 1)

        // Without the CA the server's certificate is not trusted: verification is always on.
        let untrusted = source(url, "  clientCertificate: \(certificates.clientCertificate)\n  clientKey: \(certificates.clientKey)")
        let unverified = try await Bridge(configuration: try Fixtures.load(untrusted, in: directory), logger: Fixtures.quietLogger)
        let rejected = await unverified.pollOnce()
        unverified.close()
        #expect(rejected.failures.first.map { "\($0)".contains("TLS error") } == true, "\(rejected.failures)")

        // An endpoint with its own client certificate: the receiver sees it.
        let bank = try await TestBank.start()
        let paymentId = bank.bank.createPayment(amount: 10, status: "PendingProcessing")
        func endpointConfig(_ tls: String, state: String) -> String {
            Fixtures.config(
                bankURL: bank.url, state: directory.file(state),
                endpoints: "  hook:\n    url: \(url)/hook\n    secret: \(Fixtures.secret)\n    retry: [1h]\n    caFile: \(certificates.ca)\n\(tls)")
        }
        let signed = try await Bridge(
            configuration: try Fixtures.load(
                endpointConfig("    clientCertificate: \(certificates.clientCertificate)\n    clientKey: \(certificates.clientKey)\n", state: "s1"),
                in: directory), logger: Fixtures.quietLogger)
        let anonymousEndpoint = try await Bridge(
            configuration: try Fixtures.load(endpointConfig("", state: "s2"), in: directory), logger: Fixtures.quietLogger)
        for bridge in [signed, anonymousEndpoint] { _ = await bridge.pollOnce() }
        bank.bank.setStatus(paymentId, "Processed")
        for bridge in [signed, anonymousEndpoint] { _ = await bridge.pollOnce() }
        #expect(try await signed.store.deliveries(endpoint: "hook", state: .delivered, limit: 1).count == 1)
        let refusedDelivery = try await anonymousEndpoint.store.deliveries(endpoint: "hook", state: .pending, limit: 1).first
        #expect(refusedDelivery?.attempts == 1)
        #expect(lines.all.contains("hook paybridge-client"))
        signed.close()
        anonymousEndpoint.close()
        await bank.stop()
    }

    /// A client certificate and key that are not PEM, or do not belong together, are config
    /// errors at their place, not a handshake failure at every call.
    @Test(.enabled(if: opensslAvailable, "needs /usr/bin/openssl"))
    func validateChecksAClientCertificateAndItsKey() async throws {
        let certificates = try await Certificates.make()
        let directory = certificates.directory
        let garbage = try directory.write("garbage.pem", "not a certificate\n")
        let read = { (path: String) in (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        // A chain (leaf, then its CA), and one file holding the certificate and its key.
        let chain = try directory.write("chain.pem", read(certificates.clientCertificate) + read(certificates.ca))
        let combined = try directory.write("combined.pem", read(certificates.clientCertificate) + read(certificates.clientKey))
        for (certificate, key, expected) in [
            (certificates.clientCertificate, certificates.clientKey, nil),
            (chain, certificates.clientKey, nil),
            (combined, combined, nil),
            (certificates.serverCertificate, certificates.clientKey, "7:14: source.clientKey: \(certificates.clientKey) does not belong to the certificate"),
            (garbage, certificates.clientKey, "6:22: source.clientCertificate: \(garbage) is not a PEM certificate"),
            (certificates.clientCertificate, certificates.ca, "7:14: source.clientKey: \(certificates.ca) holds no PRIVATE KEY"),
        ] as [(String, String, String?)] {
            let path = try directory.write(
                "pb.yaml", source("https://127.0.0.1:9", "  clientCertificate: \(certificate)\n  clientKey: \(key)").replacingOccurrences(of: "./state", with: directory.file("state")))
            let output = try await Binary.run(["validate", "--config", path])
            if let expected {
                #expect(output.status == 1, "\(output.stderr)")
                #expect(output.stderr.contains("\(path):\(expected)"), "\(output.stderr)")
            } else {
                #expect(output.status == 0, "\(output.stderr)")
            }
        }
    }
}
