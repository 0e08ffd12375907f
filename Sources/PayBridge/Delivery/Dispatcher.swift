import Foundation
import Logging
import Metrics

/// Sends queued deliveries to their endpoints and records each attempt.
///
/// One thread runs the loop: record finished attempts (one transaction per batch), then fill
/// each endpoint's free slots with due deliveries, then sleep until an attempt finishes, new
/// deliveries are queued, or something becomes due (a retry, a circuit's probe, a rate
/// limit's next slot). Every endpoint has its own slots, circuit breaker and rate limit, so a
/// slow or dead endpoint only ever holds its own.
public final class Dispatcher: @unchecked Sendable {
    // @unchecked: the fields under "Loop thread" are touched only by the loop thread;
    // everything shared with other threads is guarded by `condition`.

    public enum Mode: Sendable {
        /// Until `stop` is called.
        case continuous
        /// Until nothing due by the date is left to attempt (`paybridge poll --once`).
        case drain(dueBy: Date)
    }

    /// An endpoint's state as `/health` and operators see it.
    public struct EndpointStatus: Sendable, Equatable {
        public var name: String
        public var state: String
        public var failures: Int
        public var failingSince: Date?
        public var inFlight: Int
    }

    private struct Target {
        let endpoint: EndpointConfiguration
        let signer: WebhookSigner
        var health: EndpointHealth
        var limiter: RateLimiter?
        var inFlight: Set<Int64> = []
        let metrics: EndpointMetrics
    }

    private struct Finished {
        var target: Int
        var delivery: QueuedDelivery
        var startedAt: Date
        var finishedAt: Date
        var result: AttemptResult
    }

    private let store: any Store
    private let http: any HTTPClient
    private let routes: RouteTable
    private let storage: StorageMonitor
    private let logger: Logger
    private let now: @Sendable () -> Date
    private let random: @Sendable () -> Double
    private let console: @Sendable ([UInt8]) -> Void
    private let onQueued: @Sendable () -> Void

    // Shared, under `condition`.
    private let condition = NSCondition()
    private var finished: [Finished] = []
    private var wakeRequested = false
    private var stopDeadline: Date?
    private var running = false
    private var statuses: [EndpointStatus] = []

    // Loop thread.
    private var targets: [Target]
    private var rotation = 0
    /// Results not yet committed (the store refused them); their deliveries are not re-sent.
    private var unrecorded: [Int: [AttemptRecord]] = [:]
    /// Operational events not yet committed.
    private var unsavedEvents: [(Event, EndpointRecord, String)] = []
    private var lastSync = Date.distantPast

    /// - Parameters:
    ///   - routes: where `endpoint.disabled` events go.
    ///   - console: where `kind: console` endpoints write (standard output by default).
    public init(
        endpoints: [EndpointConfiguration], store: any Store, http: any HTTPClient, routes: RouteTable = RouteTable(routes: []),
        storage: StorageMonitor? = nil, logger: Logger, now: @escaping @Sendable () -> Date = Date.init,
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
        console: @escaping @Sendable ([UInt8]) -> Void = { FileHandle.standardOutput.write(Data($0 + [0x0A])) },
        onQueued: @escaping @Sendable () -> Void = {}
    ) {
        self.store = store
        self.http = http
        self.routes = routes
        self.storage = storage ?? StorageMonitor(logger: logger)
        self.logger = logger
        self.now = now
        self.random = random
        self.console = console
        self.onQueued = onQueued
        let records = (try? store.endpointRecords()) ?? [:]
        targets = endpoints.map { endpoint in
            let metrics = EndpointMetrics(endpoint: endpoint.name)
            let health = EndpointHealth(settings: endpoint.breaker, disableAfter: endpoint.disableAfter, record: records[endpoint.name])
            metrics.disabled.record(health.isDisabled ? 1 : 0)
            metrics.circuitOpen.record(0)
            return Target(
                endpoint: endpoint, signer: WebhookSigner(secrets: endpoint.secrets), health: health,
                limiter: endpoint.rateLimit.map { RateLimiter(perSecond: $0) }, metrics: metrics)
        }
        statuses = targets.map(Self.status)
    }

