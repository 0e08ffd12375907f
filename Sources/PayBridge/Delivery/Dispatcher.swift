import Foundation
import Logging
import Metrics
import Synchronization

/// Sends queued deliveries to their endpoints and records each attempt.
///
/// One thread runs the loop: take finished attempts and hand their results to the `Recorder`
/// (which commits them in groups on its own thread), start due deliveries in every endpoint's
/// free slots from an in-memory ready queue refilled from the store in chunks, then sleep
/// until an attempt finishes, a commit is acknowledged, new deliveries are queued, or
/// something becomes due (a retry, a circuit's probe, a rate limit's next slot). Every
/// endpoint has its own slots, circuit breaker and rate limit, so a slow or dead endpoint
/// only holds its own.
public final class Dispatcher: @unchecked Sendable {
    // @unchecked: the fields under "Loop thread" are touched only by the loop thread;
    // everything shared with other threads is guarded by `condition`.

    public enum Mode: Sendable {
        /// Until `stop` is called.
        case continuous
        /// Until nothing due by the date is left to attempt.
        case drain(dueBy: Date)
        /// Continuous until the trigger fires, then a drain (`poll --once` delivers while it polls).
        case drainWhen(DrainTrigger)
    }

    /// Turns one `.drainWhen` run into a drain.
    public final class DrainTrigger: Sendable {
        private let cutoff = Mutex<Date?>(nil)
        private let dispatcher: Dispatcher

        public init(_ dispatcher: Dispatcher) { self.dispatcher = dispatcher }

        public func fire(dueBy: Date) {
            cutoff.withLock { $0 = dueBy }
            dispatcher.wake()
        }

        var dueBy: Date? { cutoff.withLock { $0 } }
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
        /// Due deliveries fetched from the store, oldest first, not yet started.
        var ready: [QueuedDelivery] = []
        var readyHead = 0
        var readyIds: Set<Int64> = []
        /// Results not yet committed; their deliveries must not be fetched again.
        var unrecorded: Set<Int64> = []
        /// The last refill found nothing more; reset when something may have become due.
        var exhausted = false
        /// When `exhausted` was last found, for throttling re-checks after acknowledgements.
        var exhaustedAt = Date.distantPast
        let metrics: EndpointMetrics

        var readyCount: Int { ready.count - readyHead }
        var chunk: Int { max(256, endpoint.concurrency * 4) }

        mutating func popReady() -> QueuedDelivery? {
            guard readyHead < ready.count else { return nil }
            let delivery = ready[readyHead]
            readyHead += 1
            readyIds.remove(delivery.id)
            if readyHead > 1024, readyHead * 2 > ready.count {
                ready.removeFirst(readyHead)
                readyHead = 0
            }
            return delivery
        }
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
    private var acknowledged: [Recorder.Acknowledgement] = []
    private var wakeRequested = false
    private var stopDeadline: Date?
    private var running = false
    private var statuses: [EndpointStatus] = []

    // Loop thread.
    private var targets: [Target]
    private var rotation = 0
    private var recorder: Recorder?
    /// Work for the recorder gathered during one turn of the loop.
    private var outgoing = Recorder.Batch()
    /// Delivery ids whose results are with the recorder, by target: not fetched again meanwhile.
    private var unrecordedTarget: [Int64: Int] = [:]
    /// Endpoints with a disabled event not yet committed.
    private var unsavedDisabled: Set<String> = []
    private var lastSync = Date.distantPast
    /// Committed results may have unblocked later deliveries of their subjects; exhausted
    /// queues are looked at again at most every `successorCheck`, not after every commit.
    private var successorsMayBeDue = false
    static let successorCheck: TimeInterval = 0.005
    private var nextDue: (date: Date?, checkedAt: Date) = (nil, .distantPast)

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
        recorder = Recorder(store: store, routes: routes, storage: self.storage, onQueued: onQueued) { [weak self] ack in
            self?.acknowledge(ack)
        }
    }

    deinit { recorder?.stop() }

