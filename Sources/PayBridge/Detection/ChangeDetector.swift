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
    /// Compares sightings with known states, in order. A payment listed twice counts once
    /// (§3): once a sighting changed it, a later sighting is looked at only when `newer` says
    /// it is a newer copy (a later `latestStatusChangedTimestamp`), and then replaces that
    /// change. So a stale copy (a lagging replica's older status) cannot undo a change with a
    /// second event, nor a stale copy listed first hide the fresh one. A status that really
    /// changed again between two pages is found by the next poll.
    /// - Parameter emitNew: false during a silent baseline (new payments are only recorded).
    /// - Parameter newer: whether the second sighting of a payment is newer than the first.
    public static func changes(
        in payments: [ScannedPayment], known: [String: PaymentState], emitNew: Bool,
        newer: (ScannedPayment, ScannedPayment) -> Bool = { _, _ in false }
    ) -> [DetectedChange] {
        // Each changed payment's counted sighting (its index in `payments`) and its change.
        var counted: [String: (sighting: Int, change: Int?)] = [:]
        var changes: [DetectedChange?] = []
        for (index, payment) in payments.enumerated() {
            if let earlier = counted[payment.paymentId] {
                guard newer(payments[earlier.sighting], payment) else { continue }
                if let change = earlier.change { changes[change] = nil }
                counted[payment.paymentId] = (index, nil)
            }
            let change: DetectedChange
            if let current = known[payment.paymentId] {
                guard current.status != payment.status else { continue }
                change = DetectedChange(
                    kind: .statusChanged, payment: payment, previous: current,
                    state: PaymentState(status: payment.status, sequence: current.sequence + 1))
            } else if emitNew {
                change = DetectedChange(kind: .created, payment: payment, previous: nil, state: PaymentState(status: payment.status, sequence: 1))
            } else {
                change = DetectedChange(kind: .recorded, payment: payment, previous: nil, state: PaymentState(status: payment.status, sequence: 0))
            }
            counted[payment.paymentId] = (index, changes.count)
            changes.append(change)
        }
        return changes.compactMap { $0 }
    }
}
