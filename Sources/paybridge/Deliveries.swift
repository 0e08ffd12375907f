import ArgumentParser
import Foundation
import PayBridge

struct Deliveries: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect the delivery queue; replay or purge dead letters.",
        subcommands: [List.self, Replay.self, Purge.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Count deliveries per endpoint and state, and list them.")

        @Option(name: .long, help: "The config file (its state.path locates the database).")
        var config: String

        @Option(name: .long, help: "Only this endpoint.")
        var endpoint: String?

        @Option(name: .long, help: "Only deliveries in this state: pending, delivered, dead.")
        var state: String?

        @Option(name: .long, help: "At most this many rows.")
        var limit = 100

        func run() throws {
            let store = try openStore(config)
            let filter = try state.map { text -> DeliveryState in
                guard let parsed = DeliveryState(rawValue: text) else { throw ValidationError("--state must be one of: pending, delivered, dead") }
                return parsed
            }
            for (name, counts) in try store.deliveryCounts().sorted(by: { $0.key < $1.key }) {
                print("\(name): " + DeliveryState.allCases.map { "\($0.rawValue)=\(counts[$0] ?? 0)" }.joined(separator: " "))
            }
            for row in try store.deliveries(endpoint: endpoint, state: filter, limit: limit) {
                let status = row.lastStatus.map(String.init) ?? "-"
                print(
                    "\(row.id)\t\(row.endpoint)\t\(row.state.rawValue)\t\(row.eventType)\t\(row.eventId)\t\(row.subject)\t"
                        + "attempts=\(row.attempts)\tlast=\(status)\t\(row.lastError ?? "")")
            }
        }
    }

    struct Replay: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue dead-lettered deliveries of an endpoint again (all, or those named by --id).")

        @Option(name: .long, help: "The config file.")
        var config: String

        @Option(name: .long, help: "The endpoint.")
        var endpoint: String

        @Option(name: .long, help: "A delivery id (repeatable); without it, every dead letter of the endpoint.")
        var id: [Int64] = []

        func run() throws {
            let store = try openStore(config)
            let count = try store.replay(endpoint: endpoint, ids: id.isEmpty ? nil : id, at: Date())
            print("\(endpoint): \(count) deliveries queued again")
        }
    }

    struct Purge: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete dead-lettered deliveries of an endpoint.")

        @Option(name: .long, help: "The config file.")
        var config: String

        @Option(name: .long, help: "The endpoint.")
        var endpoint: String

        @Option(name: .long, help: "Only those dead for longer than this, e.g. 7d.")
        var olderThan = "0s"

        func run() throws {
            guard let age = DurationText.parse(olderThan) else { throw ValidationError("--older-than: write a duration like 7d") }
            let store = try openStore(config)
            let count = try store.purgeDead(endpoint: endpoint, before: Date().addingTimeInterval(-age.seconds))
            print("\(endpoint): \(count) dead deliveries deleted")
        }
    }
}

struct Endpoints: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show endpoints' state; re-enable a disabled one.", subcommands: [List.self, Enable.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Each endpoint: enabled or disabled (and why), pending deliveries.")

        @Option(name: .long, help: "The config file.")
        var config: String

        func run() throws {
            let configuration = try loadConfiguration(config)
            let store = try openStore(configuration)
            let records = try store.endpointRecords()
            let pending = try store.pendingCounts()
            for endpoint in configuration.endpoints {
                let record = records[endpoint.name]
                var line = "\(endpoint.name)\tpending=\(pending[endpoint.name] ?? 0)\t"
                if let at = record?.disabledAt {
                    line += "disabled since \(Timestamp.iso8601(at)): \(record?.disabledReason ?? "")"
                } else if let since = record?.failingSince {
                    line += "enabled, failing since \(Timestamp.iso8601(since))"
                } else {
                    line += "enabled"
                }
                print(line)
            }
        }
    }

    struct Enable: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-enable a disabled endpoint; a running paybridge resumes its deliveries within seconds.")

        @Option(name: .long, help: "The config file.")
        var config: String

        @Argument(help: "The endpoint's name.")
        var endpoint: String

        func run() throws {
            let configuration = try loadConfiguration(config)
            guard configuration.endpoint(named: endpoint) != nil else {
                throw ValidationError("no endpoint named '\(endpoint)' in \(config)")
            }
            let store = try openStore(configuration)
            let wasDisabled = try store.endpointRecords()[endpoint]?.disabledAt != nil
            try store.write { try $0.saveEndpointRecord(name: endpoint, EndpointRecord()) }
            print(wasDisabled ? "\(endpoint): enabled" : "\(endpoint): was not disabled")
        }
    }
}

func openStore(_ path: String) throws -> SQLiteStore {
    try openStore(try loadConfiguration(path))
}

func openStore(_ configuration: Configuration) throws -> SQLiteStore {
    do {
        return try SQLiteStore(directory: configuration.state.path, busyTimeout: configuration.state.busyTimeout)
    } catch {
        printError("error: cannot open the state database in \(configuration.state.path): \(error)")
        throw ExitCode(1)
    }
}
