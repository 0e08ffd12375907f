import Foundation
import Logging
import Metrics
import ServiceLifecycle

/// Runs the look-ups the bank's notifications triggered: each notified payment is read from
/// the bank by id and goes through change detection as the watch `notifications` (fenced
/// like a poll, so only the poller lease's holder commits). A look-up that fails is tried
/// again with backoff; the queue is in the state, so a restart finishes what a crash left.
public final class NotificationLookups: Sendable {
    /// The watch look-ups detect as.
    public static let watch = Watch(name: NotificationsConfiguration.watchName, every: .seconds(3600), query: [], baseline: .emit)

    private let store: any NotificationStore
    private let poller: Poller
    private let clock: WallClock
    private let logger: Logger
    private let wake: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>
    private let latency = Metrics.Timer(label: "paybridge_notification_event_latency_seconds", preferredDisplayUnit: .seconds)

    init(store: any NotificationStore, poller: Poller, clock: WallClock, logger: Logger) {
        self.store = store
        self.poller = poller
        self.clock = clock
        self.logger = logger
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Something was committed to the queue: look at it now.
    public func notify() { wake.yield() }

    /// How long a look-up that failed `attempts` times waits: 1 s, doubling, at most 5 min.
    static func backoff(attempts: Int) -> Duration {
        .seconds(min(300, 1 << min(attempts, 9)))
    }

    /// Runs every look-up due now, in batches; returns how many ran. Stops early when the
    /// lease is lost (another instance runs them) or `shouldStop` says so.
    @discardableResult
    public func runDue(shouldStop: @Sendable () -> Bool = { false }, onLeaseLost: @Sendable () -> Void = {}) async -> Int {
        var done = 0
        // Each look-up once per pass: one that cannot even be postponed is not retried at once.
        var tried = Set<String>()
        while !shouldStop() {
            let due: [Lookup]
            do {
                due = try await store.dueLookups(by: clock.now(), limit: 64).filter { tried.insert($0.paymentId).inserted }
            } catch {
                logger.warning("cannot read the notifications' look-ups", metadata: ["error": "\(error)"])
                return done
            }
            if due.isEmpty { return done }
            // Different payments in parallel, a few at a time: one slow answer from the bank
            // does not hold the others (their commits are independent: one payment each).
            for start in stride(from: 0, to: due.count, by: Self.parallel) {
                if shouldStop() { return done }
                let outcomes = await withTaskGroup(of: Outcome.self) { group in
                    for lookup in due[start..<min(start + Self.parallel, due.count)] { group.addTask { await self.run(lookup) } }
                    var outcomes: [Outcome] = []
                    for await outcome in group { outcomes.append(outcome) }
                    return outcomes
                }
                done += outcomes.filter { $0 == .done }.count
                if outcomes.contains(.leaseLost) {
                    onLeaseLost()
                    return done
                }
            }
        }
        return done
    }

    /// Look-ups run at once.
    static let parallel = 8

    private enum Outcome: Sendable { case done, postponed, leaseLost }

    private func run(_ lookup: Lookup) async -> Outcome {
        let counter = Counter(label: "paybridge_notification_lookups_total", dimensions: [("outcome", "ok")])
        do {
            switch try await poller.lookUp(lookup.paymentId, as: Self.watch) {
            case .found(let report):
                counter.increment()
                if report.events > 0 {
                    let seconds = max(0, clock.now().timeIntervalSince(lookup.requestedAt))
                    latency.recordNanoseconds(Int64(seconds * 1e9))
                    logger.info(
                        "notification look-up found a change",
                        metadata: [
                            "paymentId": "\(lookup.paymentId)", "created": .stringConvertible(report.created),
                            "changed": .stringConvertible(report.changed),
                            "sinceNotification": "\(String(format: "%.3f", seconds)) s",
                        ])
                }
            case .unknown(let requestId):
                Counter(label: "paybridge_notification_lookups_total", dimensions: [("outcome", "unknown_payment")]).increment()
                var metadata: Logger.Metadata = ["paymentId": "\(lookup.paymentId)"]
                if let requestId { metadata["requestId"] = "\(requestId)" }
                logger.warning("the bank does not know a notified payment", metadata: metadata)
            }
        } catch let error where error.underlying as? StorageError == .leaseLost {
            return .leaseLost
        } catch {
            Counter(label: "paybridge_notification_lookups_total", dimensions: [("outcome", "failed")]).increment()
            let wait = Self.backoff(attempts: lookup.attempts)
            logger.warning(
                "notification look-up failed; retrying",
                metadata: ["paymentId": "\(lookup.paymentId)", "error": "\(error)", "retryIn": "\(DurationText.format(wait))"])
            do {
                try await store.postponeLookup(lookup, until: clock.now().addingTimeInterval(wait.seconds), error: "\(error)")
            } catch {
                logger.warning("cannot postpone the look-up", metadata: ["paymentId": "\(lookup.paymentId)", "error": "\(error)"])
            }
            return .postponed
        }
        do {
            try await store.finishLookup(lookup)
        } catch {
            // Done again later: the look-up finds nothing new the second time.
            logger.warning("cannot remove a finished look-up", metadata: ["paymentId": "\(lookup.paymentId)", "error": "\(error)"])
        }
        return .done
    }

    /// Runs due look-ups whenever woken (a notification committed here, a state change:
    /// another instance received, or the next due look-up's time), while `isLeader`.
    /// One loop reading one wake-up stream; a timer task wakes it at the next due time.
    func run(changes: AsyncStream<StateChange>, isLeader: @escaping @Sendable () -> Bool, canWrite: @escaping @Sendable () -> Bool, stepDown: @escaping @Sendable () -> Void) async {
        let wake = self.wake
        let forwarding = Task { for await _ in changes { wake.yield() } }
        defer { forwarding.cancel() }
        var timer: Task<Void, Never>?
        var iterator = wakes.makeAsyncIterator()
        while !Task.isCancelled {
            let leader = isLeader()
            var done = 0
            let writable = canWrite()
            if leader, writable {
                done = await runDue(shouldStop: { Task.isCancelled || !isLeader() }, onLeaseLost: stepDown)
            }
            // Not the poller: look again soon (leadership changes are not announced).
            var deadline = clock.now().addingTimeInterval(leader ? 5 : 0.2)
            if leader, let next = try? await store.nextLookupDate(), next < deadline {
                // A pass that finished nothing (the state refuses writes, so a failed look-up
                // could not even be postponed) waits a second rather than asking the bank again
                // at once.
                deadline = done == 0 || !writable ? max(next, clock.now().addingTimeInterval(1)) : next
            }
            timer?.cancel()
            let clock = self.clock
            timer = Task {
                try? await clock.sleep(until: deadline)
                if !Task.isCancelled { wake.yield() }
            }
            guard await iterator.next() != nil else { break }
        }
        timer?.cancel()
    }
}

/// Runs `NotificationLookups` while paybridge runs (on the instance that polls).
struct NotificationLookupService: Service {
    let bridge: Bridge
    let lookups: NotificationLookups

    func run() async throws {
        await cancelWhenGracefulShutdown { [bridge, lookups] in
            await lookups.run(
                changes: bridge.store.changes(), isLeader: { bridge.isLeader }, canWrite: { bridge.storage.isAvailable },
                stepDown: { bridge.stepDown() })
        }
    }
}
