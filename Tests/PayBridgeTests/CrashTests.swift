import Foundation
import Sandbox
import Synchronization
import Testing

@testable import PayBridge

/// The real process, killed and stopped: nothing may be lost, and a change keeps its id.
@Suite(.serialized) struct CrashTests {
    /// What the crash test saw, for the issue's note and docs/reliability.md.
    struct Figures: CustomStringConvertible {
        var changes = 0
        var kills = 0
        var requests = 0
        var lost = 0
        var duplicates = 0
        var seconds = 0.0

        var description: String {
            "crash test: \(changes) changes, \(kills) kill -9, \(requests) requests, lost \(lost), duplicates (same id, redelivered) \(duplicates), \(String(format: "%.1f", seconds)) s"
        }
    }

    @Test(.timeLimit(.minutes(4)), arguments: Backend.available)
    func killNineUnderLoadLosesNothingAndKeepsIds(backend: Backend) async throws {
        let started = Date()
        let payments = 2000
        let statuses = ["Hold", "MissingFunding", "Processed", "Reversed", "Rejected"]
        let harness = try await Harness.start(backend: backend)
        var slow = TestReceiver.Reply.ok
        slow.delay = .milliseconds(20)
        let receiver = try await TestReceiver.start { [slow] _, _ in slow }
        let ids = harness.createPayments(payments)
        let text = Fixtures.config(
            bankURL: harness.bank.url, state: harness.state, pageSize: 250,
            endpoints: Fixtures.endpoint("erp", url: receiver.url, retry: "[50ms, 100ms, 200ms, 400ms, 800ms, 1s, 1s, 1s, 1s, 1s]", concurrency: 100)
        ).replacingOccurrences(of: "every: 1s", with: "every: 100ms")
        let path = try harness.directory.write("pb.yaml", text)

        // Kill paybridge at random moments (mid-poll, mid-commit, deliveries in flight) and restart it.
        let killing = Mutex(true)
        let kills = Counter()
        // PostgreSQL commits a change ≈ 3× slower than SQLite in a debug build (client and
        // server share the two cores), so its lives are longer; kills still land mid-poll,
        // mid-commit and with deliveries in flight.
        let lifetimes: ClosedRange<Int64> = backend == .sqlite ? 150...700 : 400...1500
        let killer = Task.detached {
            var generator = SystemRandomNumberGenerator()
            while killing.withLock({ $0 }) {
                guard let (process, _, _) = try? Binary.start(["run", "--config", path], environment: ["PAYBRIDGE_LOG_LEVEL": "error"]) else { continue }
                try? await Task.sleep(for: .milliseconds(Int64.random(in: lifetimes, using: &generator)))
                kill(process.processIdentifier, SIGKILL)
                _ = await Binary.exitStatus(of: process)
                _ = kills.next()
            }
        }

        // Wait for the baseline, then one round of changes at a time: each round's changes
        // must be detected (committed) before the next, so every change is observable.
        // Read as an operator's command would, once the state exists.
        var reader: (any Store & Coordination)?
        defer { reader?.close() }
        func committed(status: String?) async throws -> Int {
            if reader == nil { reader = try? await harness.openStore() }
            guard let reader else { return 0 }
            if let status { return try await reader.eventsAfter(nil, limit: 100_000, type: nil, status: status).count }
            return try await reader.watchRecord(name: "recent")?.baselinedAt == nil ? 0 : 1
        }
        while await (try? committed(status: nil)) != 1 { try await Task.sleep(for: .milliseconds(50)) }
        for status in statuses {
            for id in ids { harness.bank.bank.setStatus(id, status) }
            while await (try? committed(status: status)) != payments { try await Task.sleep(for: .milliseconds(50)) }
        }
        // Keep killing while the delivery backlog drains (hundreds in flight at each kill).
        while kills.peek() < 12 { try await Task.sleep(for: .milliseconds(100)) }
        killing.withLock { $0 = false }
        await killer.value

        // A last, uninterrupted run delivers what is left.
        let (process, _, errors) = try Binary.start(["run", "--config", path], environment: ["PAYBRIDGE_LOG_LEVEL": "info"])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let log = LineCollector(errors.fileHandleForReading)
        for _ in 0..<200 where !log.all.contains(where: { $0.contains("started") }) { try await Task.sleep(for: .milliseconds(25)) }
        let store = try await harness.openStore()
        defer { store.close() }
        while try await store.pendingCounts()["erp", default: 0] > 0 { try await Task.sleep(for: .milliseconds(100)) }
        process.terminate()
        #expect(await Binary.exitStatus(of: process) == 0)

        // Every change reached the receiver, each under exactly one id, and an id always
        // carried the same body.
        var figures = Figures(changes: payments * statuses.count, kills: kills.peek(), requests: receiver.requests.count)
        var idsByChange: [String: Set<String>] = [:]
        var bodyById: [String: [UInt8]] = [:]
        for request in receiver.requests {
            idsByChange["\(request.paymentId) \(request.status)", default: []].insert(request.webhookId)
            if let known = bodyById[request.webhookId] {
                #expect(known == request.body, "id \(request.webhookId) carried two different bodies")
            }
            bodyById[request.webhookId] = request.body
        }
        for id in ids {
            for status in statuses where idsByChange["\(id) \(status)"] == nil { figures.lost += 1 }
        }
        #expect(figures.lost == 0)
        #expect(idsByChange.values.allSatisfy { $0.count == 1 }, "a change was emitted under two ids")
        #expect(idsByChange.count == figures.changes)
        figures.duplicates = figures.requests - bodyById.count
        figures.seconds = Date().timeIntervalSince(started)
        #expect(try await store.deliveryCounts()["erp"] == [.delivered: figures.changes])
        #expect(figures.kills >= 12)
        print("\(backend): \(figures)")
        await receiver.stop()
        await harness.stop()
    }

