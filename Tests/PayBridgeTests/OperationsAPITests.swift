import Foundation
import Sandbox
import Synchronization
import Testing

@testable import PayBridge

/// The operations API (§11) as on-call uses it: a real `paybridge run` with `admin.tokens`,
/// its deliveries dead-lettered by a receiver that answers 500, then looked at and replayed
/// through `/api/v1/` — and the CLI's `--json` documents compared with the API's.
@Suite(.serialized) struct OperationsAPITests {
    static let operate = "operate-token-0123456789"
    static let read = "read-token-0123456789abc"

    struct Setup {
        let harness: Harness
        let receiver: TestReceiver
        let failing: Switch
        let path: String
        let adminPort: Int
        let ids: [String]

        var base: String { "http://127.0.0.1:\(adminPort)" }
        var bank: SandboxBank { harness.bank.bank }

        static func start(payments: Int = 2, every: String = "1h", tls: String = "") async throws -> Setup {
            let harness = try await Harness.start()
            let failing = Switch(true)
            let receiver = try await TestReceiver.start { _, _ in failing.on ? .status(500) : .ok }
            let adminPort = try Sockets.closedPort()
            let watches = """
                    - name: recent
                      every: \(every)
                      baseline: emit
                      query:
                        InstructedDateFrom: -3d
                """
            let text = Fixtures.config(
                bankURL: harness.bank.url, state: harness.state, watches: watches,
                endpoints: Fixtures.endpoint("erp", url: receiver.url, retry: "[100ms]"))
                + """
                admin:
                  listen: 127.0.0.1:\(adminPort)
                  tokens:
                    - { name: oncall, token: \(operate), role: operate }
                    - { name: audit, token: \(read), role: read }
                \(tls)
                """
            let ids = harness.createPayments(payments)
            return Setup(
                harness: harness, receiver: receiver, failing: failing, path: try harness.directory.write("pb.yaml", text), adminPort: adminPort,
                ids: ids)
        }

        func stop() async {
            await receiver.stop()
            await harness.stop()
        }
    }

