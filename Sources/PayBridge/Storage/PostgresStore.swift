import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresNIO
import Synchronization

/// The scale-out store: the same state, outbox and queue as `SQLiteStore`, in PostgreSQL,
/// shared by several `paybridge run` processes.
///
/// - One instance polls: it holds the poller lease (a row with an expiry and a fencing
///   token); every detection write checks the token under a share lock, so a paused old
///   leader cannot commit after losing the lease.
/// - Each endpoint is delivered by one instance at a time (an endpoint lease), so its
///   `concurrency`, `rateLimit`, circuit breaker and per-payment order hold across all
///   instances exactly as in one process. Deliveries are claimed with `FOR UPDATE SKIP
///   LOCKED` and a claim expiry: a dead instance's claims return to the queue.
/// - Commits that queue work `NOTIFY paybridge_queue`; operators' commands
///   `NOTIFY paybridge_change`. Every instance listens.
///
/// Everything is async on PostgresNIO's connections and event loops: no call waits on a
/// thread.
public final class PostgresStore: SQLStore, Coordination, Sendable {
    public let instanceId: String
    /// Statements and transactions of the poller, the dispatcher, the recorder and readers.
    private let connections: PostgresConnections
    /// The leases' session, and the listener's.
    private let coordinator: PostgresSession
    private let listener: PostgresSession
    let logger: Logger
    private let announcements = StateChanges()
    /// Claims and leases last this long without renewal.
    public let leaseDuration: Duration

    private struct State {
        var poller: Lease
        var endpoints: [String: Lease] = [:]
        /// The endpoint let go: its row is deleted at the first renewal that finds it settled.
        var releasing: String?
        var changes: Int64 = 0
    }

    private let state: Mutex<State>

    /// Connects, then creates or migrates the schema (versioned; one instance at a time).
    /// - Parameter create: false for commands that read or correct state: a database without
    ///   paybridge's schema is then `StateMissing`.
    public static func open(configuration: StateConfiguration, logger: Logger, create: Bool = true) async throws -> PostgresStore {
        guard let text = configuration.url?.value else { throw StorageError.url("state.url is required for kind: postgres") }
        let url = try PostgresURL(text)
        var tls = PostgresConnection.Configuration.TLS.disable
        switch configuration.tls {
        case .disable:
            break
        case .require, .verifyFull:
            var settings = TLSConfiguration.makeClientConfiguration()
            // require: encrypted, the server not verified (libpq's sslmode=require).
            settings.certificateVerification = configuration.tls == .verifyFull ? .fullVerification : .none
            if let caFile = configuration.caFile { settings.trustRoots = .file(caFile) }
            tls = .require(try NIOSSLContext(configuration: settings))
        }
        let connection = PostgresConnection.Configuration(
            host: url.host, port: url.port, username: url.user, password: url.password, database: url.database, tls: tls)
        let store = PostgresStore(connection: connection, lease: configuration.lease, logger: logger)
        do {
            if !create {
                let exists: Bool? = try await store.connections.with { connection in
                    try await connection.run("SELECT to_regclass('paybridge_schema') IS NOT NULL", logger: logger).rows.first?.value(0)
                }
                guard exists == true else { throw StateMissing(path: "\(url.host):\(url.port)/\(url.database) (no paybridge schema)") }
            }
            try await store.migrate()
            let notify: @Sendable (String, String) -> Void = { [weak store] channel, sender in store?.notified(channel, from: sender) }
            await store.listener.prepareEachConnection { connection in
                for channel in ["paybridge_queue", "paybridge_change"] {
                    connection.addListener(channel: channel) { _, notification in notify(notification.channel, notification.payload) }
                    try await connection.run("LISTEN \(channel)", logger: logger)
                }
            }
            try await store.listener.open()
        } catch {
            store.close()
            throw error
        }
        return store
    }

    private init(connection: PostgresConnection.Configuration, lease: Duration, logger: Logger) {
        self.logger = logger
        instanceId = UUID().uuidString.lowercased()
        leaseDuration = lease
        state = Mutex(State(poller: Lease(duration: lease)))
        // A process paused inside a transaction (SIGSTOP, a long GC-like stall, a partition)
        // would hold its row locks forever: PostgreSQL ends such a session after one lease,
        // so the instance that took over is never blocked longer than that.
        let setup = ["SET idle_in_transaction_session_timeout = \(max(1000, Int(lease.seconds * 1000)))"]
        connections = PostgresConnections(configuration: connection, logger: logger, setup: setup)
        coordinator = PostgresSession(configuration: connection, logger: logger, setup: setup)
        listener = PostgresSession(configuration: connection, logger: logger, setup: setup)
    }