    @Test func aGracefulStopLetsInFlightDeliveriesFinishWithinTheGrace() async throws {
        let harness = try await Harness.start()
        let gate = Mutex(Duration.milliseconds(300))
        let receiver = try await TestReceiver.start { _, _ in
            var reply = TestReceiver.Reply.ok
            reply.delay = gate.withLock { $0 }
            return reply
        }
        let ids = harness.createPayments(6)
        let text = Fixtures.config(
            bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: receiver.url, concurrency: 2)
        ).replacingOccurrences(of: "every: 1s", with: "every: 100ms") + "delivery:\n  shutdownGrace: 1s\n"
        let path = try harness.directory.write("pb.yaml", text)
        let (process, _, errors) = try Binary.start(["run", "--config", path])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let log = PipeReader(errors)
        try await harness.waitForBaseline()
        for id in ids { harness.bank.bank.setStatus(id, "Processed") }
        #expect(await receiver.waitFor(count: 2))

        // Two attempts in flight, each answered after 300 ms: SIGTERM lets them finish.
        process.terminate()
        #expect(await Binary.exitStatus(of: process) == 0)
        let store = try await SQLiteStore.open(directory: harness.statePath)
        let delivered = try await store.deliveries(endpoint: "erp", state: .delivered, limit: 10).count
        #expect(delivered >= 2)
        #expect(try await store.deliveries(endpoint: "erp", state: .pending, limit: 10).count == 6 - delivered)

        // Now answers take 4 s: the grace (1 s) runs out, the process still exits 0, and
        // what was in flight stays queued.
        gate.withLock { $0 = .seconds(4) }
        let (second, _, _) = try Binary.start(["run", "--config", path])
        defer { if second.isRunning { kill(second.processIdentifier, SIGKILL) } }
        let before = receiver.requests.count
        #expect(await receiver.waitFor(count: before + 2))
        let stopAt = Date()
        second.terminate()
        #expect(await Binary.exitStatus(of: second) == 0)
        #expect(Date().timeIntervalSince(stopAt) < 3.5)
        #expect(try await store.deliveries(endpoint: "erp", state: .pending, limit: 10).count == 6 - delivered)

        // A later run delivers them, with the ids they had.
        gate.withLock { $0 = .zero }
        let final = try await Binary.run(["poll", "--once", "--config", path])
        #expect(final.status == 0)
        #expect(try await store.deliveries(endpoint: "erp", state: .pending, limit: 10).isEmpty)
        let byId = Dictionary(grouping: receiver.requests, by: \.webhookId)
        #expect(byId.count == 6)
        #expect(Set(receiver.requests.map(\.paymentId)) == Set(ids))
        _ = await log.text()
        await receiver.stop()
        await harness.stop()
    }

    @Test func aGracefulStopLandsBetweenPages() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        _ = harness.createPayments(30)
        let slowPages = Mutex(false)
        let bank = harness.bank.bank
        bank.setInterceptor { request in
            guard slowPages.withLock({ $0 }), request.path.hasSuffix("/singles") else { return nil }
            var answer = bank.handleWithoutInterceptor(request)
            answer.delay = .milliseconds(500)
            return answer
        }
        let text = Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, pageSize: 10, endpoints: Fixtures.endpoint("erp", url: receiver.url))
        let path = try harness.directory.write("pb.yaml", text)
        let (process, _, _) = try Binary.start(["run", "--config", path])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        for _ in 0..<100 where harness.bank.paymentRequests.count < 4 { try await Task.sleep(for: .milliseconds(50)) }
        slowPages.withLock { $0 = true }
        #expect(await harness.bank.waitForPolls(1), "the next poll has asked for its first (slow) page")
        let pagesBefore = harness.bank.paymentRequests.count
        process.terminate()
        #expect(await Binary.exitStatus(of: process) == 0)
        // At most the page being read finished; no further page was asked for.
        #expect(harness.bank.paymentRequests.count <= pagesBefore + 1)
        let last = harness.bank.paymentRequests.last?.queryValue("PageNumber") ?? ""
        #expect(last != "4", "the poll should stop before its last page")
        await receiver.stop()
        await harness.stop()
    }
}