    struct Answer {
        var status: Int
        var body: [UInt8]
        var headers: HTTPResponse

        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:] }
        var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
    }

    static func call(_ method: HTTPRequest.Method, _ url: String, token: String?, body: String? = nil, tls: TLSOptions = TLSOptions()) async -> Answer? {
        let http = CurlHTTPClient()
        defer { http.shutdown() }
        var headers: [(name: String, value: String)] = []
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        if body != nil { headers.append(("Content-Type", "application/json")) }
        let request = HTTPRequest(method: method, url: url, headers: headers, body: Array((body ?? "").utf8), timeout: .seconds(20), tls: tls)
        guard case .success(let response) = await http.send(request) else { return nil }
        return Answer(status: response.status, body: response.body, headers: response)
    }

    func get(_ setup: Setup, _ path: String, token: String? = OperationsAPITests.operate) async -> Answer? {
        await Self.call(.get, setup.base + path, token: token)
    }

    func post(_ setup: Setup, _ path: String, _ body: String = "{}", token: String? = OperationsAPITests.operate) async -> Answer? {
        await Self.call(.post, setup.base + path, token: token, body: body)
    }

    /// Waits until the API lists `count` dead letters.
    func waitForDead(_ setup: Setup, count: Int) async -> [[String: Any]] {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let rows = await get(setup, "/api/v1/deliveries?state=dead")?.json["deliveries"] as? [[String: Any]], rows.count >= count { return rows }
            try? await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("no \(count) dead letters within 30 s")
        return []
    }

    func parsed(_ text: String) -> NSDictionary? { (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? NSDictionary }

    @Test func onCallReadsAndActsThroughTheAPIWithRoles() async throws {
        let setup = try await Setup.start()
        defer { Task { await setup.stop() } }
        let daemon = try RunDeliveryTests.Daemon(config: setup.path)
        let dead = await waitForDead(setup, count: 2)
        let deadIds = dead.compactMap { $0["id"] as? Int }.sorted()

        // Who may ask.
        #expect(await get(setup, "/api/v1/status", token: nil)?.status == 401)
        #expect(await get(setup, "/api/v1/status", token: "not-a-token-0123456789")?.errorCode == "unauthorized")
        #expect(await get(setup, "/api/v1/status", token: Self.read)?.status == 200)
        let refused = await post(setup, "/api/v1/deliveries/replay", #"{"ids": \#(deadIds), "confirm": true}"#, token: Self.read)
        #expect(refused?.status == 403)
        #expect(refused?.errorCode == "forbidden")
        let put = await Self.call(.put, setup.base + "/api/v1/status", token: Self.operate)
        #expect(put?.status == 405)
        #expect(put?.headers.header("allow") == "GET")
        for path in ["/api/v1", "/api/v1/", "/api/v1/no/such/route", "/api/v1/endpoints", "/api/v1/endpoints/erp", "/api/v1/events/evt_x", "/api/v1/events/evt_x/nothing"] {
            let unknown = await get(setup, path)
            #expect(unknown?.status == 404 && unknown?.errorCode == "not_found", "the API's error shape on every 404: \(path)")
        }
        #expect(await get(setup, "/api/v1/status")?.status == 200, "the routes still answer beside the catch-all")
        // A cursor that names no event is a 404, as the catch-up feed's `after`: an empty page
        // would look like the end.
        for cursor in ["garbage", ""] {
            let refusedCursor = await get(setup, "/api/v1/events?cursor=\(cursor)")
            #expect(refusedCursor?.status == 404 && refusedCursor?.errorCode == "not_found", "cursor '\(cursor)'")
        }

        // Status.
        let status = try #require(await get(setup, "/api/v1/status")?.json)
        #expect(status["polling"] as? Bool == true)
        #expect((status["watches"] as? [[String: Any]])?.first?["name"] as? String == "recent")
        let endpoint = (status["endpoints"] as? [[String: Any]])?.first
        #expect(endpoint?["name"] as? String == "erp")
        #expect(endpoint?["dead"] as? Int == 2)
        #expect(status["notifications"] is NSNull)

        // A payment by id and by its debtor reference; its timeline is what the CLI prints.
        let paymentId = setup.ids[0]
        let reference = try #require(setup.bank.json(of: paymentId)?.firstMatch(of: /"debtorReference":"([^"]+)"/)?.1)
        let byId = await get(setup, "/api/v1/payments?q=\(paymentId)")?.json["payments"] as? [[String: Any]]
        #expect(byId?.map { $0["paymentId"] as? String } == [paymentId])
        let byReference = await get(setup, "/api/v1/payments?q=\(reference)")?.json["payments"] as? [[String: Any]]
        #expect(byReference?.contains { $0["paymentId"] as? String == paymentId } == true, "\(String(reference))")
        let anyCase = await get(setup, "/api/v1/payments?q=\(reference.lowercased())")?.json["payments"] as? [[String: Any]]
        #expect(anyCase?.contains { $0["paymentId"] as? String == paymentId } == true, "a reference typed in lower case")
        let timeline = try #require(await get(setup, "/api/v1/payments/\(paymentId)"))
        let cli = try await Binary.run(["payments", "show", paymentId, "--config", setup.path, "--json"])
        #expect(parsed(String(decoding: timeline.body, as: UTF8.self)) == parsed(cli.stdout), "API and CLI differ:\n\(String(decoding: timeline.body, as: UTF8.self))\n\(cli.stdout)")
        #expect(await get(setup, "/api/v1/payments/no-such-payment")?.errorCode == "not_found")

        // One delivery with its attempts, as `deliveries show` prints it.
        let detail = try #require(await get(setup, "/api/v1/deliveries/\(deadIds[0])"))
        let cliDetail = try await Binary.run(["deliveries", "show", String(deadIds[0]), "--config", setup.path, "--json"])
        #expect(parsed(String(decoding: detail.body, as: UTF8.self)) == parsed(cliDetail.stdout))
        #expect(((detail.json["attempts"] as? [[String: Any]])?.first?["httpStatus"] as? Int) == 500)

        // Cursors: one event a page, all of them once.
        var seen: [String] = []
        var cursor: String?
        repeat {
            let page = await get(setup, "/api/v1/events?limit=1" + (cursor.map { "&cursor=\($0)" } ?? ""))?.json
            seen += (page?["events"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            cursor = page?["next"] as? String
        } while cursor != nil && seen.count < 10
        let all = (await get(setup, "/api/v1/events")?.json["events"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        #expect(seen == all)
        #expect(seen.count == 2)

        // Replay: a dry run changes nothing; confirmed, the deliveries go out again.
        let plan = await post(setup, "/api/v1/deliveries/replay", #"{"ids": \#(deadIds)}"#)?.json
        #expect(plan?["dryRun"] as? Bool == true)
        #expect((plan?["ids"] as? [Int])?.sorted() == deadIds)
        #expect((plan?["replayed"] as? [Int]) == [])
        #expect(await get(setup, "/api/v1/deliveries?state=dead")?.json["deliveries"].map { ($0 as? [Any])?.count } == 2)
        setup.failing.set(false)
        let done = await post(setup, "/api/v1/deliveries/replay", #"{"endpoint": "erp", "state": "dead", "confirm": true}"#)?.json
        #expect((done?["replayed"] as? [Int])?.sorted() == deadIds)
        var delivered = 0
        let deadline = ContinuousClock.now + .seconds(15)
        while delivered < 2, ContinuousClock.now < deadline {
            delivered = (await get(setup, "/api/v1/deliveries?state=delivered")?.json["deliveries"] as? [Any])?.count ?? 0
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(delivered == 2)

        // Redeliver, disable, enable.
        let eventId = all[0]
        let again = await post(setup, "/api/v1/events/\(eventId)/redeliver", #"{"endpoint": "erp"}"#)
        #expect(again?.status == 200)
        #expect(await post(setup, "/api/v1/events/\(eventId)/redeliver", #"{"endpoint": "nowhere"}"#)?.status == 404)
        #expect(await post(setup, "/api/v1/endpoints/erp/disable", #"{"reason": "ERP maintenance"}"#)?.json["state"] as? String == "disabled")
        let disabled = (await get(setup, "/api/v1/status")?.json["endpoints"] as? [[String: Any]])?.first
        #expect(disabled?["health"] as? String == "disabled")
        #expect(disabled?["disabledReason"] as? String == "ERP maintenance")
        #expect(await post(setup, "/api/v1/endpoints/erp/enable")?.json["changed"] as? Bool == true)
        #expect(await post(setup, "/api/v1/endpoints/erp/enable", "not json")?.status == 400)

        let (code, log) = await daemon.stop()
        #expect(code == 0)
        #expect(log.contains("operator action: replay") && log.contains("token=oncall"), "\(log)")
        #expect(log.contains("operator action: disable endpoint"))
        #expect(!log.contains(Self.operate) && !log.contains(Self.read))
    }

    @Test func theStreamSendsNewEventsAsTheyHappen() async throws {
        let setup = try await Setup.start(payments: 1, every: "1s")
        defer { Task { await setup.stop() } }
        setup.failing.set(false)
        let daemon = try RunDeliveryTests.Daemon(config: setup.path)
        try await setup.harness.waitForBaseline()
        let connected = setup.harness.directory.file("connected")
        let reading = Task {
            try await RequestSigningTests.python([
                "Tests/PayBridgeTests/Fixtures/sse_reader.py", setup.base + "/api/v1/stream", Self.operate, "event", "60", connected,
            ])
        }
        // The change comes once the stream is open (events before it are not news to it).
        let deadline = ContinuousClock.now + .seconds(30)
        while !FileManager.default.fileExists(atPath: connected), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        setup.bank.setStatus(setup.ids[0], "Rejected")
        let output = try await reading.value
        #expect(output.status == 0, "\(output.stdout)\(output.stderr)")
        #expect(output.stdout.contains("content-type: text/event-stream"))
        #expect(output.stdout.contains(#""status":"Rejected""#), "\(output.stdout)")
        #expect(await get(setup, "/api/v1/stream", token: nil)?.status == 401)
        _ = await daemon.stop()
    }

    static let pythonToolsAvailable: Bool = {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import openapi_spec_validator, schemathesis"]
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }()

    /// The document is the repository's, valid OpenAPI 3.1, and schemathesis finds nothing
    /// against a running paybridge: no 5xx, every answer as documented, with each role and
    /// without a token.
    @Test(.enabled(if: pythonToolsAvailable, "needs `pip install openapi-spec-validator schemathesis`"))
    func theOpenAPIDocumentIsValidAndTheAPIKeepsToIt() async throws {
        let setup = try await Setup.start()
        defer { Task { await setup.stop() } }
        let daemon = try RunDeliveryTests.Daemon(config: setup.path)
        _ = await waitForDead(setup, count: 2)
        let served = try #require(await get(setup, "/api/v1/openapi.json", token: nil))
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let file = try Data(contentsOf: root.appendingPathComponent("docs/api/openapi.json"))
        #expect(served.body == Array(file), "docs/api/openapi.json (\(file.count) bytes) and the served document (\(served.body.count) bytes) differ")
        let validation = try await RequestSigningTests.python([
            "-c", "import json, sys; from openapi_spec_validator import validate; validate(json.load(open('docs/api/openapi.json'))); print('valid')",
        ])
        #expect(validation.stdout.contains("valid"), "\(validation.stderr)")
        for token in [Self.operate, Self.read, nil] {
            var arguments = ["-m", "schemathesis.cli", "run", setup.base + "/api/v1/openapi.json", "--checks", "all", "-n", "15", "--no-color"]
            if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
            let run = try await RequestSigningTests.python(arguments)
            #expect(run.status == 0, "schemathesis with \(token == nil ? "no token" : token == Self.read ? "the read token" : "the operate token"):\n\(run.stdout.suffix(4000))\n\(run.stderr.suffix(2000))")
        }
        _ = await daemon.stop()
    }

    static let browserAvailable: Bool = {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver") else { return false }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import selenium"]
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }()

    /// The console in a real browser (headless Chromium driven by selenium): sign in, a wrong
    /// token and a read token refused, a payment found by reference with its timeline, dead
    /// letters dry-run and replayed until delivered, an endpoint disabled and enabled.
    /// `PAYBRIDGE_CONSOLE_SCREENSHOTS=docs/console` keeps the screenshots for the docs.
    @Test(.enabled(if: browserAvailable, "needs chromium, chromium-driver and `pip install selenium`"))
    func theConsoleInARealBrowser() async throws {
        let setup = try await Setup.start()
        defer { Task { await setup.stop() } }
        let daemon = try RunDeliveryTests.Daemon(config: setup.path)
        _ = await waitForDead(setup, count: 2)
        setup.failing.set(false)
        let paymentId = setup.ids[0]
        let reference = try #require(setup.bank.json(of: paymentId)?.firstMatch(of: /"debtorReference":"([^"]+)"/)?.1)
        let shots = ProcessInfo.processInfo.environment["PAYBRIDGE_CONSOLE_SCREENSHOTS"] ?? setup.harness.directory.file("screenshots")
        let run = try await RequestSigningTests.python([
            "Tests/PayBridgeTests/Fixtures/console_check.py", setup.base, Self.operate, Self.read, String(reference), paymentId, shots,
        ])
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr.suffix(4000))")
        #expect(run.stdout.contains("console ok"))
        let (_, log) = await daemon.stop()
        #expect(log.contains("console sign-in refused"))
        #expect(log.contains("operator action: replay") && log.contains("token=oncall"))
        #expect(!log.contains(Self.operate) && !log.contains(Self.read))
    }

    /// No token, an empty one, or one that is only spaces is never taken for a token.
    @Test func noTokenIsNeverAToken() async throws {
        let setup = try await Setup.start(payments: 0)
        defer { Task { await setup.stop() } }
        let daemon = try RunDeliveryTests.Daemon(config: setup.path)
        var status: Answer?
        let deadline = ContinuousClock.now + .seconds(20)
        while status == nil, ContinuousClock.now < deadline {
            status = await get(setup, "/api/v1/status", token: Self.read)
            if status == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(status?.status == 200)
        for body in ["{}", #"{"token": ""}"#, #"{"token": " "}"#, #"{"token": 123}"#] {
            let signIn = await Self.call(.post, setup.base + "/console/session", token: nil, body: body)
            #expect(signIn?.status == 401, "\(body): \(signIn.map { String(decoding: $0.body, as: UTF8.self) } ?? "no answer")")
        }
        for token in ["", " ", "\u{00A0}"] {
            #expect(await post(setup, "/api/v1/endpoints/erp/disable", token: token)?.status == 401, "Bearer '\(token)'")
        }
        _ = await daemon.stop()
    }

    /// Without tokens a loopback admin server is open for reading, as `/metrics` always was;
    /// acting needs an `operate` token.
    @Test func anOpenLoopbackServerReadsButNeverActs() async throws {
        let harness = try await Harness.start()
        defer { Task { await harness.stop() } }
        let adminPort = try Sockets.closedPort()
        let path = try harness.directory.write(
            "pb.yaml",
            Fixtures.config(bankURL: harness.bank.url, state: harness.state, endpoints: Fixtures.endpoint("erp", url: "http://127.0.0.1:9/hook"))
                + "admin:\n  listen: 127.0.0.1:\(adminPort)\n")
        let daemon = try RunDeliveryTests.Daemon(config: path)
        let base = "http://127.0.0.1:\(adminPort)"
        var status: Answer?
        let deadline = ContinuousClock.now + .seconds(20)
        while status == nil, ContinuousClock.now < deadline {
            status = await Self.call(.get, base + "/api/v1/status", token: nil)
            if status == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(status?.status == 200)
        let refused = await Self.call(.post, base + "/api/v1/endpoints/erp/disable", token: nil, body: "{}")
        #expect(refused?.status == 403)
        #expect(refused.map { String(decoding: $0.body, as: UTF8.self).contains("actions need an operate token") } == true)
        _ = await daemon.stop()
    }

    @Test(.enabled(if: TLSTests.opensslAvailable, "needs openssl"))
    func theAdminServerSpeaksHTTPSAndItsSessionCookieIsSecure() async throws {
        let certificates = try await TLSTests.Certificates.make()
        let setup = try await Setup.start(
            payments: 0, tls: "  tls: { certificate: \(certificates.serverCertificate), key: \(certificates.serverKey) }")
        defer { Task { await setup.stop() } }
        let daemon = try RunDeliveryTests.Daemon(config: setup.path)
        let tls = TLSOptions(caFile: certificates.ca)
        let base = "https://127.0.0.1:\(setup.adminPort)"
        var status: Answer?
        let deadline = ContinuousClock.now + .seconds(20)
        while status == nil, ContinuousClock.now < deadline {
            status = await Self.call(.get, base + "/api/v1/status", token: Self.read, tls: tls)
            if status == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(status?.status == 200)
        let signIn = await Self.call(.post, base + "/console/session", token: nil, body: #"{"token": "\#(Self.read)"}"#, tls: tls)
        #expect(signIn?.status == 200)
        let cookie = signIn?.headers.header("set-cookie") ?? ""
        #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Secure"), "\(cookie)")
        #expect(await Self.call(.get, "http://127.0.0.1:\(setup.adminPort)/api/v1/status", token: Self.read)?.status != 200)
        _ = await daemon.stop()
    }
}

/// A flag shared with a receiver's responder.
final class Switch: Sendable {
    private let state: Mutex<Bool>

    init(_ on: Bool) { state = Mutex(on) }

    var on: Bool { state.withLock { $0 } }
    func set(_ on: Bool) { state.withLock { $0 = on } }
}
