import Foundation

/// How one attempt ended.
public enum AttemptResult: Sendable, Equatable {
    case response(status: Int, retryAfter: String?, excerpt: String)
    case failure(TransportError)

    /// For the attempt log: "HTTP 503: busy" or the transport error.
    public var summary: String? {
        switch self {
        case .response(let status, _, let excerpt):
            guard !(200..<300).contains(status) else { return nil }
            return "HTTP \(status)" + (excerpt.isEmpty ? "" : ": \(excerpt)")
        case .failure(let error):
            return "\(error)"
        }
    }

    /// The first bytes of the receiver's answer, if it answered and said something.
    public var responseExcerpt: String? {
        if case .response(_, _, let excerpt) = self, !excerpt.isEmpty { return excerpt }
        return nil
    }

    public var httpStatus: Int? {
        if case .response(let status, _, _) = self { return status }
        return nil
    }
}

/// What follows an attempt: pure, so the schedule, `Retry-After` and dead-lettering are
/// tested without a clock or a network.
public enum DeliveryPolicy {
    /// The longest `Retry-After` honoured; a receiver asking for more is retried after this.
    public static let maxRetryAfter: Duration = .seconds(24 * 3600)

    /// - Parameters:
    ///   - attempt: the number of the attempt that just ended (1 for the first).
    ///   - random: a number in 0..<1 for the schedule's jitter.
    public static func next(
        after result: AttemptResult, attempt: Int, schedule: RetrySchedule, now: Date, random: Double
    ) -> AttemptRecord.Next {
        if case .response(let status, _, _) = result, (200..<300).contains(status) { return .delivered }
        guard attempt < schedule.maxAttempts, let scheduled = schedule.wait(afterAttempt: attempt, random: random) else {
            return .dead
        }
        var wait = scheduled
        // A Retry-After of 0 (or a date already past) keeps the schedule: taken at its word it
        // would spend every retry within milliseconds on a receiver asking to slow down.
        if case .response(let status, let header, _) = result, status == 429 || status == 503,
            let asked = RetryAfter.parse(header, now: now), asked > .zero
        {
            wait = min(asked, maxRetryAfter)
        }
        return .retry(at: now.addingTimeInterval(wait.seconds))
    }
}
