import Foundation
import Sandbox
import Testing

@testable import PayBridge

/// Every operator command against a state built by real polls, in its table and its
/// `--json`; the admin server; logs; the state's permissions.
@Suite(.serialized) struct OperatorCommandTests {
    static func json(_ output: Binary.Output) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(output.stdout.utf8))) as? [String: Any] ?? [:]
    }

    /// A bank with a Rejected and a MissingFunding payment, delivered to `erp` (2xx) and
    /// dead-lettered at `flaky` (500, no retries).
    struct State {
        let harness: Harness
        let erp: TestReceiver
        let flaky: TestReceiver
        let path: String
        let rejected: String
        let short: String

        static func build(_ backend: Backend = .sqlite) async throws -> State {
            let harness = try await Harness.start(backend: backend)
            let erp = try await TestReceiver.start()
            let flaky = try await TestReceiver.start { _, _ in TestReceiver.Reply(status: 500, body: #"{"error":"flaky is down"}"#) }
            let ids = harness.createPayments(3)
            let text = Fixtures.config(
                bankURL: harness.bank.url, state: harness.state,
                endpoints: Fixtures.endpoint("erp", url: erp.url) + Fixtures.endpoint("flaky", url: flaky.url, retry: "[]"))
            let path = try harness.directory.write("pb.yaml", text)
            let baseline = try await Binary.run(["poll", "--once", "--config", path])
            #expect(baseline.status == 0, "\(baseline.stderr)")
            harness.bank.bank.setStatus(ids[0], "Rejected")
            harness.bank.bank.setStatus(ids[1], "MissingFunding")
            let changed = try await Binary.run(["poll", "--once", "--config", path])
            #expect(changed.status == 0, "\(changed.stderr)")
            return State(harness: harness, erp: erp, flaky: flaky, path: path, rejected: ids[0], short: ids[1])
        }

        func run(_ arguments: [String]) async throws -> Binary.Output {
            try await Binary.run(arguments + ["--config", path])
        }

        func stop() async {
            await erp.stop()
            await flaky.stop()
            await harness.stop()
        }
    }

    @Test(arguments: Backend.available)
    func inspectionAnswersFromTheState(backend: Backend) async throws {
        let state = try await State.build(backend)
        // payments show: the timeline.
        let show = try await state.run(["payments", "show", state.rejected])
        #expect(show.status == 0, "\(show.stderr)")
        #expect(show.stdout.contains("payment \(state.rejected): Rejected, 1 change seen"), "\(show.stdout)")
        #expect(show.stdout.contains("first seen PendingProcessing by watch recent"))
        #expect(show.stdout.contains("Rejected ← PendingProcessing by watch recent  payment.status_changed evt_"))
        #expect(show.stdout.contains("→ erp: delivered, 1 attempt"))
        #expect(show.stdout.contains("→ flaky: dead, 1 attempt"))
        #expect(show.stdout.contains("#1 ") && show.stdout.contains("HTTP 500"))
        let showJSON = Self.json(try await state.run(["payments", "show", state.rejected, "--json"]))
        #expect((showJSON["payment"] as? [String: Any])?["status"] as? String == "Rejected")
        #expect((showJSON["payment"] as? [String: Any])?["firstWatch"] as? String == "recent")
        let events = showJSON["events"] as? [[String: Any]] ?? []
        #expect(events.count == 1)
        let deliveries = events.first?["deliveries"] as? [[String: Any]] ?? []
        #expect(Set(deliveries.compactMap { $0["endpoint"] as? String }) == ["erp", "flaky"])
        let flakyAttempts = deliveries.first { $0["endpoint"] as? String == "flaky" }?["attempts"] as? [[String: Any]] ?? []
        #expect(flakyAttempts.first?["httpStatus"] as? Int == 500)
        #expect(flakyAttempts.first?["response"] as? String == #"{"error":"flaky is down"}"#)

        // events list, with filters.
        let all = Self.json(try await state.run(["events", "list", "--json"]))["events"] as? [[String: Any]] ?? []
        #expect(all.count == 2)
        let rejectedOnly = Self.json(try await state.run(["events", "list", "--status", "Rejected", "--since", "1h", "--json"]))
        #expect((rejectedOnly["events"] as? [[String: Any]])?.compactMap { $0["subject"] as? String } == [state.rejected])
        let byPayment = Self.json(try await state.run(["events", "list", "--payment", state.short, "--json"]))
        #expect((byPayment["events"] as? [[String: Any]])?.first?["status"] as? String == "MissingFunding")
        // Several statuses, comma-separated as the bank writes them; --since as an instant.
        let hourAgo = Timestamp.iso8601(Date().addingTimeInterval(-3600))
        let both = Self.json(try await state.run(["events", "list", "--status", "Rejected,MissingFunding", "--since", hourAgo, "--json"]))
        #expect((both["events"] as? [[String: Any]])?.count == 2, "\(both)")
        let table = try await state.run(["events", "list"])
        #expect(table.stdout.hasPrefix("TIME"), "\(table.stdout)")
        #expect(table.stdout.contains("MissingFunding ← PendingProcessing") && (table.stdout.contains(" ago") || table.stdout.contains("just now")))

        // deliveries list and show.
        let dead = Self.json(try await state.run(["deliveries", "list", "--state", "dead", "--json"]))
        let deadRows = dead["deliveries"] as? [[String: Any]] ?? []
        #expect(deadRows.count == 2 && deadRows.allSatisfy { $0["endpoint"] as? String == "flaky" })
        #expect(((dead["counts"] as? [String: Any])?["erp"] as? [String: Any])?["delivered"] as? Int == 2)
        let listing = try await state.run(["deliveries", "list", "--endpoint", "flaky"])
        #expect(listing.stdout.contains("flaky: pending=0 delivered=0 dead=2"))
        #expect(listing.stdout.contains("ID") && listing.stdout.contains("dead"))
        let id = try #require(deadRows.first?["id"] as? Int)
        let detail = try await state.run(["deliveries", "show", "\(id)"])
        #expect(detail.stdout.contains("delivery \(id) to flaky: dead, 1 attempt"), "\(detail.stdout)")
        #expect(detail.stdout.contains("500") && detail.stdout.contains("flaky is down") && detail.stdout.contains(" ms"))
        let detailJSON = Self.json(try await state.run(["deliveries", "show", "\(id)", "--json"]))
        #expect(((detailJSON["attempts"] as? [[String: Any]])?.first)?["httpStatus"] as? Int == 500)
        #expect((detailJSON["delivery"] as? [String: Any])?["state"] as? String == "dead")

        // endpoints list.
        let endpoints = Self.json(try await state.run(["endpoints", "list", "--json"]))["endpoints"] as? [[String: Any]] ?? []
        let flaky = endpoints.first { $0["name"] as? String == "flaky" }
        #expect(flaky?["health"] as? String == "failing", "failing since the first failure: \(endpoints)")
        #expect(flaky?["dead"] as? Int == 2)
        #expect(flaky?["failingSince"] is String && flaky?["lastFailureAt"] is String)
        #expect(endpoints.first { $0["name"] as? String == "erp" }?["lastSuccessAt"] is String)
        #expect(flaky?["url"] as? String == state.flaky.url, "a plain URL shown whole: \(endpoints)")
        // Where a webhook goes, not what authorizes it (a Slack path, a Teams sig=, user info).
        #expect(EndpointOverview.shown(url: "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX") == "https://hooks.slack.com/services/T0000/B0000/…")
        #expect(EndpointOverview.shown(url: "https://ops:pw@erp.example:8443/callbacks/paybridge?sig=abc&x=1") == "https://erp.example:8443/callbacks/paybridge?…")
        #expect(EndpointOverview.shown(url: "http://127.0.0.1:8080/hook") == "http://127.0.0.1:8080/hook")
        let endpointTable = try await state.run(["endpoints", "list"])
        #expect(endpointTable.stdout.contains("flaky: failing since "), "\(endpointTable.stdout)")
        await state.stop()
    }

    @Test(arguments: Backend.available)
    func unknownIdsAndNamesAreErrors(backend: Backend) async throws {
        let state = try await State.build(backend)
        for (arguments, message) in [
            (["payments", "show", "no-such-payment"], "paybridge has not seen a payment with id no-such-payment"),
            (["deliveries", "show", "9999"], "no delivery with id 9999"),
            (["deliveries", "replay", "--id", "9999"], "no delivery with id 9999"),
            // §1 `--id N…`: several ids after one flag, or a comma list.
            (["deliveries", "replay", "--id", "9999", "9998"], "no delivery with id 9999"),
            (["deliveries", "replay", "--id", "9999,9998"], "no delivery with id 9999"),
            (["deliveries", "replay", "--endpoint", "nosuch", "--state", "dead", "--yes"], "no endpoint named 'nosuch'"),
            (["deliveries", "list", "--endpoint", "nosuch"], "no endpoint named 'nosuch'"),
            (["endpoints", "enable", "nosuch"], "no endpoint named 'nosuch'"),
            (["events", "redeliver", "evt_nothing", "--to", "erp"], "no event with id evt_nothing"),
        ] {
            let output = try await state.run(arguments)
            #expect(output.status != 0, "\(arguments)")
            #expect(output.stderr.contains(message), "\(arguments): \(output.stderr)")
        }
        await state.stop()
    }

    @Test(arguments: Backend.available)
    func replaysAreShownBeforeTheyAreDoneAndKeepTheirHistory(backend: Backend) async throws {
        let state = try await State.build(backend)
        let dry = try await state.run(["deliveries", "replay", "--endpoint", "flaky", "--state", "dead", "--since", "1h"])
        #expect(dry.status == 0)
        #expect(dry.stdout.contains("would queue 2 dead deliveries of flaky again; add --yes to do it"), "\(dry.stdout)")
        #expect(try await state.harness.bridgeStoreCounts()["flaky"]?[.dead] == 2, "nothing changed")
        // The same dry run as one JSON document, as the operations API answers it.
        let dryJSON = Self.json(try await state.run(["deliveries", "replay", "--endpoint", "flaky", "--state", "dead", "--json"]))
        #expect(dryJSON["dryRun"] as? Bool == true)
        #expect((dryJSON["ids"] as? [Int])?.count == 2)
        #expect((dryJSON["replayed"] as? [Int])?.isEmpty == true)
        #expect(try await state.harness.bridgeStoreCounts()["flaky"]?[.dead] == 2, "still nothing changed")

        state.flaky.setResponder { _, _ in .ok }
        let done = try await state.run(["deliveries", "replay", "--endpoint", "flaky", "--state", "dead", "--yes"])
        #expect(done.stdout.contains("2 deliveries queued again"), "\(done.stdout)")
        let poll = try await state.run(["poll", "--once"])
        #expect(poll.status == 0)
        #expect(state.flaky.requests.count == 4)
        #expect(Set(state.flaky.requests.suffix(2).map(\.webhookId)) == Set(state.flaky.requests.prefix(2).map(\.webhookId)))

        // A delivered one, named by id, is sent again on purpose: its attempts are kept.
        let delivered = Self.json(try await state.run(["deliveries", "list", "--endpoint", "erp", "--state", "delivered", "--json"]))
        let id = try #require((delivered["deliveries"] as? [[String: Any]])?.first?["id"] as? Int)
        let again = Self.json(try await state.run(["deliveries", "replay", "--id", "\(id)", "--json"]))
        #expect(again["dryRun"] as? Bool == false)
        #expect(again["replayed"] as? [Int] == [id])
        _ = try await state.run(["poll", "--once"])
        let attempts = Self.json(try await state.run(["deliveries", "show", "\(id)", "--json"]))["attempts"] as? [[String: Any]] ?? []
        #expect(attempts.compactMap { $0["number"] as? Int } == [1, 2], "\(attempts)")

        // Replaying an event whose payment had a later event delivered warns.
        state.harness.bank.bank.setStatus(state.rejected, "Processed")
        _ = try await state.run(["poll", "--once"])
        let events = Self.json(try await state.run(["events", "list", "--payment", state.rejected, "--json"]))["events"] as? [[String: Any]] ?? []
        let older = try #require(events.last?["id"] as? String)
        let redeliver = try await state.run(["events", "redeliver", older, "--to", "erp"])
        #expect(redeliver.status == 0, "\(redeliver.stderr)")
        #expect(redeliver.stderr.contains("its payment already has a later event delivered to erp"), "\(redeliver.stderr)")
        #expect(redeliver.stdout.contains("\(older) queued for erp"))
        let redeliverJSON = Self.json(try await state.run(["events", "redeliver", older, "--to", "erp", "--json"]))
        #expect(redeliverJSON["outOfOrder"] as? Bool == true)
        #expect(redeliverJSON["delivery"] as? Int != nil)
        await state.stop()
    }

    @Test(arguments: Backend.available)
    func disablingAnEndpointHoldsItsDeliveries(backend: Backend) async throws {
        let state = try await State.build(backend)
        let disabled = Self.json(try await state.run(["endpoints", "disable", "erp", "--reason", "ERP maintenance", "--json"]))
        #expect(disabled["endpoint"] as? String == "erp")
        #expect(disabled["state"] as? String == "disabled")
        #expect(disabled["changed"] as? Bool == true)
        // Disabled again: nothing changes, and the first reason stays.
        let again = Self.json(try await state.run(["endpoints", "disable", "erp", "--json"]))
        #expect(again["changed"] as? Bool == false, "\(again)")
        let kept = (Self.json(try await state.run(["endpoints", "list", "--json"]))["endpoints"] as? [[String: Any]])?.first { $0["name"] as? String == "erp" }
        #expect(kept?["disabledReason"] as? String == "ERP maintenance", "the first reason stays")
        state.harness.bank.bank.setStatus(state.short, "Processed")
        _ = try await state.run(["poll", "--once"])
        #expect(state.erp.requests.count == 2, "nothing sent while disabled")
        let endpoints = Self.json(try await state.run(["endpoints", "list", "--json"]))["endpoints"] as? [[String: Any]] ?? []
        let erp = endpoints.first { $0["name"] as? String == "erp" }
        #expect(erp?["health"] as? String == "disabled")
        #expect(erp?["disabledReason"] as? String == "ERP maintenance")
        #expect(erp?["pending"] as? Int == 1)
        let enabled = Self.json(try await state.run(["endpoints", "enable", "erp", "--json"]))
        #expect(enabled["state"] as? String == "enabled")
        #expect(enabled["changed"] as? Bool == true)
        _ = try await state.run(["poll", "--once"])
        #expect(state.erp.requests.count == 3)
        await state.stop()
    }

    /// `deliveries show` has the receiver's answer for a success too, not only for failures.
    @Test(arguments: Backend.available)
    func aDeliveryShowsTheReceiversAnswerToASuccess(backend: Backend) async throws {
        let harness = try await Harness.start(backend: backend)
        let receiver = try await TestReceiver.start { _, _ in TestReceiver.Reply(status: 200, body: #"{"received":true}"#) }
        let ids = harness.createPayments(1)
        let path = try harness.directory.write(
            "pb.yaml", Fixtures.config(bankURL: harness.bank.url, state: harness.state, endpoints: Fixtures.endpoint("erp", url: receiver.url)))
        #expect(try await Binary.run(["poll", "--once", "--config", path]).status == 0)
        harness.bank.bank.setStatus(ids[0], "Rejected")
        #expect(try await Binary.run(["poll", "--once", "--config", path]).status == 0)
        let rows = Self.json(try await Binary.run(["deliveries", "list", "--json", "--config", path]))["deliveries"] as? [[String: Any]] ?? []
        let id = try #require(rows.first?["id"] as? Int)
        let detail = Self.json(try await Binary.run(["deliveries", "show", "\(id)", "--json", "--config", path]))
        let attempt = (detail["attempts"] as? [[String: Any]])?.first
        #expect(attempt?["httpStatus"] as? Int == 200)
        #expect(attempt?["response"] as? String == #"{"received":true}"#)
        let text = try await Binary.run(["deliveries", "show", "\(id)", "--config", path])
        #expect(text.stdout.contains(#"{"received":true}"#), "\(text.stdout)")
        await receiver.stop()
        await harness.stop()
    }

    /// What a receiver answers is shown, never obeyed: its newlines cannot add log lines and
    /// its escape sequences cannot colour the operator's terminal.
    @Test func aReceiversAnswerCannotForgeLogLinesOrColourTheTerminal() async throws {
        let harness = try await Harness.start()
        let forged = "2026-12-07T10:00:00.000Z info delivered endpoint=other"
        let receiver = try await TestReceiver.start { [forged] _, _ in TestReceiver.Reply(status: 500, body: "line1\n\(forged)\n\u{1B}[31mred") }
        let ids = harness.createPayments(1)
        let path = try harness.directory.write(
            "pb.yaml", Fixtures.config(bankURL: harness.bank.url, state: harness.state, endpoints: Fixtures.endpoint("erp", url: receiver.url, retry: "[1h]")))
        #expect(try await Binary.run(["poll", "--once", "--config", path]).status == 0)
        harness.bank.bank.setStatus(ids[0], "Rejected")
        let poll = try await Binary.run(["poll", "--once", "--config", path, "--log-level", "debug", "--log-format", "text"])
        #expect(poll.stderr.contains(#"line1\n2026-12-07T10:00:00.000Z info delivered"#), "\(poll.stderr)")
        let lines = try await Binary.run(["deliveries", "list", "--config", path]).stdout
        let id = try #require(Self.json(try await Binary.run(["deliveries", "list", "--json", "--config", path]))["deliveries"] as? [[String: Any]]).first?["id"] as? Int
        let show = try await Binary.run(["deliveries", "show", "\(id ?? 0)", "--config", path]).stdout
        let timeline = try await Binary.run(["payments", "show", ids[0], "--config", path]).stdout
        for output in [poll.stderr, lines, show, timeline] {
            #expect(!output.contains("\u{1B}"), "an escape reached the terminal: \(output)")
            #expect(!output.split(separator: "\n").contains { $0.hasPrefix(forged) }, "a forged line: \(output)")
        }
        #expect(show.contains(#"\u{1B}[31mred"#), "\(show)")
        await receiver.stop()
        await harness.stop()
    }

    @Test func readingCommandsNeverCreateState() async throws {
        let directory = try TemporaryDirectory()
        let text = Fixtures.config(bankURL: "http://127.0.0.1:9", state: directory.file("state"), endpoints: Fixtures.endpoint("erp", url: "http://127.0.0.1:9/x"))
        let path = try directory.write("pb.yaml", text)
        for arguments in [["deliveries", "list"], ["events", "list"], ["endpoints", "list"], ["payments", "show", "x"], ["deliveries", "replay", "--id", "1"]] {
            let output = try await Binary.run(arguments + ["--config", path])
            #expect(output.status != 0, "\(arguments)")
            #expect(output.stderr.contains("no state database at \(directory.file("state"))/paybridge.sqlite"), "\(output.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: directory.file("state")))
        let poll = try await Binary.run(["poll", "--config", path])
        #expect(poll.status != 0)
        #expect(poll.stderr.contains("poll needs --once"))
    }

    @Test func theStateIsReadableByItsOwnerOnly() async throws {
        let state = try await State.build()
        let folder = try FileManager.default.attributesOfItem(atPath: state.harness.statePath)[.posixPermissions] as? Int
        let database = try FileManager.default.attributesOfItem(atPath: state.harness.statePath + "/paybridge.sqlite")[.posixPermissions] as? Int
        let wal = try? FileManager.default.attributesOfItem(atPath: state.harness.statePath + "/paybridge.sqlite-wal")[.posixPermissions] as? Int
        #expect(folder == 0o700)
        #expect(database == 0o600)
        #expect(wal == nil || wal == 0o600)
        let clean = try await state.run(["validate"])
        #expect(!clean.stderr.contains("can be read by other users"))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: state.harness.statePath)
        let warned = try await state.run(["validate"])
        #expect(warned.status == 0)
        #expect(warned.stderr.contains("the state folder \(state.harness.statePath) can be read by other users (mode 755)"), "\(warned.stderr)")
        await state.stop()
    }
}

extension Harness {
    /// The state's delivery counts, read as a test reads a database.
    func bridgeStoreCounts() async throws -> [String: [DeliveryState: Int]] {
        let store = try await openStore()
        defer { store.close() }
        return try await store.deliveryCounts()
    }
}
