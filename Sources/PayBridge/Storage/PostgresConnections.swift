import Foundation
import Logging
import NIOCore
import PostgresNIO

/// The connections statements and transactions use: one per caller at a time, opened when
/// none is free and kept (up to `idle`, more than paybridge's callers at once: the poller,
/// the recorder, a refill per endpoint, the monitors) for the next, so a burst does not open
/// and close connections. A call fails at once when the server
/// cannot be reached — the store reports a storage fault and tries again — where
/// `PostgresClient`'s pool would hold the request until its circuit breaker trips (15 s).
actor PostgresConnections {
    private let configuration: PostgresConnection.Configuration
    private let logger: Logger
    /// Statements run on every new connection (session settings).
    private let setup: [String]
    private let idleLimit: Int
    private var idle: [PostgresConnection] = []
    private var closed = false

    init(configuration: PostgresConnection.Configuration, logger: Logger, setup: [String], idle: Int = 8) {
        self.configuration = configuration
        self.logger = logger
        self.setup = setup
        idleLimit = idle
    }

    /// A store dropped without `close()` (a command's, a test's) still closes its sockets.
    deinit {
        for connection in idle { PostgresConnections.closeInBackground(connection) }
    }

    /// Closes `connection`, keeping it alive until it is closed (PostgresNIO expects every
    /// connection to be closed before it goes).
    static func closeInBackground(_ connection: PostgresConnection) {
        connection.close().whenComplete { _ in _ = connection }
    }

    /// Runs `body` with a connection of its own.
    nonisolated func with<T: Sendable>(_ body: nonisolated(nonsending) (PostgresConnection) async throws -> T) async throws -> T {
        let connection = try await take()
        do {
            let result = try await body(connection)
            await give(connection)
            return result
        } catch {
            await give(connection)
            throw error
        }
    }

    /// Runs `body` in a transaction: all of it commits, or none.
    nonisolated func transaction<T: Sendable>(_ body: nonisolated(nonsending) (PostgresConnection) async throws -> T) async throws -> T {
        try await with { connection in
            try await connection.run("BEGIN", logger: logger)
            do {
                let result = try await body(connection)
                try await connection.run("COMMIT", logger: logger)
                return result
            } catch {
                _ = try? await connection.run("ROLLBACK", logger: logger)
                throw error
            }
        }
    }

    private func take() async throws -> PostgresConnection {
        while let connection = idle.popLast() {
            if !connection.isClosed { return connection }
        }
        return try await PostgresConnections.open(configuration, setup: setup, logger: logger)
    }

    private func give(_ connection: PostgresConnection) async {
        guard !connection.isClosed else { return }
        if closed || idle.count >= idleLimit {
            try? await connection.close()
        } else {
            idle.append(connection)
        }
    }

    func close() async {
        closed = true
        let connections = idle
        idle.removeAll()
        for connection in connections { try? await connection.close() }
    }

    /// A new connection with the session settings made.
    static func open(_ configuration: PostgresConnection.Configuration, setup: [String], logger: Logger) async throws -> PostgresConnection {
        let connection: PostgresConnection
        // PostgresNIO traces the SCRAM exchange, proofs derived from the password: the
        // connection's own log never goes below debug (§9: no password at any level).
        var connectionLogger = logger
        connectionLogger.logLevel = max(logger.logLevel, .debug)
        do {
            connection = try await PostgresConnection.connect(configuration: configuration, id: Int.random(in: 1..<Int.max), logger: connectionLogger)
        } catch {
            throw StorageError.connect(PostgresConnection.describe(error))
        }
        do {
            for statement in setup { try await connection.run(statement, logger: logger) }
        } catch {
            try? await connection.close()
            throw error
        }
        return connection
    }
}

/// One connection of its own, opened again when it drops: the leases live in its session
/// (PostgreSQL frees a lease whose session ended) and the notifications arrive on it.
actor PostgresSession {
    private let configuration: PostgresConnection.Configuration
    private let logger: Logger
    private let setup: [String]
    private var connection: PostgresConnection?
    /// Runs on each new connection before anything else (the listener's `LISTEN`s).
    private var prepare: (@Sendable (PostgresConnection) async throws -> Void)?
    /// How many times it connected: a listener that connected again may have missed
    /// notifications meanwhile.
    private(set) var connections = 0

    init(configuration: PostgresConnection.Configuration, logger: Logger, setup: [String]) {
        self.configuration = configuration
        self.logger = logger
        self.setup = setup
    }

    deinit {
        if let connection { PostgresConnections.closeInBackground(connection) }
    }

    func prepareEachConnection(_ prepare: @escaping @Sendable (PostgresConnection) async throws -> Void) {
        self.prepare = prepare
    }

    /// Runs a statement, connecting first if the last connection dropped.
    @discardableResult
    func run(_ sql: String, _ values: [SQLValue] = []) async throws -> PostgresResult {
        let connection = try await open()
        do {
            return try await connection.run(sql, values, logger: logger)
        } catch {
            if connection.isClosed { self.connection = nil }
            throw error
        }
    }

    /// The open connection (connecting when there is none).
    @discardableResult
    func open() async throws -> PostgresConnection {
        if let connection, !connection.isClosed { return connection }
        connection = nil
        let opened = try await PostgresConnections.open(configuration, setup: setup, logger: logger)
        do {
            try await prepare?(opened)
        } catch {
            try? await opened.close()
            throw error
        }
        connection = opened
        connections += 1
        return opened
    }

    var isOpen: Bool { connection.map { !$0.isClosed } ?? false }

    func close() async {
        try? await connection?.close()
        connection = nil
    }
}

/// A statement's rows and the rows it touched.
typealias PostgresResult = (rows: [PostgresRow], affected: Int)

