import Foundation
import Sandbox
import Synchronization
import Testing

@testable import PayBridge

/// Delivery as operators run it: the real `paybridge run` binary, a receiver on 127.0.0.1.
/// The watch polls once at start (`every: 1h`, `baseline: emit`), so no later poll wakes
/// anything: every retry, successor and replay below goes out on the daemon's own timers
/// and signals. Waits are bounded generously; no test asserts a speed.
@Suite(.serialized) struct RunDeliveryTests {
    static let quietWatch = """
            - name: recent
              every: 1h
              baseline: emit
              query:
                InstructedDateFrom: -3d
        """

    /// A bank, a receiver answering as `responder` says, and a config whose endpoint `erp`
    /// retries on `retry`.
    struct Setup {
        let harness: Harness
        let receiver: TestReceiver
        let path: String

        static func start(
            retry: String, backend: Backend = .sqlite, watches: String = RunDeliveryTests.quietWatch,
            responder: @escaping TestReceiver.Responder
        ) async throws -> Setup {
            let harness = try await Harness.start(backend: backend)
            let receiver = try await TestReceiver.start(responder: responder)
            let text = Fixtures.config(
                bankURL: harness.bank.url, state: harness.state, watches: watches,
                endpoints: Fixtures.endpoint("erp", url: receiver.url, retry: retry))
            return Setup(harness: harness, receiver: receiver, path: try harness.directory.write("pb.yaml", text))
        }

        var bank: SandboxBank { harness.bank.bank }

        func stop() async {
            await receiver.stop()
            await harness.stop()
        }
    }

    /// A `paybridge run` process; its log is read when it ends.
    final class Daemon: Sendable {
        let process: Process
        private let log: PipeReader

        init(config: String, environment: [String: String] = [:]) throws {
            let (process, _, errors) = try Binary.start(["run", "--config", config], environment: environment)
            self.process = process
            log = PipeReader(errors)
        }

        /// SIGTERM, then the exit status and the log.
        func stop() async -> (status: Int32, log: String) {
            if process.isRunning { process.terminate() }
            let status = await Binary.exitStatus(of: process)
            return (status, await log.text())
        }

        deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
    }

