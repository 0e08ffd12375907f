import Foundation

/// A value bound to a statement.
enum SQLValue: Sendable {
    case text(String?)
    case int(Int64?)
    case double(Double?)
    case bytes([UInt8]?)
    case bool(Bool?)
    case ints([Int64])
    case texts([String])
    case doubles([Double])
    case bools([Bool])
    case byteArrays([[UInt8]])

    static func int(_ value: Int?) -> SQLValue { .int(value.map(Int64.init)) }
    static func date(_ value: Date?) -> SQLValue { .double(value?.timeIntervalSince1970) }
}

/// Where the two backends' SQL differs in spelling only. Statements are written once with `?`
/// placeholders (PostgreSQL's connection numbers them) and these pieces.
enum SQLDialect: Sendable {
    case sqlite
    case postgres

    /// `column` is one of a list bound as one value (`.ints`, `.texts`): SQLite reads it as a
    /// JSON array, PostgreSQL as an array.
    func isIn(_ column: String) -> String {
        switch self {
        case .sqlite: "\(column) IN (SELECT value FROM json_each(?))"
        case .postgres: "\(column) = ANY(?)"
        }
    }

    /// The list bound here as rows of one column, `value`.
    var listRows: String {
        switch self {
        case .sqlite: "SELECT value FROM json_each(?)"
        case .postgres: "SELECT unnest(?) AS value"
        }
    }

    /// `column` (bytes) holds the bytes bound here; with `anyCase`, `column` read as UTF-8
    /// text and lower-cased holds the text bound here (bind it with A-Z lower-cased).
    func contains(_ column: String, anyCase: Bool = false) -> String {
        switch (self, anyCase) {
        case (.sqlite, false): "instr(\(column), ?) > 0"
        case (.sqlite, true): "instr(lower(CAST(\(column) AS TEXT)), ?) > 0"
        case (.postgres, false): "position(? IN \(column)) > 0"
        case (.postgres, true): "strpos(lower(convert_from(\(column), 'UTF8')), ?) > 0"
        }
    }

    /// The larger of two values (SQLite's two-argument `MAX`).
    func greatest(_ first: String, _ second: String) -> String {
        switch self {
        case .sqlite: "MAX(\(first), \(second))"
        case .postgres: "GREATEST(\(first), \(second))"
        }
    }

    /// DDL: a table's own 64-bit row id, and a byte column.
    var rowIdColumn: String { self == .sqlite ? "INTEGER PRIMARY KEY" : "BIGSERIAL PRIMARY KEY" }
    var bytesType: String { self == .sqlite ? "BLOB" : "BYTEA" }
    /// A table whose primary key is its only index: SQLite stores it as that index alone.
    var withoutRowId: String { self == .sqlite ? " WITHOUT ROWID" : "" }
}

/// One statement's row, read by column index.
protocol SQLRow {
    func text(_ column: Int) throws -> String?
    func int64(_ column: Int) throws -> Int64?
    func double(_ column: Int) throws -> Double?
    func bytes(_ column: Int) throws -> [UInt8]?
}

extension SQLRow {
    func int(_ column: Int) throws -> Int? { try int64(column).map { Int($0) } }
    func date(_ column: Int) throws -> Date? { try double(column).map(Date.init(timeIntervalSince1970:)) }
    /// A NOT NULL column.
    func string(_ column: Int) throws -> String { try text(column) ?? "" }
    func number(_ column: Int) throws -> Int { try int(column) ?? 0 }
    func instant(_ column: Int) throws -> Date { try date(column) ?? Date(timeIntervalSince1970: 0) }
}

/// A connection as the statements written once see it: inside a transaction when a store's
/// `writing` gave it, a consistent read when `reading` did.
///
/// Its methods are `nonisolated(nonsending)`: they run where their caller runs. For SQLite
/// that is the store's writer, whose executor is GRDB's writer queue, so a transaction's
/// statements run one after another on that queue without a hop each; for PostgreSQL, the
/// caller's task, awaiting the server.
protocol SQLConnection {
    var dialect: SQLDialect { get }
    /// Runs a statement; returns how many rows it changed.
    @discardableResult
    nonisolated(nonsending) func execute(_ sql: String, _ values: [SQLValue]) async throws -> Int
    /// Runs a query; `row` reads each of its rows in turn.
    nonisolated(nonsending) func query(_ sql: String, _ values: [SQLValue], _ row: (any SQLRow) throws -> Void) async throws
    /// Runs an INSERT of one row; returns its `rowId` column (the table's row id), nil when it
    /// inserted nothing (`ON CONFLICT DO NOTHING`).
    nonisolated(nonsending) func insert(_ sql: String, _ values: [SQLValue], returning rowId: String) async throws -> Int64?
}

extension SQLConnection {
    nonisolated(nonsending) func rows<T>(_ sql: String, _ values: [SQLValue] = [], _ map: (any SQLRow) throws -> T) async throws -> [T] {
        var result: [T] = []
        try await query(sql, values) { result.append(try map($0)) }
        return result
    }

    nonisolated(nonsending) func first<T>(_ sql: String, _ values: [SQLValue] = [], _ map: (any SQLRow) throws -> T) async throws -> T? {
        var result: T?
        try await query(sql, values) { row in if result == nil { result = try map(row) } }
        return result
    }

    /// The first column of the first row (a count, an id, an aggregate).
    nonisolated(nonsending) func int64(_ sql: String, _ values: [SQLValue] = []) async throws -> Int64? {
        try await first(sql, values) { try $0.int64(0) } ?? nil
    }

    nonisolated(nonsending) func double(_ sql: String, _ values: [SQLValue] = []) async throws -> Double? {
        try await first(sql, values) { try $0.double(0) } ?? nil
    }
}

/// The work a store runs on one of its connections: it runs where the store runs it (see
/// `SQLConnection`).
typealias SQLWork<T> = nonisolated(nonsending) @Sendable (any SQLConnection) async throws -> T

/// A store whose operations are SQL written once (`SQLStore+Records`, `SQLStore+Inspection`):
/// each backend gives connections, and keeps to itself what differs in meaning (claims,
/// leases, wake-ups) or in what is fast (its hot paths).
protocol SQLStore: Store {
    /// Runs `body` on a connection that sees one consistent state.
    func reading<T: Sendable>(_ body: SQLWork<T>) async throws -> T
    /// Runs `body` in one write transaction outside detection and delivery (retention, an
    /// operator's correction, the storage probe); with `announce`, the other processes sharing
    /// the state hear of the change at once (SQLite's readers see it by `data_version`).
    func writing<T: Sendable>(announce: Bool, _ body: SQLWork<T>) async throws -> T
}

extension SQLStore {
    /// An operator's correction, or retention: the others hear of it.
    func correcting<T: Sendable>(_ body: SQLWork<T>) async throws -> T {
        try await writing(announce: true, body)
    }
}

/// Ids as a JSON array (SQLite's form of a list value).
func jsonArray<S: Sequence>(_ values: S) -> String where S.Element == String {
    var writer = JSONWriter()
    writer.raw("[")
    var first = true
    for value in values {
        if !first { writer.raw(",") }
        first = false
        writer.string(value)
    }
    writer.raw("]")
    return String(decoding: writer.output, as: UTF8.self)
}