    /// Closes the connections (in the background: a closing connection waits for nothing
    /// paybridge needs).
    public func close() {
        let (connections, coordinator, listener) = (connections, coordinator, listener)
        Task {
            await connections.close()
            await coordinator.close()
            await listener.close()
        }
    }

    private func notified(_ channel: String, from sender: String) {
        if channel == "paybridge_change" {
            state.withLock { $0.changes += 1 }
            announcements.announce(.changed)
        } else if sender != instanceId {
            // This instance's own commits were announced as they committed: one wake-up each.
            announcements.announce(.queued)
        }
    }

    /// Every instance's commits that queue work NOTIFY, this one's included: its listener
    /// hears them all.
    public func changes() -> AsyncStream<StateChange> {
        announcements.subscribe { [weak self] in try await self?.changeMark() ?? 0 }
    }

    // MARK: Schema

    private func migrate() async throws {
        let logger = logger
        _ = try await connections.transaction { connection in
            // One instance migrates at a time; the others wait, then find it done.
            try await connection.run("SELECT pg_advisory_xact_lock(7461234)", logger: logger)
            return try await Schema.migrate(PostgresSQL(connection: connection, logger: logger))
        }
    }

    /// PostgreSQL's clock, for leases and claims (one clock for every instance).
    static let now = "extract(epoch from clock_timestamp())"

    // MARK: Coordination

    /// This connection's session (backend pid and start), stored with a lease or an
    /// instance: when PostgreSQL sees the session end (the process died, even by SIGKILL,
    /// its socket closed), the lease is free at once rather than at its expiry.
    private static let session = "pg_backend_pid(), (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid())"

    /// Whether the session stored in `row` (a lease or an instance) is still connected.
    private static func alive(_ row: String) -> String {
        "EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = \(row).pid AND a.backend_start = \(row).backend_start)"
    }

    /// Takes `name` for this instance, or renews it; returns the fencing token (it grows by
    /// one with every change of holder), nil when another live holder has it.
    private func takeLease(_ name: String) async throws -> Int64? {
        try await coordinator.run(
            """
            INSERT INTO lease (name, holder, token, expires_at, pid, backend_start) VALUES ($1, $2, 1, \(Self.now) + $3, \(Self.session))
            ON CONFLICT (name) DO UPDATE SET
                token = lease.token + CASE WHEN lease.holder = EXCLUDED.holder THEN 0 ELSE 1 END,
                holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at, pid = EXCLUDED.pid, backend_start = EXCLUDED.backend_start
            WHERE lease.holder = EXCLUDED.holder OR lease.expires_at < \(Self.now) OR NOT \(Self.alive("lease"))
            RETURNING token
            """, [.text(name), .text(instanceId), .double(leaseDuration.seconds)]
        ).rows.first?.value(0)
    }

    public func holdPollerLease() async throws -> Bool {
        let askedAt = ContinuousClock.now
        let token: Int64?
        do {
            token = try await takeLease("poller")
        } catch {
            state.withLock { _ = $0.poller.renewalFailed(at: .now) }
            throw error
        }
        return state.withLock { state in
            _ = state.poller.renewed(token: token, askedAt: askedAt)
            return state.poller.isHeld(at: .now)
        }
    }

    /// Let go, the row stays with its token and no holder: whoever takes the lease next, this
    /// instance too, gets the next token, so work begun under this one stays fenced.
    public func releasePollerLease() async {
        state.withLock { $0.poller.released() }
        _ = try? await coordinator.run(
            "UPDATE lease SET holder = '', expires_at = 0, pid = NULL, backend_start = NULL WHERE name = 'poller' AND holder = $1",
            [.text(instanceId)])
    }

    public func underPollerLease<T>(_ poll: () async -> T) async -> T {
        // Not leading: a token no lease has (they start at 1), so nothing commits.
        await PollerEpoch.$token.withValue(fencingToken ?? 0) { await poll() }
    }

