import Foundation
import GRDB
import Sandbox
import Testing

@testable import PayBridge

/// The state database refusing writes: locked by another writer, a full disk, a read-only
/// folder. paybridge must stop detecting what it cannot record, keep what it has, say so once
/// and resume when the fault clears.
@Suite(.serialized) struct StorageFaultTests {
    static let canMount: Bool = {
        guard getuid() == 0, let directory = try? TemporaryDirectory() else { return false }
        let mounted = run("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", directory.path]) == 0
        if mounted { _ = run("/bin/umount", [directory.path]) }
        return mounted
    }()

    @discardableResult
    static func run(_ tool: String, _ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    func config(_ harness: Harness, receiver: TestReceiver, state: String) -> String {
        Fixtures.config(bankURL: harness.bank.url, state: state, endpoints: Fixtures.endpoint("erp", url: receiver.url))
            .replacingOccurrences(of: "  path: \(state)", with: "  path: \(state)\n  busyTimeout: 200ms")
    }

    @Test func aLockedDatabaseStopsDetectionAndLosesNothing() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let ids = harness.createPayments(4)
        let bridge = try await harness.bridge(config(harness, receiver: receiver, state: harness.statePath))
        _ = await bridge.pollOnce()
        for id in ids { harness.bank.bank.setStatus(id, "Rejected") }

        let lock = try WriteLock(path: harness.statePath + "/" + SQLiteStore.fileName)
        let blocked = await bridge.pollOnce()
        #expect(blocked.failures.first?.stage == .storage)
        #expect(blocked.failures.first.map { "\($0)".contains("database is locked") } == true)
        #expect(!bridge.storage.isAvailable)
        #expect(receiver.requests.isEmpty)
        lock.unlock()

        let recovered = await bridge.pollOnce()
        #expect(recovered.failures.isEmpty)
        #expect(bridge.storage.isAvailable)
        #expect(Set(receiver.requests.map(\.paymentId)) == Set(ids))
        #expect(receiver.requests.count == 4)
        bridge.close()
        await receiver.stop()
        await harness.stop()
    }

    @Test func deliveryResultsAreHeldNotResentWhileTheDatabaseIsLocked() async throws {
        let harness = try await Harness.start()
        // Answers held until the lock below is taken: both attempts are in flight meanwhile.
        let gate = ReplyGate()
        var slow = TestReceiver.Reply.ok
        slow.heldUntil = gate
        let receiver = try await TestReceiver.start { [slow] _, _ in slow }
        let ids = harness.createPayments(2)
        let bridge = try await harness.bridge(config(harness, receiver: receiver, state: harness.statePath))
        _ = await bridge.pollOnce()
        for id in ids { harness.bank.bank.setStatus(id, "Processed") }
        _ = await bridge.pollWatches()
        let running = Task { await bridge.dispatcher.run(.continuous) }
        #expect(await receiver.waitFor(count: 2))
        let lock = try WriteLock(path: harness.statePath + "/" + SQLiteStore.fileName)  // taken while both attempts are in flight
        gate.open()
        try await until("the results' commit finds the database locked") { !bridge.storage.isAvailable }
        #expect(receiver.requests.count == 2)  // held, not sent again
        #expect(try await bridge.store.deliveries(endpoint: "erp", state: .pending, limit: 10).count == 2)
        lock.unlock()
        try await until("the held results are committed once the lock goes") {
            guard bridge.storage.isAvailable else { return false }
            return try await bridge.store.deliveries(endpoint: "erp", state: .delivered, limit: 10).count == 2
        }
        #expect(receiver.requests.count == 2)
        bridge.dispatcher.stop(grace: .zero)
        await running.value
        bridge.close()
        await receiver.stop()
        await harness.stop()
    }

    @Test(.enabled(if: canMount, "needs root and tmpfs mounts"))
    func aFullDiskStopsDetectionUntilThereIsRoomAgain() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let mountPoint = harness.directory.file("disk")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        #expect(Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", mountPoint]) == 0)
        defer { Self.run("/bin/umount", ["-l", mountPoint]) }
        // More changes than the WAL (reused after each checkpoint) can hold without growing.
        let ids = harness.createPayments(400)
        let bridge = try await harness.bridge(config(harness, receiver: receiver, state: mountPoint + "/state"))
        _ = await bridge.pollOnce()
        for id in ids { harness.bank.bank.setStatus(id, "Rejected") }

        // Fill the disk to the last byte.
        let filler = mountPoint + "/filler"
        _ = FileManager.default.createFile(atPath: filler, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: filler))
        let chunk = Data(count: 4096)
        while (try? handle.write(contentsOf: chunk)) != nil {}
        try? handle.close()

        // Chunks that fit in the WAL commit (and are delivered); the first that needs more
        // room fails the poll, and nothing after it is detected.
        let full = await bridge.pollOnce()
        #expect(full.failures.first?.stage == .storage, "\(full.failures)")
        // (The monitor may read healthy again already: the delivery results of the chunks
        // that did commit are recorded before pollOnce returns, and they fit.)
        #expect(receiver.requests.count < 400)

        try FileManager.default.removeItem(atPath: filler)
        let recovered = await bridge.pollOnce()
        #expect(recovered.failures.isEmpty, "\(recovered.failures)")
        // Every change arrives, as one event each. A delivery whose result the full disk
        // refused is pending still and is sent again under the same webhook-id (at least
        // once, as §6 says; receivers deduplicate by it), never as a second event.
        #expect(Set(receiver.requests.map(\.paymentId)) == Set(ids))
        #expect(Set(receiver.requests.map(\.webhookId)).count == 400)
        let perPayment = Dictionary(grouping: receiver.requests, by: \.paymentId).mapValues { Set($0.map(\.webhookId)).count }
        #expect(perPayment.values.allSatisfy { $0 == 1 })
        bridge.close()
        await receiver.stop()
        await harness.stop()
    }

    @Test(.enabled(if: canMount, "needs root and tmpfs mounts"))
    func aReadOnlyStateFolderIsWaitedOutByRun() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let ids = harness.createPayments(2)
        let mountPoint = harness.directory.file("ro")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        #expect(Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=4m,ro", "tmpfs", mountPoint]) == 0)
        defer { Self.run("/bin/umount", ["-l", mountPoint]) }
        let text = config(harness, receiver: receiver, state: mountPoint + "/state").replacingOccurrences(of: "every: 1s", with: "every: 200ms")
        let path = try harness.directory.write("pb.yaml", text)

        // poll --once fails at once, clearly.
        let once = try await Binary.run(["poll", "--once", "--config", path])
        #expect(once.status == 1)
        #expect(once.stderr.contains("cannot open the state database in \(mountPoint)/state"))

        // run waits, says so once, and starts when the folder becomes writable.
        let clock = try BinaryClock()
        let (process, _, errors) = try Binary.start(["run", "--config", path], environment: ["PAYBRIDGE_LOG_LEVEL": "debug"].merging(clock.environment) { $1 })
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let log = LineCollector(errors.fileHandleForReading)
        try await until("run says it waits") { log.all.contains { $0.contains("retrying every 2 s until it opens") } }
        try clock.advance(by: 2.1)
        try await until("run tries again, quietly") { log.all.contains { $0.contains("still cannot be opened") } }
        #expect(harness.bank.paymentRequests.isEmpty)
        #expect(Self.run("/bin/mount", ["-o", "remount,rw", mountPoint]) == 0)
        try clock.advance(by: 2.1)
        try await harness.waitForBaseline(state: mountPoint + "/state")
        harness.bank.bank.setStatus(ids[0], "Processed")
        #expect(await receiver.waitFor(count: 1, timeout: .seconds(10)))
        process.terminate()
        #expect(await Binary.exitStatus(of: process) == 0)
        try await until("the log is read to its end") { log.all.contains { $0.contains("stopped") } }
        let logged = log.all.joined(separator: "\n")
        #expect(logged.components(separatedBy: "retrying every 2 s until it opens").count == 2, "\(logged)")
        #expect(logged.contains("state database opened"))
        await receiver.stop()
        await harness.stop()
    }

    @Test func runSaysOnceThatStorageIsUnavailableAndResumes() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let ids = harness.createPayments(3)
        let state = harness.statePath
        let text = config(harness, receiver: receiver, state: state).replacingOccurrences(of: "every: 1s", with: "every: 100ms")
        let path = try harness.directory.write("pb.yaml", text)
        let clock = try BinaryClock()
        let (process, _, errors) = try Binary.start(["run", "--config", path], environment: ["PAYBRIDGE_LOG_LEVEL": "debug"].merging(clock.environment) { $1 })
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let log = LineCollector(errors.fileHandleForReading)
        for _ in 0..<100 where harness.bank.paymentRequests.count < 2 { try await Task.sleep(for: .milliseconds(50)) }

        let lock = try WriteLock(path: state + "/" + SQLiteStore.fileName)
        for id in ids { harness.bank.bank.setStatus(id, "Rejected") }
        try await until("run finds the state locked") { log.all.contains { $0.contains("state storage unavailable") } }
        #expect(receiver.requests.isEmpty)
        // Many poll intervals later on the run's clock, and after it has probed the state again,
        // it still has not polled: polling is paused.
        let pollsWhileLocked = harness.bank.paymentRequests.count
        let probes = log.all.filter { $0.contains("still not writable") }.count
        try clock.advance(by: 2.5)
        try await until("run probes the state again") { log.all.filter { $0.contains("still not writable") }.count > probes }
        #expect(harness.bank.paymentRequests.count == pollsWhileLocked)
        lock.unlock()
        try clock.advance(by: 1.1)
        #expect(await receiver.waitFor(count: 3, timeout: .seconds(10)))
        process.terminate()
        #expect(await Binary.exitStatus(of: process) == 0)
        try await until("the log is read to its end") { log.all.contains { $0.contains("stopped") } }
        let logged = log.all.joined(separator: "\n")
        #expect(logged.components(separatedBy: "state storage unavailable").count == 2, "\(logged)")
        #expect(logged.contains("state storage available again"))
        #expect(receiver.requests.count == 3)
        await receiver.stop()
        await harness.stop()
    }

    /// A state whose endpoint records cannot be read must not look like "no endpoint is
    /// disabled": nothing is delivered, and the error names the state.
    @Test func unreadableEndpointRecordsFailClosed() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let ids = harness.createPayments(1)
        let text = config(harness, receiver: receiver, state: harness.statePath).replacingOccurrences(of: "every: 1s", with: "every: 200ms")
        let path = try harness.directory.write("pb.yaml", text)
        let baseline = try await Binary.run(["poll", "--once", "--config", path])
        #expect(baseline.status == 0, "\(baseline.stderr)")
        // A change is queued; then the endpoints' records become unreadable.
        harness.bank.bank.setStatus(ids[0], "Rejected")
        let database = try DatabaseQueue(path: harness.statePath + "/" + SQLiteStore.fileName)
        try await database.write { db in try db.execute(sql: "ALTER TABLE endpoint_state RENAME TO endpoint_state_hidden") }

        let once = try await Binary.run(["poll", "--once", "--config", path])
        #expect(once.status == 1)
        #expect(once.stderr.contains("cannot open the state database in \(harness.statePath)"), "\(once.stderr)")
        #expect(once.stderr.contains("endpoint_state"))

        let clock = try BinaryClock()
        let (process, _, errors) = try Binary.start(["run", "--config", path], environment: ["PAYBRIDGE_LOG_LEVEL": "debug"].merging(clock.environment) { $1 })
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let log = LineCollector(errors.fileHandleForReading)
        try await until("run says it waits") { log.all.contains { $0.contains("retrying every 2 s") } }
        try clock.advance(by: 2.1)
        try await until("run tries again, quietly") { log.all.contains { $0.contains("still cannot be opened") } }
        #expect(receiver.requests.isEmpty, "nothing is sent while the records cannot be read")
        #expect(harness.bank.paymentRequests.count == 1, "nor polled: only the baseline's request")
        // Readable again: run starts, and delivers.
        try await database.write { db in try db.execute(sql: "ALTER TABLE endpoint_state_hidden RENAME TO endpoint_state") }
        try clock.advance(by: 2.1)
        #expect(await receiver.waitFor(count: 1, timeout: .seconds(10)))
        process.terminate()
        #expect(await Binary.exitStatus(of: process) == 0)
        try await until("the log is read to its end") { log.all.contains { $0.contains("stopped") } }
        let logged = log.all.joined(separator: "\n")
        #expect(logged.components(separatedBy: "retrying every 2 s").count == 2, "said once: \(logged)")
        await receiver.stop()
        await harness.stop()
    }
}
