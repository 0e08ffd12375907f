import Foundation
import Metrics
import ServiceLifecycle

/// Samples what alerts watch: queue depth and the oldest pending delivery's age per
/// endpoint, and payments tracked, every 5 s.
struct QueueMetricsService: Service {
    let bridge: Bridge

    func run() async throws {
        await cancelWhenGracefulShutdown {
            let names = bridge.configuration.endpoints.map(\.name)
            let depth = Dictionary(uniqueKeysWithValues: names.map { ($0, Gauge(label: "paybridge_queue_depth", dimensions: [("endpoint", $0)])) })
            let age = Dictionary(
                uniqueKeysWithValues: names.map { ($0, Gauge(label: "paybridge_queue_oldest_pending_age_seconds", dimensions: [("endpoint", $0)])) })
            let tracked = Gauge(label: "paybridge_payments_tracked")
            while !Task.isCancelled {
                if let figures = try? await bridge.store.queueFigures() {
                    let now = bridge.clock.now()
                    for name in names {
                        depth[name]?.record(figures[name]?.pending ?? 0)
                        age[name]?.record(figures[name]?.oldest.map { max(0, now.timeIntervalSince($0)) } ?? 0)
                    }
                }
                if let count = try? await bridge.store.trackedPayments() { tracked.record(count) }
                try? await bridge.clock.sleep(for: .seconds(5))
            }
        }
    }
}
