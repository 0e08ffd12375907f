import Foundation
import NIOPosix

/// Where PostgreSQL's blocking calls run until the store talks to `PostgresClient` itself:
/// threads of their own, never Swift's cooperative pool, so a state database that hangs for a
/// minute (a partition, a lock) does not take the pool with it — the admin server, the signal
/// handlers and the other watches would stall behind it. (SQLite's work runs on GRDB's own
/// queues: `SQLiteWriter`.)
public enum StorageThreads {
    /// Eight, more than paybridge's async callers of the store at once (a poll per watch, the
    /// storage probe, the source monitor, retention, queue metrics, the status line, the
    /// leases), so none waits behind another's stalled call.
    static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 8)
        pool.start()
        return pool
    }()

    /// Runs `work` on a storage thread and returns its result. Always runs it: not NIO's
    /// `runIfActive`, which skips work whose task was cancelled — a graceful stop cancels the
    /// watches' tasks, and a poll's commit must not turn into a CancellationError that looks
    /// like a storage fault (the poll stops between pages instead).
    public static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            pool.submit { state in
                switch state {
                case .active: continuation.resume(with: Result(catching: work))
                case .cancelled: continuation.resume(throwing: CancellationError())  // the pool was shut down
                }
            }
        }
    }
}
