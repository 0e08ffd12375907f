import Foundation
import ServiceLifecycle

/// Applies retention at start and every hour.
struct RetentionService: Service {
    let bridge: Bridge

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                if bridge.isLeader {
                    await bridge.prune()
                    try? await bridge.clock.sleep(for: .seconds(3600))
                } else {
                    // One instance applies retention: the one that polls.
                    try? await bridge.clock.sleep(for: .seconds(10))
                }
            }
        }
    }
}
