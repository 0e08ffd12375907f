import Foundation

/// What paybridge remembers of a payment: its last status and how many events it has had.
public struct PaymentState: Sendable, Equatable {
    public var status: String
    public var sequence: Int

    public init(status: String, sequence: Int) {
        self.status = status
        self.sequence = sequence
    }
}

/// What paybridge remembers of a watch.
public struct WatchRecord: Sendable, Equatable {
    /// Set once a whole poll of the watch has succeeded: later polls emit events.
    public var baselinedAt: Date?
    public var lastSuccessAt: Date?
}

/// What paybridge remembers of an endpoint between runs.
public struct EndpointRecord: Sendable, Equatable {
    public var disabledAt: Date?
    public var disabledReason: String?
    /// Start of the current run of failures, kept so a restart does not reset the clock
    /// of `disableAfter`.
    public var failingSince: Date?
    /// What the last run saw (`EndpointStats`), for operators.
    public var stats = EndpointStats()

    public init(disabledAt: Date? = nil, disabledReason: String? = nil, failingSince: Date? = nil) {
        self.disabledAt = disabledAt
        self.disabledReason = disabledReason
        self.failingSince = failingSince
    }
}

/// An endpoint's recent history as the dispatcher reports it with its results: when it last
/// answered 2xx, when it last failed, failures in a row, its circuit (`closed`, `open`,
/// `half-open`, `disabled`).
public struct EndpointStats: Sendable, Equatable {
    public var lastSuccessAt: Date?
    public var lastFailureAt: Date?
    public var failures = 0
    public var circuit: EndpointHealth.Circuit?

    public init(lastSuccessAt: Date? = nil, lastFailureAt: Date? = nil, failures: Int = 0, circuit: EndpointHealth.Circuit? = nil) {
        self.lastSuccessAt = lastSuccessAt
        self.lastFailureAt = lastFailureAt
        self.failures = failures
        self.circuit = circuit
    }
}

/// What paybridge remembers of the bank's availability between runs.
public struct SourceRecord: Sendable, Equatable {
    public var failingSince: Date?
    /// When `source.unavailable` was emitted for the current outage.
    public var announcedAt: Date?
    /// Change number of the `source` subject (orders its events).
    public var sequence: Int

    public init(failingSince: Date? = nil, announcedAt: Date? = nil, sequence: Int = 0) {
        self.failingSince = failingSince
        self.announcedAt = announcedAt
        self.sequence = sequence
    }
}

/// A delivery waiting for its next attempt, with what that attempt sends.
public struct QueuedDelivery: Sendable, Equatable {
    public var id: Int64
    public var eventId: String
    public var eventType: String
    public var endpoint: String
    public var subject: String
    public var sequence: Int
    /// Attempts made before this one.
    public var attempts: Int
    /// When the event was detected (for latency figures).
    public var createdAt: Date
    public var body: [UInt8]
    /// The body's content type and the headers that go with it (nil: the standard format's).
    public var contentType: String?
    public var headers: [Rendering.Header]
    /// Attempts made before the last replay: the retry schedule starts again from there.
    public var scheduleBase: Int

    public init(
        id: Int64, eventId: String, eventType: String, endpoint: String, subject: String, sequence: Int, attempts: Int, createdAt: Date,
        body: [UInt8], contentType: String? = nil, headers: [Rendering.Header] = [], scheduleBase: Int = 0
    ) {
        self.scheduleBase = scheduleBase
        self.id = id
        self.eventId = eventId
        self.eventType = eventType
        self.endpoint = endpoint
        self.subject = subject
        self.sequence = sequence
        self.attempts = attempts
        self.createdAt = createdAt
        self.body = body
        self.contentType = contentType
        self.headers = headers
    }
}

/// A group of a grouped endpoint whose next message is due, with the events it will carry.
public struct PendingGroup: Sendable {
    public var endpoint: String
    /// The `by` values as JSON text.
    public var key: String
    /// Messages sent so far.
    public var sequence: Int
    /// Not yet in any message, oldest first.
    public var members: [Member]

    public struct Member: Sendable {
        public var eventRow: Int64
        public var eventId: String
        /// The event's stored (standard) body.
        public var body: [UInt8]
    }
}

/// The state of a delivery row.
public enum DeliveryState: String, Sendable, CaseIterable {
    case pending
    case delivered
    case dead
}

