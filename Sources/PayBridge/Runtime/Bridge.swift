import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// One paybridge: the store, the bank client, the poller and the dispatcher, wired from a
/// configuration. The CLI is a thin layer over this type; tests drive it directly too.
public final class Bridge: Sendable {
    public let configuration: Configuration
    public let store: any Store & Coordination
    public let dispatcher: Dispatcher
    public let storage: StorageMonitor
    public let source: SourceMonitor
    let poller: Poller
    private let http: CurlHTTPClient
    let logger: Logger
    let clock: WallClock
    private let watchStatuses: Mutex<[String: WatchStatus]>
    let events = EventMetrics()
    /// Whether this instance polls (always, unless the state is shared by several).
    private let leadership: Mutex<Leadership>
    /// The bank's own notifications (§10), when `source.notifications` is set.
    public let notifications: Notifications?

    /// The parts of the notifications' fast path.
    public struct Notifications: Sendable {
        public let configuration: NotificationsConfiguration
        public let lookups: NotificationLookups
        public let subscription: SubscriptionMonitor
    }

    /// Opens the state and reads what the dispatcher and the monitors must know before they
    /// start (disabled endpoints, an announced outage); any read that fails throws, so a
    /// state that cannot be read never looks like "nothing is disabled".
    /// - Parameters:
    ///   - apiURL: the bank's base URL when the config has none (the in-process sandbox).
    ///   - console: where console endpoints write.
    ///   - clock: where every part reads the time.
    public init(
        configuration: Configuration, apiURL: String? = nil, logger: Logger,
        console: (@Sendable ([UInt8]) -> Void)? = nil, clock: WallClock = .system
    ) async throws {
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
        watchStatuses = Mutex(Dictionary(uniqueKeysWithValues: configuration.source.watches.map { ($0.name, WatchStatus(name: $0.name, every: $0.every)) }))
        let http = CurlHTTPClient()
        self.http = http
        do {
            let store = try await StateStore.open(configuration.state, logger: logger)
            self.store = store
            leadership = Mutex(Leadership(shared: store.isShared))
            // Shared state: endpoints are delivered once their leases are held.
            let owned: Set<String>? = store.isShared ? [] : nil
            let outbox = Outbox(store: store, pipeline: Pipeline(configuration))
            let storage = StorageMonitor(logger: logger, clock: clock)
            self.storage = storage
            let client = BankingCircleClient(
                source: configuration.source, apiURL: apiURL, authURL: apiURL, http: http, logger: logger, clock: clock)
            if let console {
                dispatcher = try await Dispatcher(
                    endpoints: configuration.endpoints, store: store, http: http, outbox: outbox, storage: storage, logger: logger,
                    clock: clock, console: console, owned: owned, leasesHeld: { store.endpointLeasesHeldNow() })
            } else {
                dispatcher = try await Dispatcher(
                    endpoints: configuration.endpoints, store: store, http: http, outbox: outbox, storage: storage, logger: logger,
                    clock: clock, owned: owned, leasesHeld: { store.endpointLeasesHeldNow() })
            }
            source = try await SourceMonitor(
                store: store, outbox: outbox, threshold: configuration.source.unavailableAfter, logger: logger, clock: clock)
            let poller = Poller(
                source: client, store: store, outbox: outbox, pageSize: configuration.source.pageSize, logger: logger,
                clock: clock, events: events, lease: store)
            self.poller = poller
            notifications = configuration.source.notifications.map { settings in
                Notifications(
                    configuration: settings, lookups: NotificationLookups(store: store, poller: poller, clock: clock, logger: logger),
                    subscription: SubscriptionMonitor(configuration: settings, client: client, store: store, outbox: outbox, clock: clock, logger: logger))
            }
        } catch {
            http.shutdown()
            throw StateUnavailable(path: StateStore.describe(configuration.state), underlying: error)
        }
    }

    /// What `pollOnce` did.
    public struct OnceResult: Sendable {
        public var reports: [PollReport]
        public var failures: [PollError]
    }

    /// Polls every watch once, then attempts every delivery due now (deliveries that fail
    /// stay queued for their next retry), then applies retention. Deliveries start while the
    /// watches are still being polled.
    ///
    /// On a shared state it takes the poller lease first (and fails if a running instance
    /// holds it) and delivers the endpoints no running instance delivers.
    public func pollOnce() async -> OnceResult {
        await warnAboutRemovedEndpoints()
        do {
            try await takeOneShotLeases(poller: true)
        } catch {
            let failures = configuration.source.watches.map { PollError(stage: .storage, watch: $0.name, underlying: error) }
            await letGoOfOneShotLeases()
            return OnceResult(reports: [], failures: failures)
        }
        let renewal = renewingOneShotLeases(poller: true)
        let trigger = Dispatcher.DrainTrigger(dispatcher)
        let delivering = Task { await dispatcher.run(.drainWhen(trigger)) }
        let result = await pollWatches()
        // What notifications left queued (a crash, a failed look-up) is done too.
        await notifications?.lookups.runDue(onLeaseLost: { [self] in stepDown() })
        trigger.fire(dueBy: clock.now())
        await delivering.value
        await prune()
        renewal?.cancel()
        await renewal?.value
        await letGoOfOneShotLeases()
        return result
    }

