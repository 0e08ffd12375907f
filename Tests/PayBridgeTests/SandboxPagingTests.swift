import Foundation
import Sandbox
import Testing

/// The sandbox's list call pages as the bank does: newest first (ties by id), every payment
/// exactly once across pages, `rowCount` counting what the filter matches.
@Suite struct SandboxPagingTests {
    static func token(_ bank: SandboxBank) throws -> String {
        let basic = "Basic " + Data("sandbox:sandbox".utf8).base64EncodedString()
        let answer = bank.handle(SandboxRequest(method: "GET", path: "/api/v1/authorizations/authorize", headers: ["authorization": basic]))
        let object = try JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any]
        return try #require(object?["access_token"] as? String)
    }

    static func page(_ bank: SandboxBank, token: String, number: Int, size: Int, status: String? = nil) throws -> (ids: [String], rowCount: Int) {
        var query = [("PageNumber", "\(number)"), ("PageSize", "\(size)")]
        if let status { query.append(("Status", status)) }
        let answer = bank.handle(
            SandboxRequest(method: "GET", path: "/api/v1/payments/singles", query: query, headers: ["authorization": "Bearer \(token)"]))
        #expect(answer.status == 200)
        let object = try JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any]
        let ids = (object?["result"] as? [[String: Any]] ?? []).compactMap { $0["paymentId"] as? String }
        let rowCount = ((object?["pageInfo"] as? [String: Any])?["rowCount"] as? Int) ?? -1
        return (ids, rowCount)
    }

    @Test func pagesAreNewestFirstAndHoldEveryPaymentOnce() throws {
        let bank = SandboxBank(options: SandboxOptions(requireRequestId: false))
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        var created: [(at: Date, id: String)] = []
        // Out of order, with two pairs created at the same instant (then the id decides).
        for offset in [5, 1, 9, 3, 3, 7, 0, 9] {
            let at = start.addingTimeInterval(Double(offset) * 60)
            created.append((at, bank.createPayment(amount: 12, status: "Processed", instructedAt: at)))
        }
        bank.removePayment(created[3].id)
        created.remove(at: 3)
        bank.setStatus(created[0].id, "Rejected")
        bank.setStatus(created[5].id, "Rejected")
        let expected = created.sorted { ($0.at, $0.id) > ($1.at, $1.id) }.map(\.id)

        let token = try Self.token(bank)
        var seen: [String] = []
        for number in 1...3 {
            let page = try Self.page(bank, token: token, number: number, size: 3)
            #expect(page.rowCount == 7)
            seen += page.ids
        }
        #expect(seen == expected)
        #expect(try Self.page(bank, token: token, number: 4, size: 3).ids.isEmpty)

        let rejected = try Self.page(bank, token: token, number: 1, size: 3, status: "Rejected")
        #expect(rejected.rowCount == 2)
        #expect(rejected.ids == expected.filter { [created[0].id, created[5].id].contains($0) })
    }
}