    /// New deliveries were committed: look for them now rather than at the next timer.
    public func wake() {
        condition.lock()
        wakeRequested = true
        condition.signal()
        condition.unlock()
    }

    /// Asks a running loop to stop: no new attempts; attempts in flight get `grace` to
    /// finish and the rest stay queued for the next start.
    public func stop(grace: Duration) {
        condition.lock()
        if stopDeadline == nil { stopDeadline = now().addingTimeInterval(grace.seconds) }
        condition.signal()
        condition.unlock()
    }

    /// Every endpoint's circuit state, for `/health`.
    public var endpointStatuses: [EndpointStatus] { condition.withLock { statuses } }

    /// Runs the loop on its own thread until it ends (see `Mode`). One loop at a time: a
    /// call while another runs returns at once.
    public func run(_ mode: Mode) async {
        let alreadyRunning = condition.withLock { () -> Bool in
            defer { running = true }
            return running
        }
        guard !alreadyRunning else {
            logger.warning("the dispatcher is already running; ignoring a second run")
            return
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let thread = Thread { [self] in
                loop(mode)
                condition.withLock {
                    running = false
                    stopDeadline = nil
                }
                continuation.resume()
            }
            thread.name = "paybridge-dispatcher"
            thread.start()
        }
    }

    // MARK: Loop

    private var inFlightCount: Int { targets.reduce(0) { $0 + $1.inFlight.count } }

    private func loop(_ mode: Mode) {
        var drainCutoff: Date?
        if case .drain(let date) = mode { drainCutoff = date }
        while true {
            condition.lock()
            let batch = finished
            finished.removeAll(keepingCapacity: true)
            wakeRequested = false
            let stopping = stopDeadline
            condition.unlock()

            let announced = record(batch)
            let current = now()
            // Events this loop created (endpoint.disabled) are due now, even in a drain.
            if announced, let cutoff = drainCutoff { drainCutoff = max(cutoff, current) }
            syncEndpointRecords(at: current)
            publishStatuses()
            if let stopping {
                if inFlightCount == 0 || current >= stopping {
                    if inFlightCount > 0 {
                        logger.warning("stopping with deliveries in flight; they stay queued", metadata: ["inFlight": "\(inFlightCount)"])
                    }
                    return
                }
            } else if storage.isAvailable {
                let started = fill(dueBy: drainCutoff ?? current, now: current)
                if case .drain = mode, started == 0, inFlightCount == 0, !hasFinished() { return }
            } else if case .drain = mode, inFlightCount == 0, !hasFinished() {
                return  // Results not recorded stay pending in the store and are sent again later.
            }
            sleep(until: wakeTime(mode: mode, stopping: stopping, now: current))
        }
    }

    private func hasFinished() -> Bool {
        condition.withLock { !finished.isEmpty }
    }

    private func wakeTime(mode: Mode, stopping: Date?, now current: Date) -> Date {
        if let stopping { return stopping }
        var wake = current.addingTimeInterval(storage.isAvailable ? 30 : 1)
        if case .drain = mode { return wake }
        for target in targets {
            if let change = target.health.nextChange { wake = min(wake, change) }
            if let next = target.limiter?.nextStart, next > current { wake = min(wake, next) }
            // A disabled endpoint may be re-enabled by an operator: look every two seconds.
            if target.health.isDisabled { wake = min(wake, current.addingTimeInterval(2)) }
        }
        if let next = try? store.nextDueDate(after: current, endpoints: targets.map(\.endpoint.name)) {
            wake = min(wake, next)
        }
        return max(wake, current.addingTimeInterval(0.001))
    }

    private func sleep(until date: Date) {
        condition.lock()
        let stopAlreadyRequested = stopDeadline != nil
        while finished.isEmpty, !wakeRequested, (stopDeadline != nil) == stopAlreadyRequested, now() < date {
            if !condition.wait(until: date) { break }
        }
        condition.unlock()
    }