    /// Attempts what is due by `date` without polling (on a shared state, for the endpoints
    /// no running instance delivers).
    public func deliverDue(by date: Date) async {
        do {
            try await takeOneShotLeases(poller: false)
        } catch {
            logger.error("cannot take the endpoints' leases", metadata: ["error": "\(error)"])
            await letGoOfOneShotLeases()
            return
        }
        let renewal = renewingOneShotLeases(poller: false)
        await dispatcher.run(.drain(dueBy: date))
        renewal?.cancel()
        await renewal?.value
        await letGoOfOneShotLeases()
    }

    /// A one-shot command on a shared state: the poller lease (or an error if a running
    /// instance holds it) and every endpoint lease no running instance holds.
    private func takeOneShotLeases(poller: Bool) async throws {
        guard store.isShared else { return }
        if poller {
            guard try await store.holdPollerLease() else { throw PollerLeaseHeld() }
            leadership.withLock { $0.tookOneShot() }
        }
        dispatcher.ownership(try await store.holdEndpointLeases(configuration.endpoints.map(\.name), takeAllFree: true, settled: []))
    }

    /// Keeps a one-shot command's leases while it runs, renewing them every third of the lease
    /// as `run` does: a long drain outlasts a lease, and only an endpoint's lease holder claims
    /// its deliveries (and only the poller lease's holder commits what it detects).
    private func renewingOneShotLeases(poller: Bool) -> Task<Void, Never>? {
        guard store.isShared else { return nil }
        let (store, clock, dispatcher, logger) = (store, clock, dispatcher, logger)
        let (endpoints, every) = (configuration.endpoints.map(\.name), store.leaseDuration / 3)
        return Task {
            var current: Set<String>?
            while true {
                try? await clock.sleep(for: every)
                if Task.isCancelled { return }
                do {
                    if poller, try await !store.holdPollerLease() {
                        logger.warning("lost the poller lease while polling once; what it detects now is not committed")
                    }
                    let owned = try await store.holdEndpointLeases(endpoints, takeAllFree: true, settled: [])
                    if owned != current {
                        current = owned
                        dispatcher.ownership(owned)
                    } else {
                        dispatcher.leasesRenewed()
                    }
                } catch {
                    logger.warning("cannot renew the leases", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    private func letGoOfOneShotLeases() async {
        guard store.isShared else { return }
        dispatcher.ownership([])
        await letGoOfLeases()
    }

    /// What operators ask of this bridge's state and do to it (the admin server's routes).
    public var operations: Operations { Operations(configuration: configuration, store: store) }

    /// Whether this instance polls now.
    public var isLeader: Bool { leadership.withLock { $0.isLeader } }

    /// Takes or renews the leases once (a turn of `CoordinationService`); returns whether
    /// this instance polls.
    func renewLeases(owned current: inout Set<String>?) async -> Bool {
        var holding: Bool?
        do {
            if leadership.withLock({ $0.seeksLease }) { holding = try await store.holdPollerLease() }
        } catch {
            // Unsure: stop polling (the fencing token would refuse the commits anyway).
            logger.warning("cannot renew the poller lease", metadata: ["error": "\(error)"])
        }
        switch leadership.withLock({ $0.renewed(holding: holding) }) {
        case .unchanged:
            break
        case .takingOver:
            do {
                try await source.reload()
                leadership.withLock { $0.tookOver(sourceRead: true) }
                logger.notice("this instance polls the bank now (it holds the poller lease)")
            } catch {
                logger.warning("took the poller lease but cannot read the source record; not polling", metadata: ["error": "\(error)"])
                await store.releaseLeases(poller: true, endpoints: false)
            }
        case .lost where holding == nil:
            // The state did not answer: nobody may have taken over, but this instance cannot know.
            logger.notice("polling stops: the poller lease cannot be renewed (the state does not answer); another instance may take over")
        case .lost:
            logger.notice("another instance polls the bank now (this one lost the poller lease)")
        }
        let leader = isLeader
        do {
            let owned = try await store.holdEndpointLeases(
                configuration.endpoints.map(\.name), takeAllFree: false, settled: dispatcher.settledEndpoints)
            if owned != current {
                current = owned
                dispatcher.ownership(owned)
                logger.info("delivering endpoints", metadata: ["endpoints": "\(owned.sorted().joined(separator: ","))"])
            } else {
                dispatcher.leasesRenewed()
            }
        } catch {
            logger.warning("cannot renew the endpoint leases", metadata: ["error": "\(error)"])
        }
        return leader
    }

    /// Polls every watch once, one after the other, without delivering.
    public func pollWatches() async -> OnceResult {
        var result = OnceResult(reports: [], failures: [])
        for watch in configuration.source.watches {
            switch await poll(watch) {
            case .success(let report): result.reports.append(report)
            case .failure(let error): result.failures.append(error)
            }
        }
        return result
    }

    /// One poll of `watch`, with its outcome reported to the monitors and the log.
    func poll(_ watch: Watch, shouldStop: @Sendable () -> Bool = { false }) async -> Result<PollReport, PollError> {
        let metrics = PollMetrics(watch: watch.name)
        let started = ContinuousClock.now
        do {
            let report = try await poller.poll(watch, shouldStop: shouldStop)
            metrics.duration.recordNanoseconds((ContinuousClock.now - started).nanoseconds)
            metrics.succeeded.increment()
            metrics.pages.increment(by: report.pages)
            metrics.payments.increment(by: report.payments)
            let at = clock.now()
            watchStatuses.withLock { $0[watch.name]?.lastSuccessAt = at }
            storage.reportHealthy()
            if report.complete { await source.pollSucceeded() }
            log(report)
            return .success(report)
        } catch let error where error.underlying as? StorageError == .leaseLost {
            // Not a fault: another instance took over, and nothing of this poll was committed.
            leadership.withLock { $0.stepDown() }
            logger.notice("poll stopped: another instance polls the bank now", metadata: ["watch": "\(watch.name)"])
            return .failure(error)
        } catch {
            metrics.failed.increment()
            let at = clock.now()
            watchStatuses.withLock { statuses in
                statuses[watch.name]?.lastFailureAt = at
                statuses[watch.name]?.lastError = "\(error)"
            }
            switch error.stage {
            case .storage:
                storage.reportFault(error)
            case .source:
                var metadata: Logger.Metadata = ["watch": "\(watch.name)", "error": "\(error)"]
                if let requestId = error.requestId { metadata["requestId"] = "\(requestId)" }
                logger.error("poll failed", metadata: metadata)
                await source.pollFailed(error)
            }
            return .failure(error)
        }
    }

    /// Deletes delivered events and attempt logs older than `state.retention`.
    @discardableResult
    public func prune(now: Date? = nil) async -> PruneReport? {
        let now = now ?? clock.now()
        do {
            let report = try await store.prune(before: now.addingTimeInterval(-configuration.state.retention.seconds))
            if report != PruneReport() {
                logger.info(
                    "retention: deleted delivered events and their logs",
                    metadata: ["deliveries": .stringConvertible(report.deliveries), "attempts": .stringConvertible(report.attempts), "events": .stringConvertible(report.events)])
            }
            return report
        } catch {
            storage.reportFault(error)
            return nil
        }
    }

    /// The long-running parts, for a `ServiceGroup`: the dispatcher first, so it is the last
    /// to stop (graceful shutdown runs in reverse order), then upkeep, then one loop per watch.
    public func services() -> [any Service] {
        var services: [any Service] = []
        // First, so it stops last: leases are let go once deliveries have stopped.
        if store.isShared { services.append(CoordinationService(bridge: self)) }
        services.append(DeliveryService(dispatcher: dispatcher, grace: configuration.delivery.shutdownGrace))
        // Shut down after the watches and before the deliveries drain.
        if store.isShared { services.append(PollerHandoverService(bridge: self)) }
        services += [RetentionService(bridge: self), QueueMetricsService(bridge: self)]
        for watch in configuration.source.watches {
            services.append(WatchService(bridge: self, watch: watch))
        }
        if let notifications {
            services.append(NotificationLookupService(bridge: self, lookups: notifications.lookups))
            services.append(SubscriptionService(bridge: self, monitor: notifications.subscription))
        }
        return services
    }

    /// The listener for the bank's notifications (nil without `source.notifications`); it
    /// throws when its TLS certificate or key cannot be loaded.
    public func notificationReceiver() throws -> (any Service)? {
        guard let notifications else { return nil }
        let settings = notifications.configuration
        let lookups = notifications.lookups
        let logger = self.logger
        do {
            return try NotificationReceiver.application(
                settings, store: store, clock: clock, logger: logger, committed: { lookups.notify() },
                onListening: { port in
                    logger.info(
                        "notifications receiver listening",
                        metadata: ["url": "\(settings.tls == nil ? "http" : "https")://\(settings.host):\(port)\(settings.path)", "publicURL": "\(settings.publicURL)"])
                })
        } catch {
            throw NotificationReceiverError(description: "source.notifications.tls: cannot load the certificate or key: \(error)")
        }
    }

    /// Every watch's last polls in this process.
    public var watches: [WatchStatus] {
        let statuses = watchStatuses.withLock { $0 }
        return configuration.source.watches.compactMap { statuses[$0.name] }
    }

    /// `/readyz`: every watch polled successfully within 3 of its intervals, and the state
    /// storage takes writes. The reasons say what is wrong.
    public func readiness() -> (ready: Bool, reasons: [String]) {
        let now = clock.now()
        var reasons: [String] = []
        for watch in watches {
            guard let last = watch.lastSuccessAt else {
                reasons.append("watch '\(watch.name)' has not polled successfully yet" + (watch.lastError.map { ": \($0)" } ?? ""))
                continue
            }
            let age = now.timeIntervalSince(last)
            if age > 3 * watch.every.seconds {
                reasons.append(
                    "watch '\(watch.name)' last polled successfully \(Int(age)) s ago, more than 3 × its \(DurationText.format(watch.every))"
                        + (watch.lastError.map { ": \($0)" } ?? ""))
            }
        }
        if !storage.isAvailable { reasons.append("the state storage refuses writes") }
        if let problem = notifications?.subscription.problem { reasons.append(problem) }
        return (reasons.isEmpty, reasons)
    }

    /// What `/health` shows.
    public struct Health: Sendable {
        public var storageAvailable: Bool
        public var sourceAvailable: Bool
        public var endpoints: [Dispatcher.EndpointStatus]

        public var healthy: Bool {
            storageAvailable && sourceAvailable && endpoints.allSatisfy { $0.state == .closed }
        }
    }

    public func health() async -> Health {
        Health(storageAvailable: storage.isAvailable, sourceAvailable: await source.isAvailable, endpoints: dispatcher.endpointStatuses)
    }

    /// This instance lost the poller lease (a fenced commit was refused): stop polling until
    /// the coordination service takes it again.
    func stepDown() {
        leadership.withLock { $0.stepDown() }
    }

    /// Lets another instance take over at once rather than when the leases expire.
    /// On a graceful stop, once the watches have stopped: another instance may poll while this
    /// one's deliveries in flight finish (up to `delivery.shutdownGrace`).
    func stopPolling() async {
        let leading = leadership.withLock { leadership in
            defer { leadership.stopPolling() }
            return leadership.state == .leading
        }
        guard store.isShared else { return }
        await store.releasePollerLease()
        if leading { logger.notice("stopping: the poller lease is let go for another instance to poll") }
    }

    func letGoOfLeases() async {
        leadership.withLock { $0.stepDown() }
        await store.releaseLeases(poller: true, endpoints: true)
    }

    /// Says, once per start, which endpoints the state still queues deliveries for but the
    /// config no longer names: they are kept and wait (nothing sends them) until the endpoint
    /// is back, which the operator has to know.
    public func warnAboutRemovedEndpoints() async {
        guard let pending = try? await store.pendingCounts() else { return }
        let configured = Set(configuration.endpoints.map(\.name))
        for (name, count) in pending.sorted(by: { $0.key < $1.key }) where count > 0 && !configured.contains(name) {
            logger.warning(
                "endpoint \(name) is no longer in the config: its pending deliveries are kept and wait until it is back",
                metadata: ["endpoint": "\(name)", "pending": "\(count)"])
        }
    }

    /// Releases the transport's thread; call once everything has stopped.
    public func close() {
        http.shutdown()
    }

    func log(_ report: PollReport) {
        let metadata: Logger.Metadata = [
            "watch": "\(report.watch)", "pages": .stringConvertible(report.pages), "payments": .stringConvertible(report.payments),
            "created": .stringConvertible(report.created), "changed": .stringConvertible(report.changed), "recorded": .stringConvertible(report.recorded),
            "lookups": .stringConvertible(report.lookups),
        ]
        if report.baseline, !report.complete {
            logger.info("baseline poll stopped before its end: it goes on at the next poll", metadata: metadata)
        } else if report.baseline, report.created > 0 {
            logger.info("baseline poll done: payments recorded with events (baseline: emit)", metadata: metadata)
        } else if report.baseline, report.changed > 0 {
            logger.info("baseline poll done: new payments recorded without events; known payments' changes emitted", metadata: metadata)
        } else if report.baseline {
            logger.info("baseline poll done: payments recorded without events", metadata: metadata)
        } else if report.events > 0 {
            logger.info("poll found changes", metadata: metadata)
        } else {
            logger.debug("poll found no change", metadata: metadata)
        }
    }
}