    public func holdEndpointLeases(_ endpoints: [String], takeAllFree: Bool, settled: Set<String>) async throws -> Set<String> {
        let askedAt = ContinuousClock.now
        let duration = leaseDuration
        let tokens: [String: Int64]
        do {
            tokens = try await takeEndpointLeases(endpoints, takeAllFree: takeAllFree, settled: settled)
        } catch {
            state.withLock { state in
                for name in state.endpoints.keys { _ = state.endpoints[name]?.renewalFailed(at: .now) }
            }
            throw error
        }
        return state.withLock { state in
            for endpoint in endpoints {
                _ = state.endpoints[endpoint, default: Lease(duration: duration)].renewed(token: tokens[endpoint], askedAt: askedAt)
            }
            return Set(endpoints.filter { state.endpoints[$0]?.isHeld(at: .now) == true })
        }
    }

    /// Takes or renews a fair share of the endpoints' leases; returns the tokens of those held.
    private func takeEndpointLeases(_ endpoints: [String], takeAllFree: Bool, settled: Set<String>) async throws -> [String: Int64] {
        try await coordinator.run(
            """
            INSERT INTO instance (id, seen_at, pid, backend_start) VALUES ($1, \(Self.now), \(Self.session))
            ON CONFLICT (id) DO UPDATE SET seen_at = EXCLUDED.seen_at, pid = EXCLUDED.pid, backend_start = EXCLUDED.backend_start
            """, [.text(instanceId)])
        try await coordinator.run(
            "DELETE FROM instance WHERE seen_at < \(Self.now) - $1 OR NOT \(Self.alive("instance"))", [.double(leaseDuration.seconds)])
        let live: Int = try await coordinator.run("SELECT COUNT(*)::INTEGER FROM instance").rows.first?.value(0) ?? 1
        // A fair share each, so every instance delivers when there are several endpoints.
        let share = takeAllFree ? endpoints.count : max(1, (endpoints.count + max(1, live) - 1) / max(1, live))
        var held: [String: Int64] = [:]
        let releasing = state.withLock { $0.releasing }
        for endpoint in endpoints {
            let name = "endpoint:\(endpoint)"
            if endpoint == releasing {
                if settled.contains(endpoint) {
                    // Its attempts stopped starting when it was let go and the last one's result
                    // is recorded, while its claims stayed this instance's: another may take it.
                    try await coordinator.run("DELETE FROM lease WHERE name = $1 AND holder = $2", [.text(name), .text(instanceId)])
                    state.withLock { $0.releasing = nil }
                } else if try await takeLease(name) == nil {
                    state.withLock { $0.releasing = nil }  // it ran out meanwhile: nothing to let go
                }
                // Otherwise kept, undelivered, while attempts started before are under way.
                continue
            }
            let mine: Bool? = try await coordinator.run(
                "SELECT holder = $2 FROM lease WHERE name = $1 AND expires_at > \(Self.now) AND \(Self.alive("lease"))",
                [.text(name), .text(instanceId)]
            ).rows.first?.value(0)
            if mine == false { continue }
            if mine == nil, held.count >= share { continue }
            if let token = try await takeLease(name) { held[endpoint] = token }
        }
        // More than a fair share (instances joined): let one go for another to take, one at a
        // time. Not at once: this instance stops starting its attempts now and deletes the
        // lease once they are settled, so the taker never sends what this one still sends.
        if held.count > share, state.withLock({ $0.releasing == nil }), let extra = held.keys.sorted().last {
            held[extra] = nil
            state.withLock { $0.releasing = extra }
        }
        return held
    }

    public func endpointLeasesHeldNow() -> Set<String>? {
        let now = ContinuousClock.now
        return state.withLock { state in Set(state.endpoints.filter { $0.value.isHeld(at: now) }.keys) }
    }

    public func releaseEndpointLeases() async {
        state.withLock { state in
            for name in state.endpoints.keys { state.endpoints[name]?.released() }
        }
        _ = try? await coordinator.run("DELETE FROM lease WHERE name LIKE 'endpoint:%' AND holder = $1", [.text(instanceId)])
        _ = try? await coordinator.run("DELETE FROM instance WHERE id = $1", [.text(instanceId)])
    }

    public var isShared: Bool { true }

    /// The current fencing token, or nil when this instance does not lead (its lease ran out
    /// here even if no renewal said so).
    var fencingToken: Int64? { state.withLock { $0.poller.fencingToken(at: .now) } }

