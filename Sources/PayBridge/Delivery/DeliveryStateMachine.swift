import Foundation

/// Every decision of the delivery side, as a value: which deliveries start, when an
/// endpoint's queue is read again, what an attempt's result means, when to wake up. No
/// threads, locks, libcurl or store inside: the `Dispatcher` feeds it inputs (deliveries
/// queued, an attempt finished, results committed, an operator's change, a deadline
/// reached, stop) and carries out the actions it returns (start these attempts, record
/// these results, refill this endpoint's queue, wake me at T).
///
/// Every timer is a deadline this machine owns and reports through `.wake(at:)`: a retry's
/// due time (including `Retry-After`), a later event of a payment unblocked by a 2xx or a
/// dead letter, a circuit's probe, a rate limit's next slot, a stop's grace period.
///
/// The store is the truth about what is pending; the machine remembers only what it needs
/// to know when to look again: per endpoint, the deliveries fetched but not started, those
/// in flight, results not yet committed, and the earliest due time it knows of.
public struct DeliveryStateMachine: Sendable {
    /// How long after a refill a committed result may trigger the next one: under load,
    /// results arrive by the thousand and one look at the queue serves many of them.
    public static let successorRefillSpacing: TimeInterval = 0.005
    /// While a refill fails (storage fault), it is tried again after this.
    public static let refillRetry: TimeInterval = 1

    public enum Mode: Sendable, Equatable {
        /// Until `stop` (`paybridge run`).
        case continuous
        /// Until nothing due by the date is left to attempt (`paybridge poll --once`).
        case drain(dueBy: Date)
    }

    public enum Input: Sendable {
        /// A run starts: every endpoint's queue is read afresh.
        case begin(Mode)
        /// Switch a continuous run to a drain (`poll --once` delivers while it polls).
        case drain(dueBy: Date)
        /// New deliveries were committed by this process (the poller, a monitor).
        case deliveriesQueued
        /// Another process committed something (an operator's replay, enable or disable);
        /// `records` are the endpoints' records as the store now has them.
        case externalChange(records: [String: EndpointRecord])
        /// The answer to a `.refill`.
        case refilled(lane: Int, deliveries: [QueuedDelivery], exhausted: Bool, nextDue: Date?)
        /// A `.refill` failed (the store refused the read).
        case refillFailed(lane: Int)
        /// The answer to `.readGroupSchedule`: when the lane's next group message is due.
        case groupSchedule(lane: Int, next: Date?)
        /// The answer to `.flushGroups`: `messages` were queued; the next is due at `next`.
        case groupsFlushed(lane: Int, messages: Int, next: Date?)
        /// A `.readGroupSchedule` or `.flushGroups` failed (the store refused it).
        case groupsFailed(lane: Int)
        case attemptFinished(AttemptEnd)
        /// The recorder committed these results (and these endpoints' disabled records).
        case resultsCommitted(Commit)
        /// The state storage takes writes again, or stopped taking them.
        case storage(available: Bool)
        /// Instances sharing a PostgreSQL state: the endpoints this instance delivers now
        /// (it holds their leases), with their records as stored. Only owned lanes start
        /// attempts, read queues or flush groups; a lane taken over starts from its record.
        case ownership(owned: Set<String>, records: [String: EndpointRecord])
        /// The time reported by the last `.wake(at:)` has come.
        case deadline
        /// Graceful stop: no new attempts; those in flight get until `deadline`.
        case stop(deadline: Date)
    }

    /// How one attempt ended, as the transport reported it.
    public struct AttemptEnd: Sendable {
        public var lane: Int
        public var delivery: QueuedDelivery
        public var startedAt: Date
        public var finishedAt: Date
        public var result: AttemptResult
        /// A number in 0..<1 for the retry schedule's jitter.
        public var random: Double

        public init(lane: Int, delivery: QueuedDelivery, startedAt: Date, finishedAt: Date, result: AttemptResult, random: Double = 0.5) {
            self.lane = lane
            self.delivery = delivery
            self.startedAt = startedAt
            self.finishedAt = finishedAt
            self.result = result
            self.random = random
        }
    }

