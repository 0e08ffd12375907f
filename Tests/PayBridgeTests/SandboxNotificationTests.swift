import Crypto
import Foundation
import Logging
import Sandbox
import ServiceLifecycle
import Synchronization
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The sandbox's Notification Self Service and its pushes: subscriptions over HTTP, encrypted
/// notifications of its own status changes that a real receiver can open, the bank's retry
/// schedule ending in deactivation, `If-Match` on changes, the key's length.
@Suite struct SandboxNotificationTests {
    static let key = "0123456789abcdefghijklmnopqrstuv"
    static let retrySchedule: [Double] = [15, 30, 60, 600, 1_800, 3_600, 7_200, 21_600, 43_200, 86_400, 172_800]

    @Test func aRejectionReachesTheReceiverEncrypted() async throws {
        let receiver = try await TestReceiver.start()
        let sandbox = try await NotifyingSandbox.start(SandboxOptions(processingDelay: .seconds(3600)))
        let paymentId = sandbox.bank.createPayment(amount: 120, status: "Processed")
        let otherId = sandbox.bank.createPayment(amount: 45, status: "Processed")
        let api = try await SelfServiceClient.authorize(sandbox.url)

        let created = try await api.send(
            "POST", "subscription",
            ["endpoint": receiver.url, "status": 2, "encryptionKey": Self.key, "maxNotificationsPerMessage": 5])
        #expect(created.status == 201)
        #expect(!created.text.contains(Self.key))
        let subscription = try #require(created.object)
        let subscriptionId = try #require(subscription["id"] as? String)
        #expect(subscription["status"] as? Int == 2)
        #expect(subscription["isActive"] as? Bool == true)
        #expect(subscription["rowVersion"] as? String != nil)
        #expect(subscription["maxNotificationsPerMessage"] as? Int == 5)

        let rejected = try await api.send("POST", "subscriptionEvent", ["subscriptionId": subscriptionId, "eventType": "OutgoingPaymentRejected"])
        #expect(rejected.status == 201)
        let rejectedEventId = try #require(rejected.object?["id"] as? String)
        #expect(rejected.object?["subscriptionId"] as? String == subscriptionId)
        let missing = try await api.send("POST", "subscriptionEvent", ["subscriptionId": subscriptionId, "eventType": 4])
        #expect(missing.status == 201)
        #expect(missing.object?["eventType"] as? String == "MissingFunding")

        let list = try await api.send("GET", "subscription")
        #expect(list.status == 200)
        let listed = try #require(list.array)
        #expect(listed.count == 1)
        #expect((listed.first?["subscriptionEvents"] as? [[String: Any]])?.compactMap { $0["eventType"] as? String } == [
            "OutgoingPaymentRejected", "MissingFunding",
        ])

        sandbox.bank.setStatus(paymentId, "Rejected")
        #expect(await receiver.waitFor(count: 1, timeout: .seconds(10)))
        let first = try #require(receiver.requests.first)
        #expect(first.headers["content-type"] == "application/octet-stream")
        #expect(first.headers["subscriptionversion"] == "1")
        #expect(first.headers["nonce"]?.count == 16)
        #expect(first.headers["authenticationtag"]?.count == 24)
        #expect(first.headers["checksum"]?.count == 44)
        let notifications = try Self.open(first)
        #expect(notifications.count == 1)
        let notification = try #require(notifications.first)
        #expect(notification["notificationType"] as? String == "OutgoingPaymentRejected")
        #expect(notification["subscriptionId"] as? String == subscriptionId)
        #expect(notification["subscriptionEventId"] as? String == rejectedEventId)
        #expect((notification["timestamp"] as? String)?.hasSuffix("+00:00") == true)
        let payment = try #require(notification["payment"] as? [String: Any])
        #expect(payment["paymentId"] as? String == paymentId)
        #expect(payment["status"] as? String == "Rejected")
        let eventId = try #require(notification["eventId"] as? String)
        // The record is written when the answer is in, just after the receiver saw the body.
        #expect(await Self.poll { sandbox.bank.notificationsSent().count == 1 })
        let sent = sandbox.bank.notificationsSent()
        #expect(sent.map(\.eventIds) == [[eventId]])
        #expect(sent.first?.status == 204)
        #expect(sent.first?.endpoint == receiver.url)

        // Cancelled is not notified; MissingFunding, next, comes alone.
        sandbox.bank.setStatus(otherId, "Cancelled")
        sandbox.bank.setStatus(otherId, "MissingFunding")
        #expect(await receiver.waitFor(count: 2, timeout: .seconds(10)))
        let second = try Self.open(receiver.requests[1])
        #expect(second.map { $0["notificationType"] as? String } == ["MissingFunding"])
        #expect(second.map { ($0["payment"] as? [String: Any])?["paymentId"] as? String } == [otherId])

        // The client test: one mocked notification of a subscribed type about a sandbox payment.
        let test = try await api.send("POST", "clienttest/\(subscriptionId)")
        #expect(test.status == 202)
        #expect(await receiver.waitFor(count: 3, timeout: .seconds(10)))
        let mocked = try Self.open(receiver.requests[2])
        #expect(mocked.count == 1)
        #expect(mocked.first?["notificationType"] as? String == "OutgoingPaymentRejected")
        #expect(mocked.first?["eventId"] as? String == test.object?["eventId"] as? String)
        #expect(((mocked.first?["payment"] as? [String: Any])?["paymentId"] as? String).map { [paymentId, otherId].contains($0) } == true)

        await sandbox.stop()
        await receiver.stop()
    }

    @Test func aFailingEndpointIsRetriedOnTheScaledScheduleThenDeactivated() async throws {
        let receiver = try await TestReceiver.start { _, _ in .status(500) }
        let clock = CountingClock(Date(timeIntervalSince1970: 1_800_000_000))
        let scale = 0.01
        let sandbox = try await NotifyingSandbox.start(
            SandboxOptions(tokenLifetime: .seconds(10_000_000), processingDelay: .seconds(3600), notificationRetryScale: scale),
            now: clock.now)
        let first = sandbox.bank.createPayment(amount: 120, status: "Processed")
        let whileInactive = sandbox.bank.createPayment(amount: 121, status: "Processed")
        let afterwards = sandbox.bank.createPayment(amount: 122, status: "Processed")
        let api = try await SelfServiceClient.authorize(sandbox.url)
        let created = try await api.send("POST", "subscription", ["endpoint": receiver.url, "status": 2, "encryptionKey": Self.key])
        let subscriptionId = try #require(created.object?["id"] as? String)
        let rowVersion = try #require(created.object?["rowVersion"] as? String)
        #expect(try await api.send("POST", "subscriptionEvent", ["subscriptionId": subscriptionId, "eventType": 2]).status == 201)

        sandbox.bank.setStatus(first, "Rejected")
        #expect(await Self.poll { sandbox.bank.notificationsSent().count == 1 })
        for (index, wait) in Self.retrySchedule.enumerated() {
            let failed = try #require(sandbox.bank.notificationsSent().last)
            let due = failed.answeredAt.addingTimeInterval(wait * scale)
            // Just before it is due, ticks pass and nothing is sent…
            clock.set(due.addingTimeInterval(-0.001))
            let reads = clock.reads
            #expect(await Self.poll { clock.reads >= reads + 4 })
            #expect(sandbox.bank.notificationsSent().count == index + 1)
            // …when it is due, the same message is sent again.
            clock.set(due)
            #expect(await Self.poll { sandbox.bank.notificationsSent().count == index + 2 })
            let retry = try #require(sandbox.bank.notificationsSent().last)
            #expect(retry.attempt == index + 2)
            #expect(abs(retry.sentAt.timeIntervalSince(due)) < 0.000_1)
            #expect(retry.eventIds == failed.eventIds)
        }
        let sent = sandbox.bank.notificationsSent()
        #expect(sent.count == 12)
        #expect(sent.allSatisfy { $0.status == 500 })
        #expect(receiver.requests.count == 12)

        // After the last retry: Inactive, saying why, with a new rowVersion.
        #expect(await Self.poll { (try? await api.send("GET", "subscription/\(subscriptionId)").object?["isActive"] as? Bool) == false })
        let inactive = try #require(try await api.send("GET", "subscription/\(subscriptionId)").object)
        #expect(inactive["status"] as? Int == 1)
        #expect((inactive["statusMessage"] as? String)?.contains("12 attempts") == true)
        let newRowVersion = try #require(inactive["rowVersion"] as? String)
        #expect(newRowVersion != rowVersion)

        // What happens while it is inactive is never sent; once activated, what follows is.
        sandbox.bank.setStatus(whileInactive, "Rejected")
        receiver.setResponder { _, _ in .ok }
        let activated = try await api.send("PUT", "subscription/\(subscriptionId)/activate", ifMatch: newRowVersion)
        #expect(activated.status == 200)
        #expect(activated.object?["isActive"] as? Bool == true)
        #expect(activated.object?["statusMessage"] is NSNull)
        sandbox.bank.setStatus(afterwards, "Rejected")
        #expect(await receiver.waitFor(count: 13, timeout: .seconds(10)))
        let delivered = try Self.open(receiver.requests[12])
        #expect(delivered.map { ($0["payment"] as? [String: Any])?["paymentId"] as? String } == [afterwards])
        #expect(await Self.poll { sandbox.bank.notificationsSent().count == 13 })
        #expect(sandbox.bank.notificationsSent().last?.succeeded == true)

        await sandbox.stop()
        await receiver.stop()
    }

    @Test func lifecycleStepsAreBatchedUpToTheMaximumInOrder() async throws {
        let receiver = try await TestReceiver.start()
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let clock = CountingClock(start)
        let sandbox = try await NotifyingSandbox.start(
            SandboxOptions(tokenLifetime: .seconds(10_000_000), processingDelay: .seconds(5)), now: clock.now)
        let api = try await SelfServiceClient.authorize(sandbox.url)
        let created = try await api.send(
            "POST", "subscription", ["endpoint": receiver.url, "status": 2, "encryptionKey": Self.key, "maxNotificationsPerMessage": 5])
        let subscriptionId = try #require(created.object?["id"] as? String)
        #expect(try await api.send("POST", "subscriptionEvent", ["subscriptionId": subscriptionId, "eventType": "OutgoingPaymentRejected"]).status == 201)
        // 19.00 is the sandbox's rejection: seven payments decided at the same moment.
        var payments: [String] = []
        for _ in 0..<7 { payments.append(sandbox.bank.createPayment(amount: 19)) }
        clock.set(start.addingTimeInterval(6))
        #expect(await receiver.waitFor(count: 2, timeout: .seconds(10)))
        let batches = try receiver.requests.map { try Self.open($0) }
        #expect(batches.map(\.count) == [5, 2])
        let notified = batches.flatMap { $0 }.compactMap { ($0["payment"] as? [String: Any])?["paymentId"] as? String }
        #expect(notified == payments.sorted())
        #expect(batches.flatMap { $0 }.allSatisfy { $0["notificationType"] as? String == "OutgoingPaymentRejected" })
        await sandbox.stop()
        await receiver.stop()
    }

    @Test func changesNeedTheCurrentRowVersion() throws {
        let bank = SandboxBank(options: SandboxOptions(requireRequestId: false))
        let token = try SandboxPagingTests.token(bank)
        func call(_ method: String, _ path: String, _ body: [String: Any]? = nil, ifMatch: String? = nil) throws -> (status: Int, object: [String: Any]?) {
            var headers = ["authorization": "Bearer \(token)"]
            if let ifMatch { headers["if-match"] = ifMatch }
            let data = try body.map { try JSONSerialization.data(withJSONObject: $0) } ?? Data()
            let answer = bank.handle(
                SandboxRequest(method: method, path: "/api/v1/notificationselfservice/" + path, headers: headers, body: Array(data)))
            return (answer.status, (try? JSONSerialization.jsonObject(with: Data(answer.body))) as? [String: Any])
        }
        let created = try call("POST", "subscription", ["endpoint": "https://bridge.example.com/bc/notifications", "status": 2, "encryptionKey": Self.key])
        #expect(created.status == 201)
        let id = try #require(created.object?["id"] as? String)
        let first = try #require(created.object?["rowVersion"] as? String)

        #expect(try call("PUT", "subscription/\(id)", ["maxNotificationsPerMessage": 10]).status == 428)
        #expect(try call("PUT", "subscription/\(id)", ["maxNotificationsPerMessage": 10], ifMatch: "AAAAAAAAAAA=").status == 412)
        #expect(try call("PUT", "subscription/\(id)/deactivate", ifMatch: nil).status == 428)
        let updated = try call("PUT", "subscription/\(id)", ["maxNotificationsPerMessage": 10], ifMatch: "\"\(first)\"")
        #expect(updated.status == 200)
        #expect(updated.object?["maxNotificationsPerMessage"] as? Int == 10)
        let second = try #require(updated.object?["rowVersion"] as? String)
        #expect(second != first)

        #expect(try call("PUT", "subscription/\(id)/deactivate", ifMatch: first).status == 412)
        let deactivated = try call("PUT", "subscription/\(id)/deactivate", ifMatch: second)
        #expect(deactivated.status == 200)
        #expect(deactivated.object?["status"] as? Int == 1)
        #expect(deactivated.object?["isActive"] as? Bool == false)
        let third = try #require(deactivated.object?["rowVersion"] as? String)
        let activated = try call("PUT", "subscription/\(id)/activate", ifMatch: third)
        #expect(activated.status == 200)
        #expect(activated.object?["status"] as? Int == 2)
        let fourth = try #require(activated.object?["rowVersion"] as? String)
        #expect(Set([first, second, third, fourth]).count == 4)

        #expect(try call("DELETE", "subscription/\(id)").status == 428)
        #expect(try call("DELETE", "subscription/\(id)", ifMatch: third).status == 412)
        #expect(try call("DELETE", "subscription/\(id)", ifMatch: fourth).status == 204)
        #expect(try call("GET", "subscription/\(id)").status == 404)
    }

    @Test func createChecksTheKeyEndpointAndEventTypes() throws {
        let bank = SandboxBank(options: SandboxOptions(requireRequestId: false))
        let token = try SandboxPagingTests.token(bank)
        func call(_ method: String, _ path: String, _ body: [String: Any]? = nil, bearer: String? = nil) throws -> (status: Int, text: String) {
            let data = try body.map { try JSONSerialization.data(withJSONObject: $0) } ?? Data()
            let answer = bank.handle(
                SandboxRequest(
                    method: method, path: "/api/v1/notificationselfservice/" + path, headers: ["authorization": "Bearer \(bearer ?? token)"],
                    body: Array(data)))
            return (answer.status, String(decoding: answer.body, as: UTF8.self))
        }
        func errorCode(_ text: String) -> String? {
            ((try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any])?["errorCode"] as? String
        }
        let endpoint = "https://bridge.example.com/bc/notifications"
        for key in [String(Self.key.dropLast()), Self.key + "w", "", "0123456789abcdefghijklmnopqrstuü"] {
            let refused = try call("POST", "subscription", ["endpoint": endpoint, "status": 2, "encryptionKey": key])
            #expect(refused.status == 400)
            #expect(errorCode(refused.text) == "InvalidEncryptionKey")
        }
        let noEndpoint = try call("POST", "subscription", ["status": 2, "encryptionKey": Self.key])
        #expect(noEndpoint.status == 400)
        #expect(errorCode(noEndpoint.text) == "InvalidEndpoint")
        #expect(try call("POST", "subscription", ["endpoint": endpoint, "encryptionKey": Self.key, "maxNotificationsPerMessage": 4]).status == 400)
        #expect(try call("POST", "subscription", ["endpoint": endpoint, "encryptionKey": Self.key], bearer: "nope").status == 401)
        #expect(try call("GET", "subscription").text == "[]")

        let created = try call("POST", "subscription", ["endpoint": endpoint, "status": 2, "encryptionKey": Self.key, "email": "ops@example.com"])
        #expect(created.status == 201)
        #expect(!created.text.contains(Self.key))
        let object = try #require((try JSONSerialization.jsonObject(with: Data(created.text.utf8))) as? [String: Any])
        let id = try #require(object["id"] as? String)
        #expect(object["maxNotificationsPerMessage"] as? Int == 1000)
        #expect(object["statusMessage"] is NSNull)

        #expect(try call("POST", "subscriptionEvent", ["subscriptionId": id, "eventType": "NoSuchEvent"]).status == 400)
        #expect(try call("POST", "subscriptionEvent", ["subscriptionId": "00000000-0000-4000-8000-000000000000", "eventType": 2]).status == 404)
        let event = try call("POST", "subscriptionEvent", ["subscriptionId": id, "eventType": 13, "targets": ["company-1"]])
        #expect(event.status == 201)
        let eventObject = try #require((try JSONSerialization.jsonObject(with: Data(event.text.utf8))) as? [String: Any])
        #expect(eventObject["eventType"] as? String == "PaymentStatus")
        #expect(try call("POST", "subscriptionEvent", ["subscriptionId": id, "eventType": "PaymentStatus"]).status == 409)
        let eventId = try #require(eventObject["id"] as? String)
        #expect(try call("DELETE", "subscriptionEvent/\(eventId)").status == 204)
        #expect(try call("DELETE", "subscriptionEvent/\(eventId)").status == 404)
        let list = try #require((try JSONSerialization.jsonObject(with: Data(try call("GET", "subscription").text.utf8))) as? [[String: Any]])
        #expect(list.count == 1)
        #expect((list.first?["subscriptionEvents"] as? [Any])?.isEmpty == true)
    }

    // MARK: Helpers

    /// Decrypts a received push as a subscriber does, checks its checksum, and gives its notifications.
    static func open(_ received: TestReceiver.Received, key: String = key) throws -> [[String: Any]] {
        let nonce = try AES.GCM.Nonce(data: try #require(Data(base64Encoded: received.headers["nonce"] ?? "")))
        let tag = try #require(Data(base64Encoded: received.headers["authenticationtag"] ?? ""))
        let box = try AES.GCM.SealedBox(nonce: nonce, ciphertext: Data(received.body), tag: tag)
        let plaintext = try AES.GCM.open(box, using: SymmetricKey(data: Data(key.utf8)))
        #expect(Data(SHA256.hash(data: plaintext)).base64EncodedString() == received.headers["checksum"])
        return try #require(try JSONSerialization.jsonObject(with: plaintext) as? [[String: Any]])
    }

    /// Waits for a condition, checking every 50 ms, for at most `timeout`.
    static func poll(timeout: Duration = .seconds(10), _ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return await condition()
    }
}

