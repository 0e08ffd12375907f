import ArgumentParser
import Foundation
import GRDB
import PayBridge

/// B6: the bank's notifications as a fast path. 1,000 payments change at 20/s; for each, the
/// bank's notification is sealed and POSTed to `paybridge run` (`every: 1h`, so only the
/// notification can find the change) and the time from sending it to the endpoint's 2xx is
/// measured. Beside it, the same changes with polling alone (`every: 30s`).
struct NotificationLatency: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "b6", abstract: "B6 notification → 2xx: 1,000 notifications at 20/s, beside polling alone every 30 s.")

    @Option var notifications = 1000
    @Option(help: "Notifications (and changes) per second.") var rate = 20
    @Option(help: "The poll-only comparison's interval, in seconds (0: skip it).") var pollEvery = 30

    static let key = "b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6"

    func run() async throws {
        let environment = try await Environment.start(payments: notifications)
        let (bank, nginx) = (environment.bank, environment.nginx)
        let http = CurlHTTPClient()
        defer { http.shutdown() }

        // With notifications: the watch polls once (the baseline), then only notifications.
        let port = try Bench.freePort()
        let listener = "http://127.0.0.1:\(port)/bc/notifications"
        let run = try Run(
            bank: bank.url, receiver: nginx.url, every: "1h", concurrency: 64,
            notifications: """
                  notifications:
                    listen: 127.0.0.1:\(port)
                    publicURL: \(listener)
                    key: \(Self.key)
                    checkEvery: 1h
                """)
        _ = try await run.pollOnce(label: "b6-baseline")
        let child = try Child.spawn(
            Bench.paybridge, ["run", "--config", run.config], output: Bench.file("b6-run.log"), environment: ["PAYBRIDGE_LOG_LEVEL": "warning"])
        try await waitForListener(listener, http: http)
        let sent = try await drive(bank: bank, http: http, notifyTo: listener)
        try await waitForDeliveries(run, count: notifications, timeout: 30)
        child.signal(SIGTERM)
        let exit = await child.wait()
        let notified = try latencies(run, since: sent)

        print("B6 notification → 2xx: \(notifications) notifications at \(rate)/s, each a status change of its payment")
        print("  delivered          \(notified.count) of \(notifications)")
        print("  notification → 2xx p50 \(ms(Bench.percentile(notified, 0.5)))  p99 \(ms(Bench.percentile(notified, 0.99)))  max \(ms(notified.last ?? .nan))")
        print("  CPU                \(String(format: "%.0f %% of one core", exit.cpuSeconds / exit.seconds * 100))  peak RSS \(String(format: "%.1f MiB", exit.peakRSS))")

        if pollEvery > 0 {
            let polled = try Run(bank: bank.url, receiver: nginx.url, every: "\(pollEvery)s", concurrency: 64)
            _ = try await polled.pollOnce(label: "b6-poll-baseline")
            let child = try Child.spawn(
                Bench.paybridge, ["run", "--config", polled.config], output: Bench.file("b6-poll-run.log"),
                environment: ["PAYBRIDGE_LOG_LEVEL": "warning"])
            try await Task.sleep(for: .seconds(1))
            let changed = try await drive(bank: bank, http: http, notifyTo: nil)
            try await waitForDeliveries(polled, count: notifications, timeout: Double(pollEvery) * 2 + 10)
            child.signal(SIGTERM)
            _ = await child.wait()
            let polling = try latencies(polled, since: changed)
            print("  polling alone (every: \(pollEvery)s), change → 2xx: p50 \(ms(Bench.percentile(polling, 0.5)))  p99 \(ms(Bench.percentile(polling, 0.99)))  (\(polling.count) delivered)")
        }
        await environment.stop()
    }

    /// Changes payment after payment at `rate`; with `notifyTo`, sends each one's notification
    /// at once. Returns when each was sent (or changed), by payment id.
    func drive(bank: BankProcess, http: CurlHTTPClient, notifyTo listener: String?) async throws -> [String: Double] {
        var sent: [String: Double] = [:]
        let clock = ContinuousClock()
        var next = clock.now
        for index in 0..<notifications {
            guard case .success(let moved) = await http.send(HTTPRequest(method: .post, url: bank.url + "/bench/move?index=\(index)")) else {
                throw BenchError("the bench bank did not move payment \(index)")
            }
            let paymentId = String(decoding: moved.body, as: UTF8.self)
            let at = Date().timeIntervalSince1970
            if let listener {
                let plaintext = Array(
                    #"[{"eventId":"\#(UUID().uuidString.lowercased())","notificationType":"OutgoingPaymentProcessed","payment":{"paymentId":"\#(paymentId)"}}]"#.utf8)
                let sealed = try NotificationMessage.seal(plaintext, key: Secret(Self.key))
                guard case .success(let answer) = await http.send(HTTPRequest(method: .post, url: listener, headers: sealed.headers, body: sealed.body)),
                    answer.status == 200
                else { throw BenchError("paybridge refused notification \(index)") }
            }
            sent[paymentId] = at
            next += .milliseconds(1000 / rate)
            try await clock.sleep(until: next)
        }
        return sent
    }

    func waitForListener(_ url: String, http: CurlHTTPClient) async throws {
        for _ in 0..<600 {
            if case .success = await http.send(HTTPRequest(method: .get, url: url)) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BenchError("paybridge's notification listener did not start")
    }

    func waitForDeliveries(_ run: Run, count: Int, timeout: Double) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? run.count("SELECT COUNT(*) FROM delivery WHERE state = 'delivered'")) ?? 0 >= count { return }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Seconds from each payment's `since` time to its delivery's 2xx, sorted.
    func latencies(_ run: Run, since: [String: Double]) throws -> [Double] {
        let delivered = try run.database().read { db in
            try Row.fetchAll(db, sql: "SELECT subject, delivered_at FROM delivery WHERE delivered_at IS NOT NULL")
                .map { (subject: $0[0] as String, at: $0[1] as Double) }
        }
        return delivered.compactMap { row in since[row.subject].map { row.at - $0 } }.sorted()
    }
}
