import Foundation
import Sandbox
import Synchronization
import Testing

@testable import PayBridge

/// Retries, dead letters, Retry-After, ordering and isolation, over real HTTP on 127.0.0.1.
@Suite(.serialized) struct DeliveryTests {
    @Test(arguments: Backend.available)
    func retriesReuseTheWebhookIdAndAreSignedAfresh(backend: Backend) async throws {
        // Retries come due on the bridge's clock, which moves only when the test says.
        let time = ManualClock(Date())
        let scenario = try await Scenario.start(payments: 1, retry: "[300ms]", backend: backend, clock: time.clock) { _, index in
            index == 0 ? .status(500) : .ok
        }
        let (harness, receiver, bridge, ids) = (scenario.harness, scenario.receiver, scenario.bridge, scenario.ids)
        _ = await bridge.pollOnce()
        harness.bank.bank.setStatus(ids[0], "Processed")
        _ = await bridge.pollOnce()
        #expect(receiver.requests.count == 1)
        var pending = try await bridge.store.deliveries(endpoint: "erp", state: .pending, limit: 10)
        #expect(pending.first?.attempts == 1)
        #expect(pending.first?.lastStatus == 500)

        // Not due yet: nothing is sent.
        await bridge.deliverDue()
        #expect(receiver.requests.count == 1)
        time.advance(by: 0.4)
        await bridge.deliverDue()
        let requests = receiver.requests
        #expect(requests.count == 2)
        #expect(requests[0].webhookId == requests[1].webhookId)
        #expect(requests[0].body == requests[1].body)
        let signer = WebhookSigner(secrets: [Secret(Fixtures.secret)])
        for request in requests {
            let timestamp = Int(request.headers["webhook-timestamp"] ?? "") ?? 0
            #expect(abs(Double(timestamp) - time.now.timeIntervalSince1970) < 2)  // the attempt's time, on the bridge's clock
            #expect(request.headers["webhook-signature"] == signer.signature(id: request.webhookId, timestamp: timestamp, body: request.body))
        }
        pending = try await bridge.store.deliveries(endpoint: "erp", state: .pending, limit: 10)
        #expect(pending.isEmpty)
        #expect(try await bridge.store.deliveries(endpoint: "erp", state: .delivered, limit: 10).first?.attempts == 2)
        await scenario.stop()
    }

