import PayBridge
import Testing

/// Who polls (§7), one input at a time.
@Suite struct LeadershipTests {
    @Test func theEmbeddedStateAlwaysLeads() {
        var leadership = Leadership(shared: false)
        #expect(leadership.isLeader)
        #expect(leadership.renewed(holding: false) == .unchanged)
        #expect(leadership.renewed(holding: nil) == .unchanged)
        leadership.stepDown()
        #expect(leadership.isLeader)
    }

    @Test func aSharedStateFollowsUntilTheLeaseIsHeldAndTheSourceRead() {
        var leadership = Leadership(shared: true)
        #expect(!leadership.isLeader)
        #expect(leadership.renewed(holding: false) == .unchanged)
        #expect(leadership.renewed(holding: true) == .takingOver)
        #expect(!leadership.isLeader, "not before the source record is read")
        leadership.tookOver(sourceRead: true)
        #expect(leadership.state == .leading)
        #expect(leadership.renewed(holding: true) == .unchanged)
    }

    @Test func anUnreadableSourceRecordKeepsItAFollower() {
        var leadership = Leadership(shared: true)
        #expect(leadership.renewed(holding: true) == .takingOver)
        leadership.tookOver(sourceRead: false)
        #expect(leadership.state == .following)
        #expect(leadership.renewed(holding: true) == .takingOver, "it tries again at the next renewal")
    }

    @Test func aLostOrFailedRenewalStopsPolling() {
        var leadership = Leadership(shared: true)
        _ = leadership.renewed(holding: true)
        leadership.tookOver(sourceRead: true)
        #expect(leadership.renewed(holding: nil) == .lost)
        #expect(!leadership.isLeader)
        #expect(leadership.renewed(holding: nil) == .unchanged, "said once")
    }

    @Test func aGracefulStopLeavesTheLeaseForGood() {
        var leadership = Leadership(shared: true)
        _ = leadership.renewed(holding: true)
        leadership.tookOver(sourceRead: true)
        #expect(leadership.seeksLease)
        leadership.stopPolling()
        #expect(!leadership.isLeader)
        #expect(!leadership.seeksLease)
        #expect(leadership.renewed(holding: true) == .unchanged, "never taken again")
        leadership.tookOver(sourceRead: true)
        leadership.tookOneShot()
        #expect(leadership.state == .stopped)
        var alone = Leadership(shared: false)
        alone.stopPolling()
        #expect(alone.isLeader, "the embedded state has no lease to leave")
    }

    @Test func aFencedPollOrAOneShotMovesItDirectly() {
        var leadership = Leadership(shared: true)
        leadership.tookOneShot()
        #expect(leadership.isLeader)
        leadership.stepDown()
        #expect(leadership.state == .following)
    }
}
