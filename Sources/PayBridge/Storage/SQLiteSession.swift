import GRDB

/// One SQLite connection as an actor whose executor is the connection's GRDB queue: its jobs
/// run inside GRDB's accesses, so the work it runs — a transaction's statements,
/// `nonisolated(nonsending)` all the way down — uses the connection directly, one statement
/// after another on that queue, with no hop per statement and never on Swift's cooperative
/// pool (a stalled disk or a lock held by another process blocks GRDB's thread, not the pool).
/// A SQLite state has two: the writer (the pool's writer connection: every write, and
/// `data_version`) and a reader of its own for the statements written once (a read never
/// waits behind a commit in WAL mode).
actor SQLiteSession {
    private let executor: ConnectionQueue
    private let db: Database
    /// A transaction or a read is under way. Their work does not suspend in practice (its
    /// statements run where it runs), but if it did, the next would wait here rather than
    /// interleave with it on the one connection.
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    /// `connection` (a pool, whose writer connection this is, or a queue) must allow a
    /// transaction to span accesses (`allowsUnsafeTransactions`): a transaction whose work
    /// suspends continues in a later job.
    init(_ connection: any DatabaseWriter) throws {
        executor = ConnectionQueue(connection)
        nonisolated(unsafe) var found: Database?
        connection.writeWithoutTransaction { found = $0 }
        guard let found else { throw StorageError.query("the SQLite connection is missing") }
        db = found
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

    /// Runs `body` outside a transaction (each statement sees the latest commit).
    func read<T: Sendable>(_ body: nonisolated(nonsending) (Database) async throws -> T) async throws -> T {
        await take()
        defer { give() }
        return try await body(db)
    }

    /// Runs `body` in a read transaction: its statements see one state.
    func snapshot<T: Sendable>(_ body: nonisolated(nonsending) (Database) async throws -> T) async throws -> T {
        await take()
        defer { give() }
        try db.beginTransaction(.deferred)
        defer { if db.isInsideTransaction { try? db.commit() } }
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

/// Runs each job of a `SQLiteSession` on its connection's GRDB queue, inside an access.
private final class ConnectionQueue: SerialExecutor {
    private let connection: any DatabaseWriter

    init(_ connection: any DatabaseWriter) { self.connection = connection }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedSerialExecutor()
        connection.asyncWriteWithoutTransaction { _ in job.runSynchronously(on: executor) }
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor { UnownedSerialExecutor(ordinary: self) }
}
