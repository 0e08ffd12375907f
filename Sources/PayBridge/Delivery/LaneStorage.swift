import Foundation
import Logging

/// What the dispatcher's loop reads and writes for a lane: its due deliveries, when its next
/// group message is due, and its group messages (queued through the outbox). Each answer is
/// the machine's input; a failure is reported to the storage monitor and answered as such.
struct LaneStorage: Sendable {
    let store: any OutboxStore & RecordStore & DeliveryQueue
    let outbox: Outbox
    let storage: StorageMonitor
    let clock: WallClock
    let logger: Logger

    func refill(_ lane: Int, endpoint: String, dueBy: Date, limit: Int, excluding: Set<Int64>, askNextDue: Bool) async -> DeliveryStateMachine.Input {
        do {
            let due = try await store.dueDeliveries(endpoint: endpoint, dueBy: dueBy, limit: limit, excluding: excluding)
            let nextDue = due.count < limit && askNextDue ? try await store.nextDueDate(after: dueBy, endpoints: [endpoint]) : nil
            return .refilled(lane: lane, deliveries: due, exhausted: due.count < limit, nextDue: nextDue)
        } catch {
            storage.reportFault(error)
            return .refillFailed(lane: lane)
        }
    }

    func groupSchedule(_ lane: Int, endpoint: String) async -> DeliveryStateMachine.Input {
        do {
            return .groupSchedule(lane: lane, next: try await store.nextGroupFlush(endpoint: endpoint))
        } catch {
            storage.reportFault(error)
            return .groupsFailed(lane: lane)
        }
    }

    /// Builds the lane's group messages that are due and queues each through the outbox, in
    /// one transaction with the marking of the members it carries.
    func flushGroups(_ lane: Int, endpoint: EndpointConfiguration, dueBy: Date) async -> DeliveryStateMachine.Input {
        guard let settings = endpoint.group else { return .groupsFlushed(lane: lane, messages: 0, next: nil) }
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
}
