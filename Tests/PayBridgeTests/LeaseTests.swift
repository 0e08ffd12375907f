import PayBridge
import Testing

/// The lease a holder keeps between renewals: one input, one asserted outcome, on instants
/// made by hand (no waiting).
@Suite struct LeaseTests {
    let start = ContinuousClock.now
    func at(_ seconds: Double) -> ContinuousClock.Instant { start + .milliseconds(Int(seconds * 1000)) }

    @Test func aGrantedLeaseFencesWithItsTokenUntilOneDurationAfterItWasAsked() {
        var lease = Lease(duration: .seconds(10))
        #expect(lease.fencingToken(at: at(0)) == nil)
        #expect(lease.renewed(token: 7, askedAt: at(0)) == .acquired(token: 7))
        #expect(lease.fencingToken(at: at(9.9)) == 7)
        #expect(lease.isHeld(at: at(9.9)))
        // Counted from the question, not the answer: the database counted from then.
        #expect(lease.fencingToken(at: at(10)) == nil)
        #expect(!lease.isHeld(at: at(10)))
    }

    @Test func aRenewalExtendsItAndKeepsTheToken() {
        var lease = Lease(duration: .seconds(10))
        _ = lease.renewed(token: 7, askedAt: at(0))
        #expect(lease.renewed(token: 7, askedAt: at(3)) == .unchanged)
        #expect(lease.fencingToken(at: at(12)) == 7)
    }

    @Test func aFailedRenewalLeavesTheTokenUntilExpiryButNoNewWork() {
        var lease = Lease(duration: .seconds(10))
        _ = lease.renewed(token: 7, askedAt: at(0))
        #expect(lease.renewalFailed(at: at(4)) == .unchanged)
        #expect(lease.state == .renewing(token: 7, until: at(10)))
        #expect(lease.fencingToken(at: at(5)) == 7, "a commit in flight may still finish")
        #expect(!lease.isHeld(at: at(5)), "nothing new starts")
        #expect(lease.renewalFailed(at: at(10)) == .lost)
        #expect(lease.state == .lost(token: 7))
        #expect(lease.fencingToken(at: at(10)) == nil)
    }

    @Test func aPausedHolderHasNoTokenOnceItsLeaseRanOutEvenWithoutBeingTold() {
        var lease = Lease(duration: .seconds(3))
        _ = lease.renewed(token: 1, askedAt: at(0))
        // SIGSTOP for a minute: no input at all, and still no token.
        #expect(lease.fencingToken(at: at(60)) == nil)
    }

    @Test func anotherHolderMeansLostThenFreeAndANewTokenIsANewAcquisition() {
        var lease = Lease(duration: .seconds(10))
        _ = lease.renewed(token: 1, askedAt: at(0))
        #expect(lease.renewed(token: nil, askedAt: at(3)) == .lost)
        #expect(lease.state == .lost(token: 1))
        #expect(lease.renewed(token: nil, askedAt: at(6)) == .unchanged)
        #expect(lease.state == .free)
        // Taken back after another instance held it: the token moved on.
        #expect(lease.renewed(token: 3, askedAt: at(30)) == .acquired(token: 3))
        #expect(lease.fencingToken(at: at(31)) == 3)
    }

    @Test func releasingLetsGoAtOnce() {
        var lease = Lease(duration: .seconds(10))
        _ = lease.renewed(token: 4, askedAt: at(0))
        lease.released()
        #expect(lease.state == .free)
        #expect(lease.fencingToken(at: at(1)) == nil)
        #expect(lease.renewalFailed(at: at(2)) == .unchanged)
    }
}
