import Foundation
import Synchronization

/// Where paybridge reads the time. The bridge, the dispatcher, the recorder and the store's
/// writes take one, so everything that schedules (retries, `Retry-After`, breakers, rate
/// limits) can be tested with a `ManualClock` instead of sleeping.
public struct WallClock: Sendable {
    private let read: @Sendable () -> Date

    public init(_ read: @escaping @Sendable () -> Date) { self.read = read }

    public func now() -> Date { read() }

    /// The system's clock.
    public static let system = WallClock { Date() }
}

/// A clock that moves only when told to (tests).
public final class ManualClock: Sendable {
    private let current: Mutex<Date>

    public init(_ start: Date = Date(timeIntervalSince1970: 1_800_000_000)) { current = Mutex(start) }

    public var now: Date { current.withLock { $0 } }

    public func advance(by seconds: TimeInterval) { current.withLock { $0 += seconds } }

    public func set(_ date: Date) { current.withLock { $0 = date } }

    public var clock: WallClock { WallClock { [self] in now } }
}
