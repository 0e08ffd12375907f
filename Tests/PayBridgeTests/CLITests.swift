import Foundation
import Sandbox
import Synchronization
import Testing

@testable import PayBridge

/// The `paybridge` executable as an operator runs it.
@Suite(.serialized) struct CLITests {
    @Test func validateAcceptsAGoodConfig() async throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write("good.yaml", ConfigTests.valid)
        let output = try await Binary.run(["validate", "--config", path])
        #expect(output.status == 0)
        #expect(output.stdout.contains("\(path): OK (1 watch, 1 endpoint, 1 route)"))
        // A warning goes to stderr only: a valid config's stdout is its one OK line.
        let unsigned = try directory.write("unsigned.yaml", ConfigTests.valid.replacingOccurrences(of: "    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", with: ""))
        let warned = try await Binary.run(["validate", "--config", unsigned])
        #expect(warned.status == 0 && warned.stderr.contains("warning:"), "\(warned.stderr)")
        #expect(warned.stdout.split(separator: "\n").map(String.init) == ["\(unsigned): OK (1 watch, 1 endpoint, 1 route)"], "\(warned.stdout)")
    }

    @Test func validatePrintsEveryErrorWithItsPlaceAndNoSecret() async throws {
        let directory = try TemporaryDirectory()
        let text = ConfigTests.valid
            .replacingOccurrences(of: "  password: hunter2-password", with: "  pasword: hunter2-password")
            .replacingOccurrences(of: "  pageSize: 500", with: "  pageSize: 0")
            .replacingOccurrences(of: "  - to: [erp]", with: "  - to: [erp, pager]")
        let path = try directory.write("bad.yaml", text)
        let output = try await Binary.run(["validate", "--config", path])
        #expect(output.status != 0)
        let lines = output.stderr.split(separator: "\n").map(String.init)
        #expect(lines.contains("\(path):5:3: unknown key 'pasword' in source; did you mean 'password'?"))
        #expect(lines.contains("\(path):6:13: source.pageSize must be a whole number from 1 to 5000"))
        #expect(lines.contains("\(path):19:15: routes[0].to: unknown endpoint 'pager' (endpoints: erp)"))
        #expect(lines.allSatisfy { $0.hasPrefix("\(path):") })
        // The findings are the command's output too: a step that keeps only stdout has them.
        #expect(output.stdout.split(separator: "\n").map(String.init) == lines, "\(output.stdout)")
        #expect(!output.stderr.contains("hunter2"))
        #expect(!output.stdout.contains("hunter2"))
    }

    /// A watch's dates, timestamps and amounts are checked where they are written: the bank
    /// would otherwise ignore or refuse them at every poll.
    @Test func validateChecksAWatchsDatesAndAmountsAtTheirPlace() async throws {
        let directory = try TemporaryDirectory()
        let query = { (lines: String) in
            ConfigTests.valid.replacingOccurrences(of: "        InstructedDateFrom: -3d\n", with: lines)
        }
        let bad = try directory.write(
            "bad.yaml",
            query(
                "        InstructedDateFrom: -3days\n        ValueDateTo: 2026-13-45\n        LastChangedTimestampFrom: -2 h\n"
                    + "        AmountFrom: lots\n        AmountTo: 0x10\n"))
        let output = try await Binary.run(["validate", "--config", bad])
        #expect(output.status == 1)
        let lines = output.stderr.split(separator: "\n").map(String.init)
        #expect(lines.contains("\(bad):11:29: source.watches[0].query.InstructedDateFrom: '-3days' is not relative (-90m, -2h, -3d) or a date (YYYY-MM-DD)"), "\(output.stderr)")
        #expect(lines.contains("\(bad):12:22: source.watches[0].query.ValueDateTo: '2026-13-45' is not relative (-90m, -2h, -3d) or a date (YYYY-MM-DD)"), "\(output.stderr)")
        #expect(lines.contains { $0.hasPrefix("\(bad):13:35: source.watches[0].query.LastChangedTimestampFrom: '-2 h' is not relative") }, "\(output.stderr)")
        #expect(lines.contains("\(bad):14:21: source.watches[0].query.AmountFrom: 'lots' is not a number"), "\(output.stderr)")
        #expect(lines.contains("\(bad):15:19: source.watches[0].query.AmountTo: '0x10' is not a number"), "\(output.stderr)")
        // With --log-format json, each finding is one object with its place and severity.
        let json = try await Binary.run(["validate", "--log-format", "json", "--config", bad])
        let objects = json.stderr.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(objects.count == json.stderr.split(separator: "\n").count, "every line JSON: \(json.stderr)")
        #expect(objects.filter { $0["level"] as? String == "error" }.count == 5, "\(json.stderr)")
        #expect(objects.contains { $0["line"] as? Int == 15 && $0["column"] as? Int == 19 }, "\(json.stderr)")
        let good = try directory.write(
            "good.yaml",
            query(
                "        InstructedDateFrom: 2026-02-28\n        ValueDateTo: -90m\n        LastChangedTimestampFrom: 2026-02-28T10:00:00\n"
                    + "        AmountFrom: -100\n        AmountTo: 1e3\n        ValueDateFrom: ${PB_TEST_UNSET_MIN:-}\n"))
        let fine = try await Binary.run(["validate", "--config", good])
        #expect(fine.status == 0, "\(fine.stderr)")
    }

    @Test func validateExplainsAMissingFile() async throws {
        let output = try await Binary.run(["validate", "--config", "/nonexistent/paybridge.yaml"])
        #expect(output.status != 0)
        #expect(output.stderr.contains("/nonexistent/paybridge.yaml:1:1: cannot read the config file"))
    }

    /// Short relative paths, as an operator types them in the config's folder: a name of one
    /// character once crashed the binary (SIGILL) instead of saying what is wrong.
    @Test func validateExplainsAShortPathThatIsMissingOrAFolder() async throws {
        let directory = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory.file("d"), withIntermediateDirectories: false)
        let missing = try await Binary.run(["validate", "--config", "q"], directory: directory.path)
        #expect(missing.status == 1, "\(missing.stderr)")
        #expect(missing.stderr.contains("q:1:1: cannot read the config file: q does not exist"), "\(missing.stderr)")
        let folder = try await Binary.run(["validate", "--config", "d"], directory: directory.path)
        #expect(folder.status == 1, "\(folder.stderr)")
        #expect(folder.stderr.contains("d:1:1: cannot read the config file: d is a folder, not a file"), "\(folder.stderr)")
        let inside = try await Binary.run(["validate", "--config", "d/q"], directory: directory.path)
        #expect(inside.stderr.contains("d/q:1:1: cannot read the config file: d/q does not exist"), "\(inside.stderr)")
    }

    @Test func pollOnceDeliversAndExitsZero() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let ids = harness.createPayments(3)
        let path = try harness.directory.write(
            "pb.yaml", Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: receiver.url)))
        let baseline = try await Binary.run(["poll", "--once", "--config", path])
        #expect(baseline.status == 0, "\(baseline.stderr)")
        harness.bank.bank.setStatus(ids[1], "Rejected")
        let changed = try await Binary.run(["poll", "--once", "--config", path])
        #expect(changed.status == 0, "\(changed.stderr)")
        #expect(receiver.requests.map(\.paymentId) == [ids[1]])
        // A second process finds the same state: nothing new.
        let again = try await Binary.run(["poll", "--once", "--config", path])
        #expect(again.status == 0)
        #expect(receiver.requests.count == 1)
        let listing = try await Binary.run(["deliveries", "--config", path])
        #expect(listing.stdout.contains("erp: pending=0 delivered=1 dead=0"))
        await receiver.stop()
        await harness.stop()
    }

    @Test func pollOnceFailsWithTheRequestId() async throws {
        let harness = try await Harness.start()
        harness.bank.bank.setInterceptor { request in request.path.hasPrefix("/api/v1/payments") ? .json(502, "bad gateway") : nil }
        let path = try harness.directory.write(
            "pb.yaml", Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: "http://127.0.0.1:9/x")))
        let output = try await Binary.run(["poll", "--once", "--config", path])
        #expect(output.status != 0)
        let lastId = harness.bank.paymentRequests.last?.headers["x-request-id"] ?? "?"
        #expect(output.stderr.contains("poll failed: watch 'recent', page 1: GET /api/v1/payments/singles?"))
        #expect(output.stderr.contains("HTTP 502: bad gateway (request id \(lastId), after 2 attempts) requestId=\(lastId)"))
        #expect(!output.stderr.contains("sandbox:sandbox"))
        await harness.stop()
    }

    @Test func runDeliversAndStopsGracefullyOnSIGTERM() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let ids = harness.createPayments(2)
        let text = Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: receiver.url))
            .replacingOccurrences(of: "every: 1s", with: "every: 200ms")
        let path = try harness.directory.write("pb.yaml", text)
        let (process, _, errors) = try Binary.start(["run", "--config", path])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        // Wait for the baseline, then change a payment.
        try await harness.waitForBaseline()
        harness.bank.bank.setStatus(ids[0], "Processed")
        #expect(await receiver.waitFor(count: 1, timeout: .seconds(10)))
        let log = PipeReader(errors)
        process.terminate()  // SIGTERM
        let status = await Binary.exitStatus(of: process)
        let logged = await log.text()
        #expect(status == 0, "\(logged)")
        #expect(logged.contains("stopped"))
        #expect(receiver.requests.first?.paymentId == ids[0])
        await receiver.stop()
        await harness.stop()
    }

    @Test func theDemoPrintsEventsWithinSeconds() async throws {
        let (process, output, _) = try Binary.start(["run", "--json"])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let lines = LineCollector(output.fileHandleForReading)
        var event: [String: Any]?
        for _ in 0..<300 where event == nil {
            try await Task.sleep(for: .milliseconds(50))
            event = lines.first.flatMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
        }
        kill(process.processIdentifier, SIGINT)
        #expect(await Binary.exitStatus(of: process) == 0)
        #expect((event?["type"] as? String)?.hasPrefix("payment.") == true)
        #expect((event?["data"] as? [String: Any])?["payment"] is [String: Any])
    }

    @Test func theDemoPrintsReadableLinesAndRemovesItsState() async throws {
        let (process, output, errors) = try Binary.start(["run"])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let lines = LineCollector(output.fileHandleForReading)
        let log = PipeReader(errors)
        // The demo's sandbox pushes its notifications: most changes arrive by one first.
        for _ in 0..<600 where !lines.all.contains(where: { $0.contains("by notification") }) {
            try await Task.sleep(for: .milliseconds(50))
        }
        kill(process.processIdentifier, SIGINT)
        let status = await Binary.exitStatus(of: process)
        let logged = await log.text()
        #expect(status == 0, "\(logged)")
        let first = try #require(lines.all.first, "\(logged)")
        // `21:04:05  Processed ← PendingProcessing  120.00 EUR  Müller & Söhne GmbH  ref INV-…  <id>`, and for a change
        // a notification brought: `  by notification, 0.1 s after the change`.
        let line = /^\d\d:\d\d:\d\d  \w+ (← \w+|\(new\))  \d+\.\d\d EUR  .+  ref INV-\d+  [0-9a-f-]{36}(  by notification, \d+\.\d s after the change)?$/
        #expect(first.firstMatch(of: line) != nil, "\(first)")
        let notified = lines.all.first { $0.contains("by notification") }
        #expect(notified?.firstMatch(of: line) != nil, "\(lines.all)")
        let state = try #require(logged.firstMatch(of: /state=(\S+)/)).1
        #expect(!FileManager.default.fileExists(atPath: String(state)), "the demo's temporary state is removed")
    }

    /// On a terminal (a pseudo-terminal made by `script`), run keeps a live status line.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/script"), "needs script(1) for a terminal"))
    func runShowsALiveStatusLineOnATerminal() async throws {
        let directory = try TemporaryDirectory()
        let transcript = directory.file("tty.out")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments = ["-s", "INT", "8", "/usr/bin/script", "-q", "-e", "-c", "\(Binary.path) run", transcript]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        _ = await Binary.exitStatus(of: process)
        let text = String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: transcript))) ?? Data(), as: UTF8.self)
        #expect(text.contains("paybridge · recent "), "\(text.suffix(800))")
        #expect(text.contains(" today · queue "))
        // Event lines start on a line of their own, not after the status line.
        #expect(text.firstMatch(of: /queue \d+\d\d:\d\d:\d\d/) == nil)
    }

    @Test func sandboxServesTheBankAPI() async throws {
        let (process, output, _) = try Binary.start(["sandbox", "--port", "0", "--initial-payments", "3", "--new-payment-every", "0s"])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let lines = LineCollector(output.fileHandleForReading)
        var url: String?
        for _ in 0..<200 where url == nil {
            try await Task.sleep(for: .milliseconds(50))
            url = lines.first.flatMap { $0.components(separatedBy: "listening on ").last }
        }
        let base = try #require(url)
        let directory = try TemporaryDirectory()
        let path = try directory.write(
            "pb.yaml", """
                source:
                  kind: sandbox
                  apiURL: \(base)
                  watches:
                    - name: all
                      baseline: emit
                state:
                  path: \(directory.file("state"))
                endpoints:
                  out:
                    kind: console
                """)
        let poll = try await Binary.run(["poll", "--once", "--config", path])
        process.terminate()
        _ = await Binary.exitStatus(of: process)
        #expect(poll.status == 0, "\(poll.stderr)")
        #expect(poll.stdout.split(separator: "\n").count == 3)
        #expect(poll.stdout.contains("\"type\":\"payment.created\""))
    }
}

