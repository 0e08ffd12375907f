import Foundation
import Synchronization

/// What other tasks and the transport's thread hand to the dispatcher's loop: inputs for the
/// machine (attempts finished, commits acknowledged, stop, drain), token answers, and signals
/// (new deliveries, another process's change, ownership). Every post wakes the loop.
final class DeliveryInbox: Sendable {
    /// What the loop takes in one turn.
    struct Taken {
        var inputs: [DeliveryStateMachine.Input]
        var authEvents: [AttemptSender.AuthEvent]
        var queued: Bool
        var externalChange: Bool
        /// The endpoints this instance now delivers, not yet told to the machine.
        var ownership: Set<String>?
        /// Which post of the ownership that is (counted from 1).
        var ownershipPost = 0
    }

    private struct State {
        var taken = Taken(inputs: [], authEvents: [], queued: false, externalChange: false, ownership: nil, ownershipPost: 0)
        /// Between `begin` and `end`.
        var running = false
        /// Wakes the running loop (nil between runs).
        var wakeup: AsyncStream<Void>.Continuation?
        var statuses: [Dispatcher.EndpointStatus]
        /// Ownership posts so far, and the last one the published statuses reflect.
        var ownershipPosts = 0
        var ownershipPublished = 0
    }

    private let state: Mutex<State>

    init(statuses: [Dispatcher.EndpointStatus]) {
        state = Mutex(State(statuses: statuses))
    }

    func post(_ input: DeliveryStateMachine.Input) {
        signal { state in
            switch input {
            // A stop or a drain is for the run under way; none is waiting for a later one.
            case .stop, .drain: guard state.running else { return }
            default: break
            }
            state.taken.inputs.append(input)
        }
    }

    func post(_ event: AttemptSender.AuthEvent) { signal { $0.taken.authEvents.append(event) } }
    func deliveriesQueued() { signal { $0.taken.queued = true } }
    func externalChange() { signal { $0.taken.externalChange = true } }
    func ownership(_ owned: Set<String>) {
        signal { state in
            state.ownershipPosts += 1
            state.taken.ownership = owned
            state.taken.ownershipPost = state.ownershipPosts
        }
    }

    /// Follows the storage seam's one signal: new deliveries wake the loop; other processes'
    /// commits matter only to a continuous run (a drain reads records once, as it begins).
    func follow(_ changes: AsyncStream<StateChange>, externalChanges: Bool) -> Task<Void, Never> {
        Task { [weak self] in
            for await change in changes {
                switch change {
                case .queued: self?.deliveriesQueued()
                case .changed: if externalChanges { self?.externalChange() }
                }
            }
        }
    }

    /// Only wakes the loop (a timer, a refused commit: the loop looks at the clock and the storage).
    func wake() { signal { _ in } }

    /// Starts a run woken through `wakeup`; false when one is already running. The endpoints'
    /// records may have changed since the last run (an operator's enable): they are read again.
    func begin(wakeup: AsyncStream<Void>.Continuation) -> Bool {
        state.withLock { state in
            guard !state.running else { return false }
            state.running = true
            state.wakeup = wakeup
            state.taken.externalChange = true
            // A stop or drain posted while the last run waited for its group flushes was for
            // that run: this one must not stop or drain because of it.
            state.taken.inputs.removeAll { input in
                switch input {
                case .stop, .drain: true
                default: false
                }
            }
            return true
        }
    }

    func end() {
        state.withLock { state in
            state.running = false
            state.wakeup = nil
        }
    }

    func take() -> Taken {
        state.withLock { state in
            defer { state.taken = Taken(inputs: [], authEvents: [], queued: false, externalChange: false, ownership: nil, ownershipPost: 0) }
            return state.taken
        }
    }

    /// Gives back signals the loop could not act on (the records could not be read).
    func putBack(externalChange: Bool, ownership: Set<String>?, post: Int) {
        state.withLock { state in
            state.taken.externalChange = state.taken.externalChange || externalChange
            if state.taken.ownership == nil, let ownership {
                state.taken.ownership = ownership
                state.taken.ownershipPost = post
            }
        }
    }

    var isEmpty: Bool {
        state.withLock { state in
            state.taken.inputs.isEmpty && state.taken.authEvents.isEmpty && !state.taken.queued && !state.taken.externalChange
                && state.taken.ownership == nil
        }
    }

    /// Every endpoint's circuit state as the loop last published it (`/health`).
    var statuses: [Dispatcher.EndpointStatus] { state.withLock { $0.statuses } }

    /// The loop publishes what the machine knows, having told it ownership post `ownershipPost`.
    func publish(_ statuses: [Dispatcher.EndpointStatus], ownershipPost: Int) {
        state.withLock { state in
            if state.statuses != statuses { state.statuses = statuses }
            state.ownershipPublished = ownershipPost
        }
    }

    /// The endpoints another instance may take from this one: none until the statuses reflect
    /// the last ownership posted (an older snapshot may miss an endpoint just let go being
    /// claimed and sent by a turn of the loop still under way).
    var settledEndpoints: Set<String> {
        state.withLock { state in
            guard state.ownershipPublished == state.ownershipPosts else { return [] }
            return Set(state.statuses.filter(\.settled).map(\.name))
        }
    }

    private func signal(_ change: (inout State) -> Void) {
        let wakeup = state.withLock { state in
            change(&state)
            return state.wakeup
        }
        wakeup?.yield()
    }
}
