import Foundation
import NIOPosix

/// Where storage work asked for from async code runs: threads of their own, never Swift's
/// cooperative pool. A store call blocks its thread (GRDB's SQLite calls; PostgreSQL's
/// queries waited for under a transaction that holds a connection), and the pool has one
/// thread per core: a state database that hangs for a minute (a partition, a full disk, a lock)
/// must not take the pool with it, or the admin server, the signal handlers and the other
/// watches would stall behind it.
///
/// The dispatcher and the recorder are threads of their own already and call the role
/// protocols directly; the poller, the monitors, retention and the lease holder (all async)
/// call the `async` forms below, which hop here.
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

// The role protocols as async code calls them: the same work, on a storage thread.

extension OutboxStore {
    public func paymentStates(for paymentIds: [String]) async throws -> [String: PaymentState] {
        try await StorageThreads.run { try self.paymentStates(for: paymentIds) }
    }

    /// Runs `body` in one detection transaction (`detect`), on a storage thread. (Not an
    /// `async` overload: with a closure argument the compiler would pick the synchronous one.)
    public func detecting<T: Sendable>(_ body: @escaping @Sendable (any DetectionTransaction) throws -> T) async throws -> T {
        try await StorageThreads.run { try self.detect(body) }
    }

    public func checkWritable(at date: Date) async throws {
        try await StorageThreads.run { try self.checkWritable(at: date) }
    }
}

extension RecordStore {
    public func watchRecord(name: String) async throws -> WatchRecord? {
        try await StorageThreads.run { try self.watchRecord(name: name) }
    }

    public func watchMembers(name: String) async throws -> Set<String> {
        try await StorageThreads.run { try self.watchMembers(name: name) }
    }

    public func sourceRecord() async throws -> SourceRecord {
        try await StorageThreads.run { try self.sourceRecord() }
    }
}

extension RetentionStore {
    public func prune(before date: Date) async throws -> PruneReport {
        try await StorageThreads.run { try self.prune(before: date) }
    }
}

extension InspectionStore {
    public func queueFigures() async throws -> [String: (pending: Int, oldest: Date?)] {
        try await StorageThreads.run { try self.queueFigures() }
    }

    public func eventCount(since date: Date) async throws -> Int {
        try await StorageThreads.run { try self.eventCount(since: date) }
    }

    public func trackedPayments() async throws -> Int {
        try await StorageThreads.run { try self.trackedPayments() }
    }
}

extension Coordination {
    public func holdPollerLease() async throws -> Bool {
        try await StorageThreads.run { try self.holdPollerLease() }
    }

    public func holdEndpointLeases(_ endpoints: [String], takeAllFree: Bool) async throws -> Set<String> {
        try await StorageThreads.run { try self.holdEndpointLeases(endpoints, takeAllFree: takeAllFree) }
    }

    /// Lets the leases go (best effort, as the synchronous forms).
    public func releaseLeases(poller: Bool, endpoints: Bool) async {
        _ = try? await StorageThreads.run {
            if poller { self.releasePollerLease() }
            if endpoints { self.releaseEndpointLeases() }
        }
    }
}
