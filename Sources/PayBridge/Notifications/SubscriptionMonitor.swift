import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Watches the bank's notification subscription (§10): every `checkEvery` it is read from
/// the bank; missing or not Active → one `source.notifications.inactive` event and `/readyz`
/// says so; Active again → one `source.notifications.active`. The announcement is kept in the
/// state (`source_state` row `notifications`), so a restart neither repeats nor forgets it.
public final class SubscriptionMonitor: Sendable {
    /// What the last check found.
    public enum Status: Sendable, Equatable {
        case unknown
        case active(NotificationSubscription)
        case inactive(NotificationSubscription?)
        /// The bank could not be asked.
        case unreadable(String)
    }

    static let recordName = "notifications"

    let configuration: NotificationsConfiguration
    private let client: BankingCircleClient
    private let store: any RecordStore
    private let outbox: Outbox
    private let clock: WallClock
    private let logger: Logger
    private let current = Mutex<Status>(.unknown)
    private let gauge = Gauge(label: "paybridge_notifications_subscription_active")

    init(configuration: NotificationsConfiguration, client: BankingCircleClient, store: any RecordStore, outbox: Outbox, clock: WallClock, logger: Logger) {
        self.configuration = configuration
        self.client = client
        self.store = store
        self.outbox = outbox
        self.clock = clock
        self.logger = logger
    }

    public var status: Status { current.withLock { $0 } }

    /// `/readyz`'s reason, or nil while the subscription is Active (or not read yet).
    public var problem: String? {
        switch status {
        case .unknown, .active, .unreadable: return nil
        case .inactive(nil): return "no notification subscription at the bank for \(configuration.publicURL) (source.notifications)"
        case .inactive(let subscription?):
            let message = subscription.statusMessage.map { ": \($0)" } ?? ""
            return "the bank's notification subscription \(subscription.id) is \(subscription.status.isEmpty ? "not Active" : subscription.status)\(message)"
        }
    }

    /// Reads the subscription once; on the instance that polls (`announce`), emits the
    /// event a change of its state calls for.
    public func check(announce: Bool) async {
        let found: NotificationSubscription?
        do {
            found = try await client.subscription(for: configuration.publicURL)
        } catch {
            current.withLock { $0 = .unreadable("\(error)") }
            logger.warning("cannot read the notification subscription from the bank", metadata: ["error": "\(error)"])
            return
        }
        let active = found?.active == true
        current.withLock { status in
            if let found, active { status = .active(found) } else { status = .inactive(found) }
        }
        gauge.record(active ? 1 : 0)
        guard announce else { return }
        do {
            var record = try await store.sourceRecord(name: Self.recordName)
            let now = clock.now()
            let event: Event
            if !active, record.announcedAt == nil {
                record.failingSince = now
                record.announcedAt = now
                record.sequence += 1
                event = .operational(
                    type: .sourceNotificationsInactive, subject: "source.notifications", sequence: record.sequence, createdAt: now,
                    data: [
                        "subscriptionId": found.map { .string($0.id) } ?? .null, "status": .string(found?.status ?? "Missing"),
                        "statusMessage": found?.statusMessage.map { .string($0) } ?? .null, "since": .string(Timestamp.iso8601(now)),
                        "publicURL": .string(configuration.publicURL),
                    ])
                logger.error("the bank's notification subscription is not active; polling goes on", metadata: ["reason": "\(problem ?? "")"])
            } else if active, let since = record.failingSince ?? record.announcedAt {
                record.failingSince = nil
                record.announcedAt = nil
                record.sequence += 1
                event = .operational(
                    type: .sourceNotificationsActive, subject: "source.notifications", sequence: record.sequence, createdAt: now,
                    data: [
                        "subscriptionId": found.map { .string($0.id) } ?? .null, "status": .string(found?.status ?? "Active"),
                        "since": .string(Timestamp.iso8601(since)), "publicURL": .string(configuration.publicURL),
                    ])
                logger.notice("the bank's notification subscription is active again")
            } else {
                return
            }
            let saved = record
            _ = try await outbox.detect(emitting: [Outbox.Emission(event)]) { transaction in
                try await transaction.saveSourceRecord(saved, name: Self.recordName)
            }
        } catch {
            logger.warning("cannot record the notification subscription's state", metadata: ["error": "\(error)"])
        }
    }
}

/// Checks the subscription every `checkEvery` while paybridge runs.
struct SubscriptionService: Service {
    let bridge: Bridge
    let monitor: SubscriptionMonitor

    func run() async throws {
        await cancelWhenGracefulShutdown { [bridge, monitor] in
            while !Task.isCancelled {
                await monitor.check(announce: bridge.isLeader)
                try? await bridge.clock.sleep(for: monitor.configuration.checkEvery)
            }
        }
    }
}
