import Foundation
import Testing

/// A state written by an earlier release opens in place and loses nothing: what the operator's
/// commands said of it then, they say now, and what was waiting is delivered.
@Suite(.serialized)
struct StateUpgradeTests {
    /// `Fixtures/state-v3`: SQLite schema v3 (GRDB migrations v1, v2-pipeline, v3-operations),
    /// made by `make.sh` with the release of 2026-12-06, with `golden.json`, that release's
    /// answers to the reading commands.
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/state-v3")

    /// Fields that depend on when the command runs or on the config's URLs, not on the state.
    static let volatile: Set<String> = ["oldestPendingSeconds", "url"]

    static func normalized(_ value: Any) -> Any {
        if let object = value as? [String: Any] {
            return object.filter { !volatile.contains($0.key) }.mapValues(normalized)
        }
        if let array = value as? [Any] { return array.map(normalized) }
        return value
    }

    static func json(_ text: String) -> Any? {
        try? JSONSerialization.jsonObject(with: Data(text.utf8))
    }

    @Test
    func aStateOfSchemaV3OpensInPlaceAndLosesNothing() async throws {
        let harness = try await Harness.start()
        let alerts = try await TestReceiver.start()
        let down = try await TestReceiver.start()
        let state = harness.statePath
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            atPath: Self.fixture.appendingPathComponent("paybridge.sqlite").path, toPath: state + "/paybridge.sqlite")
        let endpoints = """
              erp:
                url: http://127.0.0.1:9/erp
                secret: \(Fixtures.secret)
              alerts:
                url: \(alerts.url)
                secret: \(Fixtures.secret)
                retry: [1s]
              chat:
                url: http://127.0.0.1:9/chat
                format: slack
                group: { by: [status], wait: 1h, interval: 1h }
              teams:
                url: http://127.0.0.1:9/teams
                format: teams
              down:
                url: \(down.url)
                secret: \(Fixtures.secret)
                retry: [6s]
            """
        let routes = """
              - when: { type: [payment.created, payment.status_changed] }
                to: [erp, alerts, chat, teams, down]
            """
        let path = try harness.directory.write(
            "pb.yaml", Fixtures.config(bankURL: harness.bank.url, state: state, endpoints: endpoints, routes: routes))

        // Every reading command answers as the release that wrote the state did.
        let golden = try #require(
            Self.json(try String(contentsOf: Self.fixture.appendingPathComponent("golden.json"), encoding: .utf8)) as? [String: Any])
        let commands = try #require(golden["commands"] as? [[String: Any]])
        #expect(commands.count > 10)
        var deliveries: [[String: Any]] = []
        for command in commands {
            let arguments = try #require(command["args"] as? [String])
            let result = try await Binary.run(arguments + ["--config", path])
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            let now = try #require(Self.json(result.stdout), "\(arguments): \(result.stdout)")
            let then = try #require(command["output"])
            #expect(
                NSDictionary(dictionary: Self.normalized(now) as? [String: Any] ?? [:])
                    .isEqual(to: Self.normalized(then) as? [String: Any] ?? [:]),
                "\(arguments) answers differently after the upgrade:\nnow:  \(result.stdout)")
            if arguments.starts(with: ["deliveries", "list"]) {
                deliveries = (now as? [String: Any])?["deliveries"] as? [[String: Any]] ?? []
            }
        }
        #expect(deliveries.count == 80)

        // What waited goes out: the dead letters replayed, the retries due.
        func events(_ endpoint: String, _ states: Set<String>) -> Set<String> {
            Set(
                deliveries.filter { $0["endpoint"] as? String == endpoint && states.contains($0["state"] as? String ?? "") }
                    .compactMap { $0["eventId"] as? String })
        }
        let deadAlerts = events("alerts", ["dead"])
        let waitingAlerts = events("alerts", ["pending", "failing"])
        let waitingDown = events("down", ["pending", "failing"])
        #expect(!deadAlerts.isEmpty && !waitingDown.isEmpty)
        let replay = try await Binary.run(["deliveries", "replay", "--endpoint", "alerts", "--state", "dead", "--yes", "--config", path])
        #expect(replay.status == 0, "\(replay.stderr)")
        let poll = try await Binary.run(["poll", "--once", "--config", path])
        #expect(poll.status == 0, "\(poll.stderr)")
        #expect(Set(alerts.requests.map(\.webhookId)) == deadAlerts.union(waitingAlerts))
        #expect(Set(down.requests.map(\.webhookId)) == waitingDown)
        // Bodies came out of the old rows intact: each names the payment its delivery was for.
        let subjects = Dictionary(
            deliveries.compactMap { row in (row["eventId"] as? String).map { ($0, row["subject"] as? String ?? "") } },
            uniquingKeysWith: { first, _ in first })
        for request in alerts.requests + down.requests {
            #expect(request.paymentId == subjects[request.webhookId], "\(request.webhookId)")
        }
        // Per payment, in order: a payment's later event never reached `down` before its earlier one.
        let sequences = Dictionary(
            deliveries.compactMap { row in (row["eventId"] as? String).map { ($0, row["sequence"] as? Int ?? 0) } },
            uniquingKeysWith: { first, _ in first })
        var seen: [String: Int] = [:]
        for request in down.requests {
            let sequence = sequences[request.webhookId] ?? 0
            if let last = seen[request.paymentId] { #expect(sequence > last, "\(request.paymentId)") }
            seen[request.paymentId] = sequence
        }
        await alerts.stop()
        await down.stop()
        await harness.stop()
    }
}