/// A settable time for the bank that counts how often it is read (each notifier tick reads it
/// once, so a test can wait for ticks to have passed).
final class CountingClock: Sendable {
    private let state: Mutex<(now: Date, reads: Int)>

    init(_ start: Date) { state = Mutex((start, 0)) }

    var now: @Sendable () -> Date {
        { [self] in state.withLock { $0.reads += 1; return $0.now } }
    }

    var reads: Int { state.withLock { $0.reads } }

    func set(_ date: Date) { state.withLock { $0.now = date } }
}

/// A sandbox bank (with its own clock when given) served by `SandboxServer.application` on an
/// ephemeral port: the HTTP server and its notifier, as the `sandbox` command runs them.
struct NotifyingSandbox {
    let bank: SandboxBank
    let url: String
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    static func start(_ options: SandboxOptions, now: (@Sendable () -> Date)? = nil) async throws -> NotifyingSandbox {
        let bank = now.map { SandboxBank(options: options, now: $0) } ?? SandboxBank(options: options)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "test-sandbox")
        logger.logLevel = .critical
        let app = SandboxServer.application(bank: bank, port: 0, logger: logger) { port in
            continuation.yield(port)
            continuation.finish()
        }
        let group = ServiceGroup(configuration: .init(services: [.init(service: app)], logger: logger))
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        return NotifyingSandbox(bank: bank, url: "http://127.0.0.1:\(port)", group: group, task: task)
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = await task.result
    }
}