    // MARK: Detection

    public func paymentStates(for paymentIds: [String]) async throws -> [String: PaymentState] {
        let logger = logger
        return try await connections.with { try await Self.paymentStates($0, paymentIds, logger: logger) }
    }

    nonisolated(nonsending) static func paymentStates(
        _ connection: PostgresConnection, _ ids: [String], logger: Logger
    ) async throws -> [String: PaymentState] {
        guard !ids.isEmpty else { return [:] }
        var states: [String: PaymentState] = [:]
        for row in try await connection.run("SELECT id, status, sequence FROM payment WHERE id = ANY($1)", [.texts(ids)], logger: logger).rows {
            states[try row.value(0)] = PaymentState(status: try row.value(1), sequence: try row.value(2))
        }
        return states
    }

    public func write<T: Sendable>(_ body: nonisolated(nonsending) @Sendable (any StoreTransaction) async throws -> T) async throws -> T {
        try await transact(fenced: false) { try await body($0) }
    }

    public func detect<T: Sendable>(_ body: nonisolated(nonsending) @Sendable (any DetectionTransaction) async throws -> T) async throws -> T {
        try await transact(fenced: true) { try await body($0) }
    }

    private func transact<T: Sendable>(
        fenced: Bool, _ body: nonisolated(nonsending) @Sendable (PostgresTransaction) async throws -> T
    ) async throws -> T {
        let (instanceId, logger) = (instanceId, logger)
        let (result, queued) = try await connections.transaction { connection in
            let transaction = PostgresTransaction(session: connection, store: self)
            if fenced { try await transaction.fence() }
            let result = try await body(transaction)
            try await transaction.flush()
            // Signed with this instance's id: its own listener skips it (announced below).
            if transaction.queued { try await connection.run("NOTIFY paybridge_queue, '\(instanceId)'", logger: logger) }
            return (result, transaction.queued)
        }
        // Told here, not through the listener (which a one-shot run may not have yet).
        if queued { announcements.announce(.queued) }
        return result
    }

    func reading<T: Sendable>(_ body: SQLWork<T>) async throws -> T {
        let logger = logger
        return try await connections.with { try await body(PostgresSQL(connection: $0, logger: logger)) }
    }

    /// Every instance listens: a correction wakes their dispatchers and re-reads records.
    func writing<T: Sendable>(announce: Bool, _ body: SQLWork<T>) async throws -> T {
        let logger = logger
        return try await connections.transaction { connection in
            let result = try await body(PostgresSQL(connection: connection, logger: logger))
            if announce {
                try await connection.run("NOTIFY paybridge_change", logger: logger)
                try await connection.run("NOTIFY paybridge_queue", logger: logger)
            }
            return result
        }
    }

    public func changeMark() async throws -> Int64 {
        if await !listener.isOpen {
            // Notifications were missed while disconnected: listen again and count it as a change.
            try await listener.open()
            state.withLock { $0.changes += 1 }
        }
        return state.withLock { $0.changes }
    }

    // MARK: Delivery queue