    /// What one commit of the recorder made durable.
    public struct Commit: Sendable {
        public var deliveryIds: [Int64]
        /// Endpoints whose `endpoint.disabled` event and record were committed.
        public var disabledEndpoints: [String]
        /// Whether the commit queued new deliveries (an `endpoint.disabled` event for others).
        public var queuedDeliveries: Bool

        public init(deliveryIds: [Int64], disabledEndpoints: [String] = [], queuedDeliveries: Bool = false) {
            self.deliveryIds = deliveryIds
            self.disabledEndpoints = disabledEndpoints
            self.queuedDeliveries = queuedDeliveries
        }
    }

    /// An attempt's result, ready to commit.
    public struct Outcome: Sendable, Equatable {
        public var lane: Int
        public var delivery: QueuedDelivery
        public var record: AttemptRecord
    }

    /// A change of an endpoint's state worth a log line, a metric and sometimes an event.
    public enum Announcement: Sendable, Equatable {
        /// The first failure after a success (the circuit is still closed).
        case failing(since: Date)
        case opened(until: Date, failures: Int)
        case halfOpened
        case recovered(failingSince: Date)
        /// By paybridge (410, or failing too long): the executor commits its
        /// `endpoint.disabled` event with the endpoint's record.
        case disabled(reason: String, failingSince: Date?)
        /// By an operator (`paybridge endpoints disable`): the record is already stored.
        case disabledByOperator(reason: String)
        case enabled
    }

    public enum Action: Sendable, Equatable {
        /// Send this delivery now.
        case start(lane: Int, delivery: QueuedDelivery)
        /// Read up to `limit` pending deliveries of the lane's endpoint due by `dueBy`, whose
        /// payment has no earlier pending delivery, skipping `excluding`; answer `.refilled`,
        /// with the earliest due time after `dueBy` when fewer came back and `askNextDue`.
        case refill(lane: Int, dueBy: Date, limit: Int, excluding: Set<Int64>, askNextDue: Bool)
        /// Commit an attempt's result; answer `.resultsCommitted`.
        case record(Outcome)
        /// Read when the lane's next group message is due; answer `.groupSchedule`.
        case readGroupSchedule(lane: Int)
        /// Build and queue the lane's group messages due by `dueBy`; answer `.groupsFlushed`.
        case flushGroups(lane: Int, dueBy: Date)
        /// Save the endpoint's record (its circuit opened or closed).
        case saveEndpointRecord(lane: Int, EndpointRecord)
        case announce(lane: Int, Announcement, at: Date)
        /// Nothing to do before this time unless an input arrives (nil: only an input).
        case wake(at: Date?)
        /// The run is over; `abandoned` attempts were still in flight (they stay pending).
        case finish(abandoned: Int)
    }

    /// One endpoint's lane: its health, limits and what the machine knows of its queue, each a
    /// small machine of its own (`EndpointHealth`, `RateLimiter`, `QueueCursor`, `GroupClock`).
    struct Lane: Sendable {
        let settings: DeliveryLaneSettings
        var health: EndpointHealth
        var limiter: RateLimiter?
        var queue = QueueCursor()
        var groups: GroupClock
        var inFlight: Set<Int64> = []
        /// Results handed to the recorder and not committed yet: not read from the store meanwhile.
        var unrecorded: Set<Int64> = []
        /// A disabled record not committed yet: an operator's stale "enabled" must not undo it.
        var disableUnsaved = false
        /// Whether this instance delivers the endpoint (always, unless the state is shared).
        var ownership = LaneOwnership.owned
        var owned: Bool { ownership == .owned }
    }

    private(set) var lanes: [Lane]
    private var mode: Mode?
    private var stopDeadline: Date?
    private var storageAvailable = true
    /// Results handed to the recorder and not committed yet, with what they decided.
    private var unrecorded: [Int64: (lane: Int, next: AttemptRecord.Next)] = [:]