    @Test(arguments: Backend.available)
    func aRunningDispatcherWakesForARetryWhenTheClockIsAdvanced(backend: Backend) async throws {
        // `run` waits on the bridge's clock: an hour's retry goes out when the test moves
        // the clock an hour, not after an hour, and not before.
        let time = ManualClock(Date())
        let scenario = try await Scenario.start(payments: 1, retry: "[1h]", backend: backend, clock: time.clock) { _, index in
            index == 0 ? .status(500) : .ok
        }
        let (harness, receiver, bridge, ids) = (scenario.harness, scenario.receiver, scenario.bridge, scenario.ids)
        _ = await bridge.pollOnce()
        // As `run` does first: this instance takes its leases (a shared state's endpoints).
        var owned: Set<String>?
        _ = await bridge.renewLeases(owned: &owned)
        let running = Task { await bridge.dispatcher.run(.continuous) }
        harness.bank.bank.setStatus(ids[0], "Processed")
        _ = await bridge.pollWatches()
        #expect(await receiver.waitFor(count: 1))
        // The loop goes to sleep until the retry is due, an hour (± its jitter) from now.
        let start = time.now
        var due: Date?
        for _ in 0..<2000 {
            if let deadline = time.nextDeadline, deadline.timeIntervalSince(start) > 3000 { due = deadline; break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let deadline = try #require(due, "the dispatcher does not sleep on the bridge's clock")
        #expect(deadline.timeIntervalSince(start) > 3200 && deadline.timeIntervalSince(start) < 4000)
        time.set(deadline.addingTimeInterval(-1))
        #expect(time.sleeping >= 1)  // a second early wakes nothing
        time.set(deadline)
        #expect(await receiver.waitFor(count: 2))
        #expect(receiver.requests.map(\.webhookId) == [receiver.requests[0].webhookId, receiver.requests[0].webhookId])
        bridge.dispatcher.stop(grace: .zero)
        await running.value
        await scenario.stop()
    }

    @Test(.timeLimit(.minutes(1)))
    func aDrainFiredBeforeTheRunBeginsStillEndsIt() async throws {
        // `poll --once` fires the drain when its polls end; its delivering task may not have
        // begun by then (a busy machine): the run must still be a drain, not run forever.
        let scenario = try await Scenario.start(payments: 1) { _, _ in .ok }
        _ = await scenario.bridge.pollOnce()
        scenario.bank.setStatus(scenario.ids[0], "Processed")
        _ = await scenario.bridge.pollWatches()
        let trigger = Dispatcher.DrainTrigger(scenario.bridge.dispatcher)
        trigger.fire(dueBy: Date())
        await scenario.bridge.dispatcher.run(.drainWhen(trigger))
        #expect(scenario.receiver.requests.map(\.status) == ["Processed"])
        await scenario.stop()
    }

    @Test(arguments: Backend.available)
    func aDeadLetterStopsBeingRetried(backend: Backend) async throws {
        let time = ManualClock(Date())
        let scenario = try await Scenario.start(payments: 1, retry: "[100ms]", backend: backend, clock: time.clock) { _, _ in .status(500) }
        let (harness, receiver, bridge, ids) = (scenario.harness, scenario.receiver, scenario.bridge, scenario.ids)
        _ = await bridge.pollOnce()
        harness.bank.bank.setStatus(ids[0], "Rejected")
        _ = await bridge.pollOnce()
        #expect(receiver.requests.count == 1)
        time.advance(by: 0.2)
        await bridge.deliverDue()
        #expect(receiver.requests.count == 2)
        let dead = try await bridge.store.deliveries(endpoint: "erp", state: .dead, limit: 10)
        #expect(dead.count == 1)
        #expect(dead.first?.lastError?.hasPrefix("HTTP 500") == true)
        time.advance(by: 3600)
        _ = await bridge.pollOnce()
        #expect(receiver.requests.count == 2)
        await scenario.stop()
    }

    @Test func retryAfterIsHonoured() async throws {
        // On the bridge's clock: the test moves it past the schedule's 50 ms, then to Retry-After.
        let time = ManualClock(Date())
        let scenario = try await Scenario.start(payments: 1, retry: "[50ms]", clock: time.clock) { _, index in
            index == 0 ? .status(503, [("Retry-After", "2")]) : .ok
        }
        let (harness, receiver, bridge, ids) = (scenario.harness, scenario.receiver, scenario.bridge, scenario.ids)
        _ = await bridge.pollOnce()
        harness.bank.bank.setStatus(ids[0], "Processed")
        _ = await bridge.pollOnce()
        #expect(receiver.requests.count == 1)
        let pending = try await #require(try bridge.store.deliveries(endpoint: "erp", state: .pending, limit: 1).first)
        #expect(abs(pending.dueAt.timeIntervalSince(time.now) - 2) < 0.01, "due when Retry-After says, not 50 ms later")
        time.advance(by: 0.3)
        await bridge.deliverDue()  // the schedule's 50 ms has passed, Retry-After has not
        #expect(receiver.requests.count == 1)
        time.set(pending.dueAt)
        await bridge.deliverDue()
        #expect(receiver.requests.count == 2)
        await scenario.stop()
    }

    @Test(arguments: Backend.available)
    func aLaterEventWaitsForTheEarlierOneOfTheSamePayment(backend: Backend) async throws {
        // The retry comes due only when the test moves the bridge's clock, however slow the machine.
        let time = ManualClock(Date())
        let scenario = try await Scenario.start(payments: 1, retry: "[300ms]", backend: backend, clock: time.clock) { _, index in
            index == 0 ? .status(500) : .ok
        }
        let (harness, receiver, bridge, ids) = (scenario.harness, scenario.receiver, scenario.bridge, scenario.ids)
        _ = await bridge.pollOnce()
        harness.bank.bank.setStatus(ids[0], "MissingFunding")
        _ = await bridge.pollOnce()  // event 1: attempt fails
        harness.bank.bank.setStatus(ids[0], "Processed")
        _ = await bridge.pollOnce()  // event 2: due, but waits behind event 1
        #expect(receiver.requests.map(\.status) == ["MissingFunding"])
        time.advance(by: 0.4)
        await bridge.deliverDue()
        #expect(receiver.requests.map(\.status) == ["MissingFunding", "MissingFunding", "Processed"])
        await scenario.stop()
    }

    @Test(arguments: Backend.available)
    func perPaymentOrderHoldsUnderConcurrency(backend: Backend) async throws {
        // Slow, uneven answers and some failures: without ordering, later events would overtake.
        let scenario = try await Scenario.start(payments: 20, retry: "[10ms, 10ms, 10ms, 10ms, 10ms]", concurrency: 8, backend: backend) { request, index in
            var reply = TestReceiver.Reply.ok
            reply.delay = .milliseconds(Int64((request.paymentId.hashValue & 0x7) * 3))
            if index % 7 == 3 { reply.status = 503 }
            return reply
        }
        let (harness, receiver, bridge, ids) = (scenario.harness, scenario.receiver, scenario.bridge, scenario.ids)
        _ = await bridge.pollOnce()
        let lifecycle = ["Hold", "MissingFunding", "Processed", "Reversed"]
        for status in lifecycle {
            for id in ids { harness.bank.bank.setStatus(id, status) }
            _ = await bridge.pollOnce()
        }
        for _ in 0..<50 where await !(try bridge.store.deliveries(endpoint: "erp", state: .pending, limit: 1).isEmpty) {
            try await Task.sleep(for: .milliseconds(20))
            await bridge.deliverDue()
        }
        #expect(try await bridge.store.deliveries(endpoint: "erp", state: .delivered, limit: 1000).count == 80)
        // Each payment's events were delivered (2xx) in its own order.
        var delivered: [String: [String]] = [:]
        let signer = WebhookSigner(secrets: [Secret(Fixtures.secret)])
        for (index, request) in receiver.requests.enumerated() where index % 7 != 3 {
            delivered[request.paymentId, default: []].append(request.status)
            let timestamp = Int(request.headers["webhook-timestamp"] ?? "") ?? 0
            #expect(request.headers["webhook-signature"] == signer.signature(id: request.webhookId, timestamp: timestamp, body: request.body))
        }
        for id in ids { #expect(delivered[id] == lifecycle, "payment \(id)") }
        await scenario.stop()
    }

    @Test func concurrencyBoundsRequestsInFlight() async throws {
        var slow = TestReceiver.Reply.ok
        slow.delay = .milliseconds(100)
        let scenario = try await Scenario.start(payments: 12, concurrency: 3) { [slow] _, _ in slow }
        _ = await scenario.bridge.pollOnce()
        for id in scenario.ids { scenario.bank.setStatus(id, "Processed") }
        _ = await scenario.bridge.pollOnce()
        #expect(scenario.receiver.requests.count == 12)
        #expect(scenario.receiver.mostConcurrent == 3)
        await scenario.stop()
    }

    @Test func anAttemptThatOutlivesItsTimeoutFailsAndIsRetried() async throws {
        let harness = try await Harness.start()
        let silent = try SilentListener()
        let ids = harness.createPayments(1)
        let endpoint = Fixtures.endpoint("stuck", url: "http://127.0.0.1:\(silent.port)/hook", retry: "[1h]")
            .replacingOccurrences(of: "timeout: 5s", with: "timeout: 300ms")
        let bridge = try await harness.bridge(Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, endpoints: endpoint))
        _ = await bridge.pollOnce()
        harness.bank.bank.setStatus(ids[0], "Processed")
        _ = await bridge.pollOnce()
        let pending = try await bridge.store.deliveries(endpoint: "stuck", state: .pending, limit: 1).first
        #expect(pending?.attempts == 1)
        #expect(pending?.lastError?.hasPrefix("timed out") == true, "\(pending?.lastError ?? "")")
        #expect((pending?.dueAt.timeIntervalSinceNow ?? 0) > 3000)
        bridge.close()
        silent.close()
        await harness.stop()
    }

    @Test func aDeadEndpointDoesNotDelayAnother() async throws {
        let harness = try await Harness.start()
        let fast = try await TestReceiver.start()
        // A listener that accepts connections and never answers.
        let silent = try SilentListener()
        let ids = harness.createPayments(5)
        let bridge = try await harness.bridge(
            Fixtures.config(
                bankURL: harness.bank.url, state: harness.statePath,
                endpoints: Fixtures.endpoint("stuck", url: "http://127.0.0.1:\(silent.port)/hook", concurrency: 2)
                    + Fixtures.endpoint("fast", url: fast.url, concurrency: 2)))
        _ = await bridge.pollOnce()
        for id in ids { harness.bank.bank.setStatus(id, "Processed") }
        let running = Task { await bridge.dispatcher.run(.continuous) }
        _ = await bridge.pollWatches()
        // The stuck endpoint holds its two slots for its whole 5 s timeout; the fast one
        // delivers all five meanwhile.
        #expect(await fast.waitFor(count: 5, timeout: .seconds(4)))
        #expect(try await bridge.store.deliveries(endpoint: "stuck", state: .pending, limit: 10).count == 5)
        bridge.dispatcher.stop(grace: .zero)
        await running.value
        bridge.close()
        silent.close()
        await fast.stop()
        await harness.stop()
    }
}

/// Completes TCP handshakes (the kernel does) and never reads or answers.
final class SilentListener: Sendable {
    let port: Int
    private let socket: Int32

    init() throws {
        (socket, port) = try Sockets.listener(backlog: 64)
    }

    func close() { _ = Glibc.close(socket) }
}
