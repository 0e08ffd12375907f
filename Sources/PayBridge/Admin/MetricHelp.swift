import Foundation
import Prometheus

/// `# HELP` lines for `/metrics`. The library records through swift-metrics, which carries no
/// help text; the exposition gets it here, a line before each family's `# TYPE`, so
/// `promtool check metrics` (and a person reading the page) knows what each family means.
public enum MetricHelp {
    static let texts: [String: String] = [
        "paybridge_build_info": "The running paybridge's version (always 1).",
        "paybridge_polls_total": "Polls of a watch by outcome (ok, failed).",
        "paybridge_poll_duration_seconds": "How long one whole poll of a watch took.",
        "paybridge_pages_scanned_total": "Pages of payments read from the bank.",
        "paybridge_payments_scanned_total": "Payments read from the bank (each page's payments).",
        "paybridge_payments_tracked": "Payments whose last status paybridge remembers.",
        "paybridge_events_total": "Events created, by type and status.",
        "paybridge_bank_errors_total": "Failed bank calls by code: http_NNN (the HTTP status), timeout, connection, tls, transport, unauthorized, authentication, malformed.",
        "paybridge_token_fetches_total": "Token requests to the bank's authorize call, by outcome.",
        "paybridge_source_available": "1 while the bank answers, 0 once it has failed for source.unavailableAfter.",
        "paybridge_storage_available": "1 while the state storage accepts writes, 0 while it does not.",
        "paybridge_queue_depth": "Deliveries waiting for an endpoint (pending).",
        "paybridge_queue_oldest_pending_age_seconds": "Age of the oldest pending delivery of an endpoint.",
        "paybridge_deliveries_total": "Delivery attempts' outcomes per endpoint (delivered, retry, dead).",
        "paybridge_delivery_latency_seconds": "From an event's detection to its delivery's 2xx.",
        "paybridge_delivery_attempt_duration_seconds": "How long one delivery attempt took, answer included.",
        "paybridge_endpoint_failing": "1 while an endpoint's last attempt failed, 0 once one succeeds.",
        "paybridge_endpoint_circuit_open": "1 while an endpoint's circuit is open (no attempts but a probe).",
        "paybridge_endpoint_disabled": "1 while an endpoint is disabled (by an operator, a 410 or disableAfter).",
        "paybridge_notifications_received_total": "The bank's notifications received, by outcome (accepted, duplicate, rejected).",
        "paybridge_notification_lookups_total": "Payments read by id because the bank notified them, by outcome (ok, unknown_payment, failed).",
        "paybridge_notification_event_latency_seconds": "From a notification's arrival to the event its look-up committed.",
        "paybridge_notifications_subscription_active": "1 while the bank's notification subscription is Active, 0 when missing or not.",
    ]

    /// Registers `paybridge_build_info{version=…} 1`.
    public static func registerBuildInfo(in registry: PrometheusCollectorRegistry) {
        let descriptor = MetricNameDescriptor(
            namespace: "paybridge", metricName: "build", unitName: "info", helpText: texts["paybridge_build_info"] ?? "")
        registry.makeGauge(descriptor: descriptor, labels: [("version", PayBridgeVersion.string)]).set(to: Double(1))
    }

    /// The registry's text with a `# HELP` line before every `# TYPE` line that has none.
    static func annotate(_ exposition: [UInt8]) -> [UInt8] {
        let text = String(decoding: exposition, as: UTF8.self)
        var lines: [Substring] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE "), let family = line.dropFirst(7).split(separator: " ").first,
                lines.last?.hasPrefix("# HELP \(family) ") != true
            {
                lines.append("# HELP \(family) \(texts[String(family)] ?? family.replacingOccurrences(of: "_", with: " "))")
            }
            lines.append(line)
        }
        return Array(lines.joined(separator: "\n").utf8)
    }
}
