import ArgumentParser
import Foundation
import PayBridge

struct Payments: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "What paybridge saw of a payment.", subcommands: [Show.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A payment's timeline: every status seen (when, by which watch), each event with its deliveries and their attempts.",
            discussion: "Example: paybridge payments show 0b9f6a52-3c1e-4d8a-9f0e-2a7d5c1b8e44 --config paybridge.yaml")

        @Option(name: .long, help: ArgumentHelp("The config file.", discussion: configDefaults))
        var config: String?

        @Argument(help: "The bank's paymentId.")
        var id: String

        @Flag(name: .long, help: "One JSON document: {\"payment\": …, \"events\": [{…, \"deliveries\": [{…, \"attempts\": […]}]}]}.")
        var json = false

        @OptionGroup var common: CommonOptions

        func run() async throws {
            let operations = try await openState(config, common: common)
            let timeline = try await operating(config) { try await operations.payment(id: id) }
            let (payment, events, deliveries, attempts) = (timeline.payment, timeline.events, timeline.deliveries, timeline.attempts)
            // Grouped endpoints get an event inside a group message, not a delivery of its own.
            let (memberships, messages) = (timeline.groups, timeline.messages)
            if json {
                Output.print(timeline.json)
                return
            }
            let now = WallClock.fromEnvironment().now()
            print("payment \(payment.paymentId): \(payment.status), \(Output.count(payment.sequence, "change")) seen")
            if let first = payment.firstSeenAt {
                print("  \(Output.when(first, now: now))  first seen \(payment.firstStatus ?? "?") by watch \(payment.firstWatch ?? "?")")
            }
            for event in events {
                print("  \(Output.when(event.createdAt, now: now))  \(event.change) by watch \(event.watch ?? "?")  \(event.type) \(event.id)")
                for delivery in deliveries[event.id] ?? [] {
                    var line = "      → \(delivery.endpoint): \(delivery.stateText), \(Output.count(delivery.attempts, "attempt")) (delivery \(delivery.id))"
                    if let delivered = delivery.deliveredAt { line += ", delivered \(Output.relative(delivered, now: now))" }
                    if delivery.state == .pending { line += ", next \(Output.relative(delivery.dueAt, now: now))" }
                    print(line)
                    for attempt in attempts[delivery.id] ?? [] where attempt.error != nil || attempts[delivery.id]?.count ?? 0 > 1 {
                        print(
                            "          #\(attempt.number) \(Output.relative(attempt.startedAt, now: now)): "
                                + (attempt.error?.oneLine ?? "HTTP \(attempt.httpStatus.map(String.init) ?? "?")")
                                + String(format: " (%.0f ms)", attempt.durationMs))
                    }
                }
                for membership in memberships[event.id] ?? [] {
                    guard let message = membership.messageId else {
                        let until = membership.waitingUntil.map { " until \(Timestamp.iso8601($0))" } ?? ""
                        print("      → \(membership.endpoint): in a group waiting\(until) (its next message carries this event)")
                        continue
                    }
                    var line = "      → \(membership.endpoint): in group \(message)"
                    if let delivery = messages[message] {
                        line += ", \(delivery.stateText) (delivery \(delivery.id))"
                        if let delivered = delivery.deliveredAt { line += ", sent \(Output.relative(delivered, now: now))" }
                    }
                    print(line)
                }
            }
            if events.isEmpty { print("  no event yet (recorded silently by a baseline)") }
        }
    }
}

struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List events; queue one again for an endpoint.", subcommands: [List.self, Redeliver.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Events, newest first.",
            discussion: "Example: paybridge events list --config paybridge.yaml --status Rejected --since 2h")

        @Option(name: .long, help: ArgumentHelp("The config file.", discussion: configDefaults))
        var config: String?

        @Option(name: .long, help: "Only these types, comma-separated, e.g. payment.status_changed.")
        var type: String?

        @Option(name: .long, help: "Only events to these statuses, comma-separated, e.g. Rejected,MissingFunding.")
        var status: String?

        @Option(name: .long, help: "Only this payment's events.")
        var payment: String?

        @Option(name: .long, help: "Only this recent (2h) or since an ISO 8601 time.")
        var since: String?

        @Option(name: .long, help: "At most this many.")
        var limit = 50

        @Flag(name: .long, help: "One JSON document: {\"events\": [...]}.")
        var json = false

        @OptionGroup var common: CommonOptions

        func run() async throws {
            let operations = try await openState(config, common: common)
            let (events, members) = try await operations.events(EventFilter(type: type, status: status, paymentId: payment, since: try ago(since), limit: limit))
            if json {
                Output.print(
                    .object([
                        (
                            "events",
                            .array(
                                events.map { event in
                                    guard let carried = members[event.id], case .object(var fields) = event.json else { return event.json }
                                    fields.append(("members", GroupMessage.members(carried)))
                                    return .object(fields)
                                })
                        )
                    ]))
                return
            }
            guard !events.isEmpty else {
                print("no events match")
                return
            }
            let now = WallClock.fromEnvironment().now()
            print(
                Output.table(
                    ["TIME", "AGO", "TYPE", "CHANGE", "SUBJECT", "WATCH", "EVENT ID"],
                    events.map { event in
                        [
                            Timestamp.iso8601(event.createdAt), Output.relative(event.createdAt, now: now), event.type, event.change, event.subject,
                            event.watch ?? "-", event.id,
                        ]
                    }))
            for event in events {
                if let carried = members[event.id] { print("\(event.id) carried \(GroupMessage.line(carried))") }
            }
        }
    }

    struct Redeliver: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue an event again for one endpoint, with the same webhook-id.",
            discussion: "Example: paybridge events redeliver evt_7aad7870c3bd7267caa147ba4d6eda91 --to erp --config paybridge.yaml")

        @Option(name: .long, help: ArgumentHelp("The config file.", discussion: configDefaults))
        var config: String?

        @Argument(help: "The event id (evt_…, grp_…).")
        var eventId: String

        @Option(name: .long, help: "The endpoint to send it to.")
        var to: String

        @Flag(name: .long, help: "One JSON document, as the operations API answers: {\"delivery\", \"outOfOrder\"}.")
        var json = false

        @OptionGroup var common: CommonOptions

        func run() async throws {
            let operations = try await openState(config, common: common)
            let (id, outOfOrder) = try await operating(config) { try await operations.redeliver(eventId: eventId, to: to) }
            if json { return Output.print(ActionJSON.redeliver(delivery: id, outOfOrder: outOfOrder)) }
            if outOfOrder {
                printError("warning: delivery \(id): its payment already has a later event delivered to \(to); the receiver will get them out of order")
            }
            print("\(eventId) queued for \(to) (delivery \(id)); a running paybridge sends it within a second")
        }
    }
}
