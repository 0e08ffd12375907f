import Foundation
import Sandbox
import Synchronization
import Testing

@testable import PayBridge

/// Several `paybridge run` processes on one PostgreSQL state (§7): one polls, all deliver,
/// and killing any of them, the leader included, loses nothing and renames nothing.
@Suite(.serialized) struct FailoverTests {
    /// One `paybridge run`, its log read line by line.
    final class Instance: Sendable {
        let name: String
        let process: Process
        let log: LineCollector

        init(_ name: String, config: String) throws {
            let (process, _, errors) = try Binary.start(["run", "--config", config], environment: ["PAYBRIDGE_LOG_LEVEL": "info"])
            self.name = name
            self.process = process
            log = LineCollector(errors.fileHandleForReading)
        }

        var leads: Bool {
            // The last word on leadership in its log.
            let lines = log.all.filter { $0.contains("polls the bank now") }
            return lines.last?.contains("this instance polls") ?? false
        }

        func kill() async {
            Foundation.kill(process.processIdentifier, SIGKILL)
            _ = await Binary.exitStatus(of: process)
        }

        deinit { if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) } }
    }

    struct Figures: CustomStringConvertible {
        var changes = 0
        var kills = 0
        var leaderKills = 0
        var takeovers: [Double] = []
        var requests = 0
        var redeliveries = 0
        var lost = 0
        var maxPollsPerWindow = 0
        /// Consecutive polls made by different instances (each has its own bank token).
        var pollerSwitches = 0

        var description: String {
            let times = takeovers.map { String(format: "%.1f", $0) }.joined(separator: ", ")
            return "failover: \(changes) changes, \(kills) kill -9 (\(leaderKills) of the leader), takeovers [\(times)] s, "
                + "\(requests) requests, \(redeliveries) redeliveries, lost \(lost), at most \(maxPollsPerWindow) polls in a 2 s window, "
                + "\(pollerSwitches) switches of poller"
        }
    }

    @Test(.timeLimit(.minutes(3)), arguments: Backend.shared)
    func threeInstancesSurviveKillsWithNothingLostOrRenamed(backend: Backend) async throws {
        let harness = try await Harness.start(backend: backend)
        var reply = TestReceiver.Reply.ok
        reply.delay = .milliseconds(5)
        let erp = try await TestReceiver.start { [reply] _, _ in reply }
        let ledger = try await TestReceiver.start { [reply] _, _ in reply }
        let payments = 150
        let ids = harness.createPayments(payments)
        let every = 0.25
        let text = Fixtures.config(
            bankURL: harness.bank.url, state: harness.state, pageSize: 1000,
            endpoints: Fixtures.endpoint("erp", url: erp.url, retry: "[100ms, 200ms, 400ms, 800ms, 1s, 1s, 1s, 1s]", concurrency: 16)
                + Fixtures.endpoint("ledger", url: ledger.url, retry: "[100ms, 200ms, 400ms, 800ms, 1s, 1s, 1s, 1s]", concurrency: 16)
        )
        .replacingOccurrences(of: "every: 1s", with: "every: 250ms")
        .replacingOccurrences(of: "  url: \(harness.state)", with: "  url: \(harness.state)\n  lease: 3s")
        let path = try harness.directory.write("pb.yaml", text)
        var instances = try (0..<3).map { try Instance("i\($0)", config: path) }
        let store = try await harness.openStoreWhenReady()
        defer { store.close() }
        var figures = Figures()
        var counter = 3

        func leader() async -> Instance? {
            for _ in 0..<200 {
                let leaders = instances.filter(\.leads)
                if leaders.count == 1 { return leaders[0] }
                try? await Task.sleep(for: .milliseconds(50))
            }
            return nil
        }
        func committed(_ status: String) async throws -> Int {
            try await store.eventsAfter(nil, limit: 100_000, type: nil, status: status).count
        }

        // The baseline, by whichever instance leads.
        while try await store.watchRecord(name: "recent")?.baselinedAt == nil { try await Task.sleep(for: .milliseconds(50)) }
        let statuses = ["Hold", "MissingFunding", "Processed", "Reversed", "Rejected", "Cancelled"]
        for (wave, status) in statuses.enumerated() {
            for id in ids { harness.bank.bank.setStatus(id, status) }
            // Kill one instance at a random point of the wave, seen at the receiver: before any
            // of it is delivered, or with part of it delivered and the rest in flight or still
            // being detected. The leader on even waves, another on odd ones; a fresh one joins.
            let killAfter = Int.random(in: 0..<payments)
            let waveDeadline = ContinuousClock.now + .seconds(20)
            while erp.requests.filter({ $0.status == status }).count < killAfter, ContinuousClock.now < waveDeadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            let current = await leader()
            #expect(current != nil, "one instance leads")
            let victim = wave.isMultiple(of: 2) ? current : instances.first { $0 !== current }
            if let victim {
                let killedAt = Date()
                await victim.kill()
                figures.kills += 1
                instances.removeAll { $0 === victim }
                if victim === current {
                    figures.leaderKills += 1
                    // Another instance takes the lease: within 2 × 3 s, and usually far sooner.
                    let next = await leader()
                    #expect(next != nil)
                    figures.takeovers.append(Date().timeIntervalSince(killedAt))
                }
                instances.append(try Instance("i\(counter)", config: path))
                counter += 1
            }
            let deadline = ContinuousClock.now + .seconds(30)
            while try await committed(status) < payments, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            #expect(try await committed(status) == payments, "wave \(wave): every \(status) detected")
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while try await store.pendingCounts().values.reduce(0, +) > 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        for instance in instances { await instance.kill() }

        // Every change reached both receivers with a 2xx, each under one id.
        figures.changes = payments * statuses.count
        for receiver in [erp, ledger] {
            var idsByChange: [String: Set<String>] = [:]
            for request in receiver.requests { idsByChange["\(request.paymentId) \(request.status)", default: []].insert(request.webhookId) }
            for id in ids { for status in statuses where idsByChange["\(id) \(status)"] == nil { figures.lost += 1 } }
            #expect(idsByChange.values.allSatisfy { $0.count == 1 }, "a change was emitted under two ids")
            figures.requests += receiver.requests.count
            figures.redeliveries += receiver.requests.count - idsByChange.count
        }
        #expect(figures.lost == 0)
        let counts = try await store.deliveryCounts()
        #expect(counts["erp"] == [.delivered: figures.changes])
        #expect(counts["ledger"] == [.delivered: figures.changes])

        // The bank saw one poller's rate: one first page per 250 ms at most, plus slack for
        // a takeover's first poll, never three instances' worth.
        let firstPages = harness.bank.paymentRequests.filter { $0.queryValue("PageNumber") == "1" }
        let polls = firstPages.map(\.receivedAt)
        let pollers = firstPages.map { $0.headers["authorization"] ?? "" }
        figures.pollerSwitches = zip(pollers, pollers.dropFirst()).filter { $0 != $1 }.count
        for (index, start) in polls.enumerated() {
            let inWindow = polls[index...].prefix { $0.timeIntervalSince(start) < 2 }.count
            figures.maxPollsPerWindow = max(figures.maxPollsPerWindow, inWindow)
        }
        #expect(figures.maxPollsPerWindow <= Int(2 / every) + 3, "\(figures)")
        // One instance polls at a time: the poller changes only when a leader dies.
        #expect(figures.pollerSwitches <= figures.leaderKills + 1, "\(figures)")
        #expect(figures.takeovers.allSatisfy { $0 < 6 }, "\(figures)")
        print(figures)
        await erp.stop()
        await ledger.stop()
        await harness.stop()
    }

    @Test(.timeLimit(.minutes(2)), arguments: Backend.shared)
    func aPausedLeaderIsReplacedAndCommitsNothingWhenItWakes(backend: Backend) async throws {
        let harness = try await Harness.start(backend: backend)
        let receiver = try await TestReceiver.start()
        let ids = harness.createPayments(20)
        let path = try harness.sharedConfig(endpoints: Fixtures.endpoint("erp", url: receiver.url), lease: "2s")
        let (first, store) = try await harness.firstLeader(config: path)
        defer { store.close() }
        let second = try Instance("second", config: path)

        // The leader stops dead (SIGSTOP): its connections stay open, so only the lease's
        // expiry frees it.
        kill(first.process.processIdentifier, SIGSTOP)
        let pausedAt = Date()
        while !second.leads, Date().timeIntervalSince(pausedAt) < 10 { try await Task.sleep(for: .milliseconds(50)) }
        let takeover = Date().timeIntervalSince(pausedAt)
        #expect(second.leads)
        #expect(takeover < 4, "replaced within 2 × the 2 s lease (took \(takeover) s)")

        for id in ids { harness.bank.bank.setStatus(id, "Rejected") }
        try await until("the new leader detects the wave: \(second.log.all.suffix(12).joined(separator: "\n"))") { try await store.eventsAfter(nil, limit: 1000, type: nil, status: "Rejected").count == 20 }
        // The old leader wakes believing it leads: its next commit is refused.
        kill(first.process.processIdentifier, SIGCONT)
        try await until("the old leader learns it lost the lease: \(first.log.all.suffix(5))") {
            first.log.all.contains { $0.contains("another instance polls the bank now") }
        }
        for id in ids { harness.bank.bank.setStatus(id, "Processed") }
        // Waits for what it asserts: every change at the receiver, or nothing left to try.
        func changesReceived() -> [String: Set<String>] {
            var idsByChange: [String: Set<String>] = [:]
            for request in receiver.requests { idsByChange["\(request.paymentId) \(request.status)", default: []].insert(request.webhookId) }
            return idsByChange
        }
        try await until("the second wave is detected and delivered") {
            // Events first: their deliveries are written with them, so a queue read after
            // 20 events counts theirs. Read the other way round, a wave committed between
            // the two reads looked delivered before it was sent.
            let processed = try await store.eventsAfter(nil, limit: 1000, type: nil, status: "Processed").count
            let pending = try await store.pendingCounts().values.reduce(0, +)
            return changesReceived().count == 40 || (pending == 0 && processed == 20)
        }
        #expect(!first.leads)
        let idsByChange = changesReceived()
        if idsByChange.count != 40 {
            // The story of each delivery that did not arrive, for the failure's reader.
            for delivery in try await store.deliveries(endpoint: "erp", state: nil, limit: 1000) {
                let received = receiver.requests.contains { $0.webhookId == delivery.eventId }
                guard !received else { continue }
                let attempts = try await store.attempts(deliveryId: delivery.id)
                Issue.record("not received: \(delivery.subject) \(delivery.eventType) \(delivery.state) attempts \(attempts.map { "\($0.httpStatus.map(String.init) ?? "-") \($0.error ?? "")" })\nfirst: \(first.log.all.suffix(15).joined(separator: "\n"))\nsecond: \(second.log.all.suffix(15).joined(separator: "\n"))")
            }
        }
        await first.kill()
        await second.kill()
        #expect(idsByChange.count == 40)
        #expect(idsByChange.values.allSatisfy { $0.count == 1 })
        await receiver.stop()
        await harness.stop()
    }

    /// An instance joins while another sends to a slow endpoint: the endpoints are shared out,
    /// and the one let go is taken only once what was in flight for it has been answered and
    /// recorded. Nothing is sent twice, however slow the answers, and the newcomer ends up
    /// delivering its share.
    @Test(.timeLimit(.minutes(2)), arguments: Backend.shared)
    func anEndpointHandedOverMidAttemptIsSentOnce(backend: Backend) async throws {
        let harness = try await Harness.start(backend: backend)
        let gate = ReplyGate()
        var held = TestReceiver.Reply.ok
        held.heldUntil = gate
        let receiver = try await TestReceiver.start { [held] _, _ in held }
        let ids = harness.createPayments(10)
        let names = ["e1", "e2", "e3", "e4"]
        let endpoints = names.map { Fixtures.endpoint($0, url: "\(receiver.url)/\($0)") }.joined()
            .replacingOccurrences(of: "timeout: 5s", with: "timeout: 60s")
        let path = try harness.sharedConfig(endpoints: endpoints, lease: "3s")
        let (first, store) = try await harness.firstLeader(config: path)
        defer { store.close() }
        for id in ids { harness.bank.bank.setStatus(id, "Rejected") }
        // Every endpoint's first attempts (8 at a time) reach the receiver and wait there.
        try await until("the first attempts are under way: \(receiver.requests.count)") { receiver.requests.count == 32 }

        let second = try Instance("second", config: path)
        func delivering(_ instance: Instance) -> [String] {
            guard let line = instance.log.all.last(where: { $0.contains("delivering endpoints") }) else { return [] }
            return line.components(separatedBy: "endpoints=").last?.trimmingCharacters(in: .init(charactersIn: "\" ")).split(separator: ",").map(String.init) ?? []
        }
        try await until("the first lets an endpoint go: \(first.log.all.suffix(5))") { delivering(first).count < 4 }
        // Several renewals (a second apart) while the answers are held: the endpoint let go
        // stays the first's, so the second sends none of what is in flight.
        let heldSince = ContinuousClock.now
        while ContinuousClock.now - heldSince < .seconds(4), delivering(second).isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        #expect(delivering(second).isEmpty, "taken while its attempts were in flight: \(second.log.all.suffix(5))")
        #expect(receiver.requests.count == 32, "nothing sent twice while the answers were held")
        gate.open()

        try await until("every delivery is made and the second delivers its share: \(second.log.all.suffix(5))") {
            let pending = try await store.pendingCounts().values.reduce(0, +)
            return receiver.requests.count >= 40 && pending == 0 && delivering(second).count == 2
        }
        await first.kill()
        await second.kill()
        for name in names {
            let requests = receiver.requests.filter { $0.path.hasSuffix("/\(name)") }
            #expect(Set(requests.map(\.paymentId)) == Set(ids), "\(name) got every payment")
            #expect(requests.count == ids.count, "\(name): each delivery sent once, not \(requests.count - ids.count) more")
        }
        await receiver.stop()
        await harness.stop()
    }

    /// An instance paused past its endpoint's lease, with deliveries claimed and waiting in its
    /// memory, sends none of them when it wakes: another instance has taken the endpoint and
    /// delivers them (each instance's requests come to a path of its own).
    @Test(.timeLimit(.minutes(2)), arguments: Backend.shared)
    func anInstanceWokenPastItsLeaseStartsNothing(backend: Backend) async throws {
        let harness = try await Harness.start(backend: backend)
        var slow = TestReceiver.Reply.ok
        slow.delay = .milliseconds(200)
        let receiver = try await TestReceiver.start { [slow] _, _ in slow }
        let ids = harness.createPayments(20)
        func config(_ path: String) throws -> String {
            try harness.sharedConfig("\(path).yaml", endpoints: Fixtures.endpoint("erp", url: "\(receiver.url)/\(path)", concurrency: 1), lease: "2s")
        }
        let (first, store) = try await harness.firstLeader(config: try config("a"))
        defer { store.close() }
        let second = try Instance("second", config: try config("b"))
        for id in ids { harness.bank.bank.setStatus(id, "Rejected") }
        func sent(by path: String) -> [TestReceiver.Received] { receiver.requests.filter { $0.path.hasSuffix("/\(path)") } }
        // Paused just after an attempt went out (one at a time, 200 ms each): the rest of what
        // it claimed waits in its memory.
        try await until("the first sends") { sent(by: "a").count >= 2 }
        let before = sent(by: "a").count
        while sent(by: "a").count == before { try await Task.sleep(for: .milliseconds(5)) }
        kill(first.process.processIdentifier, SIGSTOP)
        let pausedAt = Date()
        try await until("the second takes the endpoint and delivers: \(second.log.all.suffix(5))") { !sent(by: "b").isEmpty }
        let resumedAt = Date()
        kill(first.process.processIdentifier, SIGCONT)
        try await until("every payment is delivered") {
            let pending = try await store.pendingCounts().values.reduce(0, +)
            return pending == 0 && Set(receiver.requests.map(\.paymentId)) == Set(ids)
        }
        let late = sent(by: "a").filter { $0.receivedAt > resumedAt }
        #expect(late.count == 0, "sent by the first after it woke: \(late.map(\.paymentId)); its log: \(first.log.all.suffix(8))")
        // Sent twice: only what the first had sent before the pause and not yet recorded
        // (at least once, as after any crash), never what it held unsent.
        let sentBeforePause = Set(sent(by: "a").filter { $0.receivedAt < pausedAt }.map(\.webhookId))
        let twice = Dictionary(grouping: receiver.requests, by: \.webhookId).filter { $0.value.count > 1 }.keys
        #expect(twice.allSatisfy(sentBeforePause.contains), "sent twice: \(twice.count), before the pause: \(sentBeforePause.count)")
        await first.kill()
        await second.kill()
        await receiver.stop()
        await harness.stop()
    }

    /// A leader stopped with SIGTERM lets the poller lease go once its watches have stopped:
    /// another instance polls while the first's deliveries in flight finish within the grace,
    /// not after them.
    @Test(.timeLimit(.minutes(2)), arguments: Backend.shared)
    func aStoppingLeaderLetsAnotherPollWhileItsDeliveriesFinish(backend: Backend) async throws {
        let harness = try await Harness.start(backend: backend)
        let gate = ReplyGate()
        var held = TestReceiver.Reply.ok
        held.heldUntil = gate
        let receiver = try await TestReceiver.start { [held] _, _ in held }
        let ids = harness.createPayments(5)
        let path = try harness.sharedConfig(endpoints: Fixtures.endpoint("erp", url: receiver.url), lease: "3s") {
            $0.replacingOccurrences(of: "timeout: 5s", with: "timeout: 60s") + "delivery:\n  shutdownGrace: 60s\n"
        }
        let (first, store) = try await harness.firstLeader(config: path)
        defer { store.close() }
        let second = try Instance("second", config: path)
        for id in ids { harness.bank.bank.setStatus(id, "Rejected") }
        try await until("the first's attempts wait at the receiver") { receiver.requests.count == ids.count }
        kill(first.process.processIdentifier, SIGTERM)
        try await until("the second polls while the first still finishes its deliveries: \(first.log.all.suffix(4))") {
            second.leads && first.process.isRunning
        }
        #expect(first.log.all.contains { $0.contains("the poller lease is let go") })
        // What the bank says now is detected by the second while the first still waits.
        for id in ids { harness.bank.bank.setStatus(id, "Processed") }
        try await until("the second detects the new statuses") {
            try await store.eventsAfter(nil, limit: 100, type: nil, status: "Processed").count == ids.count
        }
        #expect(first.process.isRunning)
        gate.open()
        #expect(await Binary.exitStatus(of: first.process) == 0)
        try await until("every change is delivered") { Set(receiver.requests.map { "\($0.paymentId) \($0.status)" }).count == 2 * ids.count }
        await second.kill()
        await receiver.stop()
        await harness.stop()
    }

    /// A `poll --once` whose deliveries take longer than the lease keeps its leases (it renews
    /// them as `run` does), so it delivers everything it found: only an endpoint's lease holder
    /// claims deliveries.
    @Test(arguments: Backend.shared)
    func aPollOnceLongerThanItsLeaseDeliversEverything(backend: Backend) async throws {
        let harness = try await Harness.start(backend: backend)
        var slow = TestReceiver.Reply.ok
        slow.delay = .milliseconds(10)
        let receiver = try await TestReceiver.start { [slow] _, _ in slow }
        let ids = harness.createPayments(300)
        let text = Fixtures.config(bankURL: harness.bank.url, state: harness.state, endpoints: Fixtures.endpoint("erp", url: receiver.url, concurrency: 1))
            .replacingOccurrences(of: "  url: \(harness.state)", with: "  url: \(harness.state)\n  lease: 1s")
        let path = try harness.directory.write("pb.yaml", text)
        let baseline = try await Binary.run(["poll", "--once", "--config", path])
        #expect(baseline.status == 0, "\(baseline.stderr)")
        for id in ids { harness.bank.bank.setStatus(id, "Rejected") }
        // 300 deliveries one at a time, 10 ms each at least: the drain lasts three leases, and
        // claims twice (256 at a time), the second time after the first lease has run out.
        let once = try await Binary.run(["poll", "--once", "--config", path])
        #expect(once.status == 0, "\(once.stderr)")
        #expect(Set(receiver.requests.map(\.paymentId)) == Set(ids), "\(once.stderr)")
        let store = try await harness.openStore()
        #expect(try await store.pendingCounts().values.reduce(0, +) == 0)
        store.close()
        await receiver.stop()
        await harness.stop()
    }
}

