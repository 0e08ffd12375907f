import Foundation
import PayBridge
import Synchronization

/// The time a test gives the real binary (`PAYBRIDGE_TEST_CLOCK`) and, if it likes, the sandbox
/// bank: the system's clock plus an offset that only the test moves. `advance` is how a test
/// makes a retry, a `disableAfter` window, a group's flush or a sampled gauge come due in a
/// `paybridge` process, instead of sleeping until it does.
final class BinaryClock: Sendable {
    let file: String
    private let offset = Mutex<TimeInterval>(0)

    init() throws {
        file = FileManager.default.temporaryDirectory.appendingPathComponent("paybridge-clock-\(UUID().uuidString)").path
        try "0".write(toFile: file, atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(atPath: file) }

    /// What a `paybridge` process needs in its environment to read this clock.
    var environment: [String: String] { [WallClock.testClockVariable: file] }

    func now() -> Date { Date().addingTimeInterval(offset.withLock { $0 }) }

    /// Moves the time on by `seconds` for the binary (its sleepers see it within 20 ms) and
    /// for whatever else reads `now()`.
    func advance(by seconds: TimeInterval) throws {
        let value = offset.withLock { offset in
            offset += seconds
            return offset
        }
        try String(value).write(toFile: file, atomically: true, encoding: .utf8)
    }
}
