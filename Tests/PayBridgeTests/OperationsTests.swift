import Foundation
import GRDB
import Sandbox
import Testing

@testable import PayBridge

/// What operators see: no secret anywhere, metrics and health that tell the truth.
@Suite(.serialized) struct OperationsTests {
    /// Waits until a watch's baseline poll has committed (read from the state database).
    static func waitForBaseline(_ statePath: String, timeout: Duration = .seconds(10)) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let file = statePath + "/" + SQLiteStore.fileName
            if FileManager.default.fileExists(atPath: file), let database = try? DatabaseQueue(path: file),
                (try? await database.read({ db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM watch WHERE baselined_at IS NOT NULL") })) ?? 0 > 0
            {
                return true
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    @Test func secretsNeverAppearInLogsErrorsOrOutput() async throws {
        let password = "pw-Very-Secret-4711"
        let clock = try BinaryClock()
        let harness = try await Harness.start(SandboxOptions(password: password, tokenLifetime: .seconds(1), processingDelay: .seconds(3600)), clock: clock)
        let failing = try await TestReceiver.start { _, index in index % 2 == 0 ? .status(500) : .status(401) }
        let ids = harness.createPayments(3)
        let secretFile = try harness.directory.write("hook.secret", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\n")
        var text = Fixtures.config(
            bankURL: harness.bank.url, state: harness.statePath,
            endpoints: Fixtures.endpoint("erp", url: failing.url) + "  other:\n    url: \(failing.url)\n    secretFile: \(secretFile)\n    retry: []\n")
        text = text.replacingOccurrences(of: "password: sandbox", with: "password: ${BC_PASSWORD}")
        let path = try harness.directory.write("pb.yaml", text)
        let environment = ["BC_PASSWORD": password, "PAYBRIDGE_LOG_LEVEL": "trace"].merging(clock.environment) { $1 }
        var output = ""
        let baseline = try await Binary.run(["poll", "--once", "--config", path], environment: environment)
        output += baseline.stdout + baseline.stderr
        for id in ids { harness.bank.bank.setStatus(id, "Rejected") }
        try clock.advance(by: 1.1)  // the token expires: renewal is logged too
        harness.bank.bank.revokeTokens()
        let changed = try await Binary.run(["poll", "--once", "--config", path], environment: environment)
        output += changed.stdout + changed.stderr
        let listing = try await Binary.run(["deliveries", "--config", path], environment: environment)
        output += listing.stdout + listing.stderr
        let validate = try await Binary.run(["validate", "--config", path], environment: environment)
        output += validate.stdout + validate.stderr
        let wrong = try await Binary.run(["poll", "--once", "--config", path], environment: ["BC_PASSWORD": password + "x", "PAYBRIDGE_LOG_LEVEL": "trace"])
        output += wrong.stdout + wrong.stderr

        #expect(failing.requests.count >= 3)
        #expect(output.contains("delivery failed"))
        var secrets = [
            password, password + "x", Data("sandbox:\(password)".utf8).base64EncodedString(), Fixtures.secret,
            String(Fixtures.secret.dropFirst(6)), "C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        ]
        // The bearer tokens the bank issued.
        secrets += harness.bank.paymentRequests.compactMap { $0.headers["authorization"]?.replacingOccurrences(of: "Bearer ", with: "") }
        #expect(secrets.count > 6)
        for secret in secrets { #expect(!output.contains(secret), "a secret leaked: \(secret.prefix(4))…") }
        await failing.stop()
        await harness.stop()
    }

    @Test func metricsAndHealthShowADisabledEndpoint() async throws {
        let harness = try await Harness.start()
        let gone = try await TestReceiver.start { _, _ in .status(410) }
        let fine = try await TestReceiver.start()
        let ids = harness.createPayments(2)
        let port = try Sockets.closedPort()
        let text = Fixtures.config(
            bankURL: harness.bank.url, state: harness.statePath,
            endpoints: Fixtures.endpoint("erp", url: gone.url) + Fixtures.endpoint("chat", url: fine.url)
        ).replacingOccurrences(of: "every: 1s", with: "every: 100ms") + "admin:\n  listen: 127.0.0.1:\(port)\n"
        let path = try harness.directory.write("pb.yaml", text)
        let (process, _, _) = try Binary.start(["run", "--config", path])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let http = CurlHTTPClient()
        defer { http.shutdown() }
        func get(_ path: String) async -> PayBridge.HTTPResponse? {
            try? await http.send(PayBridge.HTTPRequest(method: .get, url: "http://127.0.0.1:\(port)\(path)")).get()
        }
        var health: PayBridge.HTTPResponse?
        for _ in 0..<100 {
            health = await get("/health")
            if health?.status == 200 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(health?.status == 200)
        // Changes made before the baseline poll would be part of the baseline: wait for it.
        #expect(try await Self.waitForBaseline(harness.statePath))
        for id in ids { harness.bank.bank.setStatus(id, "Processed") }
        #expect(await fine.waitFor(count: 2))
        #expect(await gone.waitFor(count: 1))
        try await until("the 410 disables the endpoint") { await get("/health")?.status == 503 }

        let degraded = await get("/health")
        #expect(degraded?.status == 503)
        let report = (try? JSONSerialization.jsonObject(with: Data(degraded?.body ?? []))) as? [String: Any]
        #expect(report?["status"] as? String == "degraded")
        #expect((report?["endpoints"] as? [String: [String: Any]])?["erp"]?["state"] as? String == "disabled")
        #expect((report?["endpoints"] as? [String: [String: Any]])?["chat"]?["state"] as? String == "closed")

        // A delivery is counted once paybridge has read its answer, a moment after the receiver
        // saw it; the endpoint.disabled announcement reaches chat after the 410 was recorded.
        #expect(await fine.waitFor(count: 3))
        var metrics = ""
        try await until("chat's three deliveries are counted") {
            metrics = String(decoding: await get("/metrics")?.body ?? [], as: UTF8.self)
            return metrics.contains(#"paybridge_deliveries_total{endpoint="chat",outcome="delivered"} 3"#)
        }
        #expect(metrics.contains(#"paybridge_endpoint_disabled{endpoint="erp"} 1.0"#), "\(metrics)")
        #expect(metrics.contains(#"paybridge_endpoint_disabled{endpoint="chat"} 0.0"#))
        // Two payment events and the endpoint.disabled announcement (no routes: everything to everyone else).
        #expect(metrics.contains(#"paybridge_deliveries_total{endpoint="chat",outcome="delivered"} 3"#))
        #expect(fine.requests.map(\.type).sorted() == ["endpoint.disabled", "payment.status_changed", "payment.status_changed"])
        #expect(metrics.contains("paybridge_polls_total"))
        #expect(metrics.contains("paybridge_delivery_latency_seconds"))

        // The operator command re-enables it; the running process resumes within seconds.
        gone.setResponder { _, _ in .ok }
        let enabled = try await Binary.run(["endpoints", "enable", "erp", "--config", path])
        #expect(enabled.stdout.contains("erp: enabled"))
        #expect(await gone.waitFor(count: 3, timeout: .seconds(10)))
        // Results are committed in groups: wait for the last one to land.
        func erp() async throws -> [String: Any]? {
            let listing = try await Binary.run(["endpoints", "list", "--config", path, "--json"])
            let document = (try? JSONSerialization.jsonObject(with: Data(listing.stdout.utf8))) as? [String: Any]
            return (document?["endpoints"] as? [[String: Any]])?.first { $0["name"] as? String == "erp" }
        }
        var listing = try await erp()
        for _ in 0..<50 where listing?["pending"] as? Int != 0 {
            try await Task.sleep(for: .milliseconds(100))
            listing = try await erp()
        }
        #expect(listing?["pending"] as? Int == 0)
        #expect(listing?["health"] as? String == "ok", "\(listing ?? [:])")
        process.terminate()
        #expect(await Binary.exitStatus(of: process) == 0)
        await gone.stop()
        await fine.stop()
        await harness.stop()
    }
}