    public func dueDeliveries(endpoint: String, dueBy: Date, limit: Int, excluding: Set<Int64>) async throws -> [QueuedDelivery] {
        let (instanceId, leaseDuration, logger) = (instanceId, leaseDuration, logger)
        return try await connections.with { connection in
            try await connection.run(
                """
                WITH candidates AS (
                    SELECT d.id FROM delivery d
                    WHERE d.endpoint = $1 AND d.state = 'pending' AND d.due_at <= $2
                      -- Only the endpoint's owner claims: an instance that was paused past its
                      -- lease, and has not yet heard that another took the endpoint, gets nothing
                      -- (the endpoint's concurrency and rate limit hold across instances).
                      AND EXISTS (
                        SELECT 1 FROM lease o WHERE o.name = 'endpoint:' || $1 AND o.holder = $5 AND o.expires_at > \(Self.now))
                      -- A hashed subplan: the ids in memory here can be thousands.
                      AND d.id NOT IN (SELECT unnest($3::BIGINT[]))
                      AND (d.claimed_by IS NULL OR d.claimed_by = $5 OR d.claimed_until < \(Self.now)
                        -- The endpoint's lease moved on: the last owner's claims are void.
                        OR NOT EXISTS (
                            SELECT 1 FROM lease l WHERE l.name = 'endpoint:' || d.endpoint AND l.holder = d.claimed_by
                              AND l.expires_at > \(Self.now)))
                      -- The payment's earliest pending delivery to this endpoint only. A scalar
                      -- subquery is looked up per row in delivery_order; an anti-join planned on
                      -- a young table's statistics would compare every pending row with every other.
                      AND d.sequence = (
                        SELECT MIN(p.sequence) FROM delivery p WHERE p.endpoint = d.endpoint AND p.subject = d.subject AND p.state = 'pending')
                    ORDER BY d.due_at, d.id LIMIT $4
                    FOR UPDATE OF d SKIP LOCKED),
                claimed AS (
                    UPDATE delivery SET claimed_by = $5, claimed_until = \(Self.now) + $6
                    FROM candidates WHERE delivery.id = candidates.id RETURNING delivery.id)
                SELECT d.id, d.event_id, e.type, d.subject, d.sequence, d.attempts, e.created_at, COALESCE(r.body, e.body),
                    r.content_type, r.headers, d.schedule_base
                FROM claimed c JOIN delivery d ON d.id = c.id JOIN event e ON e.row_id = d.event_row
                LEFT JOIN rendering r ON r.id = d.rendering_id
                ORDER BY d.due_at, d.id
                """,
                [.text(endpoint), .date(dueBy), .ints(Array(excluding)), .int(limit), .text(instanceId), .double(leaseDuration.seconds * 3)],
                logger: logger
            ).rows.map { row in
                QueuedDelivery(
                    id: try row.value(0), eventId: try row.value(1), eventType: try row.value(2), endpoint: endpoint, subject: try row.value(3),
                    sequence: try row.value(4), attempts: try row.value(5), createdAt: Date(timeIntervalSince1970: try row.value(6)),
                    body: try row.bytes(7), contentType: try row.value(8), headers: Rendering.headers(fromText: try row.value(9)),
                    scheduleBase: try row.value(10))
            }
        }
    }

}

/// The writes of one PostgreSQL transaction.
final class PostgresTransaction: SQLTransaction {
    let session: PostgresConnection
    unowned let store: PostgresStore
    /// Whether the transaction queued deliveries or group members (then it notifies).
    private(set) var queued = false

    /// Payment states and plain events (no renderings, no groups) wait here and go to the
    /// server in one statement each when the transaction reads, commits or writes something
    /// that must follow them: one round trip per chunk rather than several per change.
    private var states: [String: (state: PaymentState, watch: String, at: Date)] = [:]
    private var stateOrder: [String] = []
    private var events: [Event] = []
    private var deliveries: [(eventId: String, endpoint: String, dueAt: Date)] = []

    var connection: any SQLConnection { PostgresSQL(connection: session, logger: store.logger) }

    init(session: PostgresConnection, store: PostgresStore) {
        self.session = session
        self.store = store
    }

    @discardableResult
    nonisolated(nonsending) private func send(_ sql: String, _ values: [SQLValue] = []) async throws -> PostgresResult {
        try await session.run(sql, values, logger: store.logger)
    }