/// One attempt's result and what it means for the delivery.
public struct AttemptRecord: Sendable, Equatable {
    public enum Next: Sendable, Equatable {
        case delivered
        case retry(at: Date)
        case dead
    }

    public var deliveryId: Int64
    /// 1 for the first attempt.
    public var attempt: Int
    public var startedAt: Date
    public var duration: Duration
    public var httpStatus: Int?
    public var error: String?
    /// The first bytes of a non-2xx answer.
    public var response: String?
    public var next: Next

    public init(
        deliveryId: Int64, attempt: Int, startedAt: Date, duration: Duration, httpStatus: Int?, error: String?, response: String? = nil,
        next: Next
    ) {
        self.response = response
        self.deliveryId = deliveryId
        self.attempt = attempt
        self.startedAt = startedAt
        self.duration = duration
        self.httpStatus = httpStatus
        self.error = error
        self.next = next
    }
}

extension AttemptRecord {
    /// A first attempt that succeeded without a body lives on its delivery's row alone; every
    /// other attempt has a row of its own.
    var needsAttemptRow: Bool { next != .delivered || attempt > 1 || response != nil }
}

/// A delivery as operators and tests see it.
public struct DeliveryRecord: Sendable, Equatable {
    public var id: Int64
    public var eventId: String
    public var eventType: String
    public var endpoint: String
    public var subject: String
    public var sequence: Int
    public var state: DeliveryState
    public var attempts: Int
    public var dueAt: Date
    public var updatedAt: Date
    public var lastStatus: Int?
    public var lastError: String?
    public var createdAt: Date
    public var deliveredAt: Date?
    public var lastAttemptAt: Date?
    public var lastDurationMs: Double?

    /// `failing` is a pending delivery whose last attempt failed.
    public var isFailing: Bool { state == .pending && attempts > 0 }
}

/// What a retention pass removed.
public struct PruneReport: Sendable, Equatable {
    public var deliveries = 0
    public var attempts = 0
    public var events = 0
}

/// The writes of one transaction: all of them commit, or none. These are the writes any
/// process may make (delivery results, endpoint records, group messages, operational events).
public protocol StoreTransaction {
    /// Stores the event, its renderings, one pending delivery per endpoint due at `dueAt`, and
    /// its group memberships. An event already stored is left as it is (re-running a poll
    /// after a crash appends nothing twice).
    nonisolated(nonsending) func append(_ entry: OutboxEntry, dueAt: Date) async throws
    /// Stores a group's message (an entry for its endpoint) and marks the members it carries
    /// as sent; members that arrived meanwhile wait for the next message, `interval` later.
    nonisolated(nonsending) func appendGroupMessage(_ entry: OutboxEntry, for group: PendingGroup, interval: Duration, at date: Date) async throws
    /// Saves whether the endpoint is disabled and since when it fails (not its stats).
    nonisolated(nonsending) func saveEndpointRecord(name: String, _ record: EndpointRecord) async throws
    nonisolated(nonsending) func saveEndpointStats(name: String, _ stats: EndpointStats) async throws
    /// Logs the attempts and moves their deliveries on (delivered, retry at, dead); `date`
    /// stamps the rows.
    nonisolated(nonsending) func recordAttempts(_ attempts: [AttemptRecord], at date: Date) async throws
}

/// The writes detection makes: what paybridge knows of payments, watches and the bank. They
/// exist only in a transaction `OutboxStore.detect` opened, which commits only while this
/// process holds the poller lease's current fencing token (on a shared state): the rule is in
/// that one place, not in each write.
public protocol DetectionTransaction: StoreTransaction {
    nonisolated(nonsending) func paymentStates(for paymentIds: [String]) async throws -> [String: PaymentState]
    /// `watch` is kept with the first sighting.
    nonisolated(nonsending) func savePaymentState(paymentId: String, state: PaymentState, watch: String, at date: Date) async throws
    nonisolated(nonsending) func recordWatchPoll(name: String, at date: Date, baselined: Bool) async throws
    nonisolated(nonsending) func replaceWatchMembers(name: String, paymentIds: Set<String>) async throws
    /// `name`: `source` (the bank's availability) or `notifications` (the subscription's).
    nonisolated(nonsending) func saveSourceRecord(_ record: SourceRecord, name: String) async throws
}