    /// Stops the recorder's thread; call once the dispatcher will not run again.
    public func shutdown() {
        recorder?.stop()
    }

    private func acknowledge(_ ack: Recorder.Acknowledgement) {
        condition.lock()
        acknowledged.append(ack)
        condition.signal()
        condition.unlock()
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
        // The store may have changed since the last run (an operator's replay): start afresh.
        for index in targets.indices {
            targets[index].ready.removeAll()
            targets[index].readyHead = 0
            targets[index].readyIds.removeAll()
        }
        markAllUnexhausted()
        while true {
            condition.lock()
            let batch = finished
            finished.removeAll(keepingCapacity: true)
            let acks = acknowledged
            acknowledged.removeAll()
            let woken = wakeRequested
            wakeRequested = false
            let stopping = stopDeadline
            condition.unlock()
            if case .drainWhen(let trigger) = mode, drainCutoff == nil, let dueBy = trigger.dueBy { drainCutoff = dueBy }

            let current = now()
            // New deliveries, or a retry coming due: the next refill may find more.
            if woken || (nextDue.date.map { $0 <= current } ?? false) { markAllUnexhausted() }
            if received(acks), let cutoff = drainCutoff {
                // Events this loop created (endpoint.disabled) are due now, even in a drain.
                drainCutoff = max(cutoff, current)
            }
            process(batch)
            recorder?.submit(outgoing)
            outgoing = Recorder.Batch()
            syncEndpointRecords(at: current)
            publishStatuses()
            if let stopping {
                if inFlightCount == 0 || current >= stopping {
                    if inFlightCount > 0 {
                        logger.warning("stopping with deliveries in flight; they stay queued", metadata: ["inFlight": "\(inFlightCount)"])
                    }
                    recorder?.waitUntilIdle(deadline: max(stopping, current).addingTimeInterval(2))
                    return
                }
            } else if storage.isAvailable {
                let started = fill(dueBy: drainCutoff ?? current, now: current)
                // A drain ends when nothing is in flight or being recorded, and nothing can start:
                // not even a later event of a subject whose earlier one was just committed.
                if drainCutoff != nil, started == 0, inFlightCount == 0, unrecordedTarget.isEmpty, !successorsMayBeDue,
                    !hasFinished(), !waitingOnRateLimit(current)
                {
                    return
                }
            } else if drainCutoff != nil, inFlightCount == 0, !hasFinished() {
                return  // Results not recorded stay pending in the store and are sent again later.
            }
            sleep(until: wakeTime(draining: drainCutoff != nil, stopping: stopping, now: current))
        }
    }

    private func hasFinished() -> Bool {
        condition.withLock { !finished.isEmpty || !acknowledged.isEmpty }
    }

    /// Takes the recorder's acknowledgements; returns whether they committed events of ours.
    private func received(_ acks: [Recorder.Acknowledgement]) -> Bool {
        guard !acks.isEmpty else { return false }
        var events = false
        for ack in acks {
            for id in ack.deliveryIds {
                if let index = unrecordedTarget.removeValue(forKey: id) { targets[index].unrecorded.remove(id) }
            }
            events = events || ack.committedEvents
        }
        if events { unsavedDisabled.removeAll() }
        // Delivered or dead-lettered deliveries may have unblocked later ones of their subject.
        successorsMayBeDue = true
        return events
    }

    private func markAllUnexhausted() {
        for index in targets.indices { targets[index].exhausted = false }
        successorsMayBeDue = false
        nextDue = (nil, .distantPast)
    }

    /// Whether some endpoint has due work that only its rate limit holds back.
    private func waitingOnRateLimit(_ current: Date) -> Bool {
        targets.contains { target in
            guard let limiter = target.limiter, !limiter.allows(now: current) else { return false }
            return target.readyCount > 0 || !target.exhausted
        }
    }

