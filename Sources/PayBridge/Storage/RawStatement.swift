import Foundation
import GRDB
import GRDBSQLite

/// Binding and reading through SQLite's C API on GRDB's cached statements. GRDB's
/// `StatementArguments` boxes every value; on the statements run once per payment change and
/// once per delivery that was ~5 % of B1's CPU.
struct RawStatement {
    private let handle: OpaquePointer
    private var index: Int32 = 1

    /// `SQLITE_TRANSIENT`: SQLite copies the bytes (the C macro is not imported).
    private static let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

    init(_ statement: Statement) {
        handle = statement.sqliteStatement
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    mutating func bind(_ text: String) {
        _ = text.withCString { sqlite3_bind_text(handle, index, $0, -1, Self.transient) }
        index += 1
    }

    mutating func bind(_ text: String?) {
        if let text { bind(text) } else { bindNull() }
    }

    mutating func bind(_ value: Int) {
        sqlite3_bind_int64(handle, index, sqlite3_int64(value))
        index += 1
    }

    mutating func bind(_ value: Int64) {
        sqlite3_bind_int64(handle, index, sqlite3_int64(value))
        index += 1
    }

    mutating func bind(_ value: Int?) {
        if let value { bind(value) } else { bindNull() }
    }

    mutating func bind(_ value: Double) {
        sqlite3_bind_double(handle, index, value)
        index += 1
    }

    mutating func bind(_ value: Double?) {
        if let value { bind(value) } else { bindNull() }
    }

    mutating func bind(bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { sqlite3_bind_blob(handle, index, $0.baseAddress, Int32($0.count), Self.transient) }
        index += 1
    }

    mutating func bindNull() {
        sqlite3_bind_null(handle, index)
        index += 1
    }

    /// Runs a statement that returns no rows.
    func run() throws {
        let code = sqlite3_step(handle)
        defer { sqlite3_reset(handle) }
        guard code == SQLITE_DONE || code == SQLITE_ROW else { throw error(code) }
    }

    /// Steps through the rows; `row` reads the current one.
    func forEachRow(_ row: (Row) throws -> Void) throws {
        defer { sqlite3_reset(handle) }
        while true {
            let code = sqlite3_step(handle)
            if code == SQLITE_DONE { return }
            guard code == SQLITE_ROW else { throw error(code) }
            try row(Row(handle: handle))
        }
    }

    private func error(_ code: Int32) -> DatabaseError {
        DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(sqlite3_db_handle(handle))))
    }

    /// The current row's columns.
    struct Row {
        let handle: OpaquePointer

        func text(_ column: Int32) -> String {
            guard let pointer = sqlite3_column_text(handle, column) else { return "" }
            return String(cString: pointer)
        }

        func optionalText(_ column: Int32) -> String? {
            sqlite3_column_type(handle, column) == SQLITE_NULL ? nil : text(column)
        }

        func int(_ column: Int32) -> Int { Int(sqlite3_column_int64(handle, column)) }

        func int64(_ column: Int32) -> Int64 { Int64(sqlite3_column_int64(handle, column)) }

        func double(_ column: Int32) -> Double { sqlite3_column_double(handle, column) }

        func bytes(_ column: Int32) -> [UInt8] {
            let count = Int(sqlite3_column_bytes(handle, column))
            guard count > 0, let pointer = sqlite3_column_blob(handle, column) else { return [] }
            return Array(UnsafeRawBufferPointer(start: pointer, count: count))
        }
    }
}

extension RawStatement {
    /// A list is bound as a JSON array (read with `json_each`).
    mutating func bind(_ value: SQLValue) {
        switch value {
        case .text(let text): bind(text)
        case .int(let int): if let int { bind(int) } else { bindNull() }
        case .double(let double): bind(double)
        case .bytes(let bytes): if let bytes { bind(bytes: bytes) } else { bindNull() }
        case .bool(let bool): bind(bool.map { $0 ? 1 : 0 })
        case .ints(let ints): bind("[" + ints.map(String.init).joined(separator: ",") + "]")
        case .texts(let texts): bind(jsonArray(texts))
        case .doubles(let doubles): bind("[" + doubles.map { String($0) }.joined(separator: ",") + "]")
        case .bools(let bools): bind("[" + bools.map { $0 ? "1" : "0" }.joined(separator: ",") + "]")
        case .byteArrays: bindNull()  // PostgreSQL's batches only
        }
    }
}

/// A row as the statements written once read it: NULL is nil.
struct SQLiteRow: SQLRow {
    let row: RawStatement.Row

    private func isNull(_ column: Int) -> Bool { sqlite3_column_type(row.handle, Int32(column)) == SQLITE_NULL }
    func text(_ column: Int) -> String? { isNull(column) ? nil : row.text(Int32(column)) }
    func int64(_ column: Int) -> Int64? { isNull(column) ? nil : row.int64(Int32(column)) }
    func double(_ column: Int) -> Double? { isNull(column) ? nil : row.double(Int32(column)) }
    func bytes(_ column: Int) -> [UInt8]? { isNull(column) ? nil : row.bytes(Int32(column)) }
}

/// A GRDB connection as the statements written once use it: cached statements, bound and read
/// through SQLite's C API.
struct SQLiteConnection: SQLConnection {
    let db: Database
    var dialect: SQLDialect { .sqlite }

    @discardableResult
    nonisolated(nonsending) func execute(_ sql: String, _ values: [SQLValue]) async throws -> Int {
        try run(sql, values)
    }

    private func run(_ sql: String, _ values: [SQLValue]) throws -> Int {
        var raw = RawStatement(try db.cachedStatement(sql: sql))
        for value in values { raw.bind(value) }
        try raw.run()
        return db.changesCount
    }

    nonisolated(nonsending) func query(_ sql: String, _ values: [SQLValue], _ row: (any SQLRow) throws -> Void) async throws {
        var raw = RawStatement(try db.cachedStatement(sql: sql))
        for value in values { raw.bind(value) }
        try raw.forEachRow { try row(SQLiteRow(row: $0)) }
    }

    /// The row id SQLite keeps for the connection (`rowId` is its alias in every table that
    /// has one): no RETURNING, which cost B1 about a fifth of its speed.
    nonisolated(nonsending) func insert(_ sql: String, _ values: [SQLValue], returning rowId: String) async throws -> Int64? {
        try run(sql, values) > 0 ? db.lastInsertedRowID : nil
    }
}
