import Foundation
import Logging

/// How instances sharing one state agree on who does what (§7). The embedded store has one
/// process: it always leads and owns every endpoint.
public protocol Coordination: Sendable {
    /// Whether the state is shared by several processes (then the leases below matter).
    var isShared: Bool { get }
    /// Takes or renews the poller lease; true while this instance is the one that polls.
    func holdPollerLease() async throws -> Bool
    func releasePollerLease() async
    /// Takes or renews the leases of the endpoints this instance delivers (a fair share of
    /// them among the live instances, or every free one with `takeAllFree`); returns those
    /// it holds. An endpoint this instance lets go keeps its lease, undelivered, until it is
    /// among `settled` (nothing of it in flight here, every result recorded), so another
    /// instance never sends what this one is still sending.
    func holdEndpointLeases(_ endpoints: [String], takeAllFree: Bool, settled: Set<String>) async throws -> Set<String>
    func releaseEndpointLeases() async
    /// The endpoints whose leases this instance holds now by its own clock, renewed in time
    /// (nil: the state is not shared, every endpoint is this instance's). A process paused past
    /// its leases starts nothing more when it wakes, before any renewal tells it so.
    func endpointLeasesHeldNow() -> Set<String>?
    /// Runs `poll` under the poller lease as held now: its detection commits carry today's
    /// fencing token and are refused once the lease changed hands since, even if this
    /// instance holds it again by then (a leader paused mid-poll must not commit the page it
    /// read before the pause).
    func underPollerLease<T>(_ poll: () async -> T) async -> T
    /// How long a lease lasts without renewal.
    var leaseDuration: Duration { get }
    /// Closes the connections (PostgreSQL); the store is not used afterwards.
    func close()
}

extension SQLiteStore: Coordination {
    public var isShared: Bool { false }
    public func holdPollerLease() async throws -> Bool { true }
    public func releasePollerLease() async {}
    public func holdEndpointLeases(_ endpoints: [String], takeAllFree: Bool, settled: Set<String>) async throws -> Set<String> { Set(endpoints) }
    public func releaseEndpointLeases() async {}
    public func endpointLeasesHeldNow() -> Set<String>? { nil }
    public func underPollerLease<T>(_ poll: () async -> T) async -> T { await poll() }
    public var leaseDuration: Duration { .seconds(10) }
    public func close() {}
}

/// Opens the state the configuration names.
public enum StateStore {
    /// - Parameter create: false for commands that read or correct state (nothing is created).
    public static func open(_ state: StateConfiguration, logger: Logger, create: Bool = true) async throws -> any Store & Coordination {
        switch state.kind {
        case .sqlite: return try await SQLiteStore.open(directory: state.path, busyTimeout: state.busyTimeout, create: create)
        case .postgres: return try await PostgresStore.open(configuration: state, logger: logger, create: create)
        }
    }

    /// The database file of a SQLite state in `folder`.
    public static func databaseFile(inFolder folder: String) -> String {
        URL(fileURLWithPath: folder).appendingPathComponent(SQLiteStore.fileName).path
    }

    /// Where the state is, for messages (never the URL's password).
    public static func describe(_ state: StateConfiguration) -> String {
        switch state.kind {
        case .sqlite: return state.path
        case .postgres:
            guard let text = state.url?.value, let url = try? PostgresURL(text) else { return "PostgreSQL" }
            return "postgres://\(url.user)@\(url.host):\(url.port)/\(url.database)"
        }
    }
}

extension Coordination {
    /// Lets the leases go (best effort: a lease not released runs out).
    public func releaseLeases(poller: Bool, endpoints: Bool) async {
        if poller { await releasePollerLease() }
        if endpoints { await releaseEndpointLeases() }
    }
}