    private func wakeTime(draining: Bool, stopping: Date?, now current: Date) -> Date {
        if let stopping { return stopping }
        var wake = current.addingTimeInterval(storage.isAvailable ? 30 : 1)
        if successorsMayBeDue {
            for target in targets where target.exhausted {
                wake = min(wake, target.exhaustedAt.addingTimeInterval(Self.successorCheck))
            }
        }
        for target in targets {
            if let change = target.health.nextChange { wake = min(wake, change) }
            if let next = target.limiter?.nextStart, next > current, target.readyCount > 0 || !target.exhausted {
                wake = min(wake, next)
            }
            // A disabled endpoint may be re-enabled by an operator: look every two seconds.
            if target.health.isDisabled { wake = min(wake, current.addingTimeInterval(2)) }
        }
        if !draining {
            // Retries coming due: asked of the store at most every 50 ms, not at every wake-up.
            if current.timeIntervalSince(nextDue.checkedAt) >= 0.05 {
                nextDue = ((try? store.nextDueDate(after: current, endpoints: targets.map(\.endpoint.name))) ?? nil, current)
            }
            if let due = nextDue.date { wake = min(wake, max(due, current)) }
        }
        return max(wake, current.addingTimeInterval(0.0002))
    }

    private func sleep(until date: Date) {
        condition.lock()
        let stopAlreadyRequested = stopDeadline != nil
        while finished.isEmpty, acknowledged.isEmpty, !wakeRequested, (stopDeadline != nil) == stopAlreadyRequested, now() < date {
            if !condition.wait(until: date) { break }
        }
        condition.unlock()
    }

    /// Starts due deliveries in every endpoint's free slots; returns how many started.
    private func fill(dueBy: Date, now current: Date) -> Int {
        var batch: [(HTTPRequest, @Sendable (Result<HTTPResponse, TransportError>) -> Void)] = []
        var started = 0
        let count = targets.count
        if successorsMayBeDue {
            var pending = false
            for index in targets.indices where targets[index].exhausted {
                if current.timeIntervalSince(targets[index].exhaustedAt) >= Self.successorCheck {
                    targets[index].exhausted = false
                } else {
                    pending = true
                }
            }
            successorsMayBeDue = pending
        }
        for step in 0..<count {
            let index = (rotation + step) % count
            let (admitted, change) = targets[index].health.admits(now: current, inFlight: targets[index].inFlight.count)
            if let change { apply(change, to: index, at: current) }
            var free = min(targets[index].endpoint.concurrency - targets[index].inFlight.count, admitted)
            if let limiter = targets[index].limiter { free = limiter.allows(now: current) ? min(free, 1) : 0 }
            guard free > 0 else { continue }
            if targets[index].readyCount < free, !targets[index].exhausted {
                guard refill(index, dueBy: dueBy) else { return started }
            }
            while free > 0, let delivery = targets[index].popReady() {
                targets[index].inFlight.insert(delivery.id)
                targets[index].limiter?.take(now: current)
                free -= 1
                started += 1
                if let request = start(delivery, target: index) { batch.append(request) }
                // Hand requests over in small groups: the transport starts sending the first
                // while the rest are being signed.
                if batch.count >= 16 {
                    http.submit(batch: batch)
                    batch.removeAll(keepingCapacity: true)
                }
            }
        }
        rotation = count == 0 ? 0 : (rotation + 1) % count
        if !batch.isEmpty { http.submit(batch: batch) }
        return started
    }

    /// Fetches the next chunk of due deliveries of one endpoint; false on a storage fault.
    private func refill(_ index: Int, dueBy: Date) -> Bool {
        let target = targets[index]
        do {
            let excluded = target.inFlight.union(target.readyIds).union(target.unrecorded)
            let due = try store.dueDeliveries(endpoint: target.endpoint.name, dueBy: dueBy, limit: target.chunk, excluding: excluded)
            targets[index].ready.append(contentsOf: due)
            for delivery in due { targets[index].readyIds.insert(delivery.id) }
            targets[index].exhausted = due.count < target.chunk
            if targets[index].exhausted { targets[index].exhaustedAt = now() }
            return true
        } catch {
            storage.reportFault(error)
            return false
        }
    }

