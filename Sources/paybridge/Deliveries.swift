import ArgumentParser
import Foundation
import PayBridge

struct Deliveries: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect deliveries; replay or purge them.",
        discussion: """
            Examples:
              paybridge deliveries list --config paybridge.yaml --state failing
              paybridge deliveries show 42 --config paybridge.yaml
              paybridge deliveries replay --config paybridge.yaml --endpoint erp --state dead --since 24h --yes
            """,
        subcommands: [List.self, Show.self, Replay.self, Purge.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Deliveries, newest first, with counts per endpoint and state.",
            discussion: "Example: paybridge deliveries list --config paybridge.yaml --endpoint erp --state dead --since 24h")

        @Option(name: .long, help: "The config file (its state.path locates the database).")
        var config: String?

        @Option(name: .long, help: "Only this endpoint.")
        var endpoint: String?

        @Option(name: .long, help: "Only deliveries in this state: pending, failing (pending after a failed attempt), dead, delivered.")
        var state: String?

        @Option(name: .long, help: "Only those changed this recently (2h) or since an ISO 8601 time.")
        var since: String?

        @Option(name: .long, help: "At most this many rows.")
        var limit = 50

        @Flag(name: .long, help: "One JSON document: {\"counts\": …, \"deliveries\": [...]}.")
        var json = false

        @OptionGroup var common: CommonOptions

        func run() async throws {
            let operations = try await openState(config, common: common)
            let filterState = try state.map { text -> DeliveryFilter.State in
                guard let parsed = DeliveryFilter.State(rawValue: text) else {
                    throw CommandError("--state must be one of: \(DeliveryFilter.State.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return parsed
            }
            let (rows, counts) = try await operating(config) {
                try await operations.deliveries(DeliveryFilter(endpoint: endpoint, state: filterState, since: try ago(since), limit: limit))
            }
            if json {
                let countsJSON = JSONValue.object(
                    counts.keys.sorted().map { name in
                        (name, .object(DeliveryState.allCases.map { ($0.rawValue, .int(counts[name]?[$0] ?? 0)) }))
                    })
                Output.print(.object([("counts", countsJSON), ("deliveries", .array(rows.map(\.json)))]))
                return
            }
            for name in counts.keys.sorted() where endpoint == nil || endpoint == name {
                print("\(name): " + DeliveryState.allCases.map { "\($0.rawValue)=\(counts[name]?[$0] ?? 0)" }.joined(separator: " "))
            }
            guard !rows.isEmpty else {
                print("no deliveries match")
                return
            }
            print("")
            let now = WallClock.fromEnvironment().now()
            print(
                Output.table(
                    ["ID", "ENDPOINT", "STATE", "ATTEMPTS", "LAST", "EVENT", "PAYMENT", "UPDATED", "ERROR"],
                    rows.map { row in
                        [
                            String(row.id), row.endpoint, row.stateText, String(row.attempts), row.lastStatus.map(String.init) ?? "-",
                            row.eventType, row.subject, Output.relative(row.updatedAt, now: now), row.lastError ?? "",
                        ]
                    }))
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One delivery with every attempt: time, HTTP status, latency, error, the receiver's answer.",
            discussion: "Example: paybridge deliveries show 42 --config paybridge.yaml --json")

        @Option(name: .long, help: ArgumentHelp("The config file.", discussion: configDefaults))
        var config: String?

        @Argument(help: "The delivery's id (from deliveries list or payments show).")
        var id: Int64

        @Flag(name: .long, help: "One JSON document: {\"delivery\": …, \"attempts\": [...]}.")
        var json = false

        @OptionGroup var common: CommonOptions

        func run() async throws {
            let operations = try await openState(config, common: common)
            let detail = try await operating(config) { try await operations.delivery(id: id) }
            // A group message: the events (payments) it carried.
            let (delivery, attempts, members) = (detail.delivery, detail.attempts, detail.members)
            if json {
                Output.print(detail.json)
                return
            }
            let now = WallClock.fromEnvironment().now()
            print("delivery \(delivery.id) to \(delivery.endpoint): \(delivery.stateText), \(Output.count(delivery.attempts, "attempt"))")
            print("  event     \(delivery.eventId) (\(delivery.eventType), \(delivery.subject) #\(delivery.sequence))")
            if let members { print("  carried   \(GroupMessage.line(members))") }
            print("  queued    \(Output.when(delivery.createdAt, now: now))")
            if delivery.state == .pending { print("  next      \(Output.when(delivery.dueAt, now: now))") }
            if let delivered = delivery.deliveredAt { print("  delivered \(Output.when(delivered, now: now))") }
            guard !attempts.isEmpty else {
                print("  no attempt yet")
                return
            }
            print("")
            print(
                Output.table(
                    ["#", "STARTED", "STATUS", "LATENCY", "ERROR", "RESPONSE"],
                    attempts.map { attempt in
                        [
                            String(attempt.number), Output.when(attempt.startedAt, now: now), attempt.httpStatus.map(String.init) ?? "-",
                            String(format: "%.0f ms", attempt.durationMs), attempt.error ?? "", attempt.response ?? "",
                        ]
                    }))
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue deliveries again, with their original webhook-id.",
            discussion: """
                By id, or in bulk: every dead letter of an endpoint (optionally only recent ones). A bulk replay
                only prints what it would do unless --yes. A running paybridge sends them within a second.
                A delivered delivery named by --id is sent again on purpose; its attempt history is kept.
                Examples:
                  paybridge deliveries replay --config paybridge.yaml --id 41 42
                  paybridge deliveries replay --config paybridge.yaml --endpoint erp --state dead --since 24h --yes
                """)

        @Option(name: .long, help: ArgumentHelp("The config file.", discussion: configDefaults))
        var config: String?

        @Option(name: .long, parsing: .upToNextOption, help: "Delivery ids: --id 41 42, --id 41,42 or --id 41 --id 42.")
        var id: [DeliveryIds] = []

        @Option(name: .long, help: "Bulk: the endpoint whose deliveries to replay.")
        var endpoint: String?

        @Option(name: .long, help: "Bulk: which deliveries (only dead).")
        var state: String?

        @Option(name: .long, help: "Bulk: only those dead-lettered this recently (24h) or since an ISO 8601 time.")
        var since: String?

        @Flag(name: .long, help: "Bulk: do it (without, the replay only prints what it would do).")
        var yes = false

        @Flag(name: .long, help: "One JSON document, as the operations API answers: {\"dryRun\", \"ids\", \"outOfOrder\", \"replayed\"}.")
        var json = false

        @OptionGroup var common: CommonOptions

        /// The ids of `--id`, in the order given.
        private var named: [Int64] { id.flatMap(\.ids) }

        func validate() throws {
            guard named.isEmpty != (endpoint == nil) else {
                throw ValidationError("name deliveries with --id, or replay in bulk with --endpoint NAME --state dead")
            }
            if endpoint != nil, state != "dead" { throw ValidationError("a bulk replay needs --state dead (only dead letters are replayed in bulk)") }
            if !named.isEmpty, state != nil || since != nil { throw ValidationError("--state and --since go with --endpoint, not with --id") }
        }

        func run() async throws {
            let operations = try await openState(config, common: common)
            var ids = named
            if let endpoint {
                let dead = try await operating(config) { try await operations.deadLetters(endpoint: endpoint, since: try ago(since)) }
                ids = dead.map(\.id).sorted()
                if json, !yes {
                    return Output.print(ActionJSON.replay(try await operations.planReplay(ids: ids), replayed: [], dryRun: true))
                }
                guard yes else {
                    print("would queue \(Output.count(ids.count, "dead delivery", "dead deliveries")) of \(endpoint) again; add --yes to do it")
                    for row in dead.prefix(20) { print("  \(row.id)\t\(row.eventType)\t\(row.subject)\t\((row.lastError ?? "").oneLine)") }
                    if dead.count > 20 { print("  …and \(dead.count - 20) more") }
                    // Said before --yes, while the operator can still choose.
                    warnOutOfOrder(try await operations.planReplay(ids: ids).outOfOrder, would: true)
                    return
                }
            }
            let plan = try await operating(config) { try await operations.planReplay(ids: ids) }
            warnOutOfOrder(plan.outOfOrder, would: false)
            let replayed = try await operations.replay(ids: ids)
            if json { return Output.print(ActionJSON.replay(plan, replayed: replayed, dryRun: false)) }
            let already = ids.count - replayed.count
            print(
                "\(Output.count(replayed.count, "delivery", "deliveries")) queued again"
                    + (already > 0 ? " (\(already) already pending)" : "") + "; a running paybridge sends them within a second")
        }
    }

    /// Deliveries whose payment already has a later event delivered to the same endpoint.
    static func warnOutOfOrder(_ overtaken: [Int64], would: Bool) {
        for overtaken in overtaken {
            printError(
                "warning: delivery \(overtaken): its payment already has a later event delivered to this endpoint; the receiver "
                    + (would ? "would get" : "will get") + " them out of order")
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete dead-lettered deliveries of an endpoint.",
            discussion: """
                Only prints what it would delete unless --yes.
                Example: paybridge deliveries purge --config paybridge.yaml --endpoint erp --older-than 7d --yes
                """)

        @Option(name: .long, help: ArgumentHelp("The config file.", discussion: configDefaults))
        var config: String?

        @Option(name: .long, help: "The endpoint.")
        var endpoint: String

        @Option(name: .long, help: "Only those dead for longer than this, e.g. 7d.")
        var olderThan = "0s"

        @Flag(name: .long, help: "Do it (without, the purge only prints what it would delete).")
        var yes = false

        @Flag(name: .long, help: "One JSON document: {\"dryRun\", \"endpoint\", \"ids\"} without --yes, {\"dryRun\", \"endpoint\", \"deleted\"} with it.")
        var json = false

        @OptionGroup var common: CommonOptions

        func run() async throws {
            guard let age = DurationText.parse(olderThan) else { throw ValidationError("--older-than: write a duration like 7d") }
            let operations = try await openState(config, common: common)
            let cutoff = WallClock.fromEnvironment().now().addingTimeInterval(-age.seconds)
            guard yes else {
                let doomed = try await operating(config) { try await operations.purgeable(endpoint: endpoint, before: cutoff) }
                if json { return Output.print(ActionJSON.purge(endpoint, ids: doomed.map(\.id))) }
                print("would delete \(Output.count(doomed.count, "dead delivery", "dead deliveries")) of \(endpoint); add --yes to do it")
                for row in doomed.prefix(20) { print("  \(row.id)\t\(row.eventType)\t\(row.subject)\t\((row.lastError ?? "").oneLine)") }
                if doomed.count > 20 { print("  …and \(doomed.count - 20) more") }
                return
            }
            let count = try await operating(config) { try await operations.purgeDead(endpoint: endpoint, before: cutoff) }
            if json { return Output.print(ActionJSON.purge(endpoint, deleted: count)) }
            print("\(endpoint): \(Output.count(count, "dead delivery", "dead deliveries")) deleted")
        }
    }
}

