import Foundation
import Logging
import Metrics
import Synchronization

/// Carries out the `DeliveryStateMachine`'s actions: reads endpoints' queues from the store,
/// signs and hands requests to libcurl, gives results to the `Recorder`, logs and counts.
/// It decides nothing itself.
///
/// One task runs the loop (`run`): take the inputs that arrived (attempts finished on the
/// transport's thread, commits acknowledged by the recorder, new deliveries, an operator's
/// change, stop), feed them to the machine, execute what it returns, then wait for the next
/// input or the machine's next deadline — on the injected clock, so a test that advances a
/// `ManualClock` is what wakes a retry, a breaker probe or a group flush.
public actor Dispatcher {
    /// What the loop needs of an endpoint to send to it.
    private struct Lane {
        let endpoint: EndpointConfiguration
        let signer: WebhookSigner
    }

    private typealias Submission = (HTTPRequest, @Sendable (Result<HTTPResponse, TransportError>) -> Void)

    private let store: any OutboxStore & RecordStore & DeliveryQueue
    private let http: any HTTPClient
    private let outbox: Outbox
    private let storage: StorageMonitor
    private let logger: Logger
    private let clock: WallClock
    private let random: @Sendable () -> Double
    private let console: @Sendable ([UInt8]) -> Void
    private let lanes: [Lane]

    /// What other threads and tasks hand to the loop.
    private struct Inbox {
        var inputs: [DeliveryStateMachine.Input] = []
        /// Token answers and 401s of OAuth2 endpoints: the executor's own business.
        var authEvents: [AuthEvent] = []
        var queued = false
        /// The recorder could not commit: the loop must look at the storage's state again.
        var storageChanged = false
        var externalChange = false
        /// The endpoints this instance now delivers, not yet told to the machine.
        var ownership: Set<String>?
        var running = false
        /// Wakes the running loop (nil between runs).
        var wakeup: AsyncStream<Void>.Continuation?
        var statuses: [EndpointStatus] = []

        var isEmpty: Bool { inputs.isEmpty && authEvents.isEmpty && !queued && !storageChanged && !externalChange && ownership == nil }
    }

    private nonisolated let inbox: Mutex<Inbox>

    // The loop's own state.
    private var machine: DeliveryStateMachine
    private var wakeAt: Date?
    /// The task that wakes the loop at `wakeAt`.
    private var timer: (deadline: Date, task: Task<Void, Never>)?
    private var storageAvailable = true
    /// Work for the recorder gathered during one turn of the loop.
    private var outgoing = Recorder.Batch()
    /// Group messages being queued beside the loop, by lane (the machine asks for one flush of
    /// a lane at a time; see `.flushGroups`).
    private var flushes: [Int: Task<Void, Never>] = [:]
    private var requests: [Submission] = []
    /// OAuth2 endpoints' tokens, by lane: one fetch shared by the endpoint's deliveries.
    private var tokens: [Int: OAuth2Tokens] = [:]
    /// Logs and metrics.
    private var report: DeliveryReport

    /// Reads the endpoints' records first: a read that fails throws (a disabled endpoint must
    /// never look enabled because its record could not be read).
    /// - Parameters:
    ///   - outbox: where `endpoint.disabled` events and group messages go (routed, rendered and
    ///     committed there); by default one that routes nowhere else.
    ///   - console: where `kind: console` endpoints write (standard output by default).
    public init(
        endpoints: [EndpointConfiguration], store: any OutboxStore & RecordStore & DeliveryQueue, http: any HTTPClient, outbox: Outbox? = nil,
        storage: StorageMonitor? = nil, logger: Logger, clock: WallClock = .system,
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
        console: @escaping @Sendable ([UInt8]) -> Void = { FileHandle.standardOutput.write(Data($0 + [0x0A])) },
        owned: Set<String>? = nil
    ) async throws {
        let records = try await store.endpointRecords()
        self.store = store
        self.http = http
        self.outbox = outbox ?? Outbox(store: store, pipeline: Pipeline(routes: RouteTable(routes: []), endpoints: endpoints))
        self.storage = storage ?? StorageMonitor(logger: logger)
        self.logger = logger
        self.clock = clock
        self.random = random
        self.console = console
        let lanes = endpoints.map { endpoint in
            Lane(endpoint: endpoint, signer: WebhookSigner(secrets: endpoint.secrets))
        }
        self.lanes = lanes
        var tokens: [Int: OAuth2Tokens] = [:]
        for (index, endpoint) in endpoints.enumerated() {
            if case .oauth2(let settings) = endpoint.auth { tokens[index] = OAuth2Tokens(settings: settings) }
        }
        self.tokens = tokens
        let machine = DeliveryStateMachine(lanes: endpoints.map(DeliveryLaneSettings.init), records: records, owned: owned)
        self.machine = machine
        report = DeliveryReport(endpoints: endpoints.map(\.name), logger: logger)
        inbox = Mutex(Inbox(statuses: Self.statuses(of: machine, lanes)))
        report.start { machine.health(ofLane: $0).isDisabled }
    }

    /// New deliveries were committed: look for them now rather than at the next deadline.
    public nonisolated func wake() {
        signal { $0.queued = true }
    }

    /// Another process committed something (an operator's replay or enable): read the
    /// endpoints' records and their queues again.
    public nonisolated func externalChange() {
        signal { $0.externalChange = true }
    }

    /// The endpoints this instance delivers changed (it took or lost their leases): the
    /// machine reads their records and starts or stops delivering them.
    public nonisolated func ownership(_ owned: Set<String>) {
        signal { $0.ownership = owned }
    }

    /// Asks a running loop to stop: no new attempts; attempts in flight get `grace` to
    /// finish and the rest stay queued for the next start.
    public nonisolated func stop(grace: Duration) {
        post(.stop(deadline: clock.now().addingTimeInterval(grace.seconds)))
    }

    /// Every endpoint's circuit state, for `/health`.
    public nonisolated var endpointStatuses: [EndpointStatus] { inbox.withLock { $0.statuses } }

    nonisolated func post(_ input: DeliveryStateMachine.Input) {
        signal { inbox in
            switch input {
            // A stop or a drain is for the run under way; none is waiting for a later one.
            case .stop, .drain: guard inbox.running else { return }
            default: break
            }
            inbox.inputs.append(input)
        }
    }

    private nonisolated func post(_ event: AuthEvent) {
        signal { $0.authEvents.append(event) }
    }

    /// Changes the inbox and wakes the loop.
    private nonisolated func signal(_ change: (inout Inbox) -> Void) {
        let wakeup = inbox.withLock { inbox in
            change(&inbox)
            return inbox.wakeup
        }
        wakeup?.yield()
    }

    /// Runs the loop until it ends (see `Mode`). One loop at a time: a call while another
    /// runs returns at once. Cancelling the task stops it as `stop(grace: .zero)` does.
    public func run(_ mode: Mode) async {
        let (wakeups, wakeup) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let alreadyRunning = inbox.withLock { inbox -> Bool in
            guard !inbox.running else { return true }
            inbox.running = true
            inbox.wakeup = wakeup
            // Endpoints' records may have changed since the last run (an operator's enable).
            inbox.externalChange = true
            return false
        }
        guard !alreadyRunning else {
            logger.warning("the dispatcher is already running; ignoring a second run")
            return
        }
        let recorder = Recorder(
            outbox: outbox, storage: storage, clock: clock, logger: logger,
            acknowledge: { [weak self] commit in self?.post(.resultsCommitted(commit)) },
            // A refused commit sends no acknowledgement: without this a drain waiting for one would sleep on.
            refused: { [weak self] in self?.signal { $0.storageChanged = true } })
        // The storage seam's one signal: new deliveries wake the loop; other processes'
        // commits matter only to a long run (a drain reads records once, as it begins).
        let changes = store.changes()
        var continuous = false
        if case .continuous = mode { continuous = true }
        let changeWatch = Task { [weak self, continuous] in
            for await change in changes {
                switch change {
                case .queued: self?.wake()
                case .changed: if continuous { self?.externalChange() }
                }
            }
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await recorder.run() }
            var wakeups = wakeups.makeAsyncIterator()
            switch mode {
            case .continuous: await loop(.continuous, recorder: recorder, wakeups: &wakeups)
            case .drainWhen(let trigger):
                // Read once `running` is set: a fire from now on is posted, one before is here.
                await loop(.continuous, then: trigger.dueBy, recorder: recorder, wakeups: &wakeups)
            case .drain(let dueBy): await loop(.drain(dueBy: dueBy), recorder: recorder, wakeups: &wakeups)
            }
            // A message being queued is committed or not, never half: wait for it.
            for flush in flushes.values { await flush.value }
            flushes.removeAll()
            timer?.task.cancel()
            timer = nil
            inbox.withLock {
                $0.running = false
                $0.wakeup = nil
            }
            wakeup.finish()
            changeWatch.cancel()
            // The recorder commits what it holds (for up to 2 s).
            recorder.finish(deadline: clock.now().addingTimeInterval(2))
            await group.waitForAll()
        }
        await changeWatch.value
    }

    // MARK: Loop

    private func loop(
        _ mode: DeliveryStateMachine.Mode, then drain: Date? = nil, recorder: Recorder, wakeups: inout AsyncStream<Void>.Iterator
    ) async {
        var inputs: [DeliveryStateMachine.Input] = [.begin(mode)]
        if let drain { inputs.append(.drain(dueBy: drain)) }
        wakeAt = nil
        var cancelled = false
        while true {
            inputs.append(contentsOf: await takeInputs())
            let available = storage.isAvailable
            if available != storageAvailable {
                storageAvailable = available
                inputs.append(.storage(available: available))
            }
            var now = clock.now()
            if cancelled { inputs.append(.stop(deadline: now)) }
            if let wake = wakeAt, wake <= now {
                wakeAt = nil
                inputs.append(.deadline)
            }
            var ended: Int?
            if !inputs.isEmpty {
                let stopDeadline = inputs.lazy.compactMap { input -> Date? in
                    if case .stop(let deadline) = input { return deadline }
                    return nil
                }.first
                if let stopDeadline, machine.inFlightCount > 0, !cancelled {
                    // Said before the wait, so a stop that seems to hang is explained.
                    logger.notice(
                        "stopping: waiting for deliveries in flight",
                        metadata: [
                            "inFlight": .stringConvertible(machine.inFlightCount),
                            "grace": "\(DurationText.format(.milliseconds(Int64(max(0, stopDeadline.timeIntervalSince(now)) * 1000))))",
                        ])
                }
                ended = await execute(machine.handle(inputs, now: now))
                inputs.removeAll(keepingCapacity: true)
            }
            // Cancelled: nothing more can wake the loop, so it ends now.
            if cancelled, ended == nil { ended = machine.inFlightCount }
            submitRequests()
            now = clock.now()
            finishStats(at: now)
            recorder.submit(outgoing)
            outgoing = Recorder.Batch()
            publishStatuses()
            if let abandoned = ended {
                if abandoned > 0 {
                    logger.warning("stopping with deliveries in flight; they stay queued", metadata: ["inFlight": .stringConvertible(abandoned)])
                }
                return
            }
            setTimer()
            if inbox.withLock({ $0.isEmpty }), wakeAt.map({ $0 > clock.now() }) ?? true {
                if await wakeups.next(isolation: #isolation) == nil { cancelled = true }
            }
        }
    }

    /// Wakes the loop at `wakeAt` (the clock's sleep, in a task of its own).
    private func setTimer() {
        guard timer?.deadline != wakeAt else { return }
        timer?.task.cancel()
        timer = nil
        guard let wakeAt else { return }
        let clock = self.clock
        let task = Task { [weak self] in
            do {
                try await clock.sleep(until: wakeAt)
            } catch {
                return  // replaced by a later deadline, or the run ended
            }
            self?.signal { _ in }
        }
        timer = (wakeAt, task)
    }

    /// The inputs other threads posted, and the signals they raised.
    private func takeInputs() async -> [DeliveryStateMachine.Input] {
        let taken = inbox.withLock { inbox -> Inbox in
            let taken = inbox
            inbox.inputs.removeAll(keepingCapacity: true)
            inbox.authEvents.removeAll()
            inbox.queued = false
            inbox.storageChanged = false
            inbox.externalChange = false
            inbox.ownership = nil
            return taken
        }
        var inputs = taken.inputs
        for event in taken.authEvents { inputs += handle(event) }
        if taken.queued { inputs.append(.deliveriesQueued) }
        if taken.externalChange || taken.ownership != nil {
            do {
                let records = try await store.endpointRecords()
                if let owned = taken.ownership { inputs.append(.ownership(owned: owned, records: records)) }
                if taken.externalChange { inputs.append(.externalChange(records: records)) }
            } catch {
                // Read again on the next turn; until then the storage counts as faulty.
                storage.reportFault(error)
                inbox.withLock { inbox in
                    inbox.externalChange = inbox.externalChange || taken.externalChange
                    if inbox.ownership == nil { inbox.ownership = taken.ownership }
                }
            }
        }
        return inputs
    }

    /// Executes actions, feeding what they learn (a queue's contents, a console's answer)
    /// back to the machine until it has nothing more to say. Returns the number of attempts
    /// abandoned when the run ended, or nil while it goes on.
    private func execute(_ first: [DeliveryStateMachine.Action]) async -> Int? {
        var actions = first
        var feedback: [DeliveryStateMachine.Input] = []
        var ended: Int?
        var index = 0
        while index < actions.count {
            switch actions[index] {
            case .start(let lane, let delivery):
                if let finished = start(delivery, lane: lane) { feedback.append(.attemptFinished(finished)) }
            case .refill(let lane, let dueBy, let limit, let excluding, let askNextDue):
                feedback.append(await refill(lane, dueBy: dueBy, limit: limit, excluding: excluding, askNextDue: askNextDue))
            case .readGroupSchedule(let lane):
                do {
                    feedback.append(.groupSchedule(lane: lane, next: try await store.nextGroupFlush(endpoint: lanes[lane].endpoint.name)))
                } catch {
                    storage.reportFault(error)
                    feedback.append(.groupsFailed(lane: lane))
                }
            case .flushGroups(let lane, let dueBy):
                // Beside the loop: a message waiting for the state's write lock holds no other
                // endpoint up. Its answer comes through the inbox; the machine counts the lane
                // busy until then, so a drain waits for it.
                flushes[lane] = Task { [self] in post(await flushGroups(lane, dueBy: dueBy)) }
            case .record(let outcome):
                outgoing.records.append(outcome.record)
                note(outcome)
                report.count(outcome)
                report.log(outcome)
            case .saveEndpointRecord(let lane, let record):
                outgoing.endpointRecords.append((lanes[lane].endpoint.name, record))
            case .announce(let lane, let announcement, let date):
                await announce(announcement, lane: lane, at: date)
            case .wake(let date):
                wakeAt = date
            case .finish(let abandoned):
                ended = abandoned
            }
            index += 1
            if index == actions.count, !feedback.isEmpty {
                actions.append(contentsOf: machine.handle(feedback, now: clock.now()))
                feedback.removeAll(keepingCapacity: true)
            }
        }
        return ended
    }

    private func refill(_ lane: Int, dueBy: Date, limit: Int, excluding: Set<Int64>, askNextDue: Bool) async -> DeliveryStateMachine.Input {
        let (store, name) = (self.store, lanes[lane].endpoint.name)
        do {
            let due = try await store.dueDeliveries(endpoint: name, dueBy: dueBy, limit: limit, excluding: excluding)
            let nextDue = due.count < limit && askNextDue ? try await store.nextDueDate(after: dueBy, endpoints: [name]) : nil
            return .refilled(lane: lane, deliveries: due, exhausted: due.count < limit, nextDue: nextDue)
        } catch {
            storage.reportFault(error)
            return .refillFailed(lane: lane)
        }
    }

    /// Builds the lane's group messages that are due and queues each in one transaction
    /// with the marking of the members it carries.
    private func flushGroups(_ lane: Int, dueBy: Date) async -> DeliveryStateMachine.Input {
        let endpoint = lanes[lane].endpoint
        guard let settings = endpoint.group else { return .groupsFlushed(lane: lane, messages: 0, next: nil) }
        let store = self.store
        do {
            var messages = 0
            for group in try await store.dueGroups(endpoint: endpoint.name, dueBy: dueBy) where !group.members.isEmpty {
                let now = clock.now()
                let message = GroupMessage.event(for: group, max: settings.max, at: now)
                try await outbox.emitGroupMessage(message, for: group, interval: settings.interval, at: now)
                messages += 1
                logger.info(
                    "group message queued",
                    metadata: ["endpoint": "\(endpoint.name)", "eventId": "\(message.id)", "group": "\(group.key)", "events": .stringConvertible(group.members.count)])
            }
            let next = try await store.nextGroupFlush(endpoint: endpoint.name)
            return .groupsFlushed(lane: lane, messages: messages, next: next)
        } catch {
            storage.reportFault(error)
            return .groupsFailed(lane: lane)
        }
    }

    /// Begins one attempt. A console endpoint answers at once: its result is returned.
    private func start(_ delivery: QueuedDelivery, lane index: Int) -> DeliveryStateMachine.AttemptEnd? {
        let endpoint = lanes[index].endpoint
        let startedAt = clock.now()
        switch endpoint.kind {
        case .console:
            console(delivery.body)
            return DeliveryStateMachine.AttemptEnd(
                lane: index, delivery: delivery, startedAt: startedAt, finishedAt: startedAt,
                result: .response(status: 200, retryAfter: nil, excerpt: ""), random: random())
        case .http:
            switch endpoint.auth {
            case nil:
                send(delivery, lane: index, startedAt: startedAt, authorization: nil)
            case .bearer(let token):
                send(delivery, lane: index, startedAt: startedAt, authorization: token)
            case .oauth2:
                let attempt = OAuth2Tokens.Attempt(delivery: delivery, startedAt: startedAt, renewed: false)
                _ = carryOut(tokens[index]?.authorize(attempt, at: startedAt).map { [$0] } ?? [], lane: index)
            }
            return nil
        }
    }

    /// Signs and hands one attempt to the transport.
    /// - Parameter renewed: the token was fetched again after a 401 (a second 401 is the answer).
    private func send(_ delivery: QueuedDelivery, lane index: Int, startedAt: Date, authorization: Secret?, renewed: Bool = false) {
        let request = AttemptRequest.make(
            delivery, to: lanes[index].endpoint, signer: lanes[index].signer, timestamp: Int(clock.now().timeIntervalSince1970),
            authorization: authorization)
        let (clock, random) = (self.clock, self.random)
        let oauth = tokens[index] != nil
        requests.append((request, { [weak self] result in
            if oauth, !renewed, case .success(let response) = result, response.status == 401, let authorization {
                // The receiver refused the token: fetch a new one, once, and send again.
                self?.post(.refused(lane: index, OAuth2Tokens.Attempt(delivery: delivery, startedAt: startedAt, renewed: false), token: authorization))
                return
            }
            self?.post(
                .attemptFinished(
                    DeliveryStateMachine.AttemptEnd(
                        lane: index, delivery: delivery, startedAt: startedAt, finishedAt: clock.now(), result: AttemptRequest.result(of: result),
                        random: random())))
        }))
        // Hand requests over in small groups: the transport starts sending the first
        // while the rest are being signed.
        if requests.count >= 16 { submitRequests() }
    }

    // MARK: OAuth2 tokens

    /// Token answers and refusals, posted by the transport's thread.
    private enum AuthEvent: Sendable {
        case token(lane: Int, Result<AccessToken, OAuth2Tokens.Failure>)
        case refused(lane: Int, OAuth2Tokens.Attempt, token: Secret)
    }

    /// What the token machines' events mean for the delivery machine: attempts that could not
    /// even be sent.
    private func handle(_ event: AuthEvent) -> [DeliveryStateMachine.Input] {
        switch event {
        case .refused(let index, let attempt, let token):
            logger.info("the receiver refused its token (401); fetching a new one", metadata: ["endpoint": "\(lanes[index].endpoint.name)"])
            return carryOut(tokens[index]?.refused(token, attempt, at: clock.now()).map { [$0] } ?? [], lane: index)
        case .token(let index, let result):
            if case .failure(let failure) = result {
                logger.warning("cannot get a token for the endpoint", metadata: ["endpoint": "\(lanes[index].endpoint.name)", "error": "\(failure)"])
            }
            return carryOut(tokens[index]?.received(result) ?? [], lane: index)
        }
    }

    /// Carries out a token machine's actions; attempts it fails come back as inputs.
    private func carryOut(_ actions: [OAuth2Tokens.Action], lane index: Int) -> [DeliveryStateMachine.Input] {
        var inputs: [DeliveryStateMachine.Input] = []
        for action in actions {
            switch action {
            case .send(let attempt, let token):
                send(attempt.delivery, lane: index, startedAt: attempt.startedAt, authorization: token, renewed: attempt.renewed)
            case .fetch:
                guard let tokens = tokens[index] else { continue }
                let (clock, endpoint) = (self.clock, lanes[index].endpoint)
                var request = tokens.request(timeout: endpoint.timeout, tls: endpoint.tls)
                request.proxy = endpoint.proxy
                http.submit(request) { [weak self] result in
                    self?.post(.token(lane: index, OAuth2Tokens.parse(result, receivedAt: clock.now())))
                }
            case .fail(let attempts, let reason):
                let now = clock.now()
                inputs += attempts.map { attempt in
                    .attemptFinished(
                        DeliveryStateMachine.AttemptEnd(
                            lane: index, delivery: attempt.delivery, startedAt: attempt.startedAt, finishedAt: now,
                            result: .failure(.other("the token request failed: \(reason)")), random: random()))
                }
            }
        }
        return inputs
    }

    private func submitRequests() {
        guard !requests.isEmpty else { return }
        http.submit(batch: requests)
        requests.removeAll(keepingCapacity: true)
    }

    // MARK: Announcements, stats

    private func announce(_ announcement: DeliveryStateMachine.Announcement, lane index: Int, at date: Date) async {
        guard case .disabled(let reason, let since) = announcement else {
            report.announce(announcement, lane: index, at: date)
            return
        }
        let (store, name) = (self.store, lanes[index].endpoint.name)
        let pending = (try? await store.pendingCounts()[name]) ?? 0
        report.announce(announcement, lane: index, at: date, pending: pending)
        let event = Event.operational(
            type: .endpointDisabled, subject: "endpoint:\(name)", sequence: Int(date.timeIntervalSince1970 * 1000),
            createdAt: date,
            data: [
                "endpoint": .string(name), "reason": .string(reason),
                "failingSince": since.map { .string(Timestamp.iso8601($0)) } ?? .null, "pendingDeliveries": .number(pending),
            ])
        outgoing.disabled.append(
            Recorder.Disabled(endpoint: name, record: EndpointRecord(disabledAt: date, disabledReason: reason, failingSince: since), event: event))
    }

    /// Keeps the endpoint's stats for the recorder: when it last answered 2xx, last failed.
    private func note(_ outcome: DeliveryStateMachine.Outcome) {
        let name = lanes[outcome.lane].endpoint.name
        var stats = outgoing.stats[name] ?? EndpointStats()
        let finished = outcome.record.startedAt.addingTimeInterval(outcome.record.duration.seconds)
        if case .delivered = outcome.record.next { stats.lastSuccessAt = finished } else { stats.lastFailureAt = finished }
        outgoing.stats[name] = stats
    }

    /// Completes the turn's stats with each endpoint's failures and circuit, and lets the
    /// report summarize failing endpoints.
    private func finishStats(at date: Date) {
        for index in lanes.indices {
            let name = lanes[index].endpoint.name
            let health = machine.health(ofLane: index)
            if var stats = outgoing.stats[name] {
                report.failing(lane: index, health.failures > 0)
                stats.failures = health.failures
                stats.circuit = health.state.circuit
                outgoing.stats[name] = stats
            }
            report.summarize(health, lane: index, at: date)
        }
    }

    private func publishStatuses() {
        let current = Self.statuses(of: machine, lanes)
        inbox.withLock { if $0.statuses != current { $0.statuses = current } }
    }

    private static func statuses(of machine: DeliveryStateMachine, _ lanes: [Lane]) -> [EndpointStatus] {
        lanes.indices.map { index in
            let health = machine.health(ofLane: index)
            return EndpointStatus(
                name: lanes[index].endpoint.name, state: health.state.circuit, failures: health.failures, failingSince: health.failingSince,
                inFlight: machine.inFlight(ofLane: index))
        }
    }
}