/// Waits up to `timeout` for `condition`; records `what` as the issue when it never holds.
func until(_ what: @autoclosure () -> String, timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("timed out waiting: \(what())")
}

extension Harness {
    /// Writes a config for instances sharing this state: its watch polls every 200 ms and its
    /// leases last `lease`; `adjust` changes whatever else a test needs.
    func sharedConfig(_ file: String = "pb.yaml", endpoints: String, lease: String, adjust: (String) -> String = { $0 }) throws -> String {
        let text = Fixtures.config(bankURL: bank.url, state: state, endpoints: endpoints)
            .replacingOccurrences(of: "every: 1s", with: "every: 200ms")
            .replacingOccurrences(of: "  url: \(state)", with: "  url: \(state)\n  lease: \(lease)")
        return try directory.write(file, adjust(text))
    }

    /// Starts the first instance on `config` and waits until it leads and has recorded its
    /// watch's baseline; returns it with the state opened.
    func firstLeader(config: String) async throws -> (FailoverTests.Instance, any Store & Coordination) {
        let first = try FailoverTests.Instance("first", config: config)
        let store = try await openStoreWhenReady()
        try await until("the first instance leads and records the baseline") {
            try await store.watchRecord(name: "recent")?.baselinedAt != nil && first.leads
        }
        return (first, store)
    }

    /// The state once the first instance has created it.
    func openStoreWhenReady() async throws -> any Store & Coordination {
        for _ in 0..<200 {
            if let store = try? await openStore() { return store }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try await openStore()
    }
}
