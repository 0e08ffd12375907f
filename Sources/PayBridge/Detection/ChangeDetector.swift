/// What one sighting of a payment means against what paybridge already knew.
public struct DetectedChange: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A payment seen for the first time during a silent baseline: stored, no event.
        case recorded
        case created
        case statusChanged
    }

    public var kind: Kind
    public var payment: ScannedPayment
    public var previous: PaymentState?
    public var state: PaymentState
}

/// The diff at the heart of paybridge: pure, no I/O.
public enum ChangeDetector {
    /// Compares sightings with known states, in order; a payment listed twice is compared
    /// with its own earlier sighting, so the same status twice counts once.
    /// - Parameter emitNew: false during a silent baseline (new payments are only recorded).
    public static func changes(in payments: [ScannedPayment], known: [String: PaymentState], emitNew: Bool) -> [DetectedChange] {
        var seen: [String: PaymentState] = [:]
        var changes: [DetectedChange] = []
        for payment in payments {
            let current = seen[payment.paymentId] ?? known[payment.paymentId]
            let change: DetectedChange
            if let current {
                guard current.status != payment.status else { continue }
                change = DetectedChange(
                    kind: .statusChanged, payment: payment, previous: current,
                    state: PaymentState(status: payment.status, sequence: current.sequence + 1))
            } else if emitNew {
                change = DetectedChange(kind: .created, payment: payment, previous: nil, state: PaymentState(status: payment.status, sequence: 1))
            } else {
                change = DetectedChange(kind: .recorded, payment: payment, previous: nil, state: PaymentState(status: payment.status, sequence: 0))
            }
            seen[payment.paymentId] = change.state
            changes.append(change)
        }
        return changes
    }
}
