import ArgumentParser
import Foundation
import PayBridge

/// `paybridge notifications subscribe | status | test` (§10): the bank's notification
/// subscription for `source.notifications.publicURL`, through its self-service API.
struct NotificationsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "notifications",
        abstract: "The bank's notification subscription (source.notifications): subscribe, status, test.",
        discussion: """
            paybridge notifications subscribe --config paybridge.yaml   creates or updates the subscription for publicURL
            paybridge notifications status --config paybridge.yaml [--json]
            paybridge notifications test --config paybridge.yaml        asks the bank's sandbox for a test notification
            """,
        subcommands: [Subscribe.self, Status.self, Test.self])

    /// Loads the config and opens the self-service client (the in-process sandbox for
    /// `kind: sandbox` without `apiURL`).
    static func withSetup<T>(
        _ config: String?, _ common: CommonOptions, _ body: (SubscriptionSetup) async throws -> T
    ) async throws -> T {
        let logger = common.bootstrapLogging()
        let configuration = try loadConfiguration(configPath(config), warnings: common.showsWarnings, logger: common.logsJSON ? logger : nil)
        let sandbox = try await DemoSandbox.startIfNeeded(for: configuration, logger: logger)
        do {
            let setup = try SubscriptionSetup(source: configuration.source, apiURL: sandbox?.apiURL, logger: logger)
            let result = try await body(setup)
            await sandbox?.stop()
            return result
        } catch {
            await sandbox?.stop()
            throw CommandError("\(error)")
        }
    }

    static func describe(_ subscription: NotificationSubscription) -> JSONValue {
        .object([
            ("subscriptionId", .string(subscription.id)), ("endpoint", .string(subscription.endpoint)),
            ("status", .string(subscription.status)), ("active", .bool(subscription.active)),
            ("statusMessage", .text(subscription.statusMessage)), ("rowVersion", .text(subscription.rowVersion)),
            ("events", .array(subscription.events.map { .string($0.eventType) })),
        ])
    }

    struct Subscribe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create or update the subscription for publicURL with the config's key and events.",
            discussion: "Example: paybridge notifications subscribe --config paybridge.yaml")

        @Option(name: .long, help: ArgumentHelp("The config file.", discussion: configDefaults))
        var config: String?

        @OptionGroup var common: CommonOptions

        func run() async throws {
            let subscribed = try await NotificationsCommand.withSetup(config, common) { try await $0.subscribe() }
            let subscription = subscribed.subscription
            print("subscription \(subscription.id) \(subscribed.created ? "created" : "updated") for \(subscription.endpoint)")
            print("status: \(subscription.status.isEmpty ? "unknown" : subscription.status)")
            print("events: \(subscription.events.map(\.eventType).joined(separator: ", "))")
            if !subscribed.eventsAdded.isEmpty { print("added: \(subscribed.eventsAdded.joined(separator: ", "))") }
            if !subscribed.eventsRemoved.isEmpty { print("removed: \(subscribed.eventsRemoved.joined(separator: ", "))") }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the bank's subscription for publicURL: its status (Active, Inactive, None, Retired, or Missing) and events.",
            discussion: "Example: paybridge notifications status --config paybridge.yaml --json")

        @Option(name: .long, help: ArgumentHelp("The config file.", discussion: configDefaults))
        var config: String?

        @Flag(name: .long, help: "Print JSON.")
        var json = false

        @OptionGroup var common: CommonOptions

        func run() async throws {
            let (found, publicURL) = try await NotificationsCommand.withSetup(config, common) { setup in
                (try await setup.status(), setup.configuration.publicURL)
            }
            if json {
                Output.print(
                    found.map(NotificationsCommand.describe)
                        ?? .object([
                            ("subscriptionId", .null), ("endpoint", .string(publicURL)), ("status", .string("Missing")), ("active", .bool(false)),
                            ("statusMessage", .null), ("rowVersion", .null), ("events", .array([])),
                        ]))
            } else if let found {
                print("subscription \(found.id) for \(found.endpoint)")
                print("status: \(found.status.isEmpty ? "unknown" : found.status)\(found.statusMessage.map { " (\($0))" } ?? "")")
                print("events: \(found.events.map(\.eventType).joined(separator: ", "))")
            } else {
                print("status: Missing (no subscription at the bank for \(publicURL)): run `paybridge notifications subscribe`")
            }
        }
    }

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ask the bank's sandbox to send a test notification to publicURL.",
            discussion: "Example: paybridge notifications test --config paybridge.yaml")

        @Option(name: .long, help: ArgumentHelp("The config file.", discussion: configDefaults))
        var config: String?

        @OptionGroup var common: CommonOptions

        func run() async throws {
            let subscription = try await NotificationsCommand.withSetup(config, common) { try await $0.test() }
            print("asked the bank for a test notification to \(subscription.endpoint) (subscription \(subscription.id))")
        }
    }
}