    /// Starts due deliveries in every endpoint's free slots; returns how many started.
    private func fill(dueBy: Date, now current: Date) -> Int {
        var batch: [(HTTPRequest, @Sendable (Result<HTTPResponse, TransportError>) -> Void)] = []
        var started = 0
        let count = targets.count
        for step in 0..<count {
            let index = (rotation + step) % count
            let (admitted, change) = targets[index].health.admits(now: current, inFlight: targets[index].inFlight.count)
            if let change { apply(change, to: index, at: current) }
            var free = min(targets[index].endpoint.concurrency - targets[index].inFlight.count, admitted)
            if let limiter = targets[index].limiter { free = limiter.allows(now: current) ? min(free, 1) : 0 }
            guard free > 0 else { continue }
            let due: [QueuedDelivery]
            do {
                let excluded = targets[index].inFlight.union((unrecorded[index] ?? []).map(\.deliveryId))
                due = try store.dueDeliveries(endpoint: targets[index].endpoint.name, dueBy: dueBy, limit: free, excluding: excluded)
            } catch {
                storage.reportFault(error)
                return started
            }
            for delivery in due {
                targets[index].inFlight.insert(delivery.id)
                targets[index].limiter?.take(now: current)
                started += 1
                if let request = start(delivery, target: index) { batch.append(request) }
            }
        }
        rotation = count == 0 ? 0 : (rotation + 1) % count
        if !batch.isEmpty { http.submit(batch: batch) }
        return started
    }

    /// Begins one attempt: returns the HTTP request to submit, or nil when the endpoint
    /// needs none (the console).
    private func start(_ delivery: QueuedDelivery, target index: Int) -> (HTTPRequest, @Sendable (Result<HTTPResponse, TransportError>) -> Void)? {
        let target = targets[index]
        let startedAt = now()
        switch target.endpoint.kind {
        case .console:
            console(delivery.body)
            finish(Finished(target: index, delivery: delivery, startedAt: startedAt, finishedAt: startedAt, result: .response(status: 200, retryAfter: nil, excerpt: "")))
            return nil
        case .http:
            let timestamp = Int(startedAt.timeIntervalSince1970)
            var headers: [(name: String, value: String)] = [
                ("Content-Type", "application/json"), ("webhook-id", delivery.eventId), ("webhook-timestamp", String(timestamp)),
            ]
            if let signature = target.signer.signature(id: delivery.eventId, timestamp: timestamp, body: delivery.body) {
                headers.append(("webhook-signature", signature))
            }
            headers.append(contentsOf: target.endpoint.headers)
            let request = HTTPRequest(
                method: .post, url: target.endpoint.url, headers: headers, body: delivery.body, timeout: target.endpoint.timeout,
                connectTimeout: target.endpoint.connectTimeout, tls: target.endpoint.tls, maxResponseBytes: 4096)
            let now = self.now
            return (request, { [self] result in
                let attempt: AttemptResult
                switch result {
                case .success(let response):
                    attempt = .response(
                        status: response.status, retryAfter: response.header("retry-after"), excerpt: response.bodyExcerpt(limit: 200))
                case .failure(let error):
                    attempt = .failure(error)
                }
                finish(Finished(target: index, delivery: delivery, startedAt: startedAt, finishedAt: now(), result: attempt))
            })
        }
    }

    private func finish(_ attempt: Finished) {
        condition.lock()
        finished.append(attempt)
        condition.signal()
        condition.unlock()
    }

    // MARK: Results

