import ArgumentParser
import Foundation
import PayBridge

struct Routes: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "See where events go.", subcommands: [Test.self])

    struct Test: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Which endpoints an event would reach, and through which route.",
            discussion: """
                EVENT.json is an event body as delivered (the standard format), e.g. one saved from a receiver:
                  paybridge routes test --config paybridge.yaml rejected.json
                  paybridge routes test --config paybridge.yaml rejected.json --json
                """)

        @Option(name: .long, help: ArgumentHelp("The config file.", discussion: configDefaults))
        var config: String?

        @Argument(help: "An event body as delivered (standard format JSON).")
        var event: String

        @Flag(name: .long, help: "One JSON document: {\"event\": …, \"endpoints\": [{\"endpoint\", \"route\", \"format\", \"grouped\"}]}.")
        var json = false

        @OptionGroup var common: CommonOptions

        func run() throws {
            _ = common.bootstrapLogging()
            let configuration = try loadConfiguration(configPath(config), unsetVariables: .deferred, warnings: false)
            guard let data = FileManager.default.contents(atPath: event) else {
                throw CommandError("cannot read \(event)")
            }
            let body: JSONValue
            do {
                body = try JSONValue.parse(data)
            } catch {
                throw CommandError("\(event) is not JSON: \(error)")
            }
            guard let type = body["type"]?.stringValue, let fields = body["data"] else {
                throw CommandError("\(event) is not an event body: it needs \"type\" and \"data\"")
            }
            let routable = RoutableEvent(
                type: type, status: fields["status"]?.stringValue, previousStatus: fields["previousStatus"]?.stringValue,
                watch: fields["watch"]?.stringValue)
            let payment = fields["payment"].map { PaymentView($0.bytes) }
            // An `endpoint.disabled` never goes to the endpoint it is about (the outbox's rule).
            let about = type == EventType.endpointDisabled.rawValue ? fields["endpoint"]?.stringValue : nil
            let routed = RouteTable(routes: configuration.routes).matches(for: routable, payment: payment)
            let matches = routed.filter { $0.endpoint != about }
            let leftOut = about.flatMap { name in routed.contains { $0.endpoint == name } ? name : nil }
            if json {
                let endpoints = matches.map { match -> JSONValue in
                    let endpoint = configuration.endpoint(named: match.endpoint)
                    return .object([
                        ("endpoint", .string(match.endpoint)), ("route", .string(match.route)),
                        ("format", .string(endpoint?.format.kind.rawValue ?? "standard")), ("grouped", .bool(endpoint?.group != nil)),
                    ])
                }
                let event = JSONValue.object([
                    ("type", .string(type)), ("status", routable.status.map { .string($0) } ?? .null),
                    ("previousStatus", routable.previousStatus.map { .string($0) } ?? .null), ("watch", routable.watch.map { .string($0) } ?? .null),
                ])
                print(String(decoding: JSONValue.object([("event", event), ("endpoints", .array(endpoints))]).bytes, as: UTF8.self))
                return
            }
            let what = [type, routable.status, routable.previousStatus.map { "from \($0)" }].compactMap { $0 }.joined(separator: " ")
            let aside = leftOut.map { "\($0) is left out: an endpoint.disabled never goes to the endpoint it is about" }
            guard !matches.isEmpty else {
                print("\(what): " + (aside.map { "routes reach only \(leftOut ?? ""), and \($0)" } ?? "no route matches") + "; the event would go nowhere")
                return
            }
            print("\(what) reaches \(matches.count == 1 ? "1 endpoint" : "\(matches.count) endpoints"):")
            for match in matches {
                let endpoint = configuration.endpoint(named: match.endpoint)
                var detail = "format \(endpoint?.format.kind.rawValue ?? "standard")"
                if let group = endpoint?.group {
                    detail += ", grouped" + (group.by.isEmpty ? "" : " by \(group.by.map(\.rawValue).joined(separator: ", "))")
                }
                print("  \(match.endpoint)\tvia \(match.route)\t(\(detail))")
            }
            if let aside { print("  (\(aside))") }
        }
    }
}