    /// - Parameters:
    ///   - records: the endpoints' records as stored (disabled ones stay disabled).
    ///   - owned: the endpoints this instance delivers (nil: all of them).
    public init(lanes settings: [DeliveryLaneSettings], records: [String: EndpointRecord], owned: Set<String>? = nil) {
        lanes = settings.map { settings in
            var lane = Lane(
                settings: settings,
                health: EndpointHealth(settings: settings.breaker, disableAfter: settings.disableAfter, record: records[settings.endpoint]),
                limiter: settings.rateLimit.map { RateLimiter(perSecond: $0) }, groups: GroupClock(grouped: settings.grouped))
            if let owned, !owned.contains(settings.endpoint) { lane.ownership = .elsewhere }
            return lane
        }
    }

    public func isOwned(lane index: Int) -> Bool { lanes[index].owned }
    /// Not owned, nothing in flight, every result recorded, no group message being queued.
    public func isSettled(lane index: Int) -> Bool {
        let lane = lanes[index]
        return !lane.owned && lane.inFlight.isEmpty && lane.unrecorded.isEmpty && !lane.groups.isBusy
    }

    private var isDrain: Bool {
        if case .drain = mode { return true }
        return false
    }

    public var isRunning: Bool { mode != nil }
    public var inFlightCount: Int { lanes.reduce(0) { $0 + $1.inFlight.count } }
    public var unrecordedCount: Int { unrecorded.count }
    public func health(ofLane index: Int) -> EndpointHealth { lanes[index].health }
    public func inFlight(ofLane index: Int) -> Int { lanes[index].inFlight.count }

    // MARK: Inputs

    public mutating func handle(_ input: Input, now: Date) -> [Action] {
        handle([input], now: now)
    }

    /// Applies the inputs in order, then decides once what to start and when to wake.
    public mutating func handle(_ inputs: [Input], now: Date) -> [Action] {
        var actions: [Action] = []
        for input in inputs { apply(input, now: now, into: &actions) }
        schedule(now: now, into: &actions)
        return actions
    }

    private mutating func apply(_ input: Input, now: Date, into actions: inout [Action]) {
        switch input {
        case .begin(let mode):
            self.mode = mode
            stopDeadline = nil
            // Results an earlier run's recorder never committed (the state refused them until
            // it gave up) will never be acknowledged: their deliveries are pending in the
            // store, to be attempted again. Waiting for them would keep a drain from ever
            // ending (`poll --once` hung after a full disk), and excluding them from refills
            // would never send them.
            unrecorded.removeAll()
            for index in lanes.indices {
                // Attempts left in flight by an earlier run that stopped are not waited for.
                lanes[index].inFlight.removeAll()
                lanes[index].unrecorded.removeAll()
                lanes[index].queue.begin(now: now)
                lanes[index].groups.begin()
            }
        case .drain(let dueBy):
            guard mode != nil else { return }
            if case .drain(let earlier) = mode { mode = .drain(dueBy: max(earlier, dueBy)) } else { mode = .drain(dueBy: dueBy) }
            lookEverywhere(at: now)
        case .deliveriesQueued:
            lookEverywhere(at: now)
        case .externalChange(let records):
            for index in lanes.indices where lanes[index].owned {
                let record = records[lanes[index].settings.endpoint]
                if lanes[index].health.isDisabled, record?.disabledAt == nil, !lanes[index].disableUnsaved {
                    lanes[index].health.enable()
                    actions.append(.announce(lane: index, .enabled, at: now))
                } else if !lanes[index].health.isDisabled, let at = record?.disabledAt {
                    let reason = record?.disabledReason ?? "disabled by an operator"
                    lanes[index].health.disable(reason: reason, at: at)
                    actions.append(.announce(lane: index, .disabledByOperator(reason: reason), at: now))
                }
            }
            // A replay makes deliveries due now, with nothing else to say so.
            lookEverywhere(at: now)
            for index in lanes.indices { lanes[index].queue.forgetNextDue() }
        case .refilled(let index, let deliveries, let exhausted, let nextDue):
            let (inFlight, unrecorded) = (lanes[index].inFlight, self.unrecorded)
            lanes[index].queue.refilled(
                deliveries, exhausted: exhausted, nextDue: nextDue, now: now, known: { inFlight.contains($0) || unrecorded[$0] != nil })
        case .groupSchedule(let index, let next):
            lanes[index].groups.answered(next: next)
        case .groupsFlushed(let index, let messages, let next):
            lanes[index].groups.answered(next: next)
            if messages > 0 { lanes[index].queue.look(at: now) }
        case .groupsFailed(let index):
            // A drain gives up on the lane's groups; a run reads them again in a while.
            lanes[index].groups.failed(retryAt: isDrain ? nil : now.addingTimeInterval(Self.refillRetry))
        case .refillFailed(let index):
            // A drain gives up on this queue; its deliveries stay pending for the next run.
            lanes[index].queue.refillFailed(retryAt: isDrain ? nil : now.addingTimeInterval(Self.refillRetry))
        case .attemptFinished(let end):
            finished(end, into: &actions)
        case .resultsCommitted(let commit):
            committed(commit, now: now)
        case .storage(let available):
            guard available != storageAvailable else { return }
            storageAvailable = available
            if available { lookEverywhere(at: now) }
        case .ownership(let owned, let records):
            for index in lanes.indices {
                let name = lanes[index].settings.endpoint
                switch lanes[index].ownership.lease(held: owned.contains(name)) {
                case .takenOver:
                    lanes[index].queue.reset(lookAt: now)
                    lanes[index].groups.owned(true)
                    // The last owner's breaker and failures, as it stored them.
                    let settings = lanes[index].settings
                    lanes[index].health = EndpointHealth(settings: settings.breaker, disableAfter: settings.disableAfter, record: records[name])
                    lanes[index].disableUnsaved = false
                case .released:
                    lanes[index].queue.reset(lookAt: nil)
                    lanes[index].groups.owned(false)
                case nil:
                    break
                }
            }
        case .deadline:
            break  // what is due is found by `schedule`, from the time
        case .stop(let deadline):
            guard mode != nil else { return }
            stopDeadline = stopDeadline.map { min($0, deadline) } ?? deadline
        }
    }

