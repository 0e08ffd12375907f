import Crypto
import Foundation
import Sandbox
import Synchronization
import Testing

@testable import PayBridge

/// The bank's own notifications (§10) as operators run them: the real `paybridge run` with
/// `every: 1h`, so after its first poll only a notification can make an event. Notifications
/// are sealed as the bank seals them and POSTed to the daemon's listener. Where a test must
/// show that something did *not* happen, it sends a second, valid notification after it and
/// waits for that one's event: whatever the first would have done is committed by then.
@Suite(.serialized) struct NotificationTests {
    static let key = "0123456789abcdefghijABCDEFGHIJ++"

    struct Setup {
        let harness: Harness
        let receiver: TestReceiver
        let path: String
        let port: Int
        let adminPort: Int

        var bank: SandboxBank { harness.bank.bank }
        var url: String { "http://127.0.0.1:\(port)/bc/notifications" }

        static func start(backend: Backend = .sqlite, checkEvery: String = "1h", extra: String = "") async throws -> Setup {
            let harness = try await Harness.start(backend: backend)
            let receiver = try await TestReceiver.start()
            let port = try Sockets.closedPort()
            let adminPort = try Sockets.closedPort()
            let notifications = """
                  notifications:
                    listen: 127.0.0.1:\(port)
                    publicURL: http://127.0.0.1:\(port)/bc/notifications
                    key: "\(NotificationTests.key)"
                    checkEvery: \(checkEvery)
                \(extra)
                """
            let text = Fixtures.config(
                bankURL: harness.bank.url, state: harness.state, watches: RunDeliveryTests.quietWatch,
                endpoints: Fixtures.endpoint("erp", url: receiver.url), extraSource: notifications)
                + "admin:\n  listen: 127.0.0.1:\(adminPort)\n"
            return Setup(harness: harness, receiver: receiver, path: try harness.directory.write("pb.yaml", text), port: port, adminPort: adminPort)
        }

        func stop() async {
            await receiver.stop()
            await harness.stop()
        }
    }

    /// A notification as the bank writes it.
    static func notification(_ paymentId: String?, eventId: String = UUID().uuidString.lowercased(), type: String = "OutgoingPaymentRejected") -> [String: Any] {
        var item: [String: Any] = [
            "eventId": eventId, "subscriptionId": "5b0c7c1e-0000-4000-8000-000000000001", "subscriptionEventId": "1",
            "notificationType": type, "timestamp": "2026-12-07T10:00:00.0000000Z",
        ]
        if let paymentId { item["payment"] = ["paymentId": paymentId, "status": "Rejected"] }
        return item
    }

    static func plaintext(_ items: [[String: Any]]) throws -> [UInt8] {
        Array(try JSONSerialization.data(withJSONObject: items))
    }

    /// POSTs `body` with `headers`; the status and the answer's text (nil: no connection).
    static func post(_ url: String, _ body: [UInt8], headers: [(name: String, value: String)], method: HTTPRequest.Method = .post) async -> (Int, String)? {
        let http = CurlHTTPClient()
        defer { http.shutdown() }
        switch await http.send(HTTPRequest(method: method, url: url, headers: headers, body: body, timeout: .seconds(20))) {
        case .success(let response): return (response.status, String(decoding: response.body, as: UTF8.self))
        case .failure: return nil
        }
    }

    /// Seals and POSTs notifications; the answer's status.
    @discardableResult
    static func send(_ items: [[String: Any]], to url: String, key: String = NotificationTests.key) async throws -> Int? {
        let sealed = try NotificationMessage.seal(try plaintext(items), key: Secret(key))
        return await post(url, sealed.body, headers: sealed.headers)?.0
    }