/// The config and its state, for a command that reads or corrects state: a missing state
/// is an error naming its path, never created.
///
/// Such a command resolves only the `${NAME}`s it uses: `state.*` (an unset one there is an
/// error), not the bank's password or the endpoints' secrets, which on a server often live in
/// an env file only the service reads. It prints no config warnings (`validate` does).
func openState(_ path: String?, common: CommonOptions) async throws -> Operations {
    let logger = common.bootstrapLogging()
    let configuration = try loadConfiguration(configPath(path), unsetVariables: .deferred, warnings: false)
    do {
        return try await Operations.open(configuration, logger: logger)
    } catch let missing as StateMissing {
        throw CommandError("\(missing)")
    } catch {
        throw CommandError("cannot open the state database in \(StateStore.describe(configuration.state)): \(error)")
    }
}

/// Runs an operation; what it cannot do becomes the command's error (an unknown endpoint
/// names the config it is missing from).
func operating<T>(_ config: String?, _ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch OperationError.unknownEndpoint(let name, let known) {
        let config = (try? configPath(config)) ?? "the config"
        throw CommandError("no endpoint named '\(name)' in \(config)" + (known.isEmpty ? "" : " (endpoints: \(known.joined(separator: ", ")))"))
    } catch let error as OperationError {
        throw CommandError("\(error)")
    }
}

/// `--id 41 42`, `--id 41,42`: one argument's delivery ids.
struct DeliveryIds: ExpressibleByArgument {
    var ids: [Int64]

    init?(argument: String) {
        let parts = argument.split(separator: ",", omittingEmptySubsequences: false)
        let ids = parts.compactMap { Int64($0.trimmingCharacters(in: .whitespaces)) }.filter { $0 > 0 }
        guard !ids.isEmpty, ids.count == parts.count else { return nil }
        self.ids = ids
    }
}
