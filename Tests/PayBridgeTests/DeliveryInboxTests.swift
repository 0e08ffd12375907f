import Foundation
import Testing

@testable import PayBridge

struct DeliveryInboxTests {
    /// A run waits for its group messages after its loop ended; a stop posted meanwhile was for
    /// that run, and the dispatcher's next run (a second `poll --once` drain) must not end at once.
    @Test func aStopLeftFromTheLastRunDoesNotStopTheNext() {
        let inbox = DeliveryInbox(statuses: [])
        let (_, first) = AsyncStream.makeStream(of: Void.self)
        #expect(inbox.begin(wakeup: first))
        _ = inbox.take()
        inbox.post(.stop(deadline: Date()))
        inbox.post(.drain(dueBy: Date()))
        inbox.post(.deliveriesQueued)
        inbox.end()
        let (_, second) = AsyncStream.makeStream(of: Void.self)
        #expect(inbox.begin(wakeup: second))
        let taken = inbox.take()
        #expect(taken.inputs.count == 1, "only the input that is not about the run's end is kept")
        if case .deliveriesQueued = taken.inputs.first {} else { Issue.record("expected .deliveriesQueued, got \(taken.inputs)") }
        #expect(taken.externalChange, "a run begins by reading the endpoints' records")
    }

    @Test func aStopBeforeAnyRunIsNotKept() {
        let inbox = DeliveryInbox(statuses: [])
        inbox.post(.stop(deadline: Date()))
        let (_, wakeup) = AsyncStream.makeStream(of: Void.self)
        #expect(inbox.begin(wakeup: wakeup))
        #expect(inbox.take().inputs.isEmpty)
    }
}