    /// Something may be due anywhere: read every queue, and every group schedule, again.
    private mutating func lookEverywhere(at date: Date) {
        for index in lanes.indices {
            lanes[index].queue.look(at: date)
            lanes[index].groups.invalidate()
        }
    }

    private mutating func finished(_ end: AttemptEnd, into actions: inout [Action]) {
        let index = end.lane
        // A late result of an attempt abandoned by a stopped run: its delivery stays pending.
        guard lanes.indices.contains(index), lanes[index].inFlight.remove(end.delivery.id) != nil else { return }
        let number = end.delivery.attempts + 1
        let status = end.result.httpStatus
        let success = status.map { (200..<300).contains($0) } ?? false
        let gone = status == 410
        // After a replay the schedule starts again; the attempt numbers go on.
        var next = DeliveryPolicy.next(
            after: end.result, attempt: max(1, number - end.delivery.scheduleBase), schedule: lanes[index].settings.retry,
            now: end.finishedAt, random: end.random)
        // Kept pending, due at once, for when an operator re-enables the endpoint.
        if gone { next = .retry(at: end.finishedAt) }
        let record = AttemptRecord(
            deliveryId: end.delivery.id, attempt: number, startedAt: end.startedAt,
            duration: .milliseconds(Int64((end.finishedAt.timeIntervalSince(end.startedAt) * 1000).rounded())),
            httpStatus: status, error: end.result.summary, response: end.result.responseExcerpt, next: next)
        unrecorded[end.delivery.id] = (index, next)
        lanes[index].unrecorded.insert(end.delivery.id)
        actions.append(.record(Outcome(lane: index, delivery: end.delivery, record: record)))
        let wasFailing = lanes[index].health.failures > 0
        if let change = lanes[index].health.record(success: success, gone: gone, now: end.finishedAt) {
            announce(change, lane: index, at: end.finishedAt, into: &actions)
        } else if !success, !wasFailing, !lanes[index].health.isDisabled {
            // The first failure after a success: operators see "failing since" at once.
            let since = lanes[index].health.failingSince ?? end.finishedAt
            actions.append(.announce(lane: index, .failing(since: since), at: end.finishedAt))
            actions.append(.saveEndpointRecord(lane: index, EndpointRecord(failingSince: since)))
        }
    }

