import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import Synchronization

/// One connection to PostgreSQL used from ordinary threads (the dispatcher's, the
/// recorder's, the store's own): each call waits for its answer, one call at a time. It
/// reconnects after the connection drops. Never called on an event loop.
final class PostgresLink: @unchecked Sendable {
    // @unchecked: `connection` is touched only under `lock`.
    private let configuration: PostgresConnection.Configuration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let lock = NSLock()
    private var connection: PostgresConnection?
    private let name: String
    /// Statements run on every new connection (session settings).
    private let setup: [String]

    init(configuration: PostgresConnection.Configuration, group: any EventLoopGroup, logger: Logger, name: String, setup: [String] = []) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.name = name
        self.setup = setup
    }

    /// Runs `body` with this link held (a transaction's statements on one connection).
    func exclusive<T>(_ body: (PostgresLink) throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(self)
    }

    /// The open connection (call under `exclusive`).
    func open() throws -> PostgresConnection {
        if let connection, !connection.isClosed { return connection }
        let opened: PostgresConnection
        do {
            opened = try PostgresConnection.connect(
                on: group.next(), configuration: configuration, id: Int.random(in: 1..<Int.max), logger: logger
            ).wait()
        } catch {
            throw StorageError.connect(Self.describe(error))
        }
        connection = opened
        for statement in setup { try run(statement) }
        return opened
    }

    /// Runs a statement (call under `exclusive`); returns its rows and the rows it touched.
    @discardableResult
    func run(_ sql: String, _ values: [SQLValue] = []) throws -> (rows: [PostgresRow], affected: Int) {
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
        let connection = try open()
        do {
            let result = try connection.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger).wait()
            return (result.rows, result.metadata.rows ?? 0)
        } catch {
            if connection.isClosed { self.connection = nil }
            throw StorageError.query(Self.describe(error))
        }
    }

    /// Runs `body` in a transaction on this link: all of it commits, or none.
    func transaction<T>(_ body: (PostgresLink) throws -> T) throws -> T {
        try exclusive { link in
            try link.run("BEGIN")
            do {
                let result = try body(link)
                try link.run("COMMIT")
                return result
            } catch {
                _ = try? link.run("ROLLBACK")
                throw error
            }
        }
    }

    /// Runs a statement from async code, on a storage thread (the link is this caller's:
    /// taken from its pool for a transaction or a read).
    @discardableResult
    func send(_ sql: String, _ values: [SQLValue] = []) async throws -> (rows: [PostgresRow], affected: Int) {
        try await StorageThreads.run { try self.exclusive { try $0.run(sql, values) } }
    }

    /// Listens on channels; `handler` runs on an event loop and must be quick.
    func listen(_ channels: [String], handler: @escaping @Sendable (_ channel: String, _ payload: String) -> Void) throws {
        try exclusive { link in
            let connection = try link.open()
            for channel in channels {
                connection.addListener(channel: channel) { _, notification in handler(notification.channel, notification.payload) }
                try link.run("LISTEN \(channel)")
            }
        }
    }

    var isClosed: Bool { lock.withLock { connection?.isClosed ?? true } }

    func close() {
        lock.withLock {
            try? connection?.close().wait()
            connection = nil
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

extension PostgresLink: SQLConnection {
    var dialect: SQLDialect { .postgres }

    @discardableResult
    nonisolated(nonsending) func execute(_ sql: String, _ values: [SQLValue]) async throws -> Int {
        try await send(Self.numbered(sql), values).affected
    }

    nonisolated(nonsending) func query(_ sql: String, _ values: [SQLValue], _ row: (any SQLRow) throws -> Void) async throws {
        for each in try await send(Self.numbered(sql), values).rows { try row(PostgresSQLRow(row: each.makeRandomAccess())) }
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

/// A few links shared by the threads that use the state (the poller, the dispatcher, the
/// recorder, the metrics): each call takes a free one, so a burst of delivery results never
/// queues the poller's commit behind it.
final class PostgresLinkPool: Sendable {
    private let links: [PostgresLink]
    private let free: Mutex<[Int]>
    private let available: DispatchSemaphore

    init(count: Int, make: (Int) -> PostgresLink) {
        links = (0..<count).map(make)
        free = Mutex(Array(0..<count))
        available = DispatchSemaphore(value: count)
    }

    private func withLink<T>(_ body: (PostgresLink) throws -> T) throws -> T {
        available.wait()
        let index = free.withLock { $0.removeLast() }
        defer {
            free.withLock { $0.append(index) }
            available.signal()
        }
        return try body(links[index])
    }

    func exclusive<T>(_ body: (PostgresLink) throws -> T) throws -> T {
        try withLink { link in try link.exclusive(body) }
    }

    /// A free link for async work: waited for on a storage thread, held until `body` ends.
    func withLink<T: Sendable>(_ body: nonisolated(nonsending) (PostgresLink) async throws -> T) async throws -> T {
        try await StorageThreads.run { self.available.wait() }
        let index = free.withLock { $0.removeLast() }
        defer {
            free.withLock { $0.append(index) }
            available.signal()
        }
        return try await body(links[index])
    }

    /// `body` in a transaction on a free link: all of it commits, or none.
    func transaction<T: Sendable>(_ body: nonisolated(nonsending) (PostgresLink) async throws -> T) async throws -> T {
        try await withLink { link in
            try await link.send("BEGIN")
            do {
                let result = try await body(link)
                try await link.send("COMMIT")
                return result
            } catch {
                _ = try? await link.send("ROLLBACK")
                throw error
            }
        }
    }

    func transaction<T>(_ body: (PostgresLink) throws -> T) throws -> T {
        try withLink { link in try link.transaction(body) }
    }

    func close() {
        for link in links { link.close() }
    }
}

/// `postgres://user:password@host:5432/database`, the form `state.url` takes.
public struct PostgresURL: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String

    public init(_ text: String) throws(StorageError) {
        guard let components = URLComponents(string: text), let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme) else {
            throw .url("write it as postgres://user:password@host:5432/database")
        }
        guard let host = components.host, !host.isEmpty else { throw .url("the URL has no host") }
        guard let user = components.user, !user.isEmpty else { throw .url("the URL has no user (postgres://user@host/database)") }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty else { throw .url("the URL names no database (…/database)") }
        self.host = host
        port = components.port ?? 5432
        self.user = user.removingPercentEncoding ?? user
        password = components.password.map { $0.removingPercentEncoding ?? $0 }
        self.database = database
    }
}

/// Databases on a PostgreSQL server, for tests and benchmarks that want an empty one each.
enum PostgresServer {
    /// Creates an empty database named `name` on the server of `url` (connecting to the
    /// database `url` names); returns the URL of the new one.
    static func createDatabase(named name: String, at url: String, logger: Logger = Logger(label: "paybridge.postgres")) throws -> String {
        let parsed = try PostgresURL(url)
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { throw StorageError.url("bad database name \(name)") }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let link = PostgresLink(
            configuration: PostgresConnection.Configuration(
                host: parsed.host, port: parsed.port, username: parsed.user, password: parsed.password, database: parsed.database, tls: .disable),
            group: group, logger: logger, name: "admin")
        defer { link.close() }
        _ = try link.exclusive { try $0.run("CREATE DATABASE \(name)") }
        var components = URLComponents(string: url)
        components?.path = "/" + name
        return components?.string ?? url
    }
}