    /// Begins one attempt: returns the HTTP request to submit, or nil when the endpoint
    /// needs none (the console).
    private func start(_ delivery: QueuedDelivery, target index: Int) -> (HTTPRequest, @Sendable (Result<HTTPResponse, TransportError>) -> Void)? {
        // Only what the request needs: copying the whole Target (its queues and sets) per
        // delivery would retain and release every one of them.
        let endpoint = targets[index].endpoint
        let signer = targets[index].signer
        let startedAt = now()
        switch endpoint.kind {
        case .console:
            console(delivery.body)
            finish(Finished(target: index, delivery: delivery, startedAt: startedAt, finishedAt: startedAt, result: .response(status: 200, retryAfter: nil, excerpt: "")))
            return nil
        case .http:
            let timestamp = Int(startedAt.timeIntervalSince1970)
            var headers: [(name: String, value: String)] = [
                ("Content-Type", "application/json"), ("webhook-id", delivery.eventId), ("webhook-timestamp", String(timestamp)),
            ]
            if let signature = signer.signature(id: delivery.eventId, timestamp: timestamp, body: delivery.body) {
                headers.append(("webhook-signature", signature))
            }
            headers.append(contentsOf: endpoint.headers)
            let request = HTTPRequest(
                method: .post, url: endpoint.url, headers: headers, body: delivery.body, timeout: endpoint.timeout,
                connectTimeout: endpoint.connectTimeout, tls: endpoint.tls, maxResponseBytes: 4096)
            let now = self.now
            return (request, { [self] result in
                let attempt: AttemptResult
                switch result {
                case .success(let response):
                    // Headers are parsed only where one is used: Retry-After on 429 and 503.
                    let retryAfter = response.status == 429 || response.status == 503 ? response.header("retry-after") : nil
                    attempt = .response(status: response.status, retryAfter: retryAfter, excerpt: response.bodyExcerpt(limit: 200))
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

    /// Turns finished attempts into results (committed by `flush`) and updates each
    /// endpoint's health.
    private func process(_ batch: [Finished]) {
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
            outgoing.records.append(
                AttemptRecord(
                    deliveryId: attempt.delivery.id, attempt: number, startedAt: attempt.startedAt,
                    duration: .milliseconds(Int64(attempt.finishedAt.timeIntervalSince(attempt.startedAt) * 1000)),
                    httpStatus: status, error: attempt.result.summary, next: next))
            targets[index].unrecorded.insert(attempt.delivery.id)
            unrecordedTarget[attempt.delivery.id] = index
            targets[index].inFlight.remove(attempt.delivery.id)
            count(attempt, next: next, metrics: targets[index].metrics)
            log(attempt, endpoint: endpoint.name, number: number, next: next)
            if let change = targets[index].health.record(success: success, gone: gone, now: attempt.finishedAt) {
                apply(change, to: index, at: attempt.finishedAt)
            }
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
            outgoing.events.append((event, EndpointRecord(disabledAt: date, disabledReason: reason, failingSince: since), name))
            unsavedDisabled.insert(name)
        }
    }

    private func saveRecord(_ index: Int, _ record: EndpointRecord) {
        outgoing.endpointRecords.append((targets[index].endpoint.name, record))
    }

    /// Picks up operators' `paybridge endpoints enable` and `deliveries replay` (every two seconds).
    private func syncEndpointRecords(at date: Date) {
        guard date.timeIntervalSince(lastSync) >= 2, storage.isAvailable else { return }
        lastSync = date
        markAllUnexhausted()
        guard let records = try? store.endpointRecords() else { return }
        for index in targets.indices where targets[index].health.isDisabled {
            let record = records[targets[index].endpoint.name]
            guard record?.disabledAt == nil, !unsavedDisabled.contains(targets[index].endpoint.name) else { continue }
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
        condition.withLock { if statuses != current { statuses = current } }
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
        // Built only when it will be printed: this runs for every delivery.
        if case .delivered = next, logger.logLevel > .debug { return }
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
