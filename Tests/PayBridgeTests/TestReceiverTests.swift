import Foundation
import Testing

/// The test receiver itself: the kill -9 suites send it tens of thousands of requests.
@Suite struct TestReceiverTests {
    @Test func answersAHundredThousandRequestsWithoutGrowingItsResponder() async throws {
        // The responder used to be wrapped in two more thunks per request: by the 20,000th
        // call it recursed deep enough to overflow a thread's stack (signal 11).
        let receiver = try await TestReceiver.start { _, index in index % 2 == 0 ? .ok : .status(500) }
        let received = TestReceiver.Received(path: "/hook", headers: [:], body: [], receivedAt: Date())
        var failures = 0
        for _ in 0..<100_000 where receiver.answer(received).status == 500 { failures += 1 }
        #expect(failures == 50_000)
        await receiver.stop()
    }
}
