import Foundation
import Sandbox
import Testing

@testable import PayBridge

/// What an operator hit trying paybridge as a new user would (issue 20), each through the real
/// binary: the defect's path as the operator took it, failing before its fix.
@Suite(.serialized) struct OperatorReportTests {
    static func json(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    static func endpoint(_ output: Binary.Output, _ name: String) -> [String: Any] {
        (json(output.stdout)["endpoints"] as? [[String: Any]] ?? []).first { $0["name"] as? String == name } ?? [:]
    }

    /// Waits until `condition` holds, checking every 50 ms (never asserts a time).
    static func eventually(timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    // MARK: 1. A success ends a failure streak, in memory and in the record

    @Test func aRecoveredEndpointIsHealthyAndOneLaterFailureDoesNotDisableIt() async throws {
        let clock = try BinaryClock()
        let harness = try await Harness.start()
        let failNext = Tally()
        let receiver = try await TestReceiver.start { _, _ in
            failNext.value % 2 == 1 ? TestReceiver.Reply(status: 500) : .ok
        }
        let ids = harness.createPayments(3)
        let text = Fixtures.config(
            bankURL: harness.bank.url, state: harness.statePath,
            endpoints: Fixtures.endpoint("erp", url: receiver.url, retry: "[300ms, 300ms, 300ms]", extra: "    disableAfter: 2s"))
        let path = try harness.directory.write("pb.yaml", text)
        let baseline = try await Binary.run(["poll", "--once", "--config", path], environment: clock.environment)
        #expect(baseline.status == 0, "\(baseline.stderr)")

        // A blip: the first attempt fails, the retry succeeds (in another process: a restart).
        failNext.add()
        harness.bank.bank.setStatus(ids[0], "Rejected")
        #expect(try await Binary.run(["poll", "--once", "--config", path], environment: clock.environment).status == 0)
        let failing = Self.endpoint(try await Binary.run(["endpoints", "list", "--json", "--config", path], environment: clock.environment), "erp")
        #expect(failing["health"] as? String == "failing", "\(failing)")
        failNext.add()
        try clock.advance(by: 0.4)
        let retried = try await Binary.run(["poll", "--once", "--config", path], environment: clock.environment)
        #expect(retried.status == 0)
        #expect(retried.stderr.contains("endpoint recovered"), "the recovery is logged: \(retried.stderr)")
        #expect(receiver.requests.count == 2)
        let healthy = Self.endpoint(try await Binary.run(["endpoints", "list", "--json", "--config", path], environment: clock.environment), "erp")
        #expect(healthy["health"] as? String == "ok", "\(healthy)")
        #expect(healthy["failingSince"] is NSNull, "\(healthy)")
        let table = try await Binary.run(["endpoints", "list", "--config", path], environment: clock.environment)
        #expect(!table.stdout.contains("failing since"), "\(table.stdout)")

        // Past disableAfter since the blip, one failure (after another restart) is a new streak.
        try clock.advance(by: 2.2)
        failNext.add()
        harness.bank.bank.setStatus(ids[1], "Rejected")
        let later = try await Binary.run(["poll", "--once", "--config", path], environment: clock.environment)
        #expect(later.status == 0)
        #expect(!later.stderr.contains("endpoint disabled"), "\(later.stderr)")
        let after = Self.endpoint(try await Binary.run(["endpoints", "list", "--json", "--config", path], environment: clock.environment), "erp")
        #expect(after["health"] as? String == "failing", "\(after)")
        #expect(after["disabledAt"] is NSNull, "one failure after a success never disables: \(after)")
        // Its retry goes out.
        failNext.add()
        try clock.advance(by: 0.4)
        #expect(try await Binary.run(["poll", "--once", "--config", path], environment: clock.environment).status == 0)
        #expect(receiver.requests.filter { $0.paymentId == ids[1] }.count == 2)
        await receiver.stop()
        await harness.stop()
    }

    // MARK: 2. A fatal error in run: non-zero, naming the setting and the address

    @Test func runExitsNonZeroNamingTheAdminAddressItCannotListenOn() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let taken = try await TestReceiver.start()  // holds a port on 127.0.0.1
        let text = Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: receiver.url))
            + "admin:\n  listen: 127.0.0.1:\(taken.port)\n"
        let path = try harness.directory.write("pb.yaml", text)
        let (process, _, errors) = try Binary.start(["run", "--config", path])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let log = PipeReader(errors)
        let status = await Binary.exitStatus(of: process)
        let logged = await log.text()
        #expect(status != 0, "\(logged)")
        #expect(logged.contains("admin.listen 127.0.0.1:\(taken.port): address already in use"), "\(logged)")
        await taken.stop()
        await receiver.stop()
        await harness.stop()
    }

    // MARK: 3. One process on a SQLite state

    @Test func aSecondRunOrPollOnTheSameStateStopsAtOnceAndNothingIsSentTwice() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let ids = harness.createPayments(4)
        let text = Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: receiver.url))
            .replacingOccurrences(of: "every: 1s", with: "every: 200ms")
        let path = try harness.directory.write("pb.yaml", text)
        let (process, _, _) = try Binary.start(["run", "--config", path])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        try await harness.waitForBaseline()

        for command in [["poll", "--once"], ["run"]] {
            let second = try await Binary.run(command + ["--config", path])
            #expect(second.status == 1, "\(command): \(second.stderr)")
            #expect(second.stderr.contains("another paybridge (run or poll) is using the state in \(harness.statePath)"), "\(second.stderr)")
            #expect(second.stderr.contains("PostgreSQL"), "says how to run several")
        }
        // Reading commands still work beside it.
        let list = try await Binary.run(["endpoints", "list", "--config", path])
        #expect(list.status == 0, "\(list.stderr)")

        // A second poll racing the run: every change arrives once.
        for id in ids { harness.bank.bank.setStatus(id, "Rejected") }
        let racing = try await Binary.run(["poll", "--once", "--config", path])
        #expect(racing.status == 1)
        #expect(await receiver.waitFor(count: 4))
        #expect(await harness.bank.waitForPolls(2), "the run goes on polling")
        #expect(receiver.requests.count == 4)
        #expect(Set(receiver.requests.map(\.webhookId)).count == 4)
        process.terminate()
        #expect(await Binary.exitStatus(of: process) == 0)
        // Once it has stopped, the state is free (the lock goes with the process).
        #expect(try await Binary.run(["poll", "--once", "--config", path]).status == 0)
        await receiver.stop()
        await harness.stop()
    }

    /// kill -9 leaves no lock behind, and the next start says it resumes what the killed one
    /// had queued and in flight; after a graceful stop it says nothing of the kind.
    @Test func aKilledRunLeavesNoLockBehindAndTheNextStartSaysItResumes() async throws {
        let harness = try await Harness.start()
        let gate = ReplyGate()  // the delivery stays in flight until the run is killed
        let receiver = try await TestReceiver.start { _, _ in TestReceiver.Reply(status: 200, heldUntil: gate) }
        let ids = harness.createPayments(1)
        let text = Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: receiver.url))
            .replacingOccurrences(of: "every: 1s", with: "every: 200ms")
        let path = try harness.directory.write("pb.yaml", text)
        let (process, _, _) = try Binary.start(["run", "--config", path])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        try await harness.waitForBaseline()
        harness.bank.bank.setStatus(ids[0], "Rejected")
        #expect(await Self.eventually { receiver.mostConcurrent > 0 })  // in flight
        kill(process.processIdentifier, SIGKILL)
        _ = await Binary.exitStatus(of: process)
        gate.open()  // its answer goes nowhere: the connection died with the run
        receiver.setResponder { _, _ in .ok }
        let next = try await Binary.run(["poll", "--once", "--config", path])
        #expect(next.status == 0, "\(next.stderr)")
        #expect(next.stderr.contains("the last run did not stop gracefully (killed or crashed): resuming its queue"), "\(next.stderr)")
        #expect(next.stderr.contains("pending=1"), "\(next.stderr)")
        #expect(Set(receiver.requests.map(\.webhookId)).count == 1, "sent again with the same webhook-id")
        let calm = try await Binary.run(["poll", "--once", "--config", path])
        #expect(!calm.stderr.contains("did not stop gracefully"), "after a graceful end: \(calm.stderr)")
        await receiver.stop()
        await harness.stop()
    }

    // MARK: 4. On-call commands without the bank's password

    static func secretConfig(_ harness: Harness, receiver: TestReceiver) -> String {
        Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: receiver.url))
            .replacingOccurrences(of: "password: sandbox", with: "password: ${PB_TEST_BANK_PASSWORD}")
            .replacingOccurrences(of: "secret: \(Fixtures.secret)", with: "secret: ${PB_TEST_ERP_SECRET}")
    }

    @Test func readingCommandsNeedOnlyTheStateAndValidateListsWhatIsUnset() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let ids = harness.createPayments(1)
        let path = try harness.directory.write("pb.yaml", Self.secretConfig(harness, receiver: receiver))
        let secrets = ["PB_TEST_BANK_PASSWORD": "sandbox", "PB_TEST_ERP_SECRET": Fixtures.secret]
        #expect(try await Binary.run(["poll", "--once", "--config", path], environment: secrets).status == 0)
        harness.bank.bank.setStatus(ids[0], "Rejected")
        #expect(try await Binary.run(["poll", "--once", "--config", path], environment: secrets).status == 0)

        // The on-call commands, without the secrets.
        for command in [["endpoints", "list"], ["deliveries", "list"], ["payments", "show", ids[0]], ["events", "list"]] {
            let output = try await Binary.run(command + ["--config", path])
            #expect(output.status == 0, "\(command): \(output.stderr)")
            #expect(!output.stderr.contains("is not set"), "\(command): \(output.stderr)")
            #expect(!output.stderr.contains("warning"), "config warnings are validate's: \(output.stderr)")
        }
        // run and poll still need them.
        let poll = try await Binary.run(["poll", "--once", "--config", path])
        #expect(poll.status == 2)
        #expect(poll.stderr.contains("environment variable PB_TEST_BANK_PASSWORD is not set"), "\(poll.stderr)")

        // validate names each unset variable at its place and still checks the rest.
        let broken = try harness.directory.write(
            "broken.yaml", Self.secretConfig(harness, receiver: receiver).replacingOccurrences(of: "timeout: 5s", with: "timeout: soon"))
        let validate = try await Binary.run(["validate", "--config", broken])
        #expect(validate.status == 1)
        #expect(validate.stderr.contains("source.password: environment variable PB_TEST_BANK_PASSWORD is not set"), "\(validate.stderr)")
        #expect(validate.stderr.contains("endpoints.erp.secret: environment variable PB_TEST_ERP_SECRET is not set"), "\(validate.stderr)")
        #expect(validate.stderr.contains("endpoints.erp.timeout"), "the rest is still checked: \(validate.stderr)")
        let unsetOnly = try await Binary.run(["validate", "--config", path])
        #expect(unsetOnly.status == 1, "\(unsetOnly.stderr)")
        #expect(unsetOnly.stderr.range(of: #"pb\.yaml:\d+:\d+: source\.password"#, options: .regularExpression) != nil, "\(unsetOnly.stderr)")
        let dry = try await Binary.run(["validate", "--env-optional", "--config", path])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("OK"), "\(dry.stdout)")
        #expect(dry.stdout.contains("2 unset variables not checked"), "\(dry.stdout)")

        // PAYBRIDGE_CONFIG: no --config to type.
        let viaEnvironment = try await Binary.run(["endpoints", "list", "--json"], environment: ["PAYBRIDGE_CONFIG": path])
        #expect(viaEnvironment.status == 0, "\(viaEnvironment.stderr)")
        #expect(Self.endpoint(viaEnvironment, "erp")["health"] as? String == "ok")
        await receiver.stop()
        await harness.stop()
    }

    // MARK: 5. Groups on the timeline, and a group message's members

    @Test func groupsShowOnThePaymentsTimelineAndMessagesListTheirMembers() async throws {
        let clock = try BinaryClock()
        let harness = try await Harness.start()
        let alerts = try await TestReceiver.start()
        let ids = harness.createPayments(3)
        let endpoints = """
              alerts:
                url: \(alerts.url)
                secret: \(Fixtures.secret)
                group: { by: [status], wait: 1s, interval: 1m }
            """
        let path = try harness.directory.write(
            "pb.yaml", Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: endpoints))
        #expect(try await Binary.run(["poll", "--once", "--config", path], environment: clock.environment).status == 0)
        harness.bank.bank.setStatus(ids[0], "Rejected")
        harness.bank.bank.setStatus(ids[1], "Rejected")
        #expect(try await Binary.run(["poll", "--once", "--config", path], environment: clock.environment).status == 0)

        // Waiting: the timeline says so, with when.
        let waiting = try await Binary.run(["payments", "show", ids[0], "--config", path])
        #expect(waiting.stdout.contains("→ alerts: in a group waiting until"), "\(waiting.stdout)")
        let waitingJSON = Self.json(try await Binary.run(["payments", "show", ids[0], "--json", "--config", path]).stdout)
        let event = try #require((waitingJSON["events"] as? [[String: Any]])?.last)
        let group = try #require((event["groups"] as? [[String: Any]])?.first, "\(waitingJSON)")
        #expect(group["endpoint"] as? String == "alerts")
        #expect((group["group"] as? String)?.contains("Rejected") == true, "\(group)")
        #expect(group["messageId"] is NSNull)
        #expect(group["waitingUntil"] is String)

        // Sent: the timeline names the message; the message names its members.
        try clock.advance(by: 1.2)
        #expect(try await Binary.run(["poll", "--once", "--config", path], environment: clock.environment).status == 0)
        #expect(alerts.requests.count == 1)
        let message = try #require(alerts.requests.first?.webhookId)
        let sent = try await Binary.run(["payments", "show", ids[0], "--config", path])
        #expect(sent.stdout.contains("→ alerts: in group \(message), delivered"), "\(sent.stdout)")
        let listed = Self.json(try await Binary.run(["events", "list", "--type", "payment.group", "--json", "--config", path], environment: clock.environment).stdout)
        let groupEvent = try #require((listed["events"] as? [[String: Any]])?.first)
        #expect(groupEvent["id"] as? String == message)
        let members = groupEvent["members"] as? [[String: Any]] ?? []
        #expect(Set(members.compactMap { $0["paymentId"] as? String }) == Set(ids.prefix(2)), "\(groupEvent)")
        let table = try await Binary.run(["events", "list", "--type", "payment.group", "--config", path], environment: clock.environment)
        #expect(table.stdout.contains("\(message) carried 2 payments: "), "\(table.stdout)")
        let deliveries = Self.json(try await Binary.run(["deliveries", "list", "--endpoint", "alerts", "--json", "--config", path], environment: clock.environment).stdout)
        let deliveryId = try #require((deliveries["deliveries"] as? [[String: Any]])?.first?["id"] as? Int)
        let shown = try await Binary.run(["deliveries", "show", "\(deliveryId)", "--config", path], environment: clock.environment)
        #expect(shown.stdout.contains("carried   2 payments: "), "\(shown.stdout)")
        #expect(shown.stdout.contains(ids[0]) && shown.stdout.contains(ids[1]))
        let shownJSON = Self.json(try await Binary.run(["deliveries", "show", "\(deliveryId)", "--json", "--config", path], environment: clock.environment).stdout)
        #expect((shownJSON["members"] as? [[String: Any]])?.count == 2, "\(shownJSON)")
        await alerts.stop()
        await harness.stop()
    }

    // MARK: 7. --log-format json: every line JSON, numbers as numbers

    @Test func jsonLogsAreJSONEveryLineWithNumbersAsNumbers() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        _ = harness.createPayments(2)
        // An endpoint without a secret: a config warning.
        let text = Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: receiver.url))
            .replacingOccurrences(of: "secret: \(Fixtures.secret)", with: "headers: {X-Test: one}")
        let path = try harness.directory.write("pb.yaml", text)
        let poll = try await Binary.run(["poll", "--once", "--log-format", "json", "--config", path])
        #expect(poll.status == 0, "\(poll.stderr)")
        let lines = poll.stderr.split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines { #expect(Self.json(String(line))["message"] is String, "not JSON: \(line)") }
        let warning = lines.map { Self.json(String($0)) }.first { ($0["message"] as? String)?.contains("has no secret") == true }
        #expect(warning?["level"] as? String == "warning", "\(poll.stderr)")
        #expect(warning?["line"] as? Int != nil, "the place as numbers: \(String(describing: warning))")
        let report = lines.map { Self.json(String($0)) }.first { $0["payments"] != nil }
        #expect(report?["payments"] as? Int == 2, "\(poll.stderr)")
        #expect(report?["changed"] as? Int == 0, "\(poll.stderr)")

        // The config's warnings follow --log-level in both formats: shown as FILE:LINE:COL in
        // text, and not at all at `error`.
        let plain = try await Binary.run(["poll", "--once", "--config", path])
        #expect(plain.stderr.contains("pb.yaml:") && plain.stderr.contains(": warning: endpoints.erp has no secret"), "\(plain.stderr)")
        for format in ["text", "json"] {
            let quiet = try await Binary.run(["poll", "--once", "--log-level", "error", "--log-format", format, "--config", path])
            #expect(quiet.status == 0 && !quiet.stderr.contains("has no secret"), "\(format): \(quiet.stderr)")
        }

        // A failed poll says so in JSON too, from its first line to its last.
        let down = try harness.directory.write("down.yaml", text.replacingOccurrences(of: harness.bank.url, with: "http://127.0.0.1:\(try Sockets.closedPort())"))
        let failed = try await Binary.run(["poll", "--once", "--log-format", "json", "--config", down])
        #expect(failed.status == 1, "\(failed.stderr)")
        let failedLines = failed.stderr.split(separator: "\n")
        for line in failedLines { #expect(Self.json(String(line))["message"] is String, "not JSON: \(line)") }
        #expect(failedLines.contains { Self.json(String($0))["message"].map { "\($0)".hasPrefix("poll failed: ") } == true }, "\(failed.stderr)")
        // §9: every line about a bank call carries its requestId, as a field.
        let pollFailed = failedLines.map { Self.json(String($0)) }.filter { ($0["message"] as? String)?.hasPrefix("poll failed") == true }
        #expect(pollFailed.count == 2, "\(failed.stderr)")
        for line in pollFailed { #expect((line["requestId"] as? String)?.count == 36, "\(line)") }
        await receiver.stop()
        await harness.stop()
    }

    // MARK: 8. /metrics: HELP and TYPE for every family, and build info

    static let promtool: String? = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test func metricsHaveHelpForEveryFamilyAndPassPromtool() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let ids = harness.createPayments(2)
        let port = try Sockets.closedPort()
        let text = Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: receiver.url))
            .replacingOccurrences(of: "every: 1s", with: "every: 200ms") + "admin:\n  listen: 127.0.0.1:\(port)\n"
        let path = try harness.directory.write("pb.yaml", text)
        let (process, _, _) = try Binary.start(["run", "--config", path])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let admin = AdminServerTests.Admin(port: port)
        defer { admin.http.shutdown() }
        try await harness.waitForBaseline()
        harness.bank.bank.setStatus(ids[0], "Rejected")
        #expect(await receiver.waitFor(count: 1))
        let metrics = String(decoding: await admin.get("/metrics", token: nil)?.body ?? [], as: UTF8.self)
        let types = metrics.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ")[2] }
        let helps = Set(metrics.split(separator: "\n").filter { $0.hasPrefix("# HELP ") }.map { $0.split(separator: " ")[2] })
        #expect(types.count >= 10, "\(metrics)")
        for family in types { #expect(helps.contains(family), "no HELP for \(family)") }
        #expect(metrics.contains(#"paybridge_build_info{version="\#(PayBridgeVersion.string)"} 1"#), "\(metrics)")
        if let promtool = Self.promtool {
            let file = try harness.directory.write("metrics.txt", metrics)
            let checked = try Self.run(promtool, ["check", "metrics"], stdin: file)
            #expect(checked.status == 0, "promtool: \(checked.output)")
        }
        process.terminate()
        _ = await Binary.exitStatus(of: process)
        await receiver.stop()
        await harness.stop()
    }

    static func run(_ executable: String, _ arguments: [String], stdin: String? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        if let stdin { process.standardInput = FileHandle(forReadingAtPath: stdin) }
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    // MARK: 9. Readable secret files, and warnings at their keys

    @Test func readableSecretFilesWarnAndEveryWarningPointsAtItsKey() async throws {
        let directory = try TemporaryDirectory()
        let secretFile = try directory.write("erp.secret", Fixtures.secret, permissions: 0o644)
        let tokenFile = try directory.write("admin.token", "admin-Token-0123456789abcdef", permissions: 0o640)
        let text = """
            source:
              kind: sandbox
              watches:
                - name: recent
                  every: 1m
            state:
              path: ./state
            admin:
              listen: 127.0.0.1:9464
              tokenFile: \(tokenFile)
            endpoints:
              erp:
                url: http://127.0.0.1:9/hook
                secretFile: \(secretFile)
              alerts:
                url: http://127.0.0.1:9/alerts
                secret: \(Fixtures.secret)
            """
        let path = try directory.write("pb.yaml", text, permissions: 0o644)
        let validate = try await Binary.run(["validate", "--config", path])
        #expect(validate.status == 0, "\(validate.stderr)")
        #expect(validate.stderr.contains("\(path):14:17: warning: endpoints.erp.secretFile: \(secretFile) holds a secret and can be read by all users"), "\(validate.stderr)")
        #expect(validate.stderr.contains("\(path):10:14: warning: admin.tokenFile: \(tokenFile) holds a secret and can be read by its group"), "\(validate.stderr)")
        #expect(validate.stderr.contains("\(path):17:13: warning: endpoints.alerts.secret is written in the file, and the file can be read by all users"), "\(validate.stderr)")
        #expect(!validate.stderr.contains(":1:1: warning"), "every warning at its key: \(validate.stderr)")
    }

    @Test func noSecretWarnsOnlyWhereASignatureWouldBeChecked() async throws {
        for example in ["slack-redacted.yaml", "teams.yaml", "pagerduty.yaml", "opsgenie.yaml"] {
            let path = ConfigTests.root.appendingPathComponent("examples/\(example)").path
            let output = try await Binary.run(["validate", "--env-optional", "--config", path], environment: ConfigTests.exampleEnvironment)
            #expect(!output.stderr.contains("has no secret"), "\(example): \(output.stderr)")
        }
    }

    // MARK: 10. A bulk replay's dry run shows the out-of-order warnings

    @Test func aBulkReplaysDryRunWarnsOfOutOfOrderDeliveries() async throws {
        let harness = try await Harness.start()
        let down = Tally()
        let receiver = try await TestReceiver.start { _, _ in down.value == 0 ? TestReceiver.Reply(status: 500) : .ok }
        let ids = harness.createPayments(1)
        let text = Fixtures.config(
            bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: receiver.url, retry: "[]"))
        let path = try harness.directory.write("pb.yaml", text)
        #expect(try await Binary.run(["poll", "--once", "--config", path]).status == 0)
        harness.bank.bank.setStatus(ids[0], "MissingFunding")
        #expect(try await Binary.run(["poll", "--once", "--config", path]).status == 0)  // dead letter
        down.add()
        harness.bank.bank.setStatus(ids[0], "Rejected")
        #expect(try await Binary.run(["poll", "--once", "--config", path]).status == 0)  // delivered
        let dry = try await Binary.run(["deliveries", "replay", "--endpoint", "erp", "--state", "dead", "--config", path])
        #expect(dry.status == 0)
        #expect(dry.stdout.contains("would queue 1 dead delivery of erp again"), "\(dry.stdout)")
        #expect(dry.stderr.contains("the receiver would get them out of order"), "before --yes: \(dry.stderr)")
        await receiver.stop()
        await harness.stop()
    }

    // MARK: 11. A state folder that cannot be created

    @Test func validateRejectsAStatePathThatCannotBeCreatedAndPollSaysWhyInPlainWords() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let blocker = try harness.directory.write("not-a-folder", "")
        let text = Fixtures.config(bankURL: harness.bank.url, state: blocker + "/state", endpoints: Fixtures.endpoint("erp", url: receiver.url))
        let path = try harness.directory.write("pb.yaml", text)
        let validate = try await Binary.run(["validate", "--config", path])
        #expect(validate.status == 1)
        #expect(validate.stderr.contains("state.path \(blocker)/state: \(blocker) is a file, not a folder"), "\(validate.stderr)")
        #expect(validate.stderr.range(of: #"pb\.yaml:\d+:\d+: state\.path"#, options: .regularExpression) != nil, "at its key: \(validate.stderr)")
        let poll = try await Binary.run(["poll", "--once", "--config", path])
        #expect(poll.status == 1)
        #expect(!poll.stderr.contains("NSCocoaErrorDomain"), "\(poll.stderr)")
        #expect(poll.stderr.contains("\(blocker) is a file, not a folder"), "\(poll.stderr)")
        await receiver.stop()
        await harness.stop()
    }

    // MARK: 13. What a route without `when` sends, and the recipes' ERP routes

    @Test func theERPRecipeSendsPaymentEventsOnly() async throws {
        let directory = try TemporaryDirectory()
        let unavailable = try directory.write(
            "unavailable.json",
            #"{"type":"source.unavailable","timestamp":"2026-12-06T10:00:00Z","data":{"watch":"recent","since":"2026-12-06T09:55:00Z"}}"#)
        let rejected = try directory.write(
            "rejected.json",
            #"{"type":"payment.status_changed","timestamp":"2026-12-06T10:00:00Z","data":{"paymentId":"p1","status":"Rejected","previousStatus":"PendingProcessing","watch":"recent","payment":{"paymentId":"p1","status":"Rejected"}}}"#
        )
        let path = ConfigTests.root.appendingPathComponent("examples/erp-callback.yaml").path
        let outage = Self.json(
            try await Binary.run(["routes", "test", "--json", "--config", path, unavailable], environment: ConfigTests.exampleEnvironment).stdout)
        let reached = (outage["endpoints"] as? [[String: Any]] ?? []).compactMap { $0["endpoint"] as? String }
        #expect(!reached.contains("erp"), "\(outage)")
        let payment = Self.json(
            try await Binary.run(["routes", "test", "--json", "--config", path, rejected], environment: ConfigTests.exampleEnvironment).stdout)
        #expect((payment["endpoints"] as? [[String: Any]] ?? []).contains { $0["endpoint"] as? String == "erp" }, "\(payment)")
    }

    // MARK: Frictions

    /// `source.proxy`, `endpoints.NAME.proxy` and `noProxy` from the config, not only libcurl's
    /// environment: the bank and an endpoint are reached under names that resolve nowhere,
    /// through proxies on 127.0.0.1 (the servers answer absolute-form requests as proxies do).
    @Test func proxiesComeFromTheConfig() async throws {
        let harness = try await Harness.start()
        let proxied = try await TestReceiver.start()
        let direct = try await TestReceiver.start()
        let ids = harness.createPayments(1)
        let bank = try #require(URL(string: harness.bank.url))
        let closed = try Sockets.closedPort()
        let endpoints =
            Fixtures.endpoint("erp", url: "http://erp.invalid/hook", extra: "    proxy: http://127.0.0.1:\(proxied.port)\n")
            + Fixtures.endpoint("direct", url: direct.url, extra: "    proxy: http://127.0.0.1:\(closed)\n    noProxy: 127.0.0.1,localhost")
        let text = Fixtures.config(
            bankURL: "http://bank.invalid", state: harness.statePath, endpoints: endpoints,
            extraSource: "  proxy: http://127.0.0.1:\(bank.port ?? 0)")
        let path = try harness.directory.write("pb.yaml", text)
        let baseline = try await Binary.run(["poll", "--once", "--config", path])
        #expect(baseline.status == 0, "the bank through its proxy: \(baseline.stderr)")
        harness.bank.bank.setStatus(ids[0], "Rejected")
        let changed = try await Binary.run(["poll", "--once", "--config", path])
        #expect(changed.status == 0, "\(changed.stderr)")
        #expect(proxied.requests.map(\.paymentId) == [ids[0]], "erp.invalid through its proxy")
        #expect(proxied.requests.first?.path == "/hook")
        #expect(direct.requests.map(\.paymentId) == [ids[0]], "noProxy: straight to 127.0.0.1")
        let validate = try await Binary.run(["validate", "--config", path])
        #expect(validate.status == 0, "\(validate.stderr)")
        let bad = try harness.directory.write("bad.yaml", text.replacingOccurrences(of: "proxy: http://127.0.0.1:\(proxied.port)", with: "proxy: ftp://x"))
        let rejected = try await Binary.run(["validate", "--config", bad])
        #expect(rejected.status == 1)
        #expect(rejected.stderr.contains("endpoints.erp.proxy must be a URL like http://proxy.internal:3128"), "\(rejected.stderr)")
        await proxied.stop()
        await direct.stop()
        await harness.stop()
    }

    /// SIGHUP: a new endpoint URL and route apply without a restart and without losing or
    /// repeating the delivery in flight; a broken config, or one that moves the state, is
    /// refused with why, and the running one goes on.
    @Test func sighupReloadsTheConfigWholeOrNotAtAll() async throws {
        let harness = try await Harness.start()
        let gate = ReplyGate()  // the first delivery stays in flight until the reload waits for it
        let before = try await TestReceiver.start { _, _ in TestReceiver.Reply(status: 200, heldUntil: gate) }
        let after = try await TestReceiver.start()
        let ids = harness.createPayments(4)
        let port = try Sockets.closedPort()
        let admin = AdminServerTests.Admin(port: port)
        defer { admin.http.shutdown() }
        let config = { (url: String) in
            Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: url))
                .replacingOccurrences(of: "every: 1s", with: "every: 200ms") + "admin:\n  listen: 127.0.0.1:\(port)\n"
        }
        let path = try harness.directory.write("pb.yaml", config(before.url))
        let (process, _, errors) = try Binary.start(["run", "--config", path])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let log = PipeReader(errors)
        try await harness.waitForBaseline()

        // A delivery in flight when the reload comes: it finishes, and is not sent again.
        harness.bank.bank.setStatus(ids[0], "Rejected")
        #expect(await Self.eventually { before.mostConcurrent > 0 })
        _ = try harness.directory.write("pb.yaml", config(after.url))
        kill(process.processIdentifier, SIGHUP)
        // The reload waits for it (within the grace), then starts the services on the new config.
        #expect(await log.shows("stopping: waiting for deliveries in flight"))
        gate.open()
        #expect(await log.shows("config reloaded"))
        #expect(try await Self.eventually { try await Binary.run(["deliveries", "list", "--json", "--config", path]).stdout.contains(#""state":"delivered""#) })
        harness.bank.bank.setStatus(ids[1], "Rejected")
        #expect(await after.waitFor(count: 1))
        #expect(before.requests.map(\.paymentId) == [ids[0]], "in flight at the reload: sent once, to the old URL")
        #expect(after.requests.map(\.paymentId) == [ids[1]], "after it: the new URL")
        #expect(await admin.wait("/healthz", status: 200, token: nil), "the admin server listens again")

        // A config with an error: refused, said why, the running one goes on.
        _ = try harness.directory.write("pb.yaml", config(after.url).replacingOccurrences(of: "timeout: 5s", with: "timeout: soon"))
        kill(process.processIdentifier, SIGHUP)
        harness.bank.bank.setStatus(ids[2], "Rejected")
        #expect(await after.waitFor(count: 2))
        // Moving the state: refused too.
        _ = try harness.directory.write("pb.yaml", config(after.url).replacingOccurrences(of: harness.statePath, with: harness.statePath + "-elsewhere"))
        kill(process.processIdentifier, SIGHUP)
        harness.bank.bank.setStatus(ids[3], "Rejected")
        #expect(await after.waitFor(count: 3))
        process.terminate()
        #expect(await Binary.exitStatus(of: process) == 0)
        let logged = await log.text()
        #expect(logged.components(separatedBy: "config reloaded").count == 2, "\(logged)")
        #expect(logged.contains("pb.yaml"), "the error's place: \(logged)")
        #expect(logged.contains("endpoints.erp.timeout"), "\(logged)")
        #expect(logged.contains("config not reloaded: it has errors"), "\(logged)")
        #expect(logged.contains("config not reloaded: state cannot change while paybridge runs"), "\(logged)")
        #expect(before.requests.count == 1)
        #expect(Set(after.requests.map(\.paymentId)) == Set(ids[1...]))
        await before.stop()
        await after.stop()
        await harness.stop()
    }

    @Test func aGracefulStopSaysItIsWaitingForDeliveriesInFlight() async throws {
        let harness = try await Harness.start()
        let gate = ReplyGate()  // the delivery stays in flight until the run says it waits for it
        let receiver = try await TestReceiver.start { _, _ in TestReceiver.Reply(status: 200, heldUntil: gate) }
        let ids = harness.createPayments(1)
        let text = Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: receiver.url))
            .replacingOccurrences(of: "every: 1s", with: "every: 200ms")
        let path = try harness.directory.write("pb.yaml", text)
        let (process, _, errors) = try Binary.start(["run", "--config", path])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let log = PipeReader(errors)
        try await harness.waitForBaseline()
        harness.bank.bank.setStatus(ids[0], "Rejected")
        #expect(await Self.eventually { receiver.mostConcurrent > 0 })
        process.terminate()
        #expect(await log.shows("stopping: waiting for deliveries in flight"))
        gate.open()
        #expect(await Binary.exitStatus(of: process) == 0)
        let logged = await log.text()
        #expect(logged.contains("stopping: waiting for deliveries in flight"), "\(logged)")
        #expect(receiver.requests.count == 1, "the delivery in flight finished; nothing was sent again")
        await receiver.stop()
        await harness.stop()
    }
}
