import Foundation
import GRDB
import Sandbox
import Synchronization
import Testing

@testable import PayBridge

/// Grouping (§8) through the real `paybridge run`: members commit with their events, so a
/// `kill -9` during a group's wait loses nothing and sends nothing twice; Slack and Teams
/// render a group of 60 within their limits.
@Suite(.serialized) struct GroupingTests {
    static func waitingMembers(_ statePath: String) throws -> (waiting: Int, sent: Int) {
        let database = try DatabaseQueue(path: statePath + "/" + SQLiteStore.fileName)
        return try database.read { db in
            (
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM group_member WHERE message_row IS NULL") ?? 0,
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM group_member WHERE message_row IS NOT NULL") ?? 0
            )
        }
    }

    /// A group message is queued beside the delivery loop: while it waits for the state's
    /// write lock (another process holds it), another endpoint's retry that comes due at the
    /// same moment still goes out.
    @Test func aGroupMessageWaitingForTheWriteLockHoldsNoOtherEndpointUp() async throws {
        let clock = try BinaryClock()
        let harness = try await Harness.start()
        let alerts = try await TestReceiver.start()
        let erp = try await TestReceiver.start { _, index in index == 0 ? .status(500) : .ok }
        let ids = harness.createPayments(1)
        let endpoints = """
              alerts:
                url: \(alerts.url)
                secret: \(Fixtures.secret)
                group: { by: [status], wait: 10s, interval: 1m }
            """ + "\n" + Fixtures.endpoint("erp", url: erp.url, retry: "[10s]")
        // One poll at start (a silent baseline), then hourly: only the clock makes it poll.
        let watch = """
                - name: recent
                  every: 1h
                  query:
                    InstructedDateFrom: -3d
            """
        let path = try harness.directory.write(
            "pb.yaml", Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, watches: watch, endpoints: endpoints))
        let (process, _, errors) = try Binary.start(["run", "--config", path], environment: clock.environment)
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let log = LineCollector(errors.fileHandleForReading)
        try await harness.waitForBaseline()
        // The watch polls hourly: advance an hour for it to see the change.
        harness.bank.bank.setStatus(ids[0], "Rejected")
        try clock.advance(by: 3600)
        #expect(await erp.waitFor(count: 1), "the first attempt, refused")
        try await until("the group waits and the retry is recorded") {
            let waiting = try Self.waitingMembers(harness.statePath).waiting
            let attempts = try DatabaseQueue(path: harness.statePath + "/" + SQLiteStore.fileName).read { db in
                try Int.fetchOne(db, sql: "SELECT attempts FROM delivery WHERE endpoint = 'erp'") ?? 0
            }
            return waiting == 1 && attempts == 1
        }
        // Another process takes the write lock; then the group's wait and erp's retry end together.
        let lock = try WriteLock(path: harness.statePath + "/" + SQLiteStore.fileName)
        try clock.advance(by: 11)
        #expect(await erp.waitFor(count: 2, timeout: .seconds(20)))
        // The group message gives up on the lock only after the state's 5 s busy timeout (and
        // says so): the retry went out before, while it waited.
        #expect(!log.all.contains { $0.contains("state storage unavailable") }, "the retry waited for the group message: \(log.all)")
        #expect(alerts.requests.isEmpty)
        lock.unlock()
        #expect(await alerts.waitFor(count: 1, timeout: .seconds(15)), "the group message, once the lock is gone")
        process.terminate()
        #expect(await Binary.exitStatus(of: process) == 0)
        await erp.stop()
        await alerts.stop()
        await harness.stop()
    }

    @Test func aGroupSurvivesKillNineDuringItsWaitAndIsSentOnce() async throws {
        let harness = try await Harness.start()
        let slack = try await TestReceiver.start()
        let teams = try await TestReceiver.start()
        let erp = try await TestReceiver.start()
        let ids = harness.createPayments(60)
        let endpoints = """
              slack:
                url: \(slack.url)
                format: slack
                group: { by: [status], wait: 4s, interval: 1m }
              teams:
                url: \(teams.url)
                format: teams
                group: { by: [status], wait: 4s, interval: 1m }
              erp:
                url: \(erp.url)
                secret: \(Fixtures.secret)
            """
        let routes = """
              - to: [erp]
              - when: { status: [Rejected] }
                to: [slack, teams]
            """
        let text = Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: endpoints, routes: routes)
            .replacingOccurrences(of: "every: 1s", with: "every: 200ms")
        let path = try harness.directory.write("pb.yaml", text)
        let baseline = try await Binary.run(["poll", "--once", "--config", path])
        #expect(baseline.status == 0, "\(baseline.stderr)")

        var process = try Binary.start(["run", "--config", path]).0
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        for id in ids { harness.bank.bank.setStatus(id, "Rejected") }
        // Killed once every member is committed, well inside the 4 s wait.
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline, (try? Self.waitingMembers(harness.statePath).waiting) ?? 0 < 120 {
            try await Task.sleep(for: .milliseconds(50))
        }
        kill(process.processIdentifier, SIGKILL)
        _ = await Binary.exitStatus(of: process)
        #expect(try Self.waitingMembers(harness.statePath) == (120, 0))
        #expect(slack.requests.isEmpty && teams.requests.isEmpty, "the wait had not passed")

        process = try Binary.start(["run", "--config", path]).0
        #expect(await slack.waitFor(count: 1, timeout: .seconds(15)))
        #expect(await teams.waitFor(count: 1, timeout: .seconds(15)))
        #expect(await erp.waitFor(count: 60, timeout: .seconds(15)))
        #expect(await harness.bank.waitForPolls(2), "the run goes on after the messages")
        process.terminate()
        _ = await Binary.exitStatus(of: process)

        #expect(slack.requests.count == 1, "one message, sent once")
        #expect(teams.requests.count == 1)
        #expect(Set(erp.requests.map(\.paymentId)) == Set(ids), "the ungrouped endpoint got every event")
        #expect(try Self.waitingMembers(harness.statePath) == (0, 120), "every member is in exactly one message")
        let message = try #require(slack.requests.first)
        #expect(message.webhookId.hasPrefix("grp_"))
        let body = String(decoding: message.body, as: UTF8.self)
        #expect(body.contains("\"text\":\"60 payments Rejected\""), "\(body.prefix(300))")
        #expect(body.contains("…and 50 more"))
        #expect(String(decoding: teams.requests[0].body, as: UTF8.self).contains("60 payments Rejected"))
        // Within the receivers' limits, by their own parsers.
        let slackCheck = try await FormatDeliveryTests.check("slack", try FormatDeliveryTests.capture(slack.requests, in: harness.directory, "slack.json"))
        #expect(slackCheck.status == 0, "\(slackCheck.stdout)")
        let teamsCheck = try await FormatDeliveryTests.check("teams", try FormatDeliveryTests.capture(teams.requests, in: harness.directory, "teams.json"))
        #expect(teamsCheck.status == 0, "\(teamsCheck.stdout)")
        await slack.stop()
        await teams.stop()
        await erp.stop()
        await harness.stop()
    }

    @Test func laterEventsOfAGroupGoInTheNextMessageAfterTheInterval() async throws {
        let harness = try await Harness.start()
        let alerts = try await TestReceiver.start()
        let ids = harness.createPayments(4)
        let endpoints = """
              alerts:
                url: \(alerts.url)
                group: { by: [status], wait: 1s, interval: 3s, max: 10 }
            """
        let text = Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: endpoints)
            .replacingOccurrences(of: "every: 1s", with: "every: 200ms")
        let path = try harness.directory.write("pb.yaml", text)
        let process = try Binary.start(["run", "--config", path]).0
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        try await harness.waitForBaseline()
        harness.bank.bank.setStatus(ids[0], "Rejected")
        harness.bank.bank.setStatus(ids[1], "Rejected")
        #expect(await alerts.waitFor(count: 1, timeout: .seconds(10)))
        let first = try #require(alerts.requests.first)
        harness.bank.bank.setStatus(ids[2], "Rejected")
        harness.bank.bank.setStatus(ids[3], "Processed")  // another group
        #expect(await alerts.waitFor(count: 3, timeout: .seconds(10)))
        process.terminate()
        _ = await Binary.exitStatus(of: process)
        let requests = alerts.requests
        #expect(requests.count == 3)
        #expect(requests.allSatisfy { $0.type == "payment.group" })
        #expect(Set(requests.map(\.webhookId)).count == 3)
        let counts = requests.map { ($0.data["group"] as? [String: Any])?["status"] as? String ?? "?" }
        #expect(counts.sorted() == ["Processed", "Rejected", "Rejected"])
        if let second = requests.dropFirst().first(where: { ($0.data["group"] as? [String: Any])?["status"] as? String == "Rejected" }) {
            // When each message was made (its `timestamp`), not when it arrived: arrival times
            // carry the machine's delivery delays.
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let made = [first, second].compactMap { ($0.json["timestamp"] as? String).flatMap(formatter.date(from:)) }
            #expect(made.count == 2, "\(first.json) \(second.json)")
            if made.count == 2 {
                let gap = made[1].timeIntervalSince(made[0])
                #expect(gap >= 2.999, "no sooner than the interval after the previous message (\(gap) s)")
            }
            #expect((second.data["count"] as? Int) == 1)
        }
        #expect((first.data["count"] as? Int) == 2)
        let events = (first.data["events"] as? [[String: Any]]) ?? []
        #expect(Set(events.compactMap { $0["paymentId"] as? String }) == [ids[0], ids[1]])
        await alerts.stop()
        await harness.stop()
    }
}