    private mutating func committed(_ commit: Commit, now: Date) {
        for id in commit.deliveryIds {
            guard let (index, next) = unrecorded.removeValue(forKey: id) else { continue }
            lanes[index].unrecorded.remove(id)
            switch next {
            case .retry(let at):
                lanes[index].queue.retry(at: at)
            case .delivered, .dead:
                // The payment's next event for this endpoint may be waiting behind this one.
                // A continuous run spaces these reads (B4's latency); a drain reads at once, as
                // it must finish even on a clock that stands still (tests' manual clocks).
                if isDrain {
                    lanes[index].queue.look(at: now)
                } else {
                    lanes[index].queue.look(at: max(now, lanes[index].queue.lastRefillAt.addingTimeInterval(Self.successorRefillSpacing)))
                }
            }
        }
        for name in commit.disabledEndpoints {
            if let index = lanes.firstIndex(where: { $0.settings.endpoint == name }) { lanes[index].disableUnsaved = false }
        }
        if commit.queuedDeliveries {
            // Events this run created (endpoint.disabled) are due now, even in a drain.
            if case .drain(let dueBy) = mode { mode = .drain(dueBy: max(dueBy, now)) }
            lookEverywhere(at: now)
        }
    }

    private mutating func announce(_ change: EndpointHealth.Change, lane index: Int, at date: Date, into actions: inout [Action]) {
        switch change {
        case .opened(let until, let failures):
            actions.append(.announce(lane: index, .opened(until: until, failures: failures), at: date))
            actions.append(.saveEndpointRecord(lane: index, EndpointRecord(failingSince: lanes[index].health.failingSince)))
        case .halfOpened:
            actions.append(.announce(lane: index, .halfOpened, at: date))
        case .closed(let since):
            actions.append(.announce(lane: index, .recovered(failingSince: since), at: date))
            actions.append(.saveEndpointRecord(lane: index, EndpointRecord()))
        case .disabled(let reason, let since):
            lanes[index].disableUnsaved = true
            actions.append(.announce(lane: index, .disabled(reason: reason, failingSince: since), at: date))
        }
    }

    // MARK: Deciding

    /// Starts what may start, asks for the queues that need reading, and says when to wake.
    private mutating func schedule(now: Date, into actions: inout [Action]) {
        guard let mode else { return }
        if let stopDeadline {
            let inFlight = inFlightCount
            if inFlight == 0 || now >= stopDeadline {
                finish(abandoned: inFlight, into: &actions)
            } else {
                actions.append(.wake(at: stopDeadline))
            }
            return
        }
        var wake: Date?
        var busy = false
        if storageAvailable {
            for index in lanes.indices { fill(index, mode: mode, now: now, wake: &wake, busy: &busy, into: &actions) }
        } else {
            // Results wait in the recorder and nothing new starts; look again in a while.
            wake = now.addingTimeInterval(Self.refillRetry)
        }
        if case .drain = mode {
            let waiting = busy || inFlightCount > 0 || (storageAvailable && !unrecorded.isEmpty)
            if !waiting {
                finish(abandoned: 0, into: &actions)
                return
            }
        }
        actions.append(.wake(at: wake))
    }

    private mutating func finish(abandoned: Int, into actions: inout [Action]) {
        mode = nil
        stopDeadline = nil
        // Abandoned attempts stay pending in the store; a late answer to one is not recorded.
        for index in lanes.indices { lanes[index].inFlight.removeAll() }
        actions.append(.finish(abandoned: abandoned))
    }

