import Synchronization

/// Lets the poller wake a dispatcher created after it.
final class WakeRelay: Sendable {
    private struct Target {
        weak var dispatcher: Dispatcher?
    }

    private let target = Mutex(Target())

    /// Set once in Bridge.init, before anything can fire.
    func aim(at dispatcher: Dispatcher) { target.withLock { $0.dispatcher = dispatcher } }

    func fire() { target.withLock { $0.dispatcher }?.wake() }
}
