import Foundation
import Synchronization
import Testing

@testable import PayBridge

/// Store calls from async code (the poller, the dispatcher, the monitors, retention, the
/// leases) never block Swift's cooperative pool: SQLite's work waits on GRDB's queues
/// (`SQLiteWriter`), PostgreSQL's on its connections. A state database that makes writers
/// wait must not stall everything else that runs on the pool.
@Suite struct StorageStallTests {
    @Test func writersWaitingForTheDatabaseLeaveTheCooperativePoolFree() async throws {
        let directory = try TemporaryDirectory()
        let store = try await SQLiteStore.open(directory: directory.path, busyTimeout: .seconds(20))
        // Another connection (an operator's sqlite3, another process) holds the write lock.
        let holder = try WriteLock(path: store.path)

        // More writers than the pool has threads: had they blocked it, nothing below would
        // run until they gave up.
        let writers = ProcessInfo.processInfo.activeProcessorCount + 2
        let started = Tally()
        let returned = Tally()
        let writes = Task {
            await withTaskGroup(of: Bool.self) { group in
                for index in 0..<writers {
                    group.addTask {
                        started.add()
                        defer { returned.add() }
                        do {
                            try await store.detect { try await $0.recordWatchPoll(name: "watch-\(index)", at: Date(), baselined: true) }
                            return true
                        } catch {
                            return false
                        }
                    }
                }
                var succeeded = 0
                for await ok in group where ok { succeeded += 1 }
                return succeeded
            }
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while started.value < writers, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(started.value == writers)
        // The pool ran this while every writer still waits for the lock.
        #expect(returned.value == 0)

        holder.unlock()
        #expect(await writes.value == writers)
        for index in 0..<writers {
            #expect(try await store.watchRecord(name: "watch-\(index)")?.baselinedAt != nil)
        }
    }

    /// A graceful stop cancels the watches' tasks; a store call made by a cancelled task still
    /// runs, so a poll's commit never turns into a CancellationError reported as a fault.
    @Test func aCancelledTasksStoreCallsStillRun() async throws {
        let directory = try TemporaryDirectory()
        let store = try await SQLiteStore.open(directory: directory.path)
        let task = Task {
            while !Task.isCancelled { await Task.yield() }
            try await store.detect { try await $0.recordWatchPoll(name: "stopping", at: Date(), baselined: true) }
            return try await store.watchRecord(name: "stopping")
        }
        task.cancel()
        let record = try await task.value
        #expect(record?.baselinedAt != nil)
    }
}