    private mutating func fill(_ index: Int, mode: Mode, now: Date, wake: inout Date?, busy: inout Bool, into actions: inout [Action]) {
        func earliest(_ date: Date) { wake = wake.map { min($0, date) } ?? date }
        // Another instance delivers this endpoint; attempts already in flight still finish.
        guard lanes[index].owned else { return }
        let dueBy: Date
        switch mode {
        case .continuous: dueBy = now
        case .drain(let cutoff): dueBy = cutoff
        }
        switch lanes[index].groups.next(now: now, dueBy: dueBy) {
        case .read: actions.append(.readGroupSchedule(lane: index))
        case .flush(let dueBy): actions.append(.flushGroups(lane: index, dueBy: dueBy))
        case nil: break
        }
        // A group read or flush not answered yet: a drain waits for the message it may queue.
        if lanes[index].groups.isBusy { busy = true }
        // A read of the queue not answered yet: a drain waits for what it may find.
        if lanes[index].queue.state == .refilling { busy = true }
        if case .continuous = mode, let at = lanes[index].groups.wake(after: now) { earliest(at) }
        let (admitted, change) = lanes[index].health.admits(now: now, inFlight: lanes[index].inFlight.count)
        if let change { announce(change, lane: index, at: now, into: &actions) }
        var free = min(lanes[index].settings.concurrency - lanes[index].inFlight.count, admitted)
        if let limiter = lanes[index].limiter { free = limiter.allows(now: now) ? min(free, 1) : 0 }
        let needsRefill = lanes[index].queue.needsRefill(now: now, dueBy: dueBy)
        if let refill = lanes[index].queue.refill(now: now, dueBy: dueBy, free: free) {
            let lane = lanes[index]
            actions.append(
                .refill(
                    lane: index, dueBy: dueBy, limit: lane.settings.refillLimit,
                    excluding: lane.inFlight.union(lane.queue.readyIds).union(lane.unrecorded), askNextDue: refill.askNextDue))
            busy = true
        }
        while free > 0, let delivery = lanes[index].queue.pop() {
            lanes[index].inFlight.insert(delivery.id)
            lanes[index].limiter?.take(now: now)
            free -= 1
            actions.append(.start(lane: index, delivery: delivery))
        }

        if let lookAt = lanes[index].queue.lookAt, lookAt > now {
            earliest(lookAt)
            busy = true  // a payment's next event may be found then
        }
        if case .continuous = mode {
            if let due = lanes[index].queue.nextDue, due > now { earliest(due) }
            if let probe = lanes[index].health.nextChange, probe > now { earliest(probe) }
        }
        if let slot = lanes[index].limiter?.nextStart, slot > now, lanes[index].queue.readyCount > 0 || needsRefill {
            earliest(slot)
            busy = true
        }
    }
}

/// What the state machine needs to know of one endpoint.
public struct DeliveryLaneSettings: Sendable {
    public var endpoint: String
    public var concurrency: Int
    public var retry: RetrySchedule
    public var breaker: BreakerSettings
    public var disableAfter: Duration
    /// Requests per second, spaced evenly (nil: no limit).
    public var rateLimit: Double?
    /// How many due deliveries one read of the queue asks for.
    public var refillLimit: Int
    /// Events reach this endpoint in group messages, whose flush times the machine keeps.
    public var grouped: Bool

    public init(
        endpoint: String, concurrency: Int = 8, retry: RetrySchedule = .standard, breaker: BreakerSettings = BreakerSettings(),
        disableAfter: Duration = .seconds(5 * 86400), rateLimit: Double? = nil, refillLimit: Int? = nil, grouped: Bool = false
    ) {
        self.endpoint = endpoint
        self.concurrency = concurrency
        self.retry = retry
        self.breaker = breaker
        self.disableAfter = disableAfter
        self.rateLimit = rateLimit
        self.refillLimit = refillLimit ?? max(256, concurrency * 4)
        self.grouped = grouped
    }

    public init(_ endpoint: EndpointConfiguration) {
        self.init(
            endpoint: endpoint.name, concurrency: endpoint.concurrency, retry: endpoint.retry, breaker: endpoint.breaker,
            disableAfter: endpoint.disableAfter, rateLimit: endpoint.rateLimit, grouped: endpoint.group != nil)
    }
}