/// Detection and the outbox: last known states, and one write transaction per chunk of
/// changes (states, events, deliveries, group members commit together).
public protocol OutboxStore: Sendable {
    /// Reads last known states outside any write.
    func paymentStates(for paymentIds: [String]) async throws -> [String: PaymentState]
    /// Runs `body` in one write transaction.
    func write<T: Sendable>(_ body: nonisolated(nonsending) @Sendable (any StoreTransaction) async throws -> T) async throws -> T
    /// Runs `body` in one detection transaction: on a shared state it commits only under the
    /// poller lease's current fencing token, else throws `StorageError.leaseLost` having
    /// committed nothing.
    func detect<T: Sendable>(_ body: nonisolated(nonsending) @Sendable (any DetectionTransaction) async throws -> T) async throws -> T
    /// Fails unless a write transaction can commit now (the storage-fault probe).
    func checkWritable(at date: Date) async throws
    /// A number that changes whenever another process commits to the state (an operator's
    /// command); this process's own commits leave it as it is.
    func changeMark() async throws -> Int64
    /// The wake-up signal: `.queued` when a commit queued deliveries, `.changed` when another
    /// process or an operator changed the state. One subscription per call.
    func changes() -> AsyncStream<StateChange>
}

/// What paybridge remembers of watches, endpoints and the bank between runs.
public protocol RecordStore: Sendable {
    func watchRecord(name: String) async throws -> WatchRecord?
    /// The watch's members (status-filtered watches) with when paybridge last saw each one's
    /// status change.
    func watchMemberChanges(name: String) async throws -> [String: Date?]
    func endpointRecords() async throws -> [String: EndpointRecord]
    /// `name`: `source` (the bank's availability) or `notifications` (the subscription's).
    func sourceRecord(name: String) async throws -> SourceRecord
}

extension RecordStore {
    public func sourceRecord() async throws -> SourceRecord { try await sourceRecord(name: "source") }
}

extension DetectionTransaction {
    nonisolated(nonsending) public func saveSourceRecord(_ record: SourceRecord) async throws {
        try await saveSourceRecord(record, name: "source")
    }
}

/// The delivery queue as the dispatcher reads it (results go through `OutboxStore.write`).
public protocol DeliveryQueue: Sendable {
    /// Pending deliveries of `endpoint` due by `dueBy` whose subject has no earlier pending
    /// delivery to the same endpoint, oldest first, skipping the ids in `excluding`. On a
    /// shared state they are claimed for this instance.
    func dueDeliveries(endpoint: String, dueBy: Date, limit: Int, excluding: Set<Int64>) async throws -> [QueuedDelivery]
    /// The earliest due time after `date` among pending deliveries of `endpoints`.
    func nextDueDate(after date: Date, endpoints: [String]) async throws -> Date?
    /// When the endpoint's next group message is due (nil: no group is waiting).
    func nextGroupFlush(endpoint: String) async throws -> Date?
    /// The endpoint's groups due by `dueBy`, with their waiting members.
    func dueGroups(endpoint: String, dueBy: Date) async throws -> [PendingGroup]
    /// Pending deliveries per endpoint (cheap: an index covers it).
    func pendingCounts() async throws -> [String: Int]
}

/// Retention and the operator's purge.
public protocol RetentionStore: Sendable {
    /// Deletes dead deliveries of `endpoint` last touched before `before`.
    func purgeDead(endpoint: String, before: Date) async throws -> Int
    /// Deletes delivered deliveries, their attempts, and events left without deliveries, all
    /// older than `before`. Dead letters and pending deliveries are kept.
    func prune(before: Date) async throws -> PruneReport
}

/// The whole state, as a backend implements it: SQLite (the embedded default) and
/// PostgreSQL. Every SQL statement of paybridge lives behind these role protocols, in
/// `Storage/`; leases and wake-ups are `Coordination`.
public typealias Store = OutboxStore & RecordStore & DeliveryQueue & RetentionStore & InspectionStore & NotificationStore


extension InspectionStore {
    /// Deliveries of an endpoint in one state, oldest first (tests and the old listing).
    public func deliveries(endpoint: String?, state: DeliveryState?, limit: Int) async throws -> [DeliveryRecord] {
        let filterState = state.flatMap { DeliveryFilter.State(rawValue: $0.rawValue) }
        return try await deliveries(DeliveryFilter(endpoint: endpoint, state: filterState, limit: limit)).reversed()
    }
}
