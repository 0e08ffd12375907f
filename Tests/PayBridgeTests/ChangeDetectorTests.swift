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

    @Test func knownPaymentsChangeEvenDuringABaseline() {
        // Another watch already tracks "a": its change must not be swallowed by this watch's baseline.
        let changes = ChangeDetector.changes(
            in: [sighting("a", "Rejected"), sighting("b", "Processed")], known: ["a": PaymentState(status: "Hold", sequence: 2)],
            emitNew: false)
        #expect(changes.map(\.kind) == [.statusChanged, .recorded])
    }
}
