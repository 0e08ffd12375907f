import Foundation
import Synchronization

/// Where paybridge reads the time and waits for it. The bridge, the dispatcher, the recorder
/// and the store's writes take one, so everything that schedules (retries, `Retry-After`,
/// breakers, rate limits, group flushes) is tested with a `ManualClock`: advancing it is what
/// wakes them, never a sleep of the test's own.
public struct WallClock: Sendable {
    private let read: @Sendable () -> Date
    private let wait: @Sendable (Date) async throws -> Void

    /// - Parameters:
    ///   - read: the current time.
    ///   - sleep: suspends until the clock reads the date or later; throws `CancellationError`
    ///     when the task is cancelled.
    public init(_ read: @escaping @Sendable () -> Date, sleep: @escaping @Sendable (Date) async throws -> Void) {
        self.read = read
        wait = sleep
    }

    public func now() -> Date { read() }

    /// Suspends until the clock reads `deadline` or later (at once if it already does).
    public func sleep(until deadline: Date) async throws {
        try await wait(deadline)
    }

    /// Suspends for `duration` on this clock.
    public func sleep(for duration: Duration) async throws {
        try await sleep(until: now().addingTimeInterval(duration.seconds))
    }

    /// The system's clock.
    public static let system = WallClock({ Date() }) { deadline in
        // Task.sleep may end a little before the wall clock reads the deadline (the two
        // clocks drift): sleep again for what is left.
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { return }
            try await Task.sleep(for: .seconds(left))
        }
    }

    /// The variable that names a test clock's file (see `shifted(byOffsetIn:)`).
    public static let testClockVariable = "PAYBRIDGE_TEST_CLOCK"

    /// The system's clock moved on by the seconds written in `file`, read at every reading (a
    /// missing or unreadable file counts as 0). This is how the tests drive the real binary's
    /// timers: writing a larger number advances its time, so a retry, a group's flush or a
    /// sampled gauge comes due without the test sleeping. A sleeper looks again every 20 ms.
    public static func shifted(byOffsetIn file: String) -> WallClock {
        let offset: @Sendable () -> TimeInterval = {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return 0 }
            return TimeInterval(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }
        return WallClock({ Date().addingTimeInterval(offset()) }) { deadline in
            while true {
                let left = deadline.timeIntervalSince(Date().addingTimeInterval(offset()))
                guard left > 0 else { return }
                try await Task.sleep(for: .seconds(min(left, 0.02)))
            }
        }
    }

    /// The test clock when `PAYBRIDGE_TEST_CLOCK` names a file, else the system's clock.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> WallClock {
        guard let file = environment[testClockVariable], !file.isEmpty else { return .system }
        return shifted(byOffsetIn: file)
    }
}

/// A clock that moves only when told to (tests). Whatever sleeps on it wakes when `advance`
/// or `set` reaches its deadline.
public final class ManualClock: Sendable {
    private struct Sleeper {
        var deadline: Date
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Date
        var sleepers: [UInt64: Sleeper] = [:]
        var nextSleeper: UInt64 = 0
    }

    private let state: Mutex<State>

    public init(_ start: Date = Date(timeIntervalSince1970: 1_800_000_000)) { state = Mutex(State(now: start)) }

    public var now: Date { state.withLock { $0.now } }

    /// How many tasks sleep on this clock now (a test waits for the runtime to be asleep
    /// before it moves the time).
    public var sleeping: Int { state.withLock { $0.sleepers.count } }

    /// What sleeps on this clock waits until these dates, earliest first.
    public var deadlines: [Date] { state.withLock { $0.sleepers.values.map(\.deadline).sorted() } }

    /// The earliest deadline anything sleeps until.
    public var nextDeadline: Date? { deadlines.first }

    public func advance(by seconds: TimeInterval) {
        move { $0 += seconds }
    }

    public func set(_ date: Date) {
        move { $0 = date }
    }

    public var clock: WallClock {
        WallClock({ [self] in now }, sleep: { [self] deadline in try await sleep(until: deadline) })
    }

    private func move(_ change: (inout Date) -> Void) {
        let due = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            change(&state.now)
            let now = state.now
            let ids = state.sleepers.filter { $0.value.deadline <= now }.map(\.key)
            return ids.compactMap { state.sleepers.removeValue(forKey: $0)?.continuation }
        }
        for continuation in due { continuation.resume() }
    }

    func sleep(until deadline: Date) async throws {
        let id = state.withLock { state -> UInt64 in
            state.nextSleeper += 1
            return state.nextSleeper
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow = state.withLock { state -> Bool in
                    if Task.isCancelled || deadline <= state.now { return true }
                    state.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.sleepers.removeValue(forKey: id) }?.continuation.resume(throwing: CancellationError())
        }
        try Task.checkCancellation()
    }
}