    /// Turns finished attempts into records, updates each endpoint's health, and commits the
    /// records together (with any held back by an earlier storage fault). Returns whether it
    /// committed events of its own.
    private func record(_ batch: [Finished]) -> Bool {
        for attempt in batch {
            let index = attempt.target
            let endpoint = targets[index].endpoint
            let number = attempt.delivery.attempts + 1
            let status = attempt.result.httpStatus
            let success = status.map { (200..<300).contains($0) } ?? false
            let gone = status == 410
            var next = DeliveryPolicy.next(
                after: attempt.result, attempt: number, schedule: endpoint.retry, now: attempt.finishedAt, random: random())
            if gone { next = .retry(at: attempt.finishedAt) }  // kept for when an operator re-enables the endpoint
            let record = AttemptRecord(
                deliveryId: attempt.delivery.id, attempt: number, startedAt: attempt.startedAt,
                duration: .milliseconds(Int64(attempt.finishedAt.timeIntervalSince(attempt.startedAt) * 1000)),
                httpStatus: status, error: attempt.result.summary, next: next)
            unrecorded[index, default: []].append(record)
            targets[index].inFlight.remove(attempt.delivery.id)
            count(attempt, next: next, metrics: targets[index].metrics)
            log(attempt, endpoint: endpoint.name, number: number, next: next)
            if let change = targets[index].health.record(success: success, gone: gone, now: attempt.finishedAt) {
                apply(change, to: index, at: attempt.finishedAt)
            }
        }
        return flush()
    }

    private func flush() -> Bool {
        guard !unrecorded.isEmpty || !unsavedEvents.isEmpty else { return false }
        do {
            let records = unrecorded.values.flatMap { $0 }
            let events = unsavedEvents
            let queued = events.isEmpty ? false : try store.write { transaction -> Bool in
                var queued = false
                for (event, record, endpoint) in events {
                    try transaction.saveEndpointRecord(name: endpoint, record)
                    let targets = routes.endpoints(for: event.routable).filter { $0 != endpoint }
                    try transaction.appendEvent(event, endpoints: targets, dueAt: event.createdAt)
                    queued = queued || !targets.isEmpty
                }
                return queued
            }
            unsavedEvents.removeAll()
            try store.recordAttempts(records)
            unrecorded.removeAll()
            storage.reportHealthy()
            if queued { onQueued() }
            return !events.isEmpty
        } catch {
            // The deliveries stay pending in the store and are held back here until it takes
            // writes again; if paybridge stops first, they are attempted again later.
            storage.reportFault(error)
            return false
        }
    }

    /// Acts on a circuit change: log, metric, and for a disabled endpoint its event.
    private func apply(_ change: EndpointHealth.Change, to index: Int, at date: Date) {
        let name = targets[index].endpoint.name
        let metrics = targets[index].metrics
        switch change {
        case .opened(let until, let failures):
            metrics.circuitOpen.record(1)
            logger.warning(
                "endpoint failing: circuit open, probing again later",
                metadata: ["endpoint": "\(name)", "failures": "\(failures)", "probeAt": "\(Timestamp.iso8601(until))"])
            saveRecord(index, EndpointRecord(failingSince: targets[index].health.failingSince))
        case .halfOpened:
            logger.info("endpoint circuit half-open: sending one probe", metadata: ["endpoint": "\(name)"])
        case .closed(let since):
            metrics.circuitOpen.record(0)
            logger.notice("endpoint recovered", metadata: ["endpoint": "\(name)", "failingSince": "\(Timestamp.iso8601(since))"])
            saveRecord(index, EndpointRecord())
        case .disabled(let reason, let since):
            metrics.circuitOpen.record(0)
            metrics.disabled.record(1)
            let pending = (try? store.pendingCounts()[name]) ?? 0
            logger.error(
                "endpoint disabled: its deliveries are kept; re-enable it with `paybridge endpoints enable \(name)`",
                metadata: ["endpoint": "\(name)", "reason": "\(reason)", "pending": "\(pending)"])
            let event = Event.operational(
                type: .endpointDisabled, subject: "endpoint:\(name)", sequence: Int(date.timeIntervalSince1970 * 1000),
                createdAt: date,
                data: [
                    "endpoint": .string(name), "reason": .string(reason),
                    "failingSince": since.map { .string(Timestamp.iso8601($0)) } ?? .null, "pendingDeliveries": .number(pending),
                ])
            unsavedEvents.append((event, EndpointRecord(disabledAt: date, disabledReason: reason, failingSince: since), name))
        }
    }

