import ArgumentParser
import Foundation
import PayBridge

struct Deliveries: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List deliveries: pending, delivered or dead-lettered, per endpoint.")

    @Option(name: .long, help: "The config file (its state.path locates the database).")
    var config: String

    @Option(name: .long, help: "Only this endpoint.")
    var endpoint: String?

    @Option(name: .long, help: "Only deliveries in this state: pending, delivered, dead.")
    var state: String?

    @Option(name: .long, help: "At most this many rows.")
    var limit = 100

    func run() throws {
        let configuration = try loadConfiguration(config)
        var filter: DeliveryState?
        if let state {
            guard let parsed = DeliveryState(rawValue: state) else {
                throw ValidationError("--state must be one of: pending, delivered, dead")
            }
            filter = parsed
        }
        let store = try SQLiteStore(directory: configuration.state.path)
        for (name, counts) in try store.deliveryCounts().sorted(by: { $0.key < $1.key }) {
            let summary = DeliveryState.allCases.map { "\($0.rawValue)=\(counts[$0] ?? 0)" }.joined(separator: " ")
            print("\(name): \(summary)")
        }
        for row in try store.deliveries(endpoint: endpoint, state: filter, limit: limit) {
            let status = row.lastStatus.map(String.init) ?? "-"
            print("\(row.id)\t\(row.endpoint)\t\(row.state.rawValue)\t\(row.eventId)\t\(row.paymentId)\tattempts=\(row.attempts)\tlast=\(status)\t\(row.lastError ?? "")")
        }
    }
}
