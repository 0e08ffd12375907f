import Foundation
import Synchronization

extension Dispatcher {
    public enum Mode: Sendable {
        /// Until `stop` is called.
        case continuous
        /// Until nothing due by the date is left to attempt.
        case drain(dueBy: Date)
        /// Continuous until the trigger fires, then a drain (`poll --once` delivers while it polls).
        case drainWhen(DrainTrigger)
    }

    /// Turns one `.drainWhen` run into a drain. It may fire before the run has begun (its
    /// task not yet scheduled): the run then starts as a drain.
    public final class DrainTrigger: Sendable {
        private let dispatcher: Dispatcher
        private let fired = Mutex<Date?>(nil)

        public init(_ dispatcher: Dispatcher) { self.dispatcher = dispatcher }

        public func fire(dueBy: Date) {
            fired.withLock { $0 = max($0 ?? dueBy, dueBy) }
            dispatcher.post(.drain(dueBy: dueBy))
        }

        /// The latest `dueBy` fired so far.
        var dueBy: Date? { fired.withLock { $0 } }
    }

    /// An endpoint's state as `/health` and operators see it.
    public struct EndpointStatus: Sendable, Equatable {
        public var name: String
        public var state: EndpointHealth.Circuit
        public var failures: Int
        public var failingSince: Date?
        public var inFlight: Int
        /// Not delivered here, with nothing in flight and every result recorded: another
        /// instance may take the endpoint without sending what this one still sends.
        public var settled: Bool

        /// Every endpoint's status as the machine knows it.
        static func all(_ machine: DeliveryStateMachine, _ endpoints: [EndpointConfiguration]) -> [EndpointStatus] {
            endpoints.indices.map { index in
                let health = machine.health(ofLane: index)
                return EndpointStatus(
                    name: endpoints[index].name, state: health.state.circuit, failures: health.failures, failingSince: health.failingSince,
                    inFlight: machine.inFlight(ofLane: index), settled: machine.isSettled(lane: index))
            }
        }
    }
}
