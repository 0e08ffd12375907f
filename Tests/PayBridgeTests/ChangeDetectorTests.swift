import Testing

@testable import PayBridge

@Suite struct ChangeDetectorTests {
    func sighting(_ id: String, _ status: String) -> ScannedPayment {
        ScannedPayment(paymentId: id, status: status, range: 0..<0)
    }

    @Test func baselineRecordsWithoutEvents() {
        let changes = ChangeDetector.changes(in: [sighting("a", "Processed")], known: [:], emitNew: false)
        #expect(changes.map(\.kind) == [.recorded])
        #expect(changes[0].state == PaymentState(status: "Processed", sequence: 0))
    }

    @Test func newPaymentAfterBaselineIsCreated() {
        let changes = ChangeDetector.changes(in: [sighting("a", "PendingProcessing")], known: [:], emitNew: true)
        #expect(changes.map(\.kind) == [.created])
        #expect(changes[0].state.sequence == 1)
    }

    @Test func statusChangeBumpsTheSequence() {
        let known = ["a": PaymentState(status: "PendingProcessing", sequence: 4)]
        let changes = ChangeDetector.changes(in: [sighting("a", "Rejected")], known: known, emitNew: true)
        #expect(changes.map(\.kind) == [.statusChanged])
        #expect(changes[0].previous?.status == "PendingProcessing")
        #expect(changes[0].state == PaymentState(status: "Rejected", sequence: 5))
    }

    @Test func sameStatusIsNothing() {
        let known = ["a": PaymentState(status: "Processed", sequence: 1)]
        #expect(ChangeDetector.changes(in: [sighting("a", "Processed")], known: known, emitNew: true).isEmpty)
    }

    @Test func aPaymentListedTwiceCountsOnce() {
        let changes = ChangeDetector.changes(
            in: [sighting("a", "Processed"), sighting("a", "Processed")], known: ["a": PaymentState(status: "Hold", sequence: 1)],
            emitNew: true)
        #expect(changes.count == 1)
    }

    /// A fresh copy and then a stale one (another status) in one list: the first change counts,
    /// the stale copy is not a second event that undoes it (a false `Rejected`).
    @Test func aPaymentListedTwiceWithAnotherStatusCountsOnce() {
        let known = ["a": PaymentState(status: "PendingProcessing", sequence: 1)]
        let changes = ChangeDetector.changes(in: [sighting("a", "Processed"), sighting("a", "Rejected")], known: known, emitNew: true)
        #expect(changes.map(\.state) == [PaymentState(status: "Processed", sequence: 2)])
        // An unchanged sighting first, the change after it: the change is what counts.
        let later = ChangeDetector.changes(in: [sighting("a", "PendingProcessing"), sighting("a", "Processed")], known: known, emitNew: true)
        #expect(later.map(\.state) == [PaymentState(status: "Processed", sequence: 2)])
        // A stale copy first and the fresh one after it: the newer copy replaces the change;
        // a newer copy with the known status leaves no change at all.
        let newer: (ScannedPayment, ScannedPayment) -> Bool = { $1.status == "Processed" || $1.status == "PendingProcessing" }
        let fresh = ChangeDetector.changes(
            in: [sighting("a", "Rejected"), sighting("a", "Processed"), sighting("a", "Rejected")], known: known, emitNew: true, newer: newer)
        #expect(fresh.map(\.state) == [PaymentState(status: "Processed", sequence: 2)])
        let none = ChangeDetector.changes(in: [sighting("a", "Rejected"), sighting("a", "PendingProcessing")], known: known, emitNew: true, newer: newer)
        #expect(none.isEmpty)
        // During a silent baseline, a payment listed twice is recorded once, with no event.
        let baseline = ChangeDetector.changes(in: [sighting("b", "Processed"), sighting("b", "Rejected")], known: [:], emitNew: false)
        #expect(baseline.map(\.kind) == [.recorded])
    }

    @Test func knownPaymentsChangeEvenDuringABaseline() {
        // Another watch already tracks "a": its change must not be swallowed by this watch's baseline.
        let changes = ChangeDetector.changes(
            in: [sighting("a", "Rejected"), sighting("b", "Processed")], known: ["a": PaymentState(status: "Hold", sequence: 2)],
            emitNew: false)
        #expect(changes.map(\.kind) == [.statusChanged, .recorded])
    }
}