/// Collects the lines a process writes, as they come.
final class LineCollector: Sendable {
    private let lines = Mutex<[String]>([])

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            var buffer = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { return }
                buffer.append(chunk)
                while let newline = buffer.firstIndex(of: 0x0A) {
                    let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                    buffer.removeSubrange(buffer.startIndex...newline)
                    self.lines.withLock { $0.append(line) }
                }
            }
        }
    }

    var first: String? { lines.withLock { $0.first } }
    var all: [String] { lines.withLock { $0 } }
}

@Suite struct SandboxRulesTests {
    func request(_ path: String, _ headers: [String: String]) -> SandboxRequest {
        SandboxRequest(method: "GET", path: path, headers: headers)
    }

    @Test func requestIdsAreCheckedAsTheBankChecksThem() {
        let bank = SandboxBank(options: SandboxOptions(processingDelay: .seconds(3600)))
        let auth = bank.handle(request("/api/v1/authorizations/authorize", ["authorization": "Basic " + Data("sandbox:sandbox".utf8).base64EncodedString()]))
        let token = ((try? JSONSerialization.jsonObject(with: Data(auth.body))) as? [String: Any])?["access_token"] as? String ?? ""
        let bearer = ["authorization": "Bearer \(token)"]
        let id = UUID().uuidString
        #expect(bank.handle(request("/api/v1/payments/singles", bearer)).status == 200)
        #expect(bank.handle(request("/api/v1/payments/singles", bearer.merging(["x-request-id": id]) { $1 })).status == 200)
        #expect(bank.handle(request("/api/v1/payments/singles", bearer.merging(["x-request-id": id]) { $1 })).status == 400)
        #expect(bank.handle(request("/api/v1/payments/singles", bearer.merging(["x-request-id": "not-a-uuid"]) { $1 })).status == 400)
        #expect(bank.handle(request("/api/v1/payments/singles", [:])).status == 401)
    }
}
