import ArgumentParser
import Foundation
import PayBridge

struct Endpoints: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Endpoints' health and queues; the operator's switch.",
        discussion: """
            Examples:
              paybridge endpoints list --config paybridge.yaml
              paybridge endpoints disable erp --config paybridge.yaml --reason "ERP maintenance until 14:00"
              paybridge endpoints enable erp --config paybridge.yaml
            """,
        subcommands: [List.self, Enable.self, Disable.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Each endpoint: health, queue depth, oldest pending, last success and failure, circuit.",
            discussion: "Example: paybridge endpoints list --config paybridge.yaml --json")

        @Option(name: .long, help: ArgumentHelp("The config file.", discussion: configDefaults))
        var config: String?

        @Flag(name: .long, help: "One JSON document: {\"endpoints\": [...]}.")
        var json = false

        @OptionGroup var common: CommonOptions

        func run() async throws {
            let operations = try await openState(config, common: common)
            let rows = try await operations.endpointOverview()
            let now = WallClock.fromEnvironment().now()
            if json {
                Output.print(.object([("endpoints", .array(zip(operations.configuration.endpoints, rows).map { Self.json($0, $1, now: now) }))]))
                return
            }
            print(
                Output.table(
                    ["ENDPOINT", "HEALTH", "PENDING", "OLDEST PENDING", "DEAD", "LAST SUCCESS", "LAST FAILURE", "CIRCUIT"],
                    rows.map { Self.cells($0, now: now) }))
            for entry in rows {
                if let at = entry.record.disabledAt {
                    print("\(entry.name): disabled \(Output.when(at, now: now)): \((entry.record.disabledReason ?? "").oneLine)")
                } else if let since = entry.record.failingSince {
                    print("\(entry.name): failing since \(Output.when(since, now: now)), \(Output.count(entry.record.stats.failures, "failure")) in a row")
                }
            }
        }

        static func circuit(_ entry: EndpointOverview) -> String { entry.circuit }

        static func cells(_ entry: EndpointOverview, now: Date) -> [String] {
            func ago(_ date: Date?) -> String { date.map { Output.relative($0, now: now) } ?? "-" }
            return [
                entry.name, health(entry.record), String(entry.pending), ago(entry.oldestPendingAt), String(entry.dead),
                ago(entry.record.stats.lastSuccessAt), ago(entry.record.stats.lastFailureAt), circuit(entry),
            ]
        }

        static func json(_ endpoint: EndpointConfiguration, _ entry: EndpointOverview, now: Date) -> JSONValue {
            entry.json(endpoint, now: now)
        }

        static func health(_ record: EndpointRecord) -> String {
            EndpointOverview(name: "", record: record).health
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-enable an endpoint; a running paybridge resumes its deliveries within a second.",
            discussion: "Example: paybridge endpoints enable erp --config paybridge.yaml")

        @Option(name: .long, help: ArgumentHelp("The config file.", discussion: configDefaults))
        var config: String?

        @Argument(help: "The endpoint's name.")
        var endpoint: String

        @Flag(name: .long, help: "One JSON document, as the operations API answers: {\"endpoint\", \"state\", \"changed\"}.")
        var json = false

        @OptionGroup var common: CommonOptions

        func run() async throws {
            let operations = try await openState(config, common: common)
            let wasDisabled = try await operating(config) { try await operations.enable(endpoint: endpoint) }
            if json { return Output.print(ActionJSON.endpoint(endpoint, enabled: true, changed: wasDisabled)) }
            print(wasDisabled ? "\(endpoint): enabled" : "\(endpoint): was not disabled")
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Disable an endpoint: its deliveries are kept and wait; a running paybridge stops sending within a second.",
            discussion: "Example: paybridge endpoints disable erp --config paybridge.yaml --reason \"ERP maintenance\"")

        @Option(name: .long, help: ArgumentHelp("The config file.", discussion: configDefaults))
        var config: String?

        @Argument(help: "The endpoint's name.")
        var endpoint: String

        @Option(name: .long, help: "Why (shown by endpoints list).")
        var reason = "disabled by an operator"

        @Flag(name: .long, help: "One JSON document, as the operations API answers: {\"endpoint\", \"state\", \"changed\"}.")
        var json = false

        @OptionGroup var common: CommonOptions

        func run() async throws {
            let operations = try await openState(config, common: common)
            let wasEnabled = try await operating(config) { try await operations.disable(endpoint: endpoint, reason: reason) }
            if json { return Output.print(ActionJSON.endpoint(endpoint, enabled: false, changed: wasEnabled)) }
            print(
                wasEnabled
                    ? "\(endpoint): disabled; its deliveries wait (paybridge endpoints enable \(endpoint) resumes them)"
                    : "\(endpoint): was already disabled (its reason is kept; endpoints list shows it)")
        }
    }
}
