import GRDB

/// The one place a SQLite state is written (and read by the statements written once): an
/// actor whose executor is GRDB's writer queue. Its jobs run inside GRDB's write accesses, so
/// the work it runs — a transaction's statements, `nonisolated(nonsending)` all the way down —
/// uses the writer connection directly, one statement after another on that queue, with no
/// hop per statement and never on Swift's cooperative pool (a stalled disk or a lock held by
/// another process blocks GRDB's thread, not the pool).
actor SQLiteWriter {
    private let executor: WriterQueue
    private let db: Database
    /// A transaction is open. A transaction's work does not suspend in practice (its
    /// statements run where it runs), but if it did, another transaction would wait here
    /// rather than interleave with it.
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    /// `pool` must allow a transaction to span accesses (`allowsUnsafeTransactions`): a
    /// transaction whose work suspends continues in a later job.
    init(pool: DatabasePool) throws {
        executor = WriterQueue(pool: pool)
        nonisolated(unsafe) var writer: Database?
        pool.writeWithoutTransaction { writer = $0 }
        guard let writer else { throw StorageError.query("the SQLite writer connection is missing") }
        db = writer
    }

    /// Runs `body` in one `BEGIN IMMEDIATE` … `COMMIT`; a failure rolls it back.
    func transaction<T: Sendable>(_ body: nonisolated(nonsending) (Database) async throws -> T) async throws -> T {
        await take()
        defer { give() }
        try db.beginTransaction(.immediate)
        do {
            let result = try await body(db)
            try db.commit()
            return result
        } catch {
            if db.isInsideTransaction { try? db.rollback() }
            throw error
        }
    }

    /// Runs `body` on the writer connection outside a transaction (each statement sees the
    /// latest commit).
    func read<T: Sendable>(_ body: nonisolated(nonsending) (Database) async throws -> T) async throws -> T {
        await take()
        defer { give() }
        return try await body(db)
    }

    private func take() async {
        guard busy else {
            busy = true
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    private func give() {
        if waiting.isEmpty { busy = false } else { waiting.removeFirst().resume() }
    }
}

/// Runs each job of `SQLiteWriter` on GRDB's writer queue, inside a write access.
private final class WriterQueue: SerialExecutor {
    private let pool: DatabasePool

    init(pool: DatabasePool) { self.pool = pool }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedSerialExecutor()
        pool.asyncWriteWithoutTransaction { _ in job.runSynchronously(on: executor) }
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor { UnownedSerialExecutor(ordinary: self) }
}
