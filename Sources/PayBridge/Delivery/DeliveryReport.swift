import Foundation
import Logging
import Metrics

/// What the dispatcher tells operators about deliveries: each endpoint's metrics, a log line
/// per change of its state, a summary a minute while it fails (instead of a warning per
/// attempt), and each outcome at the level it deserves.
struct DeliveryReport {
    private let names: [String]
    private let metrics: [EndpointMetrics]
    private let logger: Logger
    /// When each failing endpoint's last summary line was logged.
    private var lastSummary: [String: Date] = [:]

    static let summaryInterval: TimeInterval = 60

    init(endpoints: [String], logger: Logger) {
        names = endpoints
        metrics = endpoints.map(EndpointMetrics.init(endpoint:))
        self.logger = logger
    }

    /// The starting gauges: disabled or not, circuits closed.
    func start(disabled: (Int) -> Bool) {
        for index in metrics.indices {
            metrics[index].disabled.record(disabled(index) ? 1 : 0)
            metrics[index].circuitOpen.record(0)
        }
    }

    /// An endpoint's change of state. `pending`: its queue, for a disabled endpoint.
    mutating func announce(_ announcement: DeliveryStateMachine.Announcement, lane index: Int, at date: Date, pending: Int = 0) {
        let name = names[index]
        let metrics = metrics[index]
        switch announcement {
        case .failing(let since):
            lastSummary[name] = date
            logger.warning(
                "endpoint failing: deliveries are retried on its schedule",
                metadata: ["endpoint": "\(name)", "failingSince": "\(Timestamp.iso8601(since))"])
        case .opened(let until, let failures):
            metrics.circuitOpen.record(1)
            logger.warning(
                "endpoint failing: circuit open, probing again later",
                metadata: ["endpoint": "\(name)", "failures": .stringConvertible(failures), "probeAt": "\(Timestamp.iso8601(until))"])
        case .halfOpened:
            logger.info("endpoint circuit half-open: sending one probe", metadata: ["endpoint": "\(name)"])
        case .recovered(let since):
            lastSummary[name] = nil
            metrics.circuitOpen.record(0)
            logger.notice("endpoint recovered", metadata: ["endpoint": "\(name)", "failingSince": "\(Timestamp.iso8601(since))"])
        case .disabled(let reason, _):
            metrics.circuitOpen.record(0)
            metrics.disabled.record(1)
            logger.error(
                "endpoint disabled: its deliveries are kept; re-enable it with `paybridge endpoints enable \(name)`",
                metadata: ["endpoint": "\(name)", "reason": "\(reason)", "pending": .stringConvertible(pending)])
        case .disabledByOperator(let reason):
            metrics.disabled.record(1)
            logger.notice("endpoint disabled by an operator; its deliveries are kept", metadata: ["endpoint": "\(name)", "reason": "\(reason)"])
        case .enabled:
            metrics.disabled.record(0)
            logger.notice("endpoint re-enabled", metadata: ["endpoint": "\(name)"])
        }
    }

    /// Whether the endpoint's last attempt failed (a gauge).
    func failing(lane index: Int, _ failing: Bool) {
        metrics[index].failing.record(failing ? 1 : 0)
    }

    /// A failing endpoint gets one summary line a minute, the first a minute after it
    /// started failing (that moment has its own warning).
    mutating func summarize(_ health: EndpointHealth, lane index: Int, at date: Date) {
        guard health.failures > 0, !health.isDisabled else { return }
        let name = names[index]
        guard let last = lastSummary[name] else {
            lastSummary[name] = date
            return
        }
        guard date.timeIntervalSince(last) >= Self.summaryInterval else { return }
        logger.warning(
            "endpoint still failing",
            metadata: [
                "endpoint": "\(name)", "failures": .stringConvertible(health.failures),
                "failingSince": "\(health.failingSince.map(Timestamp.iso8601) ?? "")", "circuit": "\(health.state.circuit.rawValue)",
            ])
        lastSummary[name] = date
    }

    /// Said before a stop waits for attempts in flight, so a stop that seems to hang is explained.
    func stopping(inFlight: Int, grace: TimeInterval) {
        logger.notice(
            "stopping: waiting for deliveries in flight",
            metadata: [
                "inFlight": .stringConvertible(inFlight),
                "grace": "\(DurationText.format(.milliseconds(Int64(max(0, grace) * 1000))))",
            ])
    }

    func stopped(abandoning abandoned: Int) {
        guard abandoned > 0 else { return }
        logger.warning("stopping with deliveries in flight; they stay queued", metadata: ["inFlight": .stringConvertible(abandoned)])
    }

    /// Counts an outcome in the endpoint's metrics.
    func count(_ outcome: DeliveryStateMachine.Outcome) {
        let metrics = metrics[outcome.lane]
        metrics.attempt.recordNanoseconds(Int64(outcome.record.duration.seconds * 1e9))
        switch outcome.record.next {
        case .delivered:
            metrics.delivered.increment()
            let finishedAt = outcome.record.startedAt.addingTimeInterval(outcome.record.duration.seconds)
            metrics.latency.recordNanoseconds(Int64(finishedAt.timeIntervalSince(outcome.delivery.createdAt) * 1e9))
        case .retry: metrics.retried.increment()
        case .dead: metrics.dead.increment()
        }
    }

    /// Logs an outcome: a dead letter always, the rest at debug.
    func log(_ outcome: DeliveryStateMachine.Outcome) {
        // Built only when it will be printed: this runs for every delivery.
        if case .delivered = outcome.record.next, logger.logLevel > .debug { return }
        if case .retry = outcome.record.next, logger.logLevel > .debug { return }
        var metadata: Logger.Metadata = [
            "endpoint": "\(names[outcome.lane])", "eventId": "\(outcome.delivery.eventId)",
            "attempt": .stringConvertible(outcome.record.attempt), "deliveryId": .stringConvertible(outcome.delivery.id),
        ]
        // Payment events' subject is the payment id; the others' (endpoint:…, source, group:…) say what they are about.
        if outcome.delivery.eventType.hasPrefix("payment."), outcome.delivery.eventType != EventType.paymentGroup.rawValue {
            metadata["paymentId"] = "\(outcome.delivery.subject)"
        } else {
            metadata["subject"] = "\(outcome.delivery.subject)"
        }
        if let error = outcome.record.error { metadata["error"] = "\(error)" }
        switch outcome.record.next {
        case .delivered:
            logger.debug("delivered", metadata: metadata)
        case .retry(let date):
            // Each failed attempt at debug: the endpoint's state changes and a summary a
            // minute are what a warning-level log shows.
            metadata["retryAt"] = "\(Timestamp.iso8601(date))"
            logger.debug("delivery failed; will retry", metadata: metadata)
        case .dead:
            logger.error("delivery failed for the last time; dead-lettered", metadata: metadata)
        }
    }
}
