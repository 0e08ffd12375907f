import Foundation
import GRDB
import Testing

@testable import PayBridge

/// The store's frequent queries must stay index lookups as tables grow to millions of rows.
@Suite struct StorageTests {
    @Test(arguments: [
        ("paymentStates", SQL.paymentStates),
        ("dueDeliveries", SQL.dueDeliveries),
        ("nextDueDate", "SELECT MIN(due_at) FROM delivery WHERE state = 'pending' AND \(SQLDialect.sqlite.isIn("endpoint")) AND due_at > ?"),
        ("deliveredBefore", RetentionSQL.deliveredBefore),
        ("deleteOrphanEvents", RetentionSQL.deleteOrphanEvents),
    ])
    func queriesUseIndexes(name: String, sql: String) async throws {
        let directory = try TemporaryDirectory()
        let store = try await SQLiteStore.open(directory: directory.path)
        let queue = try DatabaseQueue(path: store.path)
        let placeholders = sql.filter { $0 == "?" }.count
        let plan = try queue.inDatabase { db in
            try Row.fetchAll(
                db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: StatementArguments(Array(repeating: DatabaseValue.null, count: placeholders))
            ).map { row -> String in row["detail"] }
        }
        // A bare "SCAN delivery" or "SCAN event" reads the whole table for each use.
        let scans = plan.filter { $0.hasPrefix("SCAN") && !$0.contains("USING") && !$0.contains("json_each") }
        #expect(scans.isEmpty, "\(name): \(plan)")
    }
}
