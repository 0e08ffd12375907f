/// The waits before attempt 2, 3, …; after the last wait's attempt fails the delivery is
/// dead-lettered.
public struct RetrySchedule: Sendable, Equatable {
    public var waits: [Duration]
    /// Each wait is scaled by a random factor in `1 ± jitter`.
    public var jitter: Double

    /// Svix's schedule: about 27 hours from the first attempt to the dead letter.
    public static let standard = RetrySchedule(waits: [
        .seconds(5), .seconds(5 * 60), .seconds(30 * 60), .seconds(2 * 3600), .seconds(5 * 3600),
        .seconds(10 * 3600), .seconds(10 * 3600),
    ])

    public init(waits: [Duration], jitter: Double = 0.1) {
        self.waits = waits
        self.jitter = jitter
    }

    public var maxAttempts: Int { waits.count + 1 }

    /// The wait after failed attempt number `attempt` (1-based), or nil when it was the last.
    /// `random` is a number in 0..<1.
    public func wait(afterAttempt attempt: Int, random: Double) -> Duration? {
        guard attempt >= 1, attempt <= waits.count else { return nil }
        let factor = 1 + jitter * (2 * random - 1)
        return waits[attempt - 1] * factor
    }
}
