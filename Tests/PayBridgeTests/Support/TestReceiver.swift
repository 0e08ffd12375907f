import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

/// A webhook receiver on 127.0.0.1 that records every request and answers as told.
/// A gate replies wait behind until the test opens it.
final class ReplyGate: Sendable {
    private let state = Mutex((open: false, waiting: [CheckedContinuation<Void, Never>]()))

    func wait() async {
        await withCheckedContinuation { continuation in
            let resume = state.withLock { state -> Bool in
                if state.open { return true }
                state.waiting.append(continuation)
                return false
            }
            if resume { continuation.resume() }
        }
    }

    func open() {
        let waiting = state.withLock { state in
            state.open = true
            defer { state.waiting.removeAll() }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }
}

final class TestReceiver: Sendable {
    struct Received: Sendable {
        var path: String
        /// Lower-cased names.
        var headers: [String: String]
        var body: [UInt8]
        var receivedAt: Date

        var webhookId: String { headers["webhook-id"] ?? "" }
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:] }
        var data: [String: Any] { json["data"] as? [String: Any] ?? [:] }
        var paymentId: String { data["paymentId"] as? String ?? "" }
        var type: String { json["type"] as? String ?? "" }
        var status: String { data["status"] as? String ?? "" }
    }

    struct Reply: Sendable {
        var status: Int = 204
        var headers: [(String, String)] = []
        var delay: Duration = .zero
        /// Holds the answer until the test opens the gate (what a slow endpoint does, without
        /// guessing how slow is slow enough).
        var heldUntil: ReplyGate?
        var bodySize = 0
        /// A body to answer with (JSON for a token server).
        var body: String?

        static let ok = Reply()
        static func status(_ code: Int, _ headers: [(String, String)] = []) -> Reply { Reply(status: code, headers: headers) }
    }

    /// Decides the reply to the `index`-th request (0-based) of this receiver.
    typealias Responder = @Sendable (Received, Int) -> Reply

    // A struct, not a tuple: a closure kept in a tuple inside a Mutex gains two reabstraction
    // thunks each time `withLock` writes the tuple back, so after ~20,000 requests calling
    // the responder recursed through 40,000 thunks and overflowed the stack (the SIGSEGV of
    // the kill -9 suites). `TestReceiverTests` keeps it fixed.
    private struct State {
        var requests: [Received] = []
        var responder: Responder
    }

    private let state: Mutex<State>
    private let inFlight = Mutex((now: 0, most: 0))
    private let group: Mutex<ServiceGroup?> = Mutex(nil)
    private let task: Mutex<Task<Void, any Error>?> = Mutex(nil)
    private(set) nonisolated(unsafe) var port = 0

    var url: String { "http://127.0.0.1:\(port)/hook" }

    private init(responder: @escaping Responder) {
        state = Mutex(State(responder: responder))
    }

    static func start(responder: @escaping Responder = { _, _ in .ok }) async throws -> TestReceiver {
        let receiver = TestReceiver(responder: responder)
        let router = Router()
        router.post("/**") { request, _ -> Response in
            var request = request
            let body = try await request.collectBody(upTo: 16 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let received = Received(path: request.uri.path, headers: headers, body: Array(body.readableBytesView), receivedAt: Date())
            receiver.inFlight.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
            let reply = receiver.record(received)
            if reply.delay > .zero { try? await Task.sleep(for: reply.delay) }
            if let gate = reply.heldUntil { await gate.wait() }
            receiver.inFlight.withLock { $0.now -= 1 }
            var fields = HTTPFields()
            for (name, value) in reply.headers {
                if let name = HTTPField.Name(name) { fields.append(HTTPField(name: name, value: value)) }
            }
            if let body = reply.body {
                fields.append(HTTPField(name: .contentType, value: "application/json"))
                return Response(status: .init(code: reply.status), headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
            }
            guard reply.bodySize > 0 else { return Response(status: .init(code: reply.status), headers: fields) }
            return Response(
                status: .init(code: reply.status), headers: fields,
                body: ResponseBody(byteBuffer: ByteBuffer(repeating: UInt8(ascii: "x"), count: reply.bodySize)))
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "test-receiver")
        logger.logLevel = .critical
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            }, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [.init(service: app)], logger: logger))
        receiver.group.withLock { $0 = group }
        receiver.task.withLock { $0 = Task { try await group.run() } }
        var iterator = ports.makeAsyncIterator()
        receiver.port = await iterator.next() ?? 0
        return receiver
    }

    /// Records a request and decides its reply, as a request over HTTP does.
    func answer(_ received: Received) -> Reply { record(received) }

    private func record(_ received: Received) -> Reply {
        state.withLock { state in
            let index = state.requests.count
            state.requests.append(received)
            return state.responder(received, index)
        }
    }

    func setResponder(_ responder: @escaping Responder) {
        state.withLock { $0.responder = responder }
    }

    var requests: [Received] { state.withLock { $0.requests } }

    /// The most requests this receiver was answering at once.
    var mostConcurrent: Int { inFlight.withLock { $0.most } }

    /// Waits until at least `count` requests arrived; false on timeout.
    func waitFor(count: Int, timeout: Duration = .seconds(20)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if requests.count >= count { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return requests.count >= count
    }

    func stop() async {
        if let group = group.withLock({ $0 }) { await group.triggerGracefulShutdown() }
        if let task = task.withLock({ $0 }) { _ = await task.result }
    }
}
