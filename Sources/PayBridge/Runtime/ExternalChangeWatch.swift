import Foundation
import Logging
import Synchronization

/// Tells a running dispatcher, within a quarter of a second, that another process committed
/// to the state: an operator's `deliveries replay` or `endpoints enable`, a `poll --once`.
/// It asks the store's `changeMark()` (SQLite's `PRAGMA data_version`: no I/O when nothing
/// changed) on a thread of its own, so a slow answer never holds up deliveries.
final class ExternalChangeWatch: Sendable {
    static let interval: Duration = .milliseconds(250)

    private let stopped = Mutex(false)
    private let wake = DispatchSemaphore(value: 0)

    init(store: any OutboxStore, logger: Logger, onChange: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            var last: Int64?
            while !stopped.withLock({ $0 }) {
                do {
                    let mark = try store.changeMark()
                    // The first reading counts as a change: a commit made while the run
                    // started is not missed.
                    if mark != last { onChange() }
                    last = mark
                } catch {
                    logger.debug("cannot read the state's change mark; trying again", metadata: ["error": "\(error)"])
                }
                _ = wake.wait(timeout: .now() + .milliseconds(Int(Self.interval.seconds * 1000)))
            }
        }
        thread.name = "paybridge-change-watch"
        thread.start()
    }

    func stop() {
        stopped.withLock { $0 = true }
        wake.signal()
    }
}