    /// Sends what waits in the buffers.
    nonisolated(nonsending) func flush() async throws {
        if !stateOrder.isEmpty {
            var ids: [String] = [], statuses: [String] = [], sequences: [Int64] = [], dates: [Double] = [], watches: [String] = []
            for id in stateOrder {
                guard let entry = states[id] else { continue }
                ids.append(id)
                statuses.append(entry.state.status)
                sequences.append(Int64(entry.state.sequence))
                dates.append(entry.at.timeIntervalSince1970)
                watches.append(entry.watch)
            }
            states.removeAll(keepingCapacity: true)
            stateOrder.removeAll(keepingCapacity: true)
            try await send(
                """
                INSERT INTO payment (id, status, sequence, updated_at, first_seen_at, first_status, first_watch)
                SELECT id, status, seq, at, at, status, watch
                FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::DOUBLE PRECISION[], $5::TEXT[]) AS t(id, status, seq, at, watch)
                ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, sequence = EXCLUDED.sequence, updated_at = EXCLUDED.updated_at
                """, [.texts(ids), .texts(statuses), .ints(sequences), .doubles(dates), .texts(watches)])
        }
        if !events.isEmpty {
            let batch = events
            let queuedDeliveries = deliveries
            events.removeAll(keepingCapacity: true)
            deliveries.removeAll(keepingCapacity: true)
            // The same change under the same id is stored once, whoever commits it; its
            // deliveries are created only with the event row.
            try await send(
                """
                WITH input AS (
                    SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::TEXT[], $6::TEXT[], $7::TEXT[],
                        $8::DOUBLE PRECISION[], $9::BYTEA[])
                    AS t(id, type, subject, sequence, status, previous_status, watch, created_at, body)),
                stored AS (
                    INSERT INTO event (id, type, subject, sequence, status, previous_status, watch, created_at, body)
                    SELECT id, type, subject, sequence, NULLIF(status, ''), NULLIF(previous_status, ''), NULLIF(watch, ''), created_at, body
                    FROM input ON CONFLICT (id) DO NOTHING
                    RETURNING row_id, id, subject, sequence, created_at)
                INSERT INTO delivery (event_id, event_row, endpoint, subject, sequence, due_at, created_at, updated_at)
                SELECT stored.id, stored.row_id, d.endpoint, stored.subject, stored.sequence, d.due_at, stored.created_at, stored.created_at
                FROM unnest($10::TEXT[], $11::TEXT[], $12::DOUBLE PRECISION[]) WITH ORDINALITY AS d(event_id, endpoint, due_at, n)
                JOIN stored ON stored.id = d.event_id
                ORDER BY d.n
                """,
                [
                    .texts(batch.map(\.id)), .texts(batch.map(\.type.rawValue)), .texts(batch.map(\.subject)),
                    .ints(batch.map { Int64($0.sequence) }), .texts(batch.map { $0.status ?? "" }), .texts(batch.map { $0.previousStatus ?? "" }),
                    .texts(batch.map { $0.watch ?? "" }), .doubles(batch.map { $0.createdAt.timeIntervalSince1970 }), .byteArrays(batch.map(\.body)),
                    .texts(queuedDeliveries.map(\.eventId)), .texts(queuedDeliveries.map(\.endpoint)),
                    .doubles(queuedDeliveries.map { $0.dueAt.timeIntervalSince1970 }),
                ])
        }
    }

    /// Detection writes need the poller lease: checked when the transaction opens, under a
    /// share lock, so a new leader's takeover waits for this commit and a paused old leader,
    /// whose token has moved on or whose lease expired, commits nothing. Inside a poll the
    /// token is the one it began under (`PollerEpoch`).
    nonisolated(nonsending) func fence() async throws {
        guard let token = store.fencingToken, token == PollerEpoch.token ?? token else { throw StorageError.leaseLost }
        let held = try await send(
            "SELECT 1 FROM lease WHERE name = 'poller' AND holder = $1 AND token = $2 AND expires_at > \(PostgresStore.now) FOR SHARE",
            [.text(store.instanceId), .int(token)]
        ).rows
        guard !held.isEmpty else { throw StorageError.leaseLost }
    }

    nonisolated(nonsending) func paymentStates(for paymentIds: [String]) async throws -> [String: PaymentState] {
        try await flush()
        return try await PostgresStore.paymentStates(session, paymentIds, logger: store.logger)
    }

    nonisolated(nonsending) func savePaymentState(paymentId: String, state: PaymentState, watch: String, at date: Date) async throws {
        if states.updateValue((state, watch, date), forKey: paymentId) == nil { stateOrder.append(paymentId) }
    }

    nonisolated(nonsending) func append(_ entry: OutboxEntry, dueAt: Date) async throws {
        let event = entry.event
        if entry.renderings.isEmpty, entry.memberships.isEmpty {
            events.append(event)
            for (endpoint, _) in entry.deliveries { deliveries.append((event.id, endpoint, dueAt)) }
            if entry.queuesWork { queued = true }
            return
        }
        try await flush()
        // The same change under the same id is stored once, whoever commits it.
        if try await insert(entry, dueAt: dueAt) { queued = true }
    }

