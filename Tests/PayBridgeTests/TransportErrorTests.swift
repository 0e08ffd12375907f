import CCurl
import Testing

@testable import PayBridge

/// libcurl's result codes in words that name what went wrong.
@Suite struct TransportErrorTests {
    @Test func faultsOfTheAnswerAreNotCalledTheRequestsOrMemorys() {
        #expect(TransportError.curl(CURLE_UNSUPPORTED_PROTOCOL, detail: "Unsupported HTTP version in response")
            == .other("the answer is not HTTP paybridge can read (Unsupported HTTP version in response)"))
        #expect(TransportError.curl(CURLE_UNSUPPORTED_PROTOCOL, detail: "Protocol \"ftp\" not supported") == .invalidRequest("Protocol \"ftp\" not supported"))
        #expect(TransportError.curl(CURLE_OUT_OF_MEMORY, detail: "") == .other("the answer's headers are too large, or memory ran out (Out of memory)"))
        #expect(TransportError.curl(CURLE_OPERATION_TIMEDOUT, detail: "x") == .timedOut("x"))
    }
}
