import Foundation
import Metrics
import Synchronization

/// A watch's polls: outcomes, durations, pages and payments scanned.
struct PollMetrics {
    let succeeded: Counter
    let failed: Counter
    let duration: Metrics.Timer
    let pages: Counter
    let payments: Counter

    init(watch: String) {
        succeeded = Counter(label: "paybridge_polls_total", dimensions: [("watch", watch), ("outcome", "ok")])
        failed = Counter(label: "paybridge_polls_total", dimensions: [("watch", watch), ("outcome", "failed")])
        duration = Metrics.Timer(label: "paybridge_poll_duration_seconds", dimensions: [("watch", watch)], preferredDisplayUnit: .seconds)
        pages = Counter(label: "paybridge_pages_scanned_total", dimensions: [("watch", watch)])
        payments = Counter(label: "paybridge_payments_scanned_total", dimensions: [("watch", watch)])
    }
}

/// `paybridge_events_total{type, status}`, a counter per pair made once.
public final class EventMetrics: Sendable {
    public init() {}
    private let counters = Mutex<[String: Counter]>([:])

    func count(_ event: Event) {
        let status = event.status ?? ""
        let key = event.type.rawValue + "\n" + status
        let counter = counters.withLock { counters -> Counter in
            if let counter = counters[key] { return counter }
            let counter = Counter(label: "paybridge_events_total", dimensions: [("type", event.type.rawValue), ("status", status)])
            counters[key] = counter
            return counter
        }
        counter.increment()
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
