import Foundation
import ServiceLifecycle

/// Holds this instance's leases on a shared state: renews the poller lease and the
/// endpoints' leases every third of their duration, so a dead instance's are taken over
/// within 2× the lease; lets them go when paybridge stops.
struct CoordinationService: Service {
    let bridge: Bridge

    func run() async throws {
        let every = bridge.store.leaseDuration / 3
        await cancelWhenGracefulShutdown {
            var owned: Set<String>? = nil
            while !Task.isCancelled {
                _ = await bridge.renewLeases(owned: &owned)
                try? await bridge.clock.sleep(for: every)
            }
        }
        await bridge.letGoOfLeases()
    }
}

/// Lets the poller lease go as soon as a graceful stop has ended detection (it is shut down
/// after the watches and before the deliveries drain), so another instance polls while this
/// one finishes its attempts in flight instead of after them.
struct PollerHandoverService: Service {
    let bridge: Bridge

    func run() async throws {
        try? await gracefulShutdown()
        await bridge.stopPolling()
    }
}
