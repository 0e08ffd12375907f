import Foundation

/// What one lane knows of its endpoint's queue in the store, and when to read it again. The
/// store is the truth; this keeps the deliveries read but not started, and the times that
/// say when a read may find more.
struct QueueCursor: Sendable {
    enum State: Sendable, Equatable {
        /// No read under way.
        case idle
        /// A read was asked for; `refilled` or `refillFailed` answers it.
        case refilling
    }

    /// A read to ask the store for.
    struct Refill: Sendable, Equatable {
        /// Whether the answer must say when the next delivery after `dueBy` is due.
        var askNextDue: Bool
    }

    private(set) var state = State.idle
    /// Due deliveries read from the store, oldest first, not yet started (from `head`).
    private var ready: [QueuedDelivery] = []
    private var head = 0
    private(set) var readyIds: Set<Int64> = []
    /// When to read the queue again whatever the due times say (a signal, a successor).
    private(set) var lookAt: Date?
    /// The earliest due time of a pending delivery not read yet, as far as known.
    private(set) var nextDue: Date?
    /// Whether the store must be asked for `nextDue` (after a start, an operator's change,
    /// or once the known one was read); otherwise the lane's own retries keep it.
    private(set) var nextDueUnknown = true
    private(set) var lastRefillAt = Date.distantPast

    var readyCount: Int { ready.count - head }

    /// Read the queue at `date` or before.
    mutating func look(at date: Date) {
        lookAt = lookAt.map { min($0, date) } ?? date
    }

    /// Forgets what was read: the queue is read afresh at `lookAt` (nil: not until told).
    /// A read under way is not waited for; its answer is taken as any other.
    mutating func reset(lookAt date: Date?) {
        ready.removeAll()
        head = 0
        readyIds.removeAll()
        nextDue = nil
        nextDueUnknown = true
        lookAt = date
    }

    /// A run begins: nothing is under way any more.
    mutating func begin(now: Date) {
        reset(lookAt: now)
        state = .idle
    }

    /// An operator's change (a replay): the next due time is the store's to say again.
    mutating func forgetNextDue() { nextDueUnknown = true }

    /// A committed result keeps its delivery pending until `date`.
    mutating func retry(at date: Date) {
        nextDue = nextDue.map { min($0, date) } ?? date
    }

    /// Whether a read may find something due by `dueBy`.
    func needsRefill(now: Date, dueBy: Date) -> Bool {
        (lookAt.map { $0 <= now } ?? false) || (nextDue.map { $0 <= dueBy } ?? false)
    }

    /// `free` attempts may start: the read to ask for, if one is needed and none is under way.
    mutating func refill(now: Date, dueBy: Date, free: Int) -> Refill? {
        guard free > 0, readyCount < free, state == .idle, needsRefill(now: now, dueBy: dueBy) else { return nil }
        state = .refilling
        // The known due time is being read now; the one after it is the store's to say.
        if let due = nextDue, due <= dueBy {
            nextDue = nil
            nextDueUnknown = true
        }
        return Refill(askNextDue: nextDueUnknown)
    }

    /// The read's answer; `known` says which deliveries are already started or recorded.
    mutating func refilled(_ deliveries: [QueuedDelivery], exhausted: Bool, nextDue due: Date?, now: Date, known: (Int64) -> Bool) {
        state = .idle
        lastRefillAt = now
        for delivery in deliveries where !readyIds.contains(delivery.id) && !known(delivery.id) {
            ready.append(delivery)
            readyIds.insert(delivery.id)
        }
        if exhausted {
            lookAt = nil
            if nextDueUnknown {
                nextDue = due
                nextDueUnknown = false
            }
        } else {
            lookAt = now  // more is due: read on when these have started
        }
    }

    /// The read failed: try again at `retryAt`, or give up (a drain: the deliveries stay
    /// pending for the next run).
    mutating func refillFailed(retryAt: Date?) {
        state = .idle
        if let retryAt {
            lookAt = retryAt
        } else {
            lookAt = nil
            nextDue = nil
        }
    }

