/// Whether this instance polls the bank, as the poller lease decides (§7). A pure state
/// machine: the bridge tells it what the lease said and does what it answers (reload the
/// source record on taking over, say so once in the log, let the lease go).
public struct Leadership: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        /// The embedded state: one process, always polling.
        case alone
        /// This instance holds the poller lease and polls.
        case leading
        /// Another instance polls (or none can be sure); this one waits to take over.
        case following
        /// Stopping: detection has ended here, and the poller lease is left to the others.
        case stopped
    }

    /// What a lease renewal means for the bridge.
    public enum Transition: Sendable, Equatable {
        case unchanged
        /// The lease was just taken: read the source record, then `tookOver(sourceRead:)`.
        case takingOver
        /// The lease was lost (or could not be renewed): polling stops.
        case lost
    }

    public private(set) var state: State

    public init(shared: Bool) { state = shared ? .following : .alone }

    public var isLeader: Bool { state == .alone || state == .leading }

    /// The renewal's answer: whether the lease is held (nil: the renewal failed, so this
    /// instance cannot be sure and stops polling; the fencing token would refuse its commits).
    public mutating func renewed(holding: Bool?) -> Transition {
        guard state != .alone, state != .stopped else { return .unchanged }
        switch (state, holding ?? false) {
        case (.following, true): return .takingOver
        case (.leading, false):
            state = .following
            return .lost
        default: return .unchanged
        }
    }

    /// After `takingOver`: polling starts once the source record was read; if it could not
    /// be, the instance stays a follower (and lets the lease go).
    public mutating func tookOver(sourceRead: Bool) {
        guard state == .following, sourceRead else { return }
        state = .leading
    }

    /// `poll --once` took the lease for its one poll.
    public mutating func tookOneShot() {
        if state == .following { state = .leading }
    }

    /// A poll's commit was fenced (another instance took over), or the leases were let go.
    public mutating func stepDown() {
        if state == .leading { state = .following }
    }

    /// A graceful stop ended detection here: the lease is not taken or renewed again.
    public mutating func stopPolling() {
        if state != .alone { state = .stopped }
    }

    /// Whether renewals still take or keep the poller lease.
    public var seeksLease: Bool { state == .leading || state == .following }
}
