import Foundation
import Logging

/// Sends queued deliveries to their endpoints and records each attempt.
///
/// One thread runs the loop: record finished attempts (one transaction per batch), then fill
/// each endpoint's free slots (its `concurrency`) with due deliveries, then sleep until an
/// attempt finishes, new deliveries are queued, or the next retry is due. Every endpoint
/// has its own slots, so a slow or dead endpoint only ever holds its own.
public final class Dispatcher: @unchecked Sendable {
    // @unchecked: `targets` and `rotation` are touched only by the loop thread; everything
    // shared with other threads is guarded by `condition`.

    public enum Mode: Sendable {
        /// Until `stop` is called.
        case continuous
        /// Until nothing due by the date is left to attempt (`paybridge poll --once`).
        case drain(dueBy: Date)
    }

    private struct Target {
        let endpoint: EndpointConfiguration
        let signer: WebhookSigner
        var inFlight: Set<Int64> = []
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
    private let logger: Logger
    private let now: @Sendable () -> Date
    private let random: @Sendable () -> Double
    private let console: @Sendable ([UInt8]) -> Void

    private let condition = NSCondition()
    private var finished: [Finished] = []
    private var wakeRequested = false
    private var stopDeadline: Date?
    private var running = false

    private var targets: [Target]
    private var rotation = 0

    /// - Parameter console: where `kind: console` endpoints write (standard output by default).
    public init(
        endpoints: [EndpointConfiguration], store: any Store, http: any HTTPClient, logger: Logger,
        now: @escaping @Sendable () -> Date = Date.init,
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
        console: @escaping @Sendable ([UInt8]) -> Void = { FileHandle.standardOutput.write(Data($0 + [0x0A])) }
    ) {
        self.store = store
        self.http = http
        self.logger = logger
        self.now = now
        self.random = random
        self.console = console
        self.targets = endpoints.map { Target(endpoint: $0, signer: WebhookSigner(secrets: $0.secrets)) }
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
        while true {
            condition.lock()
            let batch = finished
            finished.removeAll(keepingCapacity: true)
            wakeRequested = false
            let stopping = stopDeadline
            condition.unlock()

            record(batch)
            let current = now()
            if let stopping {
                if inFlightCount == 0 || current >= stopping {
                    if inFlightCount > 0 {
                        logger.warning("stopping with deliveries in flight; they stay queued", metadata: ["inFlight": "\(inFlightCount)"])
                    }
                    return
                }
            } else {
                let dueBy: Date
                if case .drain(let date) = mode { dueBy = date } else { dueBy = current }
                let started = fill(dueBy: dueBy)
                if case .drain = mode, started == 0, inFlightCount == 0, !hasFinished() { return }
            }
            sleep(until: wakeTime(mode: mode, stopping: stopping, now: current))
        }
    }

    private func hasFinished() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return !finished.isEmpty
    }

    private func wakeTime(mode: Mode, stopping: Date?, now current: Date) -> Date {
        if let stopping { return stopping }
        let longest = current.addingTimeInterval(30)
        if case .drain = mode { return longest }
        let names = targets.map(\.endpoint.name)
        guard let next = try? store.nextDueDate(after: current, endpoints: names) else { return longest }
        return min(next, longest)
    }

    private func sleep(until date: Date) {
        condition.lock()
        while finished.isEmpty, !wakeRequested, stopDeadline == nil || date == stopDeadline, now() < date {
            if !condition.wait(until: date) { break }
        }
        condition.unlock()
    }

    /// Starts due deliveries in every endpoint's free slots; returns how many started.
    private func fill(dueBy: Date) -> Int {
        var batch: [(HTTPRequest, @Sendable (Result<HTTPResponse, TransportError>) -> Void)] = []
        var started = 0
        let count = targets.count
        for step in 0..<count {
            let index = (rotation + step) % count
            let free = targets[index].endpoint.concurrency - targets[index].inFlight.count
            guard free > 0 else { continue }
            let due: [QueuedDelivery]
            do {
                due = try store.dueDeliveries(
                    endpoint: targets[index].endpoint.name, dueBy: dueBy, limit: free, excluding: targets[index].inFlight)
            } catch {
                logger.error("cannot read the delivery queue", metadata: ["endpoint": "\(targets[index].endpoint.name)", "error": "\(error)"])
                continue
            }
            for delivery in due {
                targets[index].inFlight.insert(delivery.id)
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

    /// Turns finished attempts into records and commits them together.
    private func record(_ batch: [Finished]) {
        guard !batch.isEmpty else { return }
        var records: [AttemptRecord] = []
        records.reserveCapacity(batch.count)
        for attempt in batch {
            let endpoint = targets[attempt.target].endpoint
            let number = attempt.delivery.attempts + 1
            let next = DeliveryPolicy.next(
                after: attempt.result, attempt: number, schedule: endpoint.retry, now: attempt.finishedAt, random: random())
            records.append(
                AttemptRecord(
                    deliveryId: attempt.delivery.id, attempt: number, startedAt: attempt.startedAt,
                    duration: .milliseconds(Int64(attempt.finishedAt.timeIntervalSince(attempt.startedAt) * 1000)),
                    httpStatus: attempt.result.httpStatus, error: attempt.result.summary, next: next))
            log(attempt, endpoint: endpoint.name, number: number, next: next)
        }
        do {
            try store.recordAttempts(records)
        } catch {
            // The deliveries stay pending in the store, so they will be attempted again.
            logger.error("cannot record delivery attempts; they will be retried", metadata: ["error": "\(error)", "count": "\(records.count)"])
        }
        for attempt in batch { targets[attempt.target].inFlight.remove(attempt.delivery.id) }
    }

    private func log(_ attempt: Finished, endpoint: String, number: Int, next: AttemptRecord.Next) {
        var metadata: Logger.Metadata = [
            "endpoint": "\(endpoint)", "eventId": "\(attempt.delivery.eventId)", "paymentId": "\(attempt.delivery.paymentId)",
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
