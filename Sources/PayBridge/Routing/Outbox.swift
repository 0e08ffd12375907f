import Foundation

/// The one way into the outbox. Every event paybridge emits — a detected change, the bank's
/// availability, an endpoint disabled, a group's message — is routed and rendered here before
/// its transaction opens, and appended here inside it, with the records it commits with.
/// Nothing else appends to the outbox; no transaction routes.
public struct Outbox: Sendable {
    /// An event to emit, with what routing needs.
    public struct Emission: Sendable {
        public var event: Event
        /// The payment's raw bytes (payment events): parsed only when a route looks inside.
        public var payment: ArraySlice<UInt8>?
        /// An endpoint never to send it to (the one an `endpoint.disabled` is about).
        public var excluding: String?

        public init(_ event: Event, payment: ArraySlice<UInt8>? = nil, excluding: String? = nil) {
            self.event = event
            self.payment = payment
            self.excluding = excluding
        }
    }

    /// Events routed and rendered, by event id, waiting for their transaction.
    public struct Routed: Sendable {
        fileprivate var entries: [String: OutboxEntry] = [:]
        /// In the order they were routed.
        fileprivate var order: [String] = []
    }

    /// What a transaction through the outbox committed.
    public struct Committed<Value: Sendable>: Sendable {
        public var value: Value
        /// The events appended, in order.
        public var events: [Event]
        /// Whether they queued work for the dispatcher (deliveries or group members).
        public var queuedWork: Bool
    }

    private let store: any OutboxStore
    public let pipeline: Pipeline

    public init(store: any OutboxStore, pipeline: Pipeline) {
        self.store = store
        self.pipeline = pipeline
    }

    /// Routes and renders `emissions`; call it before the transaction.
    public func route(_ emissions: [Emission]) -> Routed {
        var routed = Routed()
        routed.entries.reserveCapacity(emissions.count)
        for emission in emissions where routed.entries[emission.event.id] == nil {
            routed.entries[emission.event.id] = pipeline.entry(for: emission.event, payment: emission.payment, excluding: emission.excluding)
            routed.order.append(emission.event.id)
        }
        return routed
    }

    /// Runs `body` in one write transaction and appends `emissions` in it (routed first).
    public func write<T: Sendable>(
        emitting emissions: [Emission], _ body: nonisolated(nonsending) @Sendable @escaping (any StoreTransaction) async throws -> T
    ) async throws -> Committed<T> {
        let routed = route(emissions)
        return try await store.write { transaction in
            let value = try await body(transaction)
            return try await Committed(value: value, events: [], queuedWork: false).appending(routed, routed.order, to: transaction)
        }
    }

    /// Runs `body` in one detection transaction (fenced: see `OutboxStore.detect`) and appends
    /// `emissions` in it (routed first).
    public func detect<T: Sendable>(
        emitting emissions: [Emission], _ body: nonisolated(nonsending) @Sendable @escaping (any DetectionTransaction) async throws -> T
    ) async throws -> Committed<T> {
        let routed = route(emissions)
        return try await detect(choosingFrom: routed) { transaction in (try await body(transaction), emit: routed.order) }
    }

    /// Runs `body` in one detection transaction; of the events `routed` before it, appends
    /// those `body` names (its diff decides which), in that order. Naming an event that was not
    /// routed throws `OutboxError.notRouted` and commits nothing: when `body`'s diff finds a
    /// change nobody routed, it returns without writing and routes again (as the poller does).
    public func detect<T: Sendable>(
        choosingFrom routed: Routed,
        _ body: nonisolated(nonsending) @Sendable @escaping (any DetectionTransaction) async throws -> (T, emit: [String])
    ) async throws -> Committed<T> {
        try await store.detect { transaction in
            let (value, chosen) = try await body(transaction)
            return try await Committed(value: value, events: [], queuedWork: false).appending(routed, chosen, to: transaction)
        }
    }

    /// Queues a group's message for its endpoint (rendered in the endpoint's format) and marks
    /// the members it carries as sent, in one transaction.
    public func emitGroupMessage(_ message: Event, for group: PendingGroup, interval: Duration, at date: Date) async throws {
        let entry = pipeline.groupEntry(for: message, endpoint: group.endpoint)
        try await store.write { try await $0.appendGroupMessage(entry, for: group, interval: interval, at: date) }
    }
}

extension Outbox.Committed {
    /// Appends the routed events named by `ids`, each due when it was created.
    nonisolated(nonsending) fileprivate func appending(
        _ routed: Outbox.Routed, _ ids: [String], to transaction: any StoreTransaction
    ) async throws -> Self {
        var committed = self
        for id in ids {
            guard let entry = routed.entries[id] else { throw OutboxError.notRouted(eventId: id) }
            try await transaction.append(entry, dueAt: entry.event.createdAt)
            committed.events.append(entry.event)
            committed.queuedWork = committed.queuedWork || entry.queuesWork
        }
        return committed
    }
}

/// A transaction named an event that was not routed before it opened (a bug, never silent).
public enum OutboxError: Error, Sendable, CustomStringConvertible {
    case notRouted(eventId: String)

    public var description: String {
        switch self {
        case .notRouted(let id): "event \(id) reached the outbox without being routed first"
        }
    }
}
