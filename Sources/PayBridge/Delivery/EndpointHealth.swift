import Foundation

/// One endpoint's health as a pure state machine: closed → open after a sustained run of
/// failures → half-open (one probe) → closed on success or open again, longer. Disabled after
/// a 410 or after failing for longer than `disableAfter`; only an operator re-enables it.
///
/// No I/O: the dispatcher asks `admits` before starting attempts, feeds every result to
/// `record`, and acts on the returned `Change` (log, metric, `endpoint.disabled` event).
public struct EndpointHealth: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case closed
        case open(until: Date)
        case halfOpen
        case disabled(reason: String, at: Date)

        /// The state as operators read it.
        public var circuit: Circuit {
            switch self {
            case .closed: return .closed
            case .open: return .open
            case .halfOpen: return .halfOpen
            case .disabled: return .disabled
            }
        }
    }

    /// An endpoint's circuit as `/health`, `endpoints list` and the stored stats spell it.
    public enum Circuit: String, Sendable, Equatable {
        case closed
        case open
        case halfOpen = "half-open"
        case disabled
    }

    public enum Change: Sendable, Equatable {
        case opened(until: Date, failures: Int)
        case halfOpened
        /// Recovered after failing since the date.
        case closed(failingSince: Date)
        case disabled(reason: String, failingSince: Date?)
    }

    public private(set) var state: State
    /// Failures in a row since the last success.
    public private(set) var failures = 0
    public private(set) var failingSince: Date?
    private var opens = 0
    private let settings: BreakerSettings
    private let disableAfter: Duration

    public init(settings: BreakerSettings, disableAfter: Duration, record: EndpointRecord? = nil) {
        self.settings = settings
        self.disableAfter = disableAfter
        failingSince = record?.failingSince
        if let at = record?.disabledAt {
            state = .disabled(reason: record?.disabledReason ?? "disabled", at: at)
        } else {
            state = .closed
        }
    }

    public var isDisabled: Bool {
        if case .disabled = state { return true }
        return false
    }

    /// How many more attempts may start now, given those in flight; may move open → half-open.
    public mutating func admits(now: Date, inFlight: Int) -> (limit: Int, change: Change?) {
        switch state {
        case .closed:
            return (Int.max, nil)
        case .open(let until):
            guard now >= until else { return (0, nil) }
            state = .halfOpen
            return (inFlight == 0 ? 1 : 0, .halfOpened)
        case .halfOpen:
            return (inFlight == 0 ? 1 : 0, nil)
        case .disabled:
            return (0, nil)
        }
    }

    /// Feeds one attempt's result. `gone` is a 410 answer.
    public mutating func record(success: Bool, gone: Bool = false, now: Date) -> Change? {
        if case .disabled = state { return nil }
        if gone {
            state = .disabled(reason: "the endpoint answered 410 Gone", at: now)
            return .disabled(reason: "the endpoint answered 410 Gone", failingSince: failingSince ?? now)
        }
        if success {
            // Any success ends the streak, whether or not the circuit had opened: a streak kept
            // past it would make the next failure, maybe after a restart, measure "failing for"
            // from a time the endpoint has since answered, and disable a healthy endpoint.
            let since = failingSince
            state = .closed
            failures = 0
            failingSince = nil
            opens = 0
            return since.map { .closed(failingSince: $0) }
        }
        failures += 1
        let since = failingSince ?? now
        failingSince = since
        let failingFor = now.timeIntervalSince(since)
        if failingFor >= disableAfter.seconds {
            let reason = "failing without a success since \(Timestamp.iso8601(since))"
            state = .disabled(reason: reason, at: now)
            return .disabled(reason: reason, failingSince: since)
        }
        switch state {
        case .closed:
            guard failures >= settings.failures, failingFor >= settings.minimumDuration.seconds else { return nil }
            opens = 1
        case .halfOpen:
            opens += 1
        case .open, .disabled:
            return nil  // a late result of an attempt started before the circuit opened
        }
        let wait = min(settings.openFor.seconds * Double(1 << min(opens - 1, 20)), settings.openFor.seconds * 10)
        let until = now.addingTimeInterval(wait)
        state = .open(until: until)
        return .opened(until: until, failures: failures)
    }

    /// An operator's switch (`paybridge endpoints disable`): held until re-enabled.
    public mutating func disable(reason: String, at date: Date) {
        state = .disabled(reason: reason, at: date)
    }

    /// An operator's re-enable: back to closed with a clean slate.
    public mutating func enable() {
        state = .closed
        failures = 0
        failingSince = nil
        opens = 0
    }

    /// When the state changes by itself (open → half-open).
    public var nextChange: Date? {
        if case .open(let until) = state { return until }
        return nil
    }
}

/// Spaces requests evenly: at most `perSecond` start in any one-second window.
public struct RateLimiter: Sendable, Equatable {
    private let interval: TimeInterval
    public private(set) var nextStart: Date?

    public init(perSecond: Double) {
        interval = 1 / perSecond
    }

    public func allows(now: Date) -> Bool {
        guard let nextStart else { return true }
        return now >= nextStart
    }

    /// Takes the slot at `now` (call only when `allows`).
    public mutating func take(now: Date) {
        let start = max(now, nextStart ?? now)
        nextStart = start.addingTimeInterval(interval)
    }
}
