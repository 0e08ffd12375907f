import Foundation
import Testing

@testable import PayBridge

/// Signatures checked by the reference implementation (PyPI `standardwebhooks`), on real
/// deliveries captured by a receiver. `.ci/run` installs the library; without it the test
/// is reported as skipped, never as passed.
@Suite struct ReferenceSignatureTests {
    static let libraryAvailable: Bool = {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import standardwebhooks"]
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }()

    @Test(.enabled(if: libraryAvailable, "needs `pip install standardwebhooks`"))
    func deliveriesVerifyWithTheReferenceLibrary() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let ids = harness.createPayments(3)
        let rotation = "[\(Fixtures.secret), whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD]"
        let endpoint = Fixtures.endpoint("erp", url: receiver.url).replacingOccurrences(of: "secret: \(Fixtures.secret)", with: "secret: \(rotation)")
        let bridge = try await harness.bridge(Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: endpoint))
        _ = await bridge.pollOnce()
        for id in ids { harness.bank.bank.setStatus(id, "Rejected") }
        _ = await bridge.pollOnce()
        #expect(receiver.requests.count == 3)
        #expect(receiver.requests.allSatisfy { ($0.headers["webhook-signature"] ?? "").split(separator: " ").count == 2 })

        // Each secret of the rotation verifies on its own.
        for secret in [Fixtures.secret, "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"] {
            let deliveries = receiver.requests.map { request -> [String: Any] in
                ["headers": request.headers, "body": String(decoding: request.body, as: UTF8.self)]
            }
            let capture = harness.directory.file("capture.json")
            try JSONSerialization.data(withJSONObject: ["secret": secret, "deliveries": deliveries]).write(to: URL(fileURLWithPath: capture))
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/verify_standard_webhooks.py").path
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", script, capture]
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            let reader = PipeReader(output)
            let status = await Binary.exitStatus(of: process)
            let printed = await reader.text()
            #expect(status == 0, "\(printed)")
            #expect(printed.contains("verified 3"))
        }
        bridge.close()
        await receiver.stop()
        await harness.stop()
    }
}
