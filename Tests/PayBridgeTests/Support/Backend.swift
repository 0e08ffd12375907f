import Foundation
import Logging
import Testing

@testable import PayBridge

/// Where a test keeps its state. The shared suite runs on SQLite always and on PostgreSQL
/// when `PAYBRIDGE_TEST_POSTGRES_URL` names a server (`scripts/test` starts one when
/// PostgreSQL is installed); each test then gets an empty database of its own.
enum Backend: String, Sendable, CaseIterable, CustomTestStringConvertible {
    case sqlite
    case postgres

    static let serverURL: String? = ProcessInfo.processInfo.environment["PAYBRIDGE_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }

    /// The backends this run tests (`PAYBRIDGE_TEST_BACKENDS=postgres` narrows it to one).
    static var available: [Backend] {
        let all: [Backend] = serverURL == nil ? [.sqlite] : [.sqlite, .postgres]
        guard let only = ProcessInfo.processInfo.environment["PAYBRIDGE_TEST_BACKENDS"] else { return all }
        let chosen = only.split(separator: ",").compactMap { Backend(rawValue: String($0)) }
        return all.filter(chosen.contains)
    }
    /// PostgreSQL alone, when it is there (tests of what only a shared state does).
    static var shared: [Backend] { serverURL == nil ? [] : [.postgres] }

    var testDescription: String { rawValue }

    /// A fresh state: a folder for SQLite, an empty database for PostgreSQL. The value goes
    /// where a config's `state.path` would (see `Fixtures.config`).
    func freshState(in directory: TemporaryDirectory) async throws -> String {
        switch self {
        case .sqlite: return directory.file("state")
        case .postgres:
            guard let url = Self.serverURL else { throw BackendUnavailable() }
            let name = "pb_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(20).lowercased()
            return try await PostgresServer.createDatabase(named: name, at: url)
        }
    }

    /// The state configuration for `state` (a folder or a URL).
    static func configuration(_ state: String, lease: Duration = .seconds(10)) -> StateConfiguration {
        if state.hasPrefix("postgres") {
            return StateConfiguration(path: "", kind: .postgres, url: Secret(state), lease: lease)
        }
        return StateConfiguration(path: state)
    }

    /// Opens `state` as the CLI's reading commands do (nothing created).
    static func open(_ state: String) async throws -> any Store & Coordination {
        try await StateStore.open(configuration(state), logger: Fixtures.quietLogger, create: false)
    }
}

struct BackendUnavailable: Error {}
