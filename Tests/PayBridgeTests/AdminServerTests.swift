import Foundation
import Sandbox
import Synchronization
import Testing

@testable import PayBridge

/// The admin server of the real `paybridge run` (§9): health and readiness, and behind the
/// token the metrics and the catch-up API.
@Suite(.serialized) struct AdminServerTests {
    static let token = "admin-Token-0123456789abcdef"

    final class Admin: Sendable {
        let port: Int
        let http = CurlHTTPClient()

        init(port: Int) { self.port = port }

        func get(_ path: String, token: String? = AdminServerTests.token, authorization: String? = nil) async -> PayBridge.HTTPResponse? {
            var headers: [(name: String, value: String)] = []
            if let token { headers.append(("Authorization", "Bearer \(token)")) }
            if let authorization { headers.append(("Authorization", authorization)) }
            return try? await http.send(PayBridge.HTTPRequest(method: .get, url: "http://127.0.0.1:\(port)\(path)", headers: headers)).get()
        }

        func json(_ path: String) async -> [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(await get(path)?.body ?? []))) as? [String: Any] ?? [:]
        }

        func wait(_ path: String, status: Int, token: String? = AdminServerTests.token, timeout: Duration = .seconds(10)) async -> Bool {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                if await get(path, token: token)?.status == status { return true }
                try? await Task.sleep(for: .milliseconds(50))
            }
            return false
        }
    }

    @Test func healthReadinessMetricsAndTheCatchUpAPI() async throws {
        let clock = try BinaryClock()
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let ids = harness.createPayments(5)
        let port = try Sockets.closedPort()
        let text = Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: receiver.url))
            .replacingOccurrences(of: "every: 1s", with: "every: 200ms")
            + "admin:\n  listen: 127.0.0.1:\(port)\n  token: ${ADMIN_TOKEN}\n"
        let path = try harness.directory.write("pb.yaml", text)
        let (process, _, errors) = try Binary.start(["run", "--config", path], environment: ["ADMIN_TOKEN": Self.token].merging(clock.environment) { $1 })
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let log = PipeReader(errors)
        let admin = Admin(port: port)
        defer { admin.http.shutdown() }

        #expect(await admin.wait("/healthz", status: 200, token: nil))
        #expect(await admin.wait("/readyz", status: 200, token: nil), "ready once the watch has polled")
        // Without or with a wrong token: 401.
        #expect(await admin.get("/metrics", token: nil)?.status == 401)
        #expect(await admin.get("/metrics", token: "wrong")?.status == 401)
        // The scheme is case-insensitive; HEAD answers the probes.
        #expect(await admin.get("/metrics", token: nil, authorization: "bearer \(AdminServerTests.token)")?.status == 200)
        for path in ["/healthz", "/readyz"] {
            let answer = Sockets.exchange(port: admin.port, "HEAD \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            #expect(answer.hasPrefix("HTTP/1.1 200"), "HEAD \(path): \(answer)")
        }
        #expect(await admin.get("/v1/events", token: nil)?.status == 401)

        for id in ids { harness.bank.bank.setStatus(id, "Rejected") }
        #expect(await receiver.waitFor(count: 5))
        for id in ids.prefix(2) { harness.bank.bank.setStatus(id, "Processed") }
        #expect(await receiver.waitFor(count: 7))

        // The catch-up API pages in commit order, every event exactly once.
        var seen: [String] = []
        var after: String?
        for _ in 0..<10 {
            let page = await admin.json("/v1/events?limit=2" + (after.map { "&after=\($0)" } ?? ""))
            let events = page["events"] as? [[String: Any]] ?? []
            if events.isEmpty { break }
            #expect(events.count <= 2)
            #expect(events.allSatisfy { ($0["type"] as? String)?.hasPrefix("payment.") == true && $0["data"] is [String: Any] })
            seen += events.compactMap { $0["id"] as? String }
            after = page["next"] as? String
        }
        #expect(seen.count == 7)
        #expect(Set(seen).count == 7)
        #expect(Set(seen) == Set(receiver.requests.map(\.webhookId)))
        // Commit order: a payment's Processed comes after its Rejected.
        let byId = Dictionary(receiver.requests.map { ($0.webhookId, $0) }, uniquingKeysWith: { first, _ in first })
        for id in ids.prefix(2) {
            let order = seen.filter { byId[$0]?.paymentId == id }.compactMap { byId[$0]?.status }
            #expect(order == ["Rejected", "Processed"])
        }
        let processed = await admin.json("/v1/events?status=Processed")
        #expect((processed["events"] as? [[String: Any]])?.count == 2)
        // Several statuses, as the bank writes its Status filter, or the parameter repeated.
        for both in ["/v1/events?status=Rejected,Processed", "/v1/events?status=Rejected&status=Processed"] {
            #expect((await admin.json(both)["events"] as? [[String: Any]])?.count == 7, "\(both)")
        }
        #expect(await admin.get("/v1/events?after=evt_unknown")?.status == 404)
        #expect(await admin.get("/v1/events?limit=abc")?.status == 400, "a limit that is not a number is a mistake, not 100")

        // Metrics: Prometheus text that parses, with what alerts need.
        let metrics = String(decoding: await admin.get("/metrics")?.body ?? [], as: UTF8.self)
        var samples: [String: Double] = [:]
        for line in metrics.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            #expect(parts.count == 2, "a sample line: \(line)")
            if parts.count == 2 { samples[String(parts[0])] = Double(parts[1]) }
        }
        #expect(samples[#"paybridge_events_total{type="payment.status_changed",status="Rejected"}"#] == 5, "\(metrics)")
        #expect(samples[#"paybridge_deliveries_total{endpoint="erp",outcome="delivered"}"#] == 7)
        #expect((samples[#"paybridge_pages_scanned_total{watch="recent"}"#] ?? 0) > 0)
        #expect(samples.keys.contains { $0.hasPrefix("paybridge_polls_total{watch=\"recent\",outcome=\"ok\"}") })
        #expect(samples.keys.contains { $0.hasPrefix("paybridge_delivery_attempt_duration_seconds_bucket{endpoint=\"erp\"") })
        #expect(samples.keys.contains { $0.hasPrefix("paybridge_token_fetches_total") })
        // Every metric the shipped alert rules use is one paybridge exports.
        let rules = try String(contentsOf: ConfigTests.root.appendingPathComponent("examples/prometheus-alerts.yaml"), encoding: .utf8)
        for match in rules.matches(of: /paybridge_[a-z_]+/) {
            let name = String(match.output)
            #expect(metrics.contains("# TYPE \(name) "), "\(name) in the alert rules is not exported")
        }
        // Queue gauges are sampled every 5 s of the run's clock.
        try clock.advance(by: 5.2)
        var later = ""
        try await until("the queue gauges are sampled") {
            later = String(decoding: await admin.get("/metrics")?.body ?? [], as: UTF8.self)
            return later.contains("paybridge_payments_tracked 5")
        }
        #expect(later.contains(#"paybridge_queue_depth{endpoint="erp"} 0"#), "\(later)")
        #expect(later.contains(#"paybridge_queue_oldest_pending_age_seconds{endpoint="erp"} 0"#))
        #expect(later.contains("paybridge_payments_tracked 5"))
        // The jump made the watch look late for a moment: ready again once it has polled.
        #expect(await admin.wait("/readyz", status: 200, token: nil, timeout: .seconds(20)))

        // Readiness follows the bank: 503 with a reason while it fails, 200 after.
        harness.bank.bank.setInterceptor { $0.path.hasPrefix("/api/v1/payments") ? .json(503, "busy") : nil }
        #expect(await admin.wait("/readyz", status: 503, token: nil))
        let reasons = (try? JSONSerialization.jsonObject(with: Data(await admin.get("/readyz", token: nil)?.body ?? []))) as? [String: Any]
        #expect((reasons?["reasons"] as? [String])?.first?.contains("watch 'recent' last polled successfully") == true, "\(reasons ?? [:])")
        harness.bank.bank.setInterceptor(nil)
        #expect(await admin.wait("/readyz", status: 200, token: nil, timeout: .seconds(20)))
        let errorsMetric = String(decoding: await admin.get("/metrics")?.body ?? [], as: UTF8.self)
        #expect(errorsMetric.contains(#"paybridge_bank_errors_total{code="http_503"}"#))

        process.terminate()
        #expect(await Binary.exitStatus(of: process) == 0)
        #expect(!(await log.text()).contains(Self.token))
        await receiver.stop()
        await harness.stop()
    }

    /// The real `paybridge run` with three watches whose commits all wait for the state's write
    /// lock (another connection holds it): they wait on GRDB's writer queue, not on Swift's pool, so the admin server
    /// still answers; once the lock goes, every change is delivered.
    @Test func theAdminServerAnswersWhileEveryWatchWaitsForTheDatabase() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let ids = harness.createPayments(3)
        let port = try Sockets.closedPort()
        let watches = ["a", "b", "c"].map { name in
            """
                    - name: \(name)
                      every: 200ms
                      query:
                        InstructedDateFrom: -3d
            """
        }.joined(separator: "\n")
        let text = Fixtures.config(
            bankURL: harness.bank.url, state: harness.statePath, watches: watches, endpoints: Fixtures.endpoint("erp", url: receiver.url))
            .replacingOccurrences(of: "state:\n", with: "state:\n  busyTimeout: 60s\n")
            + "admin:\n  listen: 127.0.0.1:\(port)\n"
        let path = try harness.directory.write("pb.yaml", text)
        let (process, _, errors) = try Binary.start(["run", "--config", path])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let log = PipeReader(errors)
        let admin = Admin(port: port)
        defer { admin.http.shutdown() }
        #expect(await admin.wait("/readyz", status: 200, token: nil), "every watch has made its baseline")

        let pages = Tally()
        harness.bank.bank.setInterceptor { request in
            if request.path.hasPrefix("/api/v1/payments") { pages.add() }
            return nil
        }
        let holder = try WriteLock(path: harness.statePath + "/" + SQLiteStore.fileName)
        for id in ids { harness.bank.bank.setStatus(id, "Rejected") }
        // Every poll ends with a write (and a poll that sees the changes commits them first), so
        // within an interval each watch waits for the lock and stops asking the bank: three
        // waiting writers, more than the cooperative pool has threads (2 here).
        let deadline = ContinuousClock.now + .seconds(30)
        var seen = -1
        var quietSince = ContinuousClock.now
        while ContinuousClock.now < deadline {
            if pages.value != seen {
                seen = pages.value
                quietSince = ContinuousClock.now
            } else if ContinuousClock.now - quietSince >= .seconds(1) {
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(ContinuousClock.now < deadline, "the watches stop polling while the lock is held")

        var request = PayBridge.HTTPRequest(method: .get, url: "http://127.0.0.1:\(port)/healthz")
        request.timeout = .seconds(10)
        let health = try? await admin.http.send(request).get()
        #expect(health?.status == 200, "the admin server answers while the watches wait for the database")
        #expect(receiver.requests.isEmpty, "nothing was committed, so nothing was sent")

        holder.unlock()
        #expect(await receiver.waitFor(count: 3), "once the lock goes, every change is delivered")
        #expect(Set(receiver.requests.map(\.paymentId)) == Set(ids))

        process.terminate()
        #expect(await Binary.exitStatus(of: process) == 0)
        _ = await log.text()
        await receiver.stop()
        await harness.stop()
    }

    @Test func aListenAddressBeyondLoopbackNeedsAToken() async throws {
        let directory = try TemporaryDirectory()
        let base = Fixtures.config(bankURL: "http://127.0.0.1:9", state: directory.file("state"), endpoints: Fixtures.endpoint("erp", url: "http://127.0.0.1:9/x"))
        let open = try directory.write("open.yaml", base + "admin:\n  listen: 0.0.0.0:9464\n")
        let output = try await Binary.run(["validate", "--config", open])
        #expect(output.status == 1)
        #expect(output.stderr.contains("admin.listen 0.0.0.0:9464 is not a loopback address: set admin.token"), "\(output.stderr)")
        let tokenFile = try directory.write("admin.token", Self.token + "\n")
        let closed = try directory.write("closed.yaml", base + "admin:\n  listen: 0.0.0.0:9464\n  tokenFile: \(tokenFile)\n")
        #expect(try await Binary.run(["validate", "--config", closed]).status == 0)
        let loopback = try directory.write("loop.yaml", base + "admin:\n  listen: 127.0.0.1:9464\n")
        #expect(try await Binary.run(["validate", "--config", loopback]).status == 0)
        // A short token is guessable: beyond loopback it is refused.
        let guessable = try directory.write("short.yaml", base + "admin:\n  listen: 0.0.0.0:9464\n  token: T0ken\n")
        let refused = try await Binary.run(["validate", "--config", guessable])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("admin.token is too short for an address beyond loopback: use 16 characters or more"), "\(refused.stderr)")
    }

    /// The contract's own example is `token: T`: a short token works, with a warning at its
    /// place that never shows it.
    @Test func aShortTokenWorksWithAWarning() async throws {
        let harness = try await Harness.start()
        let port = try Sockets.closedPort()
        let text = Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: "http://127.0.0.1:9/x"))
            + "admin:\n  listen: 127.0.0.1:\(port)\n  token: T0ken\n"
        let path = try harness.directory.write("short.yaml", text)
        let validate = try await Binary.run(["validate", "--config", path])
        #expect(validate.status == 0, "\(validate.stderr)")
        let line = text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("token: T0ken") }.map { $0 + 1 } ?? 0
        #expect(validate.stderr.contains("short.yaml:\(line):10: warning: admin.token is short: use 16 characters or more"), "\(validate.stderr)")
        #expect(!validate.stderr.contains("T0ken"), "the token never shows")
        let (process, _, _) = try Binary.start(["run", "--config", path])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let admin = Admin(port: port)
        defer { admin.http.shutdown() }
        #expect(await admin.wait("/metrics", status: 200, token: "T0ken"))
        #expect(await admin.get("/metrics", token: "T0ken-wrong")?.status == 401)
        process.terminate()
        #expect(await Binary.exitStatus(of: process) == 0)
        await harness.stop()
    }

    /// Even a token configured empty (the config refuses one; this is the second guard) is
    /// matched by nothing: not by an empty bearer or sign-in, not by whitespace.
    @Test func anEmptyConfiguredTokenIsMatchedByNothing() {
        let access = AdminAccess(
            AdminConfiguration(listen: "127.0.0.1:0", tokens: [
                .init(name: "empty", token: Secret(""), role: .operate),
                .init(name: "ops", token: Secret("ops-Token-0123456789"), role: .operate),
            ]))
        #expect(!access.open)
        #expect(access.identify(token: "") == nil)
        #expect(access.signIn(token: "") == nil)
        #expect(access.identify(token: " ") == nil)
        #expect(access.identify(token: "ops-Token-0123456789")?.name == "ops")
    }

    /// `--log-format json`: one object a line; bank lines carry the request id, delivery
    /// lines the event, payment and endpoint; no secret at any level.
    @Test func jsonLogsCarryTheirIdsAndNoSecret() async throws {
        let password = "pw-Json-Secret-9182"
        let clock = try BinaryClock()
        let harness = try await Harness.start(SandboxOptions(password: password, tokenLifetime: .seconds(1), processingDelay: .seconds(3600)), clock: clock)
        let failing = try await TestReceiver.start { _, _ in .status(500) }
        let ids = harness.createPayments(2)
        let text = Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: failing.url, retry: "[]"))
            .replacingOccurrences(of: "password: sandbox", with: "password: ${BC_PASSWORD}")
        let path = try harness.directory.write("pb.yaml", text)
        let environment = ["BC_PASSWORD": password].merging(clock.environment) { $1 }
        var output = try await Binary.run(["poll", "--once", "--config", path, "--log-format", "json", "--log-level", "trace"], environment: environment)
        for id in ids { harness.bank.bank.setStatus(id, "Rejected") }
        try clock.advance(by: 1.1)  // the token expires: renewed
        let failed = Counter()
        harness.bank.bank.setInterceptor { request in
            request.path.hasPrefix("/api/v1/payments") && failed.next() == 0 ? .json(500, #"{"errorCode":"Boom","errorDescription":"try again"}"#) : nil
        }
        let second = try await Binary.run(["poll", "--once", "--config", path], environment: environment.merging(["PAYBRIDGE_LOG_FORMAT": "json", "PAYBRIDGE_LOG_LEVEL": "trace"]) { $1 })
        output.stderr += second.stderr
        output.stdout += second.stdout
        let lines = output.stderr.split(separator: "\n").filter { !$0.isEmpty }
        #expect(lines.count > 5)
        var sawRetry = false
        var sawDead = false
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not JSON: \(line)")
            #expect(object["time"] is String && object["level"] is String && object["message"] is String)
            let message = object["message"] as? String ?? ""
            if message.contains("bank call failed") {
                sawRetry = true
                #expect(object["requestId"] is String, "\(line)")
            }
            if message.contains("dead-lettered") {
                sawDead = true
                #expect(object["eventId"] is String && object["paymentId"] is String && object["endpoint"] as? String == "erp", "\(line)")
            }
        }
        #expect(sawRetry && sawDead)
        let everything = output.stdout + output.stderr
        let secrets = [password, Data("sandbox:\(password)".utf8).base64EncodedString(), String(Fixtures.secret.dropFirst(6))]
            + harness.bank.paymentRequests.compactMap { $0.headers["authorization"]?.replacingOccurrences(of: "Bearer ", with: "") }
        for secret in secrets { #expect(!everything.contains(secret), "a secret leaked: \(secret.prefix(4))…") }
        await failing.stop()
        await harness.stop()
    }
}
