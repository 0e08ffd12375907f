import Foundation
import Logging

/// Tells a running dispatcher, within a quarter of a second, that another process committed
/// to the state: an operator's `deliveries replay` or `endpoints enable`, a `poll --once`.
/// It asks the store's `changeMark()` (SQLite's `PRAGMA data_version`: no I/O when nothing
/// changed) on a storage thread, so a slow answer never holds up deliveries.
///
/// It polls on real time, not the injected clock: it is how news of other processes arrives,
/// not a timer of paybridge's own.
enum ExternalChangeWatch {
    static let interval: Duration = .milliseconds(250)

    /// Watches until the task is cancelled.
    static func run(store: any OutboxStore, logger: Logger, onChange: @escaping @Sendable () -> Void) async {
        var last: Int64?
        while !Task.isCancelled {
            do {
                let mark = try await StorageThreads.run { try store.changeMark() }
                // The first reading counts as a change: a commit made while the run started
                // is not missed.
                if mark != last { onChange() }
                last = mark
            } catch {
                logger.debug("cannot read the state's change mark; trying again", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: interval)
        }
    }
}