/// The self-service API over HTTP, as a subscriber calls it: a token from the authorize call,
/// then JSON bodies.
struct SelfServiceClient {
    let base: String
    let token: String

    struct Answer {
        var status: Int
        var body: Data

        var text: String { String(decoding: body, as: UTF8.self) }
        var object: [String: Any]? { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] }
        var array: [[String: Any]]? { (try? JSONSerialization.jsonObject(with: body)) as? [[String: Any]] }
    }

    static func authorize(_ base: String) async throws -> SelfServiceClient {
        var request = URLRequest(url: try #require(URL(string: base + "/api/v1/authorizations/authorize")))
        request.setValue("Basic " + Data("sandbox:sandbox".utf8).base64EncodedString(), forHTTPHeaderField: "Authorization")
        let (body, _) = try await URLSession.shared.data(for: request)
        let object = try JSONSerialization.jsonObject(with: body) as? [String: Any]
        return SelfServiceClient(base: base, token: try #require(object?["access_token"] as? String))
    }

    func send(_ method: String, _ path: String, _ body: [String: Any]? = nil, ifMatch: String? = nil) async throws -> Answer {
        var request = URLRequest(url: try #require(URL(string: base + "/api/v1/notificationselfservice/" + path)))
        request.httpMethod = method
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        request.setValue(UUID().uuidString, forHTTPHeaderField: "X-Request-ID")
        if let ifMatch { request.setValue(ifMatch, forHTTPHeaderField: "If-Match") }
        if let body {
            request.httpBody = try JSONSerialization.data(withJSONObject: body)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        return Answer(status: (response as? HTTPURLResponse)?.statusCode ?? 0, body: data)
    }
}