    /// Waits until the daemon's listener answers (any status).
    static func waitForListener(_ url: String, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if await post(url, [], headers: [], method: .get) != nil { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("the notifications listener did not answer within \(timeout)")
    }

    /// Waits for an event of `paymentId` with `status` at the receiver.
    func waitForEvent(_ receiver: TestReceiver, paymentId: String, status: String, timeout: Duration = .seconds(10)) async -> TestReceiver.Received? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let found = receiver.requests.first(where: { $0.paymentId == paymentId && $0.status == status }) { return found }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    @Test(arguments: Backend.available)
    func aNotificationMakesItsEventAtOnceAndARepeatDoesNothing(backend: Backend) async throws {
        let setup = try await Setup.start(backend: backend)
        defer { Task { await setup.stop() } }
        let ids = setup.harness.createPayments(3)
        let daemon = try RunDeliveryTests.Daemon(config: setup.path)
        try await setup.harness.waitForBaseline()
        try await Self.waitForListener(setup.url)
        // The baseline's payment.created events (baseline: emit), then quiet.
        #expect(await waitForEvent(setup.receiver, paymentId: ids[2], status: "PendingProcessing") != nil)

        setup.bank.setStatus(ids[0], "Rejected")
        let notification = Self.notification(ids[0])
        #expect(try await Self.send([notification], to: setup.url) == 200)
        let event = await waitForEvent(setup.receiver, paymentId: ids[0], status: "Rejected")
        #expect(event?.type == "payment.status_changed")
        #expect(event?.data["watch"] as? String == "notifications")
        #expect(event?.data["previousStatus"] as? String == "PendingProcessing")

        // The same eventId again: 200, nothing more. A second payment's notification after
        // it is the sentinel.
        #expect(try await Self.send([notification], to: setup.url) == 200)
        setup.bank.setStatus(ids[1], "MissingFunding")
        #expect(try await Self.send([Self.notification(ids[1], type: "MissingFunding")], to: setup.url) == 200)
        #expect(await waitForEvent(setup.receiver, paymentId: ids[1], status: "MissingFunding") != nil)
        // A notification for a payment whose status did not change: no event either.
        #expect(try await Self.send([Self.notification(ids[2], type: "OutgoingPaymentProcessed")], to: setup.url) == 200)
        setup.bank.setStatus(ids[1], "Processed")
        #expect(try await Self.send([Self.notification(ids[1], type: "OutgoingPaymentProcessed")], to: setup.url) == 200)
        #expect(await waitForEvent(setup.receiver, paymentId: ids[1], status: "Processed") != nil)
        let (status, log) = await daemon.stop()
        #expect(status == 0, "\(log)")
        #expect(setup.receiver.requests.filter { $0.paymentId == ids[0] && $0.status == "Rejected" }.count == 1)
        #expect(setup.receiver.requests.filter { $0.paymentId == ids[2] }.count == 1, "only its payment.created")
        // (The bank has no subscription for this listener: a source.notifications.inactive too.)
        let payments = { setup.receiver.requests.filter { $0.type.hasPrefix("payment.") } }
        #expect(payments().count == 6, "\(payments().map { "\($0.type) \($0.paymentId) \($0.status) \($0.data["watch"] ?? "")" })")
        #expect(log.contains("notification look-up found a change"), "\(log)")

        // The next poll finds nothing new: the notifications' events carry the poll's ids.
        let poll = try await Binary.run(["poll", "--once", "--config", setup.path])
        #expect(poll.status == 0, "\(poll.stderr)")
        #expect(payments().count == 6)
        #expect(!log.contains(NotificationTests.key))
    }

    static let cryptographyAvailable: Bool = {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import cryptography"]
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }()

    /// Sends with the independent implementation (`Fixtures/bank_notification.py`); the status.
    static func sendWithPython(_ document: Any, to url: String, encoding: String) async throws -> String {
        let text = String(decoding: try JSONSerialization.data(withJSONObject: document), as: UTF8.self)
        let output = try await RequestSigningTests.python(["Tests/PayBridgeTests/Fixtures/bank_notification.py", url, key, encoding, text])
        #expect(output.status == 0, "\(output.stderr)")
        return output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Bodies sealed by Python's `cryptography`: a UTF-16LE batch with one unchanged payment
    /// makes exactly the changes; a single object (no array) is read too.
    @Test(.enabled(if: cryptographyAvailable, "needs `pip install cryptography`"))
    func bodiesSealedByAnotherImplementationUTF16BatchesAndSingleObjects() async throws {
        let setup = try await Setup.start()
        defer { Task { await setup.stop() } }
        let ids = setup.harness.createPayments(4)
        let daemon = try RunDeliveryTests.Daemon(config: setup.path)
        try await setup.harness.waitForBaseline()
        try await Self.waitForListener(setup.url)
        setup.bank.setStatus(ids[0], "Rejected")
        setup.bank.setStatus(ids[2], "MissingFunding")
        let batch = [Self.notification(ids[0]), Self.notification(ids[1], type: "OutgoingPaymentProcessed"), Self.notification(ids[2], type: "MissingFunding")]
        #expect(try await Self.sendWithPython(batch, to: setup.url, encoding: "utf-16le-bom") == "200")
        #expect(await waitForEvent(setup.receiver, paymentId: ids[0], status: "Rejected") != nil)
        #expect(await waitForEvent(setup.receiver, paymentId: ids[2], status: "MissingFunding") != nil)
        setup.bank.setStatus(ids[3], "Processed")
        #expect(try await Self.sendWithPython(Self.notification(ids[3], type: "OutgoingPaymentProcessed"), to: setup.url, encoding: "utf-8") == "200")
        #expect(await waitForEvent(setup.receiver, paymentId: ids[3], status: "Processed") != nil)
        setup.bank.setStatus(ids[1], "Rejected")
        #expect(try await Self.sendWithPython([Self.notification(ids[1])], to: setup.url, encoding: "utf-16le") == "200")
        #expect(await waitForEvent(setup.receiver, paymentId: ids[1], status: "Rejected") != nil)
        let (status, log) = await daemon.stop()
        #expect(status == 0, "\(log)")
        let changes = setup.receiver.requests.filter { $0.type == "payment.status_changed" }
        #expect(changes.map(\.paymentId).sorted() == ids.sorted(), "one change each, the unchanged payment's only when it changed")
        #expect(changes.allSatisfy { $0.data["watch"] as? String == "notifications" })
    }

    /// Two `run` instances on one PostgreSQL state: either may receive; the poller lease's
    /// holder runs the look-ups. A notification to each makes its event, once.
    @Test(arguments: Backend.shared)
    func onPostgreSQLAnyInstanceReceives(backend: Backend) async throws {
        let setup = try await Setup.start(backend: backend)
        defer { Task { await setup.stop() } }
        let ids = setup.harness.createPayments(2)
        let otherPort = try Sockets.closedPort()
        let text = try String(contentsOfFile: setup.path, encoding: .utf8)
            .replacingOccurrences(of: "127.0.0.1:\(setup.port)", with: "127.0.0.1:\(otherPort)")
            .replacingOccurrences(of: "127.0.0.1:\(setup.adminPort)", with: "127.0.0.1:\(try Sockets.closedPort())")
        let otherPath = try setup.harness.directory.write("other.yaml", text)
        let first = try RunDeliveryTests.Daemon(config: setup.path)
        let second = try RunDeliveryTests.Daemon(config: otherPath)
        try await setup.harness.waitForBaseline()
        let otherURL = "http://127.0.0.1:\(otherPort)/bc/notifications"
        try await Self.waitForListener(setup.url)
        try await Self.waitForListener(otherURL)
        setup.bank.setStatus(ids[0], "Rejected")
        setup.bank.setStatus(ids[1], "MissingFunding")
        #expect(try await Self.send([Self.notification(ids[0])], to: setup.url) == 200)
        #expect(try await Self.send([Self.notification(ids[1], type: "MissingFunding")], to: otherURL) == 200)
        #expect(await waitForEvent(setup.receiver, paymentId: ids[0], status: "Rejected", timeout: .seconds(20)) != nil)
        #expect(await waitForEvent(setup.receiver, paymentId: ids[1], status: "MissingFunding", timeout: .seconds(20)) != nil)
        _ = await second.stop()
        _ = await first.stop()
        #expect(setup.receiver.requests.filter { $0.type == "payment.status_changed" }.count == 2)
    }

    @Test func whatDoesNotDecryptOrVerifyIsRefusedAndRecordsNothing() async throws {
        let setup = try await Setup.start()
        defer { Task { await setup.stop() } }
        let ids = setup.harness.createPayments(2)
        let daemon = try RunDeliveryTests.Daemon(config: setup.path)
        try await setup.harness.waitForBaseline()
        try await Self.waitForListener(setup.url)
        setup.bank.setStatus(ids[0], "Rejected")
        let plaintext = try Self.plaintext([Self.notification(ids[0])])
        let sealed = try NotificationMessage.seal(plaintext, key: Secret(Self.key))
        func header(_ name: String) -> String { sealed.headers.first { $0.name == name }?.value ?? "" }
        func replacing(_ name: String, _ value: String) -> [(name: String, value: String)] {
            sealed.headers.map { $0.name == name ? (name, value) : $0 }
        }

        var changedByte = sealed.body
        changedByte[changedByte.count / 2] ^= 0x01
        var tag = Array(Data(base64Encoded: header("AuthenticationTag")) ?? Data())
        tag[0] ^= 0x01
        let otherKey = try NotificationMessage.seal(plaintext, key: Secret("ZYXWVUTSRQPONMLKJIHGFEDCBA987654"))
        let wrongChecksum = Data(SHA256.hash(data: Array("something else".utf8))).base64EncodedString()
        let cases: [(String, [UInt8], [(name: String, value: String)], String)] = [
            ("a changed byte", changedByte, sealed.headers, "does not decrypt"),
            ("a changed tag", sealed.body, replacing("AuthenticationTag", Data(tag).base64EncodedString()), "does not decrypt"),
            ("a wrong checksum", sealed.body, replacing("Checksum", wrongChecksum), "Checksum"),
            ("another key", otherKey.body, otherKey.headers, "does not decrypt"),
            ("no nonce", sealed.body, sealed.headers.filter { $0.name != "Nonce" }, "Nonce"),
        ]
        for (name, body, headers, reason) in cases {
            let answer = await Self.post(setup.url, body, headers: headers)
            #expect(answer?.0 == 400, "\(name)")
            #expect(answer?.1.contains(reason) == true, "\(name): \(answer?.1 ?? "")")
        }
        #expect(await Self.post("http://127.0.0.1:\(setup.port)/elsewhere", sealed.body, headers: sealed.headers)?.0 == 404)
        #expect(await Self.post(setup.url, [], headers: [], method: .get)?.0 == 405)
        #expect(await Self.post(setup.url, [], headers: [], method: .put)?.0 == 405)
        let huge = [UInt8](repeating: 0x41, count: 50_000_001)  // the contract says 50 MB
        #expect(await Self.post(setup.url, huge, headers: sealed.headers)?.0 == 413)

        // Nothing was recorded: the refused bodies named ids[0]; the sentinel is ids[1].
        // An authentic body with nothing paybridge can use is answered 200 (a 400 would have the
        // bank retry it for two days and deactivate the subscription) and records nothing.
        #expect(try await Self.send([["unknown": true, "payment": ["paymentId": ids[0]]]], to: setup.url) == 200)
        setup.bank.setStatus(ids[1], "Rejected")
        #expect(try await Self.send([Self.notification(ids[1])], to: setup.url) == 200)
        #expect(await waitForEvent(setup.receiver, paymentId: ids[1], status: "Rejected") != nil)
        let (status, log) = await daemon.stop()
        #expect(status == 0)
        #expect(!setup.receiver.requests.contains { $0.paymentId == ids[0] && $0.status == "Rejected" })
        #expect(log.contains("notification refused") && log.contains("127.0.0.1"), "\(log)")
        #expect(log.contains("without any eventId"), "\(log)")
        #expect(!log.contains(Self.key))
        #expect(!log.contains("5b0c7c1e"), "the plaintext stays out of the log")
        let store = try await setup.harness.openStore()
        defer { store.close() }
        #expect(try await store.pendingLookups() == 0)
    }

    /// `tls: {certificate, key}`: the listener speaks HTTPS, as the bank requires.
    @Test(.enabled(if: TLSTests.opensslAvailable, "needs openssl"))
    func theListenerServesHTTPSWithItsCertificate() async throws {
        let certificates = try await TLSTests.Certificates.make()
        let setup = try await Setup.start(extra: "    tls: { certificate: \(certificates.serverCertificate), key: \(certificates.serverKey) }")
        defer { Task { await setup.stop() } }
        let ids = setup.harness.createPayments(1)
        let daemon = try RunDeliveryTests.Daemon(config: setup.path)
        try await setup.harness.waitForBaseline()
        setup.bank.setStatus(ids[0], "Rejected")
        let sealed = try NotificationMessage.seal(try Self.plaintext([Self.notification(ids[0])]), key: Secret(Self.key))
        let http = CurlHTTPClient()
        defer { http.shutdown() }
        let https = "https://127.0.0.1:\(setup.port)/bc/notifications"
        var status: Int?
        let deadline = ContinuousClock.now + .seconds(20)
        while status == nil, ContinuousClock.now < deadline {
            let request = HTTPRequest(method: .post, url: https, headers: sealed.headers, body: sealed.body, tls: TLSOptions(caFile: certificates.ca))
            if case .success(let response) = await http.send(request) { status = response.status } else { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(status == 200)
        #expect(await waitForEvent(setup.receiver, paymentId: ids[0], status: "Rejected") != nil)
        // Plain HTTP to a TLS listener is no notification.
        #expect(await Self.post(setup.url, sealed.body, headers: sealed.headers)?.0 != 200)
        // The metrics count it.
        let metrics = await Self.post("http://127.0.0.1:\(setup.adminPort)/metrics", [], headers: [], method: .get)?.1 ?? ""
        #expect(metrics.contains(#"paybridge_notifications_received_total{outcome="accepted"} 1"#), "\(metrics)")
        #expect(metrics.contains("paybridge_notification_event_latency_seconds"))
        #expect(metrics.contains(#"paybridge_notification_lookups_total{outcome="ok"} 1"#))
        _ = await daemon.stop()
    }

    @Test func aSenderOutsideAllowFromIsRefused() async throws {
        let setup = try await Setup.start(extra: "    allowFrom: [10.0.0.0/8, 192.0.2.7]")
        defer { Task { await setup.stop() } }
        let ids = setup.harness.createPayments(1)
        let daemon = try RunDeliveryTests.Daemon(config: setup.path)
        try await Self.waitForListener(setup.url)
        #expect(try await Self.send([Self.notification(ids[0])], to: setup.url) == 403)
        // Counted with the other refusals (§10: received by outcome).
        let metrics = await Self.post("http://127.0.0.1:\(setup.adminPort)/metrics", [], headers: [], method: .get)?.1 ?? ""
        let rejected = metrics.split(separator: "\n").first { $0.hasPrefix(#"paybridge_notifications_received_total{outcome="rejected"} "#) }
        #expect((rejected?.split(separator: " ").last.flatMap { Int($0) } ?? 0) >= 1, "the listener's probe and the notification: \(metrics)")
        let (_, log) = await daemon.stop()
        #expect(log.contains("notification refused") && log.contains("allowFrom"), "\(log)")
    }

    /// A look-up lost to a crash right after the 200 is done after the restart.
    @Test(arguments: Backend.available)
    func aLookUpLeftByAKillIsDoneAfterTheRestart(backend: Backend) async throws {
        let setup = try await Setup.start(backend: backend)
        defer { Task { await setup.stop() } }
        let paymentId = try await leaveALookUpQueuedByAKill(setup)
        let again = try RunDeliveryTests.Daemon(config: setup.path)
        let event = await waitForEvent(setup.receiver, paymentId: paymentId, status: "Rejected", timeout: .seconds(30))
        #expect(event?.data["watch"] as? String == "notifications")
        let (status, log) = await again.stop()
        #expect(status == 0, "\(log)")
    }

    /// `poll --once` (from cron, no `run`) finishes the look-ups a killed `run` left too.
    @Test func aLookUpLeftByAKillIsDoneByPollOnce() async throws {
        let setup = try await Setup.start()
        defer { Task { await setup.stop() } }
        let paymentId = try await leaveALookUpQueuedByAKill(setup)
        let poll = try await Binary.run(["poll", "--once", "--config", setup.path])
        #expect(poll.status == 0, "\(poll.stderr)")
        let event = setup.receiver.requests.first { $0.paymentId == paymentId && $0.status == "Rejected" }
        #expect(event?.data["watch"] as? String == "notifications")
        let store = try await setup.harness.openStore()
        #expect(try await store.pendingLookups() == 0)
        store.close()
    }

    /// A `run` that answered a notification 200 and was killed while the bank was slow to
    /// answer its look-up; the bank then lists nothing, so only the queued look-up can find the
    /// change. Returns the payment's id.
    func leaveALookUpQueuedByAKill(_ setup: Setup) async throws -> String {
        let ids = setup.harness.createPayments(1)
        let daemon = try RunDeliveryTests.Daemon(config: setup.path)
        try await setup.harness.waitForBaseline()
        try await Self.waitForListener(setup.url)
        #expect(await setup.receiver.waitFor(count: 1))
        // The bank is slow to answer the look-up by id: the kill comes while it waits.
        setup.bank.setInterceptor { request in
            guard request.path.hasPrefix(BankingCircleClient.listPath + "/") else { return nil }
            var slow = SandboxResponse(status: 503)
            slow.delay = .seconds(5)
            return slow
        }
        setup.bank.setStatus(ids[0], "Rejected")
        #expect(try await Self.send([Self.notification(ids[0])], to: setup.url) == 200)
        kill(daemon.process.processIdentifier, SIGKILL)
        _ = await daemon.stop()
        let store = try await setup.harness.openStore()
        #expect(try await store.pendingLookups() == 1)
        store.close()
        setup.bank.setInterceptor { request in
            request.path == BankingCircleClient.listPath ? .json(200, #"{"result":[],"pageInfo":{"currentPage":1,"pageSize":1000,"rowCount":0}}"#) : nil
        }
        return ids[0]
    }

    /// The subscription watched: missing → `source.notifications.inactive` and `/readyz`
    /// 503 naming it; Active → `source.notifications.active`.
    @Test func anInactiveSubscriptionIsAnnouncedOnceAndReadyzSaysSo() async throws {
        let setup = try await Setup.start(checkEvery: "200ms")
        defer { Task { await setup.stop() } }
        _ = setup.harness.createPayments(1)
        let active = Mutex(false)
        setup.bank.setInterceptor { request in
            guard request.path == BankingCircleClient.subscriptionPath else { return nil }
            let status = active.withLock { $0 } ? 2 : 1
            let message = status == 2 ? "null" : #""deactivated after failed deliveries""#
            return .json(
                200,
                """
                [{"id":"sub-1","endpoint":"http://127.0.0.1:\(setup.port)/bc/notifications","status":\(status),"isActive":\(status == 2),
                  "statusMessage":\(message),"rowVersion":"AAAA","subscriptionEvents":[]}]
                """)
        }
        let daemon = try RunDeliveryTests.Daemon(config: setup.path)
        let inactive = await waitForType(setup.receiver, "source.notifications.inactive")
        #expect(inactive?.data["subscriptionId"] as? String == "sub-1")
        #expect(inactive?.data["status"] as? String == "Inactive")
        let readyz = await Self.post("http://127.0.0.1:\(setup.adminPort)/readyz", [], headers: [], method: .get)
        #expect(readyz?.0 == 503)
        #expect(readyz?.1.contains("notification subscription sub-1 is Inactive") == true, "\(readyz?.1 ?? "")")
        active.withLock { $0 = true }
        #expect(await waitForType(setup.receiver, "source.notifications.active") != nil)
        let (status, _) = await daemon.stop()
        #expect(status == 0)
        #expect(setup.receiver.requests.filter { $0.type == "source.notifications.inactive" }.count == 1)
        #expect(setup.receiver.requests.filter { $0.type == "source.notifications.active" }.count == 1)
    }

    func waitForType(_ receiver: TestReceiver, _ type: String, timeout: Duration = .seconds(15)) async -> TestReceiver.Received? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let found = receiver.requests.first(where: { $0.type == type }) { return found }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    @Test func validateRefusesAWatchNamedNotificationsAndAShortKey() async throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write(
            "pb.yaml",
            """
            source:
              kind: sandbox
              notifications:
                listen: 127.0.0.1:8443
                publicURL: https://bridge.example.com/bc/notifications
                key: tooshort
                events: [OutgoingPaymentRejected, NoSuchEvent]
              watches:
                - name: notifications
                  every: 30s
            endpoints:
              console:
                kind: console
            """)
        let result = try await Binary.run(["validate", "--config", path])
        #expect(result.status != 0)
        #expect(result.stderr.contains("pb.yaml:9:"), "\(result.stderr)")
        #expect(result.stderr.contains("'notifications' is reserved"), "\(result.stderr)")
        #expect(result.stderr.contains("must be exactly 32 characters"), "\(result.stderr)")
        #expect(result.stderr.contains("'NoSuchEvent' is not one of"), "\(result.stderr)")
        #expect(!result.stderr.contains("tooshort"))
    }
}

/// The wire format without a daemon.
struct NotificationMessageTests {
    let key = Secret(NotificationTests.key)

    @Test func readsArraysSingleObjectsEnvelopesAndUTF16() throws {
        let item = #"{"eventId":"e1","notificationType":"MissingFunding","payment":{"paymentId":"p1","extra":[1,2]},"unknown":true}"#
        for text in ["[\(item)]", item, #"{"notifications":[\#(item)]}"#] {
            let sealed = try NotificationMessage.seal(Array(text.utf8), key: key)
            let read = try NotificationMessage.open(
                sealed.body, nonce: sealed.headers[1].value, tag: sealed.headers[2].value, checksum: sealed.headers[3].value, key: key)
            #expect(read == [BankNotification(eventId: "e1", notificationType: "MissingFunding", paymentId: "p1")])
        }
        // UTF-16LE with a BOM; the checksum of the bytes as decrypted or of their UTF-8.
        let utf16: [UInt8] = [0xFF, 0xFE] + Array("[\(item)]".utf16).flatMap { unit -> [UInt8] in [UInt8(unit & 0xFF), UInt8(unit >> 8)] }
        let sealed = try NotificationMessage.seal(utf16, key: key)
        let utf8Checksum = Data(SHA256.hash(data: Array("[\(item)]".utf8))).base64EncodedString()
        for checksum in [sealed.headers[3].value, utf8Checksum] {
            let read = try NotificationMessage.open(sealed.body, nonce: sealed.headers[1].value, tag: sealed.headers[2].value, checksum: checksum, key: key)
            #expect(read.map(\.paymentId) == ["p1"])
        }
    }

    @Test func aNotificationWithoutAPaymentIsKeptWithoutATrigger() throws {
        let text = #"[{"eventId":"e2","notificationType":13,"payload":{"TransactionStatus":"ACSC"}},{"no":"eventId"}]"#
        let sealed = try NotificationMessage.seal(Array(text.utf8), key: key)
        let read = try NotificationMessage.open(sealed.body, nonce: sealed.headers[1].value, tag: sealed.headers[2].value, checksum: sealed.headers[3].value, key: key)
        #expect(read == [BankNotification(eventId: "e2", notificationType: "PaymentStatus", paymentId: nil)])
    }

    /// The bank's subscription list in each shape it has been seen in; its status in any case.
    @Test func subscriptionListsInEveryShape() throws {
        let item = #"{"id":"sub-1","endpoint":"https://pb.example/n","status":"active","subscriptionEvents":[{"eventType":13}]}"#
        for text in ["[\(item)]", item, #"{"result":[\#(item)]}"#, #"{"result":\#(item)}"#] {
            let found = try NotificationSubscription.parseList(Array(text.utf8))
            #expect(found.map(\.id) == ["sub-1"], "\(text)")
            #expect(found.first?.active == true, "\(text)")
        }
        #expect(try NotificationSubscription.parseList(Array(#"{"result":[]}"#.utf8)).isEmpty)
        #expect(try NotificationSubscription.parseList(Array(#"[{"id":"s","status":1,"isActive":true}]"#.utf8)).first?.active == false)
    }

    @Test func addressRanges() {
        let range = AddressRange("203.0.113.0/24")
        #expect(range?.contains("203.0.113.7") == true)
        #expect(range?.contains("::ffff:203.0.113.7") == true)
        #expect(range?.contains("203.0.114.7") == false)
        #expect(AddressRange("2001:db8::/32")?.contains("2001:db8:1::5") == true)
        #expect(AddressRange("2001:db8::/32")?.contains("203.0.113.7") == false)
        #expect(AddressRange("10.0.0.1")?.contains("10.0.0.1") == true)
        #expect(AddressRange("10.0.0.0/33") == nil)
        #expect(AddressRange("bank") == nil)
    }
}

/// The commands against the sandbox's self-service API, and the sandbox's own pushes to a
/// running `paybridge run`: the whole path as a user of the demo or the bank's sandbox sees it.
@Suite(.serialized) struct NotificationCommandTests {
    @Test func subscribeStatusAndTestThenTheSandboxPushesAChange() async throws {
        let setup = try await NotificationTests.Setup.start()
        defer { Task { await setup.stop() } }
        let ids = setup.harness.createPayments(1)

        let before = try await Binary.run(["notifications", "status", "--config", setup.path])
        #expect(before.status == 0, "\(before.stderr)")
        #expect(before.stdout.contains("status: Missing (no subscription at the bank for \(setup.url))"), "\(before.stdout)")

        let subscribed = try await Binary.run(["notifications", "subscribe", "--config", setup.path])
        #expect(subscribed.status == 0, "\(subscribed.stderr)")
        #expect(subscribed.stdout.contains("created for \(setup.url)"), "\(subscribed.stdout)")
        #expect(subscribed.stdout.contains("OutgoingPaymentRejected"), "\(subscribed.stdout)")
        let again = try await Binary.run(["notifications", "subscribe", "--config", setup.path])
        #expect(again.stdout.contains("updated for \(setup.url)"), "\(again.stdout)")
        #expect(!again.stdout.contains("added:"), "no event twice: \(again.stdout)")
        // Changes went with the row version the bank gave (If-Match).
        #expect(setup.bank.requests.contains { $0.method == "PUT" && $0.headers["if-match"] != nil })

        let status = try await Binary.run(["notifications", "status", "--config", setup.path, "--json"])
        #expect(status.status == 0, "\(status.stderr)")
        let json = (try? JSONSerialization.jsonObject(with: Data(status.stdout.utf8))) as? [String: Any]
        #expect(json?["status"] as? String == "Active", "\(status.stdout)")
        #expect(json?["active"] as? Bool == true)
        #expect(json?["endpoint"] as? String == setup.url)
        #expect(Set(json?["events"] as? [String] ?? []) == Set(NotificationsConfiguration.defaultEvents))
        #expect(!status.stdout.contains(NotificationTests.key) && !status.stderr.contains(NotificationTests.key))

        let daemon = try RunDeliveryTests.Daemon(config: setup.path)
        try await setup.harness.waitForBaseline()
        try await NotificationTests.waitForListener(setup.url)
        // The sandbox pushes the change itself; the watch polls once an hour.
        setup.bank.setStatus(ids[0], "Rejected")
        let event = await NotificationTests().waitForEvent(setup.receiver, paymentId: ids[0], status: "Rejected")
        #expect(event?.data["watch"] as? String == "notifications")

        let test = try await Binary.run(["notifications", "test", "--config", setup.path])
        #expect(test.status == 0, "\(test.stderr)")
        #expect(test.stdout.contains("asked the bank for a test notification"), "\(test.stdout)")
        let deadline = ContinuousClock.now + .seconds(10)
        var log = ""
        while ContinuousClock.now < deadline, setup.bank.notificationsSent().filter(\.succeeded).count < 2 {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(setup.bank.notificationsSent().filter(\.succeeded).count >= 2)
        (_, log) = await daemon.stop()
        #expect(log.contains("notifications received"), "\(log)")
        #expect(!setup.receiver.requests.contains { $0.type == "source.notifications.inactive" }, "the subscription was Active")
    }

    @Test func commandsWithoutNotificationsInTheConfigSaySo() async throws {
        let harness = try await Harness.start()
        defer { Task { await harness.stop() } }
        let path = try harness.directory.write(
            "pb.yaml", Fixtures.config(bankURL: harness.bank.url, state: harness.state, endpoints: Fixtures.endpoint("erp", url: "http://127.0.0.1:9/hook")))
        let result = try await Binary.run(["notifications", "subscribe", "--config", path])
        #expect(result.status == 1)
        #expect(result.stderr.contains("no source.notifications"), "\(result.stderr)")
    }
}
