import Foundation
import Sandbox
import Testing

@testable import PayBridge

/// Every way an endpoint can fail is one clean failed attempt, retried on schedule; 410 Gone
/// disables the endpoint, visibly, without losing its deliveries.
@Suite(.serialized) struct EndpointFaultTests {
    enum Fault: String, CaseIterable, CustomTestStringConvertible {
        case clientError, redirect, serverErrorWithMegabytes, reset, refused, neverAnswers, connectTimeout

        var testDescription: String { rawValue }
    }

    /// One change delivered to an endpoint that fails as `fault`; returns the delivery after the attempt.
    func attempt(against url: String, timeout: String = "timeout: 1s\n    connectTimeout: 300ms") async throws -> (DeliveryRecord?, Date) {
        let harness = try await Harness.start()
        let ids = harness.createPayments(1)
        let endpoint = Fixtures.endpoint("erp", url: url, retry: "[1h, 1h]").replacingOccurrences(of: "timeout: 5s", with: timeout)
        let bridge = try await harness.bridge(Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: endpoint))
        _ = await bridge.pollOnce()
        harness.bank.bank.setStatus(ids[0], "Processed")
        let started = Date()
        let result = await bridge.pollOnce()
        #expect(result.failures.isEmpty)
        let delivery = try await bridge.store.deliveries(endpoint: "erp", state: nil, limit: 10).first
        bridge.close()
        await harness.stop()
        return (delivery, started)
    }

    @Test(arguments: Fault.allCases)
    func eachFaultIsACleanFailedAttemptRetriedOnSchedule(fault: Fault) async throws {
        var cleanup: @Sendable () async -> Void = {}
        let url: String
        let expected: String
        // Short where the timeout is the fault; generous where an answer must arrive whole
        // (5 MB from a receiver on a loaded machine can take more than a second).
        var timeout = "timeout: 1s\n    connectTimeout: 300ms"
        switch fault {
        case .clientError, .redirect, .serverErrorWithMegabytes:
            let receiver = try await TestReceiver.start { _, _ in
                switch fault {
                case .clientError: return .status(422)
                case .redirect: return .status(302, [("Location", "http://127.0.0.1:1/elsewhere")])
                default: return TestReceiver.Reply(status: 500, bodySize: 5 << 20)
                }
            }
            cleanup = { await receiver.stop() }
            url = receiver.url
            timeout = "timeout: 20s"
            expected = ["clientError": "HTTP 422", "redirect": "HTTP 302", "serverErrorWithMegabytes": "HTTP 500: xxxx"][fault.rawValue] ?? ""
        case .reset:
            let listener = try ResettingListener()
            cleanup = { listener.close() }
            url = "http://127.0.0.1:\(listener.port)/hook"
            expected = "connection failed"
        case .refused:
            url = "http://127.0.0.1:\(try Sockets.closedPort())/hook"
            expected = "connection failed"
        case .neverAnswers:
            let listener = try SilentListener()
            cleanup = { listener.close() }
            url = "http://127.0.0.1:\(listener.port)/hook"
            expected = "timed out"
        case .connectTimeout:
            let listener = try FullBacklogListener()
            cleanup = { listener.close() }
            url = "http://127.0.0.1:\(listener.port)/hook"
            expected = "timed out"
        }
        let (delivery, started) = try await attempt(against: url, timeout: timeout)
        await cleanup()
        let record = try #require(delivery)
        #expect(record.state == .pending)
        #expect(record.attempts == 1)
        #expect(record.lastError?.hasPrefix(expected) == true, "\(record.lastError ?? "nil")")
        // Next attempt on the schedule: an hour (±10 % jitter) after this one.
        let wait = record.dueAt.timeIntervalSince(started)
        #expect(wait > 3200 && wait < 4000)
        if fault == .serverErrorWithMegabytes {
            #expect((record.lastError?.count ?? 0) < 300)  // the body was not kept
        }
    }

    /// A receiver asking to be retried "now" (Retry-After: 0) is retried on the schedule, not at
    /// once: `poll --once` attempts what is due and leaves the retry queued.
    @Test func aRetryAfterOfNowKeepsTheSchedule() async throws {
        let harness = try await Harness.start()
        var busy = TestReceiver.Reply(status: 429)
        busy.headers = [("Retry-After", "0")]
        let receiver = try await TestReceiver.start { [busy] _, _ in busy }
        let ids = harness.createPayments(1)
        let path = try harness.directory.write(
            "pb.yaml",
            Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: receiver.url, retry: "[5s, 5s, 5s, 5s]")))
        #expect(try await Binary.run(["poll", "--once", "--config", path]).status == 0)
        harness.bank.bank.setStatus(ids[0], "Rejected")
        #expect(try await Binary.run(["poll", "--once", "--config", path]).status == 0)
        #expect(receiver.requests.count == 1, "one attempt, the retry 5 s later: \(receiver.requests.count) sent")
        let listed = try await Binary.run(["deliveries", "list", "--json", "--config", path])
        let rows = (try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [String: Any])?["deliveries"] as? [[String: Any]]
        #expect(rows?.first?["state"] as? String != "dead", "\(listed.stdout)")
        await receiver.stop()
        await harness.stop()
    }

    /// An endpoint taken out of the config with deliveries pending: they are kept, and every
    /// start says so, until it is back and delivers them.
    @Test func anEndpointRemovedWithPendingDeliveriesIsNamedAtEachStart() async throws {
        let clock = try BinaryClock()
        let harness = try await Harness.start(clock: clock)
        let failing = Switch(true)
        let receiver = try await TestReceiver.start { _, _ in failing.on ? .status(500) : .ok }
        let ids = harness.createPayments(1)
        let erp = Fixtures.endpoint("erp", url: receiver.url, retry: "[1s]")
        let other = Fixtures.endpoint("other", url: "\(receiver.url)/other")
        let with = try harness.directory.write("with.yaml", Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: erp + other))
        let without = try harness.directory.write("without.yaml", Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: other))
        #expect(try await Binary.run(["poll", "--once", "--config", with], environment: clock.environment).status == 0)
        harness.bank.bank.setStatus(ids[0], "Rejected")
        #expect(try await Binary.run(["poll", "--once", "--config", with], environment: clock.environment).status == 0)
        let removed = try await Binary.run(["poll", "--once", "--config", without], environment: clock.environment)
        #expect(removed.stderr.contains("endpoint erp is no longer in the config: its pending deliveries are kept"), "\(removed.stderr)")
        #expect(removed.stderr.contains("pending=1"), "\(removed.stderr)")
        failing.set(false)
        try clock.advance(by: 1.5)  // the retry's wait (1 s ± 10 %) is due
        let back = try await Binary.run(["poll", "--once", "--config", with], environment: clock.environment)
        #expect(!back.stderr.contains("no longer in the config"), "\(back.stderr)")
        #expect(receiver.requests.filter { !$0.path.hasSuffix("/other") && $0.paymentId == ids[0] && $0.status == "Rejected" }.count == 2, "retried once it is back")
        await receiver.stop()
        await harness.stop()
    }

    @Test func aTwoHundredWithMegabytesIsDelivered() async throws {
        let receiver = try await TestReceiver.start { _, _ in TestReceiver.Reply(status: 200, bodySize: 8 << 20) }
        let (delivery, _) = try await attempt(against: receiver.url, timeout: "timeout: 10s")
        #expect(delivery?.state == .delivered)
        await receiver.stop()
    }

    /// A 410 through the binary on each backend: the endpoint is disabled, the announcement
    /// committed and sent, and `endpoints list` says so. On PostgreSQL the announcement's
    /// number (its time in milliseconds) overflowed a 32-bit column: the commit failed, the
    /// state was reported unavailable, and the endpoint never stayed disabled.
    @Test(arguments: Backend.available) func goneDisablesTheEndpointOnEveryBackend(_ backend: Backend) async throws {
        let harness = try await Harness.start()
        let state = try await backend.freshState(in: harness.directory)
        let gone = try await TestReceiver.start { _, _ in .status(410) }
        let ops = try await TestReceiver.start()
        let ids = harness.createPayments(2)
        let path = try harness.directory.write(
            "pb.yaml",
            Fixtures.config(
                bankURL: harness.bank.url, state: state,
                endpoints: Fixtures.endpoint("erp", url: gone.url, concurrency: 1) + Fixtures.endpoint("ops", url: ops.url),
                routes: """
                      - when: { type: [payment.status_changed] }
                        to: [erp]
                      - when: { type: [endpoint.disabled] }
                        to: [ops]
                    """))
        #expect(try await Binary.run(["poll", "--once", "--config", path]).status == 0)
        for id in ids { harness.bank.bank.setStatus(id, "Rejected") }
        let poll = try await Binary.run(["poll", "--once", "--config", path])
        #expect(poll.status == 0, "\(poll.stderr)")
        #expect(!poll.stderr.contains("unavailable"), "\(poll.stderr)")
        #expect(ops.requests.map(\.type) == ["endpoint.disabled"], "\(poll.stderr)")
        let list = try await Binary.run(["endpoints", "list", "--json", "--config", path])
        let endpoints = (try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [String: Any])?["endpoints"] as? [[String: Any]]
        let erp = endpoints?.first { $0["name"] as? String == "erp" }
        #expect(erp?["health"] as? String == "disabled" && erp?["pending"] as? Int == 2, "\(list.stdout)")
        await gone.stop()
        await ops.stop()
        await harness.stop()
    }

    @Test func goneDisablesTheEndpointAnnouncesItAndKeepsItsDeliveries() async throws {
        let harness = try await Harness.start()
        let gone = try await TestReceiver.start { _, _ in .status(410) }
        let ops = try await TestReceiver.start()
        let ids = harness.createPayments(3)
        let text = Fixtures.config(
            bankURL: harness.bank.url, state: harness.statePath,
            endpoints: Fixtures.endpoint("erp", url: gone.url, concurrency: 1) + Fixtures.endpoint("ops", url: ops.url),
            routes: """
                  - when: { type: [payment.status_changed] }
                    to: [erp]
                  - when: { type: [endpoint.disabled] }
                    to: [ops, erp]
                """)
        // The bridge's time: only the test moves it.
        let clock = ManualClock(Date())
        let bridge = try await harness.bridge(text, clock: clock.clock)
        _ = await bridge.pollOnce()
        for id in ids { harness.bank.bank.setStatus(id, "Rejected") }
        _ = await bridge.pollOnce()
        #expect(gone.requests.count == 1)  // disabled after the first 410: the rest wait
        let pending = try await bridge.store.deliveries(endpoint: "erp", state: .pending, limit: 10)
        #expect(pending.count == 3)
        #expect(try await bridge.store.endpointRecords()["erp"]?.disabledReason == "the endpoint answered 410 Gone")
        #expect(bridge.dispatcher.endpointStatuses.first { $0.name == "erp" }?.state == .disabled)

        // The announcement went to ops (not to the disabled endpoint itself).
        #expect(ops.requests.count == 1)
        let announcement = try #require(ops.requests.first)
        #expect(announcement.type == "endpoint.disabled")
        #expect(announcement.data["endpoint"] as? String == "erp")
        #expect(announcement.data["reason"] as? String == "the endpoint answered 410 Gone")
        #expect(announcement.data["pendingDeliveries"] as? Int == 3)
        #expect(announcement.webhookId.hasPrefix("evt_"))

        // Nothing more is attempted while disabled, even much later.
        _ = await bridge.pollOnce()
        #expect(gone.requests.count == 1)

        // An operator re-enables it (what `paybridge endpoints enable erp` writes); the
        // dispatcher picks that up and delivers everything, in order per payment.
        gone.setResponder { _, _ in .ok }
        try await bridge.store.write { try await $0.saveEndpointRecord(name: "erp", EndpointRecord()) }
        clock.advance(by: 2.1)
        await bridge.deliverDue()
        #expect(try await bridge.store.deliveries(endpoint: "erp", state: .pending, limit: 10).isEmpty)
        #expect(Set(gone.requests.dropFirst().map(\.paymentId)) == Set(ids))
        bridge.close()
        await gone.stop()
        await ops.stop()
        await harness.stop()
    }

    @Test func aFloodForOneEndpointDoesNotStarveAnother() async throws {
        let harness = try await Harness.start()
        var slow = TestReceiver.Reply.ok
        slow.delay = .milliseconds(20)
        let flooded = try await TestReceiver.start { [slow] _, _ in slow }
        let quiet = try await TestReceiver.start()
        let ids = harness.createPayments(400)
        let text = Fixtures.config(
            bankURL: harness.bank.url, state: harness.statePath,
            endpoints: Fixtures.endpoint("flooded", url: flooded.url, concurrency: 4) + Fixtures.endpoint("quiet", url: quiet.url),
            routes: """
                  - to: [flooded]
                  - when: { status: [Rejected] }
                    to: [quiet]
                """)
        let bridge = try await harness.bridge(text)
        _ = await bridge.pollOnce()
        for id in ids.dropLast(5) { harness.bank.bank.setStatus(id, "Processed") }
        _ = await bridge.pollWatches()  // 395 deliveries for the flooded endpoint
        let running = Task { await bridge.dispatcher.run(.continuous) }
        #expect(await flooded.waitFor(count: 10))
        for id in ids.suffix(5) { harness.bank.bank.setStatus(id, "Rejected") }
        _ = await bridge.pollWatches()
        // The quiet endpoint's five arrive while the flood (≈2 s of work) is far from done.
        #expect(await quiet.waitFor(count: 5, timeout: .seconds(5)))
        #expect(flooded.requests.count < 300)
        bridge.dispatcher.stop(grace: .zero)
        await running.value
        bridge.close()
        await flooded.stop()
        await quiet.stop()
        await harness.stop()
    }

    @Test func theRateLimitHolds() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let ids = harness.createPayments(30)
        let endpoint = Fixtures.endpoint("erp", url: receiver.url, concurrency: 8, extra: "    rateLimit: 10/s")
        let bridge = try await harness.bridge(Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: endpoint))
        _ = await bridge.pollOnce()
        for id in ids { harness.bank.bank.setStatus(id, "Processed") }
        _ = await bridge.pollWatches()
        let running = Task { await bridge.dispatcher.run(.continuous) }
        #expect(await receiver.waitFor(count: 30, timeout: .seconds(10)))
        bridge.dispatcher.stop(grace: .zero)
        await running.value
        let arrivals = receiver.requests.map(\.receivedAt)
        for start in arrivals {
            // Arrival jitter on a busy machine can bunch two requests; never more than the limit.
            let window = arrivals.filter { $0 >= start && $0 < start.addingTimeInterval(1) }
            #expect(window.count <= 11, "\(window.count) requests within a second")
        }
        let span = (arrivals.max() ?? Date()).timeIntervalSince(arrivals.min() ?? Date())
        #expect(span >= 2.8)  // 30 requests at 10/s take at least 2.9 s
        bridge.close()
        await receiver.stop()
        await harness.stop()
    }
}