    /// Polls the CLI's listing until `text` shows (results are committed in groups).
    func waitForListing(_ path: String, containing text: String, timeout: Duration = .seconds(10)) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let listing = try await Binary.run(["deliveries", "--config", path])
            if listing.stdout.contains(text) { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    @Test(arguments: Backend.available)
    func retriesGoOutAtTheirDueTimesThenTheDeliveryIsDeadLettered(backend: Backend) async throws {
        let setup = try await Setup.start(retry: "[1s, 2s]", backend: backend) { _, _ in .status(500) }
        _ = setup.harness.createPayments(1)
        let clock = try BinaryClock()
        let daemon = try Daemon(config: setup.path, environment: clock.environment)
        #expect(await setup.receiver.waitFor(count: 3, timeout: .seconds(15)))
        #expect(try await waitForListing(setup.path, containing: "erp: pending=0 delivered=0 dead=1"))
        // An hour later on the run's clock: its hourly poll comes round (seen at the bank), and
        // a retry the dead letter failed to cancel would be long due.
        try clock.advance(by: 3600)
        #expect(await setup.harness.bank.waitForPolls(1))
        let (status, log) = await daemon.stop()
        #expect(status == 0, "\(log)")

        let requests = setup.receiver.requests
        #expect(requests.count == 3, "no attempt after the dead letter")
        if requests.count >= 3 {
            let first = requests[1].receivedAt.timeIntervalSince(requests[0].receivedAt)
            let second = requests[2].receivedAt.timeIntervalSince(requests[1].receivedAt)
            // The schedule's waits with their ±10 % jitter, never early; "within a second" late.
            #expect(first >= 0.85 && first < 2.2, "first wait \(first)")
            #expect(second >= 1.75 && second < 3.2, "second wait \(second)")
            #expect(Set(requests.map(\.webhookId)).count == 1)
        }
        await setup.stop()
    }

    @Test(arguments: Backend.available)
    func retryAfterIsHonoured(backend: Backend) async throws {
        let setup = try await Setup.start(retry: "[100ms, 100ms]", backend: backend) { _, index in
            index == 0 ? .status(503, [("Retry-After", "2")]) : .ok
        }
        _ = setup.harness.createPayments(1)
        let daemon = try Daemon(config: setup.path)
        #expect(await setup.receiver.waitFor(count: 2, timeout: .seconds(10)))
        #expect(try await waitForListing(setup.path, containing: "erp: pending=0 delivered=1 dead=0"))
        let (status, log) = await daemon.stop()
        #expect(status == 0, "\(log)")
        let requests = setup.receiver.requests
        #expect(requests.count == 2)
        if requests.count == 2 {
            let wait = requests[1].receivedAt.timeIntervalSince(requests[0].receivedAt)
            #expect(wait >= 1.9 && wait < 3.5, "Retry-After: 2 replaced the 100 ms wait; waited \(wait)")
        }
        await setup.stop()
    }

    /// The run's own poller records the change while MissingFunding waits for its retry; the
    /// later event waits behind it (a payment's events go out in order), then follows its 2xx.
    /// (It once came from a `poll --once` beside the run; a SQLite state now serves one process.)
    @Test func aPaymentsLaterEventGoesOutRightAfterTheEarlierOnesSuccess() async throws {
        let watch = RunDeliveryTests.quietWatch.replacingOccurrences(of: "every: 1h", with: "every: 300ms")
        // The retry waits an hour on the run's clock, which the test moves on: however slow the
        // machine, nothing goes out before the test says so (a 2 s wait raced a slow listing).
        let setup = try await Setup.start(retry: "[1h]", watches: watch) { _, index in index == 0 ? .status(500) : .ok }
        let id = setup.bank.createPayment(amount: 250, status: "MissingFunding")
        let clock = try BinaryClock()
        let daemon = try Daemon(config: setup.path, environment: clock.environment)
        #expect(await setup.receiver.waitFor(count: 1))
        // The payment moves on; its event waits behind MissingFunding's retry, in the store only.
        setup.bank.setStatus(id, "Processed")
        #expect(try await waitForListing(setup.path, containing: "erp: pending=2"), "the change is recorded and queued")
        #expect(setup.receiver.requests.count == 1)

        try clock.advance(by: 4000)  // past the hour and its 10 % jitter
        #expect(await setup.receiver.waitFor(count: 3, timeout: .seconds(10)))
        let (status, log) = await daemon.stop()
        #expect(status == 0, "\(log)")
        let requests = setup.receiver.requests
        #expect(requests.map(\.status) == ["MissingFunding", "MissingFunding", "Processed"])
        if requests.count == 3 {
            let successor = requests[2].receivedAt.timeIntervalSince(requests[1].receivedAt)
            #expect(successor < 1.5, "Processed followed MissingFunding's 2xx after \(successor) s")
        }
        await setup.stop()
    }

    @Test(arguments: Backend.available)
    func aReplayMadeWhileRunRunsIsSentWithinSeconds(backend: Backend) async throws {
        let setup = try await Setup.start(retry: "[]", backend: backend) { _, index in index == 0 ? .status(500) : .ok }
        _ = setup.harness.createPayments(1)
        let daemon = try Daemon(config: setup.path)
        #expect(await setup.receiver.waitFor(count: 1))
        #expect(try await waitForListing(setup.path, containing: "erp: pending=0 delivered=0 dead=1"))

        let replay = try await Binary.run(["deliveries", "replay", "--config", setup.path, "--endpoint", "erp", "--state", "dead", "--yes"])
        #expect(replay.status == 0, "\(replay.stderr)")
        let replayedAt = Date()
        #expect(await setup.receiver.waitFor(count: 2, timeout: .seconds(5)))
        let (status, log) = await daemon.stop()
        #expect(status == 0, "\(log)")
        let requests = setup.receiver.requests
        #expect(requests.count == 2)
        if requests.count == 2 {
            #expect(requests[1].webhookId == requests[0].webhookId, "a replay keeps the event's webhook-id")
            #expect(requests[1].receivedAt.timeIntervalSince(replayedAt) < 3, "sent within a couple of seconds")
        }
        await setup.stop()
    }

    @Test(arguments: Backend.available)
    func sigtermWithRetriesPendingExitsPromptlyAndARestartSendsThem(backend: Backend) async throws {
        let setup = try await Setup.start(retry: "[4s]", backend: backend) { _, index in index < 3 ? .status(500) : .ok }
        _ = setup.harness.createPayments(3)
        let daemon = try Daemon(config: setup.path)
        #expect(await setup.receiver.waitFor(count: 3))
        // The three failures are recorded with their due times before the stop.
        let store = try await setup.harness.openStore()
        try await until("the failed attempts are recorded") {
            try await store.deliveries(endpoint: "erp", state: .pending, limit: 10).filter { $0.attempts == 1 }.count == 3
        }
        store.close()
        let stopping = Date()
        let (status, log) = await daemon.stop()
        let stoppedAfter = Date().timeIntervalSince(stopping)
        #expect(status == 0, "\(log)")
        #expect(stoppedAfter < 3, "a stop does not wait for retries due later (took \(stoppedAfter) s)")
        #expect(setup.receiver.requests.count == 3)

        let restarted = try Daemon(config: setup.path)
        #expect(await setup.receiver.waitFor(count: 6, timeout: .seconds(15)))
        #expect(try await waitForListing(setup.path, containing: "erp: pending=0 delivered=3 dead=0"))
        let (again, secondLog) = await restarted.stop()
        #expect(again == 0, "\(secondLog)")
        let requests = setup.receiver.requests
        #expect(requests.count == 6, "the restart sent the three retries, and the poll at start found nothing new")
        if requests.count == 6 {
            let firstAttempts = Array(requests[0..<3])
            let retries = Array(requests[3..<6])
            #expect(Set(retries.map(\.webhookId)) == Set(firstAttempts.map(\.webhookId)))
            // Sent when due (4 s ± 10 % after each first attempt), not at once on restart.
            let earliest = firstAttempts.map(\.receivedAt).min() ?? Date()
            #expect(retries.allSatisfy { $0.receivedAt.timeIntervalSince(earliest) >= 3.5 })
        }
        await setup.stop()
    }
}
