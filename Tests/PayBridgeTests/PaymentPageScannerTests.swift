import Foundation
import Testing

@testable import PayBridge

@Suite struct PaymentPageScannerTests {
    func scan(_ text: String) throws(PageScanError) -> PaymentPage {
        try PaymentPageScanner.scanList(Array(text.utf8))
    }

    @Test func indexesPaymentsAndKeepsTheirBytes() throws {
        let first = #"{"paymentId":"a1","status":"Processed","amount":{"amount":13.00,"currency":"EUR"},"processedTimestamp":"2023-09-23T15:33:51.0133333+00:00","errors":null}"#
        let second = #"{ "status" : "Rejected" , "paymentId" : "b2", "nested": [1, -2.5e3, true, false, null, {"x": "y"}] }"#
        let page = try scan(#"{"result":[\#(first), \#(second)],"pageInfo":{"currentPage":3,"pageSize":2,"rowCount":null}}"#)
        #expect(page.payments.map(\.paymentId) == ["a1", "b2"])
        #expect(page.payments.map(\.status) == ["Processed", "Rejected"])
        #expect(String(decoding: page.rawObject(of: page.payments[0]), as: UTF8.self) == first)
        #expect(String(decoding: page.rawObject(of: page.payments[1]), as: UTF8.self) == second)
        #expect(page.currentPage == 3)
        #expect(page.pageSize == 2)
        #expect(page.rowCount == nil)
    }

    @Test func acceptsAnEmptyResultAndMembersInAnyOrder() throws {
        let page = try scan(#" {"pageInfo":{"currentPage":1,"pageSize":50,"rowCount":0}, "result":[] } "#)
        #expect(page.payments.isEmpty)
        #expect(page.rowCount == 0)
    }

    @Test func decodesEscapedIdsAndStatuses() throws {
        let page = try scan(#"{"result":[{"paymentId":"a\u0031\"b","status":"Pending\u00e9\ud83d\ude00"}]}"#)
        #expect(page.payments[0].paymentId == "a1\"b")
        #expect(page.payments[0].status == "Pendingé😀")
    }

    @Test func keyNamesAreMatchedWithoutRegardToCase() throws {
        let page = try scan(#"{"Result":[{"PaymentId":"p","Status":"Hold"}]}"#)
        #expect(page.payments.first?.status == "Hold")
    }

    @Test(arguments: [
        (#"{"result":[{"paymentId":"a","status":"X"}"#, "unexpected end of data"),
        (#"{"result":[{"paymentId":"a","status":"X",}]}"#, "expected a member name"),
        (#"{"result":[{"paymentId":"a","status":"X"}],}"#, "expected a member name"),
        (#"{"result":[{"paymentId":"a","status":'X'}]}"#, "unexpected character"),
        (#"{"result":[{"paymentId":"a","status":"X","n":01}]}"#, "expected ',' or '}'"),
        (#"{"result":[{"paymentId":"a","status":"X","n":1.}]}"#, "invalid number"),
        (#"{"result":[{"paymentId":"a","status":"X","n":tru}]}"#, "invalid literal"),
        (#"{"result":[{"paymentId":"a","status":"X\q"}]}"#, "invalid escape"),
        ("{\"result\":[{\"paymentId\":\"a\",\"status\":\"X\n\"}]}", "control character"),
        (#"{"result":[]} trailing"#, "unexpected data after"),
        (#"[{"paymentId":"a","status":"X"}]"#, "unexpected envelope"),
        (#"{"payments":[]}"#, "no \"result\" array"),
        (#"{"result":{}}"#, "\"result\" is not an array"),
        (#"{"result":["a"]}"#, "payment #1 is not an object"),
        (#"{"result":[{"status":"X"}]}"#, "payment #1 on the page has no \"paymentId\""),
        (#"{"result":[{"paymentId":"p9","status":null}]}"#, "payment p9 has a null \"status\""),
        (#"{"result":[{"paymentId":"p9"}]}"#, "payment p9 has no \"status\""),
        ("", "empty response body"),
        // Found by fuzzing (scripts/fuzz page-list): a repeated name means one thing to one
        // parser and another to the next; the scanner read both arrays, Foundation the last.
        (#"{"result":[{"paymentId":"a","status":"X"}],"result":[]}"#, "\"result\" appears twice"),
        (#"{"result":[{"paymentId":"a","paymentId":"b","status":"X"}]}"#, "payment #1 on the page has \"paymentId\" twice"),
        (#"{"result":[{"paymentId":"a","status":"X","Status":"Y"}]}"#, "payment #1 on the page has \"status\" twice"),
    ])
    func refusesWhatIsNotTheContract(text: String, expected: String) {
        #expect {
            _ = try scan(text)
        } throws: { error in
            (error as? PageScanError)?.message.contains(expected) == true
        }
    }

    @Test func refusesInvalidUTF8() {
        var bytes = Array(#"{"result":[{"paymentId":"a","status":"X","n":"#.utf8)
        bytes += [0x22, 0xC3, 0x28, 0x22, 0x7D, 0x5D, 0x7D]
        #expect(throws: PageScanError.self) { _ = try PaymentPageScanner.scanList(bytes) }
    }

    @Test func reportsWhereTheProblemIs() {
        do {
            _ = try scan("{\"result\":[\n{\"paymentId\":\"a\",\n \"status\": }]}")
            Issue.record("expected an error")
        } catch {
            #expect(error.line == 3)
            #expect(error.column == 12)
        }
    }

    @Test func refusesDeepNesting() {
        let deep = String(repeating: "[", count: 300) + String(repeating: "]", count: 300)
        #expect(throws: PageScanError.self) { _ = try scan(#"{"result":[{"paymentId":"a","status":"X","d":\#(deep)}]}"#) }
    }

    @Test func scansASinglePayment() throws {
        let page = try PaymentPageScanner.scanPayment(Array(#"{"paymentId":"z","status":"Processed"}"#.utf8))
        #expect(page.payments.map(\.paymentId) == ["z"])
    }

    @Test func agreesWithFoundationOnWhatIsValid() throws {
        // Every prefix of a valid page is invalid JSON to Foundation; the scanner must agree.
        let text = #"{"result":[{"paymentId":"a","status":"X","v":[1,2.5,{"k":null}],"s":"\u00e9"}],"pageInfo":{"currentPage":1}}"#
        let bytes = Array(text.utf8)
        for length in 0..<bytes.count {
            let prefix = Array(bytes[0..<length])
            let foundation = (try? JSONSerialization.jsonObject(with: Data(prefix))) != nil
            let ours = (try? PaymentPageScanner.scanList(prefix)) != nil
            #expect(foundation == ours, "prefix of length \(length)")
        }
        #expect((try? PaymentPageScanner.scanList(bytes)) != nil)
    }
}