    nonisolated(nonsending) func recordAttempts(_ attempts: [AttemptRecord], at date: Date) async throws {
        guard !attempts.isEmpty else { return }
        // Two statements for the whole batch: the attempt log, then the deliveries.
        let logged = attempts.filter(\.needsAttemptRow)
        if !logged.isEmpty {
            try await send(
                """
                INSERT INTO attempt (delivery_id, number, started_at, duration_ms, http_status, error, response)
                SELECT id, number, started_at, duration_ms, NULLIF(http_status, -1), error, response
                FROM unnest($1::BIGINT[], $2::BIGINT[], $3::DOUBLE PRECISION[], $4::DOUBLE PRECISION[], $5::BIGINT[], $6::TEXT[], $7::TEXT[],
                    $8::BOOLEAN[], $9::BOOLEAN[])
                    AS t(id, number, started_at, duration_ms, http_status, error_text, response_text, has_error, has_response),
                LATERAL (SELECT CASE WHEN has_error THEN error_text END AS error, CASE WHEN has_response THEN response_text END AS response) AS n
                ON CONFLICT (delivery_id, number) DO UPDATE SET started_at = EXCLUDED.started_at, duration_ms = EXCLUDED.duration_ms,
                    http_status = EXCLUDED.http_status, error = EXCLUDED.error, response = EXCLUDED.response
                """,
                [
                    .ints(logged.map(\.deliveryId)), .ints(logged.map { Int64($0.attempt) }),
                    .doubles(logged.map { $0.startedAt.timeIntervalSince1970 }), .doubles(logged.map { Double($0.duration.milliseconds) }),
                    .ints(logged.map { Int64($0.httpStatus ?? -1) }), .texts(logged.map { $0.error ?? "" }), .texts(logged.map { $0.response ?? "" }),
                    .bools(logged.map { $0.error != nil }), .bools(logged.map { $0.response != nil }),
                ])
        }
        var states: [String] = [], dueAts: [Double] = [], deliveredAts: [Double] = []
        for record in attempts {
            switch record.next {
            case .delivered:
                states.append(DeliveryState.delivered.rawValue)
                dueAts.append(-1)
                deliveredAts.append(record.startedAt.timeIntervalSince1970 + Double(record.duration.milliseconds) / 1000)
            case .dead:
                states.append(DeliveryState.dead.rawValue)
                dueAts.append(-1)
                deliveredAts.append(-1)
            case .retry(let at):
                states.append(DeliveryState.pending.rawValue)
                dueAts.append(at.timeIntervalSince1970)
                deliveredAts.append(-1)
            }
        }
        try await send(
            """
            UPDATE delivery d SET state = u.state, attempts = u.attempts, due_at = COALESCE(NULLIF(u.due_at, -1), d.due_at),
                last_status = NULLIF(u.last_status, -1), last_error = CASE WHEN u.has_error THEN u.last_error END, updated_at = $11,
                delivered_at = NULLIF(u.delivered_at, -1), last_attempt_at = u.last_attempt_at, last_duration_ms = u.last_duration_ms,
                claimed_by = NULL, claimed_until = NULL
            FROM unnest($1::BIGINT[], $2::TEXT[], $3::BIGINT[], $4::DOUBLE PRECISION[], $5::BIGINT[], $6::TEXT[], $7::BOOLEAN[],
                $8::DOUBLE PRECISION[], $9::DOUBLE PRECISION[], $10::DOUBLE PRECISION[])
                AS u(id, state, attempts, due_at, last_status, last_error, has_error, delivered_at, last_attempt_at, last_duration_ms)
            WHERE d.id = u.id AND d.state = 'pending'
            """,
            [
                .ints(attempts.map(\.deliveryId)), .texts(states), .ints(attempts.map { Int64($0.attempt) }), .doubles(dueAts),
                .ints(attempts.map { Int64($0.httpStatus ?? -1) }), .texts(attempts.map { $0.error ?? "" }), .bools(attempts.map { $0.error != nil }),
                .doubles(deliveredAts), .doubles(attempts.map { $0.startedAt.timeIntervalSince1970 }),
                .doubles(attempts.map { Double($0.duration.milliseconds) }), .double(date.timeIntervalSince1970),
            ])
    }
}

extension PostgresRow {
    func value<T: PostgresDecodable>(_ index: Int) throws -> T {
        try makeRandomAccess()[index].decode(T.self)
    }

    func date(_ index: Int) throws -> Date? {
        (try value(index) as Double?).map(Date.init(timeIntervalSince1970:))
    }

    func bytes(_ index: Int) throws -> [UInt8] {
        let buffer: ByteBuffer? = try value(index)
        return buffer.map { Array($0.readableBytesView) } ?? []
    }
}
