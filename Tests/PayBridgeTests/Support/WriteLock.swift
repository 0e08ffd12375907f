import Foundation
import GRDB

/// Holds SQLite's write lock on the database from another connection (an operator's sqlite3,
/// another process) until released: paybridge's writers wait for it, or fail after their
/// busy timeout.
final class WriteLock: @unchecked Sendable {
    // @unchecked: `failure` is written before `held` is signalled and read after it.
    private let queue: DatabaseQueue
    private let release = DispatchSemaphore(value: 0)
    private let held = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)
    private var failure: (any Error)?

    /// Waits up to 10 s for the lock: paybridge may be committing at this moment.
    init(path: String) throws {
        var configuration = GRDB.Configuration()
        configuration.busyMode = .timeout(10)
        queue = try DatabaseQueue(path: path, configuration: configuration)
        Thread.detachNewThread { [self] in
            var took = false
            do {
                try queue.inDatabase { db in
                    try db.execute(sql: "BEGIN IMMEDIATE")
                    took = true
                    held.signal()
                    release.wait()
                    try db.execute(sql: "ROLLBACK")
                }
            } catch {
                if !took {
                    failure = error
                    held.signal()
                }
            }
            done.signal()
        }
        held.wait()
        if let failure { throw failure }
    }

    func unlock() {
        release.signal()
        done.wait()
    }
}