    private func saveRecord(_ index: Int, _ record: EndpointRecord) {
        let name = targets[index].endpoint.name
        do {
            try store.write { try $0.saveEndpointRecord(name: name, record) }
        } catch {
            storage.reportFault(error)
        }
    }

    /// Picks up operators' `paybridge endpoints enable` (every two seconds).
    private func syncEndpointRecords(at date: Date) {
        guard date.timeIntervalSince(lastSync) >= 2, storage.isAvailable else { return }
        lastSync = date
        guard let records = try? store.endpointRecords() else { return }
        for index in targets.indices where targets[index].health.isDisabled {
            let record = records[targets[index].endpoint.name]
            guard record?.disabledAt == nil, !unsavedEvents.contains(where: { $0.2 == targets[index].endpoint.name }) else { continue }
            targets[index].health.enable()
            targets[index].metrics.disabled.record(0)
            logger.notice("endpoint re-enabled", metadata: ["endpoint": "\(targets[index].endpoint.name)"])
        }
        if let pending = try? store.pendingCounts() {
            for target in targets { target.metrics.pending.record(pending[target.endpoint.name] ?? 0) }
        }
    }

    private func publishStatuses() {
        let current = targets.map(Self.status)
        condition.withLock { statuses = current }
    }

    private static func status(_ target: Target) -> EndpointStatus {
        let state: String
        switch target.health.state {
        case .closed: state = "closed"
        case .open: state = "open"
        case .halfOpen: state = "half-open"
        case .disabled: state = "disabled"
        }
        return EndpointStatus(
            name: target.endpoint.name, state: state, failures: target.health.failures, failingSince: target.health.failingSince,
            inFlight: target.inFlight.count)
    }

    private func count(_ attempt: Finished, next: AttemptRecord.Next, metrics: EndpointMetrics) {
        switch next {
        case .delivered:
            metrics.delivered.increment()
            metrics.latency.recordNanoseconds(Int64(attempt.finishedAt.timeIntervalSince(attempt.delivery.createdAt) * 1e9))
        case .retry: metrics.retried.increment()
        case .dead: metrics.dead.increment()
        }
    }

    private func log(_ attempt: Finished, endpoint: String, number: Int, next: AttemptRecord.Next) {
        var metadata: Logger.Metadata = [
            "endpoint": "\(endpoint)", "eventId": "\(attempt.delivery.eventId)", "subject": "\(attempt.delivery.subject)",
            "attempt": "\(number)",
        ]
        if let summary = attempt.result.summary { metadata["error"] = "\(summary)" }
        switch next {
        case .delivered:
            logger.debug("delivered", metadata: metadata)
        case .retry(let date):
            metadata["retryAt"] = "\(Timestamp.iso8601(date))"
            logger.warning("delivery failed; will retry", metadata: metadata)
        case .dead:
            logger.error("delivery failed for the last time; dead-lettered", metadata: metadata)
        }
    }
}

/// One endpoint's metrics (swift-metrics; exported by whatever backend the process bootstraps).
struct EndpointMetrics {
    let delivered: Counter
    let retried: Counter
    let dead: Counter
    let latency: Metrics.Timer
    let disabled: Gauge
    let circuitOpen: Gauge
    let pending: Gauge

    init(endpoint: String) {
        let dimensions = [("endpoint", endpoint)]
        delivered = Counter(label: "paybridge_deliveries_total", dimensions: dimensions + [("outcome", "delivered")])
        retried = Counter(label: "paybridge_deliveries_total", dimensions: dimensions + [("outcome", "retry")])
        dead = Counter(label: "paybridge_deliveries_total", dimensions: dimensions + [("outcome", "dead")])
        latency = Metrics.Timer(label: "paybridge_delivery_latency_seconds", dimensions: dimensions, preferredDisplayUnit: .seconds)
        disabled = Gauge(label: "paybridge_endpoint_disabled", dimensions: dimensions)
        circuitOpen = Gauge(label: "paybridge_endpoint_circuit_open", dimensions: dimensions)
        pending = Gauge(label: "paybridge_deliveries_pending", dimensions: dimensions)
    }
}
