import Metrics

/// One endpoint's metrics (swift-metrics; exported by whatever backend the process bootstraps).
struct EndpointMetrics {
    let delivered: Counter
    let retried: Counter
    let dead: Counter
    let latency: Metrics.Timer
    let disabled: Gauge
    let circuitOpen: Gauge
    /// Each attempt's duration, whatever its outcome.
    let attempt: Metrics.Timer
    /// 1 while the endpoint's last attempt failed.
    let failing: Gauge

    init(endpoint: String) {
        let dimensions = [("endpoint", endpoint)]
        delivered = Counter(label: "paybridge_deliveries_total", dimensions: dimensions + [("outcome", "delivered")])
        retried = Counter(label: "paybridge_deliveries_total", dimensions: dimensions + [("outcome", "retry")])
        dead = Counter(label: "paybridge_deliveries_total", dimensions: dimensions + [("outcome", "dead")])
        latency = Metrics.Timer(label: "paybridge_delivery_latency_seconds", dimensions: dimensions, preferredDisplayUnit: .seconds)
        disabled = Gauge(label: "paybridge_endpoint_disabled", dimensions: dimensions)
        circuitOpen = Gauge(label: "paybridge_endpoint_circuit_open", dimensions: dimensions)
        attempt = Metrics.Timer(label: "paybridge_delivery_attempt_duration_seconds", dimensions: dimensions, preferredDisplayUnit: .seconds)
        failing = Gauge(label: "paybridge_endpoint_failing", dimensions: dimensions)
    }
}
