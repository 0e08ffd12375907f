import Foundation
import ServiceLifecycle

/// Polls one watch on its interval until a graceful shutdown, which stops it between pages.
/// Failed polls back off (doubling, up to `source.maxBackoff`); while the state storage takes
/// no writes, it waits instead of polling.
struct WatchService: Service {
    let bridge: Bridge
    let watch: Watch

    func run() async throws {
        await cancelWhenGracefulShutdown {
            let clock = bridge.clock
            var failures = 0
            while !Task.isCancelled {
                if !bridge.isLeader {
                    // Another instance polls; this one waits to take over.
                    try? await clock.sleep(for: .milliseconds(200))
                    continue
                }
                if !bridge.storage.isAvailable {
                    await bridge.storage.waitUntilWritable(bridge.store)
                    continue
                }
                let started = clock.now()
                switch await bridge.poll(watch, shouldStop: { [bridge] in Task.isCancelled || !bridge.isLeader }) {
                case .success: failures = 0
                case .failure(let error) where error.stage == .source: failures += 1
                case .failure: break
                }
                let delay = PollSchedule.delay(every: watch.every, failures: failures, maxBackoff: bridge.configuration.source.maxBackoff)
                try? await clock.sleep(until: started.addingTimeInterval(delay.seconds))
            }
        }
    }
}
