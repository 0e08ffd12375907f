import Foundation

/// Whether the bank answers, as a pure state machine: after `threshold` without a
/// successful poll it announces `source.unavailable` once; the next success announces
/// `source.recovered`. The record is persisted so a restart does not announce twice.
public struct SourceHealth: Sendable, Equatable {
    public enum Change: Sendable, Equatable {
        case unavailable(since: Date)
        case recovered(since: Date)
    }

    public private(set) var record: SourceRecord
    private let threshold: Duration

    public init(record: SourceRecord, threshold: Duration) {
        self.record = record
        self.threshold = threshold
    }

    public var isAvailable: Bool { record.failingSince == nil }

    /// Returns the change to announce, and whether the record must be saved.
    public mutating func pollFailed(now: Date) -> (change: Change?, save: Bool) {
        var save = false
        if record.failingSince == nil {
            record.failingSince = now
            save = true
        }
        guard record.announcedAt == nil, let since = record.failingSince, now.timeIntervalSince(since) >= threshold.seconds else {
            return (nil, save)
        }
        record.announcedAt = now
        record.sequence += 1
        return (.unavailable(since: since), true)
    }

    public mutating func pollSucceeded(now: Date) -> (change: Change?, save: Bool) {
        guard let since = record.failingSince else { return (nil, false) }
        let announced = record.announcedAt != nil
        record.failingSince = nil
        record.announcedAt = nil
        guard announced else { return (nil, true) }
        record.sequence += 1
        return (.recovered(since: since), true)
    }
}

/// When a watch polls next: its interval, doubled for each failed poll in a row up to a cap.
public enum PollSchedule {
    public static func delay(every: Duration, failures: Int, maxBackoff: Duration) -> Duration {
        guard failures > 0 else { return every }
        let doubled = every * Double(1 << min(failures, 20))
        return min(doubled, max(maxBackoff, every))
    }
}
