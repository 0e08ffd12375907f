import Foundation

/// The poller lease's fencing token a poll began under (`Coordination.underPollerLease`);
/// its detection commits must carry that token, not whichever one is held when they commit.
enum PollerEpoch {
    @TaskLocal static var token: Int64?
}

/// What an instance knows of one of its leases on a shared state (the poller's, an
/// endpoint's) between renewals. The database decides who holds a lease; this decides what the
/// holder may do meanwhile, on its own monotonic clock: a renewal that fails or comes late
/// does not extend the lease, so a process that was paused past its expiry commits nothing
/// even before the database tells it so. Pure: time comes in with every input.
public struct Lease: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        /// Not held (never taken, released, or another instance holds it).
        case free
        /// Held with this fencing token until `until` (one lease duration after the renewal
        /// was asked for, not after it answered: the database counted from then).
        case held(token: Int64, until: ContinuousClock.Instant)
        /// Held until `until`, but the last renewal failed: the token still fences a commit
        /// in flight until then; nothing new should start.
        case renewing(token: Int64, until: ContinuousClock.Instant)
        /// Was held; expired, or another instance took it over.
        case lost(token: Int64)
    }

    /// What a change of state means to the holder.
    public enum Transition: Sendable, Equatable {
        case unchanged
        case acquired(token: Int64)
        case lost
    }

    public let duration: Duration
    public private(set) var state: State = .free

    public init(duration: Duration) {
        self.duration = duration
    }

    /// The database answered a take-or-renew asked at `askedAt`: `token` when this instance
    /// holds the lease, nil when another one does.
    public mutating func renewed(token: Int64?, askedAt: ContinuousClock.Instant) -> Transition {
        let had = heldToken(at: askedAt)
        guard let token else {
            state = had.map { .lost(token: $0) } ?? .free
            return had == nil ? .unchanged : .lost
        }
        state = .held(token: token, until: askedAt + duration)
        return had == token ? .unchanged : .acquired(token: token)
    }

    /// A take-or-renew failed (the database did not answer): the lease runs out as it was.
    public mutating func renewalFailed(at now: ContinuousClock.Instant) -> Transition {
        switch state {
        case .held(let token, let until), .renewing(let token, let until):
            guard now < until else {
                state = .lost(token: token)
                return .lost
            }
            state = .renewing(token: token, until: until)
            return .unchanged
        case .free, .lost:
            return .unchanged
        }
    }

    /// This instance let the lease go.
    public mutating func released() {
        state = .free
    }

    /// The token a commit must carry, nil unless the lease is held or renewing at `now`.
    public func fencingToken(at now: ContinuousClock.Instant) -> Int64? {
        heldToken(at: now)
    }

    /// Whether new work under the lease may start at `now` (held, not merely renewing).
    public func isHeld(at now: ContinuousClock.Instant) -> Bool {
        if case .held(_, let until) = state { return now < until }
        return false
    }

    private func heldToken(at now: ContinuousClock.Instant) -> Int64? {
        switch state {
        case .held(let token, let until), .renewing(let token, let until): now < until ? token : nil
        case .free, .lost: nil
        }
    }
}