extension PostgresConnection {
    /// Runs a statement with `$n` placeholders.
    @discardableResult
    func run(_ sql: String, _ values: [SQLValue] = [], logger: Logger) async throws -> PostgresResult {
        var bindings = PostgresBindings(capacity: values.count)
        for value in values {
            switch value {
            case .text(let text): if let text { bindings.append(text) } else { bindings.appendNull() }
            case .int(let int): if let int { bindings.append(int) } else { bindings.appendNull() }
            case .double(let double): if let double { bindings.append(double) } else { bindings.appendNull() }
            case .bool(let bool): if let bool { bindings.append(bool) } else { bindings.appendNull() }
            case .bytes(let bytes): if let bytes { bindings.append(ByteBuffer(bytes: bytes)) } else { bindings.appendNull() }
            case .ints(let ints): bindings.append(ints)
            case .texts(let texts): bindings.append(texts)
            case .doubles(let doubles): bindings.append(doubles)
            case .bools(let bools): bindings.append(bools)
            case .byteArrays(let arrays): bindings.append(arrays.map { ByteBuffer(bytes: $0) })
            }
        }
        do {
            let result = try await query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger).get()
            return (result.rows, result.metadata.rows ?? 0)
        } catch {
            throw StorageError.query(Self.describe(error))
        }
    }

    /// PostgreSQL's own message, without the query's bound values.
    static func describe(_ error: any Error) -> String {
        if let psql = error as? PSQLError {
            if let message = psql.serverInfo?[.message] {
                let code = psql.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
                return message + code
            }
            // PSQLError hides its details; the cause (connection refused, TLS) names no secret.
            if let underlying = psql.underlying { return "\(psql.code): \(underlying)" }
            return "\(psql.code)"
        }
        return "\(error)"
    }
}

/// A connection as the statements written once see it.
struct PostgresSQL: SQLConnection {
    let connection: PostgresConnection
    let logger: Logger

    var dialect: SQLDialect { .postgres }

    @discardableResult
    nonisolated(nonsending) func execute(_ sql: String, _ values: [SQLValue]) async throws -> Int {
        try await connection.run(Self.numbered(sql), values, logger: logger).affected
    }

    nonisolated(nonsending) func query(_ sql: String, _ values: [SQLValue], _ row: (any SQLRow) throws -> Void) async throws {
        for each in try await connection.run(Self.numbered(sql), values, logger: logger).rows { try row(PostgresSQLRow(row: each.makeRandomAccess())) }
    }

    nonisolated(nonsending) func insert(_ sql: String, _ values: [SQLValue], returning rowId: String) async throws -> Int64? {
        try await int64(sql + " RETURNING " + rowId, values)
    }

    /// `?` placeholders as PostgreSQL's `$1`, `$2`… (paybridge's SQL has no `?` of its own).
    static func numbered(_ sql: String) -> String {
        guard sql.contains("?") else { return sql }
        var result = ""
        result.reserveCapacity(sql.utf8.count + 16)
        var number = 0
        for character in sql {
            if character == "?" {
                number += 1
                result += "$\(number)"
            } else {
                result.append(character)
            }
        }
        return result
    }
}

/// A PostgreSQL row as the statements written once read it.
struct PostgresSQLRow: SQLRow {
    let row: PostgresRandomAccessRow

    func text(_ column: Int) throws -> String? { try row[column].decode(String?.self) }
    func int64(_ column: Int) throws -> Int64? { try row[column].decode(Int64?.self) }
    func double(_ column: Int) throws -> Double? { try row[column].decode(Double?.self) }
    func bytes(_ column: Int) throws -> [UInt8]? { try row[column].decode(ByteBuffer?.self).map { Array($0.readableBytesView) } }
}

/// `postgres://user:password@host:5432/database`, the form `state.url` takes.
public struct PostgresURL: Sendable {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    /// libpq's parameters (`?sslmode=verify-full`), for the config to read or refuse.
    public var parameters: [(name: String, value: String)]

    public init(_ text: String) throws(StorageError) {
        guard let components = URLComponents(string: text), let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme) else {
            throw .url("write it as postgres://user:password@host:5432/database")
        }
        guard let host = components.host, !host.isEmpty else { throw .url("the URL has no host") }
        guard let user = components.user, !user.isEmpty else { throw .url("the URL has no user (postgres://user@host/database)") }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty else { throw .url("the URL names no database (…/database)") }
        port = components.port ?? 5432
        guard (1...65535).contains(port) else { throw .url("the URL's port \(port) is not a port (1 to 65535)") }
        parameters = (components.queryItems ?? []).map { ($0.name, $0.value ?? "") }
        self.host = host
        self.user = user.removingPercentEncoding ?? user
        password = components.password.map { $0.removingPercentEncoding ?? $0 }
        self.database = database
    }
}

/// Databases on a PostgreSQL server, for tests and benchmarks that want an empty one each.
enum PostgresServer {
    /// Creates an empty database named `name` on the server of `url` (connecting to the
    /// database `url` names); returns the URL of the new one.
    static func createDatabase(named name: String, at url: String, logger: Logger = Logger(label: "paybridge.postgres")) async throws -> String {
        let parsed = try PostgresURL(url)
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { throw StorageError.url("bad database name \(name)") }
        let connection = try await PostgresConnections.open(
            PostgresConnection.Configuration(
                host: parsed.host, port: parsed.port, username: parsed.user, password: parsed.password, database: parsed.database, tls: .disable),
            setup: [], logger: logger)
        do {
            try await connection.run("CREATE DATABASE \(name)", logger: logger)
            try? await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
        var components = URLComponents(string: url)
        components?.path = "/" + name
        return components?.string ?? url
    }
}
