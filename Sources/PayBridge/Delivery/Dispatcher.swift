import Foundation
import Logging
import Metrics
import Synchronization

/// Carries out the `DeliveryStateMachine`'s actions: reads endpoints' queues (`LaneStorage`),
/// starts attempts (`AttemptSender`: signing, libcurl, OAuth2 tokens), gives results to the
/// `Recorder`, logs and counts. It decides nothing itself.
///
/// One task runs the loop (`run`): take what arrived in the `DeliveryInbox` (attempts finished
/// on the transport's thread, commits acknowledged by the recorder, new deliveries, an
/// operator's change, stop), feed it to the machine, execute what it returns, then wait for the next
/// input or the machine's next deadline — on the injected clock, so a test that advances a
/// `ManualClock` is what wakes a retry, a breaker probe or a group flush.
public actor Dispatcher {
    private let store: any OutboxStore & RecordStore & DeliveryQueue
    private let outbox: Outbox
    private let laneStorage: LaneStorage
    private let storage: StorageMonitor
    private let logger: Logger
    private let clock: WallClock
    private let endpoints: [EndpointConfiguration]
    private nonisolated let inbox: DeliveryInbox

    // The loop's own state.
    private var machine: DeliveryStateMachine
    private var sender: AttemptSender
    private var wakeAt: Date?
    /// The task that wakes the loop at `wakeAt`.
    private var timer: (deadline: Date, task: Task<Void, Never>)?
    private var storageAvailable = true
    /// Work for the recorder gathered during one turn of the loop.
    private var outgoing = Recorder.Batch()
    /// Group messages being queued, by lane (one at a time each; the answer comes through the inbox).
    private var groupFlushes: [Int: Task<Void, Never>] = [:]
    /// Logs and metrics.
    private var report: DeliveryReport
    /// The last ownership post the machine was told (see `DeliveryInbox.settledEndpoints`).
    private var ownershipPost = 0
    /// The endpoints this instance was last told it delivers (nil: all), and those of them the
    /// machine was told: only those whose leases are still held now (`leasesHeld`).
    private var granted: Set<String>?
    private var told: Set<String>?
    private let leasesHeld: @Sendable () -> Set<String>?

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
        owned: Set<String>? = nil, leasesHeld: @escaping @Sendable () -> Set<String>? = { nil }
    ) async throws {
        let records = try await store.endpointRecords()
        self.store = store
        let outbox = outbox ?? Outbox(store: store, pipeline: Pipeline(routes: RouteTable(routes: []), endpoints: endpoints))
        let storage = storage ?? StorageMonitor(logger: logger)
        self.outbox = outbox
        self.storage = storage
        laneStorage = LaneStorage(store: store, outbox: outbox, storage: storage, clock: clock, logger: logger)
        self.logger = logger
        self.clock = clock
        self.endpoints = endpoints
        (granted, told, self.leasesHeld) = (owned, owned, leasesHeld)
        let machine = DeliveryStateMachine(lanes: endpoints.map(DeliveryLaneSettings.init), records: records, owned: owned)
        self.machine = machine
        let inbox = DeliveryInbox(statuses: EndpointStatus.all(machine, endpoints))
        self.inbox = inbox
        sender = AttemptSender(endpoints: endpoints, http: http, inbox: inbox, clock: clock, random: random, console: console, logger: logger)
        report = DeliveryReport(endpoints: endpoints.map(\.name), logger: logger)
        report.start { machine.health(ofLane: $0).isDisabled }
    }

    /// New deliveries were committed: look for them now rather than at the next deadline.
    public nonisolated func wake() {
        inbox.deliveriesQueued()
    }

    /// Another process committed something (an operator's replay or enable): read the
    /// endpoints' records and their queues again.
    public nonisolated func externalChange() {
        inbox.externalChange()
    }

    /// The endpoints this instance delivers changed (it took or lost their leases): the
    /// machine reads their records and starts or stops delivering them.
    public nonisolated func ownership(_ owned: Set<String>) {
        inbox.ownership(owned)
    }

    /// The same leases were renewed: endpoints whose leases had run out here (a late renewal)
    /// are delivered again.
    public nonisolated func leasesRenewed() {
        inbox.wake()
    }

    /// Asks a running loop to stop: no new attempts; attempts in flight get `grace` to
    /// finish and the rest stay queued for the next start.
    public nonisolated func stop(grace: Duration) {
        post(.stop(deadline: clock.now().addingTimeInterval(grace.seconds)))
    }

    /// Every endpoint's circuit state, for `/health`.
    public nonisolated var endpointStatuses: [EndpointStatus] { inbox.statuses }

    /// The endpoints another instance may take from this one (see `EndpointStatus.settled`).
    public nonisolated var settledEndpoints: Set<String> { inbox.settledEndpoints }

    nonisolated func post(_ input: DeliveryStateMachine.Input) {
        inbox.post(input)
    }

    /// Runs the loop until it ends (see `Mode`). One loop at a time: a call while another
    /// runs returns at once. Cancelling the task stops it as `stop(grace: .zero)` does.
    public func run(_ mode: Mode) async {
        let (wakeups, wakeup) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        guard inbox.begin(wakeup: wakeup) else {
            logger.warning("the dispatcher is already running; ignoring a second run")
            return
        }
        let recorder = Recorder(
            outbox: outbox, storage: storage, clock: clock, logger: logger,
            acknowledge: { [weak self] commit in self?.post(.resultsCommitted(commit)) },
            // A refused commit sends no acknowledgement: without this a drain waiting for one would sleep on.
            refused: { [inbox] in inbox.wake() })
        var continuous = false
        if case .continuous = mode { continuous = true }
        let changeWatch = inbox.follow(store.changes(), externalChanges: continuous)
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
            timer?.task.cancel()
            timer = nil
            // A group message being queued commits or fails before the run ends.
            for flush in groupFlushes.values { await flush.value }
            groupFlushes.removeAll()
            inbox.end()
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
                    report.stopping(inFlight: machine.inFlightCount, grace: stopDeadline.timeIntervalSince(now))
                }
                ended = await execute(machine.handle(inputs, now: now))
                inputs.removeAll(keepingCapacity: true)
            }
            // Cancelled: nothing more can wake the loop, so it ends now.
            if cancelled, ended == nil { ended = machine.inFlightCount }
            sender.submit()
            now = clock.now()
            finishStats(at: now)
            recorder.submit(outgoing)
            outgoing = Recorder.Batch()
            inbox.publish(EndpointStatus.all(machine, endpoints), ownershipPost: ownershipPost)
            if let abandoned = ended {
                report.stopped(abandoning: abandoned)
                return
            }
            setTimer()
            if inbox.isEmpty, wakeAt.map({ $0 > clock.now() }) ?? true {
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
        let (clock, inbox) = (self.clock, self.inbox)
        let task = Task {
            do {
                try await clock.sleep(until: wakeAt)
            } catch {
                return  // replaced by a later deadline, or the run ended
            }
            inbox.wake()
        }
        timer = (wakeAt, task)
    }

    /// The inputs other threads posted, and the signals they raised.
    private func takeInputs() async -> [DeliveryStateMachine.Input] {
        let taken = inbox.take()
        var inputs = taken.inputs
        for event in taken.authEvents { inputs += sender.handle(event) }
        if taken.queued { inputs.append(.deliveriesQueued) }
        if let owned = taken.ownership { granted = owned }
        // Of the endpoints granted, those whose leases are still held by this instance's clock:
        // woken from a pause past its leases, it must not start what it holds in memory.
        let owned = granted.map { granted in leasesHeld().map { granted.intersection($0) } ?? granted }
        if taken.externalChange || owned != told {
            do {
                let records = try await store.endpointRecords()
                if let owned, owned != told {
                    inputs.append(.ownership(owned: owned, records: records))
                    told = owned
                }
                if taken.ownership != nil { ownershipPost = taken.ownershipPost }
                if taken.externalChange { inputs.append(.externalChange(records: records)) }
            } catch {
                // Read again on the next turn; until then the storage counts as faulty.
                storage.reportFault(error)
                inbox.putBack(externalChange: taken.externalChange, ownership: taken.ownership, post: taken.ownershipPost)
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
                if let finished = sender.start(delivery, lane: lane) { feedback.append(.attemptFinished(finished)) }
            case .refill(let lane, let dueBy, let limit, let excluding, let askNextDue):
                let name = endpoints[lane].name
                feedback.append(await laneStorage.refill(lane, endpoint: name, dueBy: dueBy, limit: limit, excluding: excluding, askNextDue: askNextDue))
            case .readGroupSchedule(let lane):
                feedback.append(await laneStorage.groupSchedule(lane, endpoint: endpoints[lane].name))
            case .flushGroups(let lane, let dueBy):
                // In a task of its own: a group message waiting for the write lock must not hold
                // up the other endpoints' attempts. Its answer comes back through the inbox.
                let (storage, endpoint, inbox) = (laneStorage, endpoints[lane], inbox)
                groupFlushes[lane] = Task { inbox.post(await storage.flushGroups(lane, endpoint: endpoint, dueBy: dueBy)) }
            case .record(let outcome):
                outgoing.add(outcome, endpoint: endpoints[outcome.lane].name)
                report.count(outcome)
                report.log(outcome)
            case .saveEndpointRecord(let lane, let record):
                outgoing.endpointRecords.append((endpoints[lane].name, record))
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

    // MARK: Announcements, stats

    private func announce(_ announcement: DeliveryStateMachine.Announcement, lane index: Int, at date: Date) async {
        guard case .disabled(let reason, let since) = announcement else {
            report.announce(announcement, lane: index, at: date)
            return
        }
        let name = endpoints[index].name
        let pending = (try? await store.pendingCounts()[name]) ?? 0
        report.announce(announcement, lane: index, at: date, pending: pending)
        outgoing.disable(endpoint: name, reason: reason, failingSince: since, pending: pending, at: date)
    }

    /// Completes the turn's stats with each endpoint's failures and circuit, and lets the
    /// report summarize failing endpoints.
    private func finishStats(at date: Date) {
        for index in endpoints.indices {
            let health = machine.health(ofLane: index)
            if outgoing.complete(endpoint: endpoints[index].name, health: health) { report.failing(lane: index, health.failures > 0) }
            report.summarize(health, lane: index, at: date)
        }
    }
}