    mutating func pop() -> QueuedDelivery? {
        guard head < ready.count else { return nil }
        let delivery = ready[head]
        head += 1
        readyIds.remove(delivery.id)
        if head > 1024, head * 2 > ready.count {
            ready.removeFirst(head)
            head = 0
        }
        return delivery
    }
}

/// Whether this instance delivers a lane's endpoint: always on SQLite; on a shared PostgreSQL
/// state, while it holds the endpoint's lease.
enum LaneOwnership: Sendable, Equatable {
    case owned
    case elsewhere

    enum Change: Sendable, Equatable {
        /// Taken over: start from the endpoint's record as the last owner stored it.
        case takenOver
        /// Lost: no new attempts; those in flight finish.
        case released
    }

    /// The instance's leases now say whether it holds the endpoint's.
    mutating func lease(held: Bool) -> Change? {
        switch (self, held) {
        case (.elsewhere, true):
            self = .owned
            return .takenOver
        case (.owned, false):
            self = .elsewhere
            return .released
        default:
            return nil
        }
    }
}

/// A grouped endpoint's clock: when its next group message is due, read from the store and
/// kept between reads. One read or flush at a time; a change signalled while one is under
/// way is read again once it is answered.
struct GroupClock: Sendable, Equatable {
    enum State: Sendable, Equatable {
        /// Not a grouped endpoint, or its lease was lost (a lane this instance does not
        /// deliver is never asked for `next`, whatever its clock says).
        case off
        /// The schedule must be read.
        case stale
        /// The next message is due at `next` (nil: none is waiting, or a drain gave up after a
        /// failure).
        case known(next: Date?)
        /// A read or flush failed: read again at this time.
        case retrying(at: Date)
        /// A read is under way; `staleAgain`: something changed meanwhile.
        case reading(staleAgain: Bool)
        /// A flush is under way.
        case flushing(staleAgain: Bool)
    }

    enum Action: Sendable, Equatable {
        case read
        case flush(dueBy: Date)
    }

    private(set) var state: State
    private let grouped: Bool

    init(grouped: Bool) {
        self.grouped = grouped
        state = grouped ? .stale : .off
    }

    /// A read or flush is not answered yet.
    var isBusy: Bool {
        switch state {
        case .reading, .flushing: true
        default: false
        }
    }

    /// Something may have added to the groups (new events, an operator's change).
    mutating func invalidate() {
        switch state {
        case .off, .stale: break
        case .known, .retrying: state = .stale
        case .reading: state = .reading(staleAgain: true)
        case .flushing: state = .flushing(staleAgain: true)
        }
    }

    /// A run begins (the last one waited for its flushes): read the schedule.
    mutating func begin() {
        state = grouped ? .stale : .off
    }

    /// The lane's lease was taken or lost. A read or flush under way is answered first (one
    /// at a time); the clock is then stale, read again if the lane is delivered here by then.
    mutating func owned(_ owns: Bool) {
        if isBusy {
            invalidate()
        } else {
            state = owns && grouped ? .stale : .off
        }
    }

    /// What to do now: read the schedule, or flush the messages due by `dueBy`.
    mutating func next(now: Date, dueBy: Date) -> Action? {
        switch state {
        case .stale:
            state = .reading(staleAgain: false)
            return .read
        case .retrying(let at) where at <= now:
            state = .reading(staleAgain: false)
            return .read
        case .known(let next?) where next <= dueBy:
            state = .flushing(staleAgain: false)
            return .flush(dueBy: dueBy)
        default:
            return nil
        }
    }

    /// A read or flush answered: the next message is due at `next`.
    mutating func answered(next: Date?) {
        switch state {
        case .reading(let staleAgain), .flushing(let staleAgain): state = staleAgain ? .stale : .known(next: next)
        default: break  // not asked for in this run (an earlier run's flush, answered late)
        }
    }

    /// A read or flush failed: read again at `retryAt`, or give up (a drain).
    mutating func failed(retryAt: Date?) {
        guard isBusy else { return }
        state = retryAt.map { .retrying(at: $0) } ?? .known(next: nil)
    }

    /// When this clock needs the loop next, after `now`.
    func wake(after now: Date) -> Date? {
        switch state {
        case .known(let next?) where next > now: next
        case .retrying(let at) where at > now: at
        default: nil
        }
    }
}
