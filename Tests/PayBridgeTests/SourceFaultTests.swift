import Foundation
import Sandbox
import Synchronization
import Testing

@testable import PayBridge

/// The bank failing: outages announced once, backoff, recovery, and no false events from
/// pages that drift while paybridge reads them.
@Suite(.serialized) struct SourceFaultTests {
    @Test func anOutageIsAnnouncedOnceAndItsEndToo() async throws {
        let harness = try await Harness.start()
        // The bridges' time: only the test moves it.
        let clock = ManualClock(Date())
        let ops = try await TestReceiver.start()
        _ = harness.createPayments(2)
        let text = Fixtures.config(
            bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("ops", url: ops.url),
            routes: "  - when: { type: [source.unavailable, source.recovered] }\n    to: [ops]",
            extraSource: "  unavailableAfter: 300ms")
        let bridge = try await harness.bridge(text, clock: clock.clock)
        _ = await bridge.pollOnce()
        harness.bank.bank.setInterceptor { request in request.path.hasPrefix("/api/v1/payments") ? .json(503, "{}") : nil }
        for _ in 0..<4 {
            _ = await bridge.pollOnce()
            clock.advance(by: 0.15)
        }
        #expect(ops.requests.map(\.type) == ["source.unavailable"])
        #expect(await !bridge.source.isAvailable)
        let error = ops.requests.first?.data["error"] as? String ?? ""
        #expect(error.contains("HTTP 503") && error.contains("request id "))
        harness.bank.bank.setInterceptor(nil)
        _ = await bridge.pollOnce()
        _ = await bridge.pollOnce()
        #expect(ops.requests.map(\.type) == ["source.unavailable", "source.recovered"])
        #expect(ops.requests.last?.data["since"] as? String == ops.requests.first?.data["since"] as? String)
        bridge.close()

        // A restart during an outage does not announce it again.
        harness.bank.bank.setInterceptor { request in request.path.hasPrefix("/api/v1/payments") ? .json(503, "{}") : nil }
        let first = try await harness.bridge(text, clock: clock.clock)
        _ = await first.pollOnce()
        clock.advance(by: 0.35)
        _ = await first.pollOnce()
        first.close()
        let second = try await harness.bridge(text, clock: clock.clock)
        _ = await second.pollOnce()
        #expect(ops.requests.map(\.type) == ["source.unavailable", "source.recovered", "source.unavailable"])
        second.close()
        await ops.stop()
        await harness.stop()
    }

    @Test func aFiveHundredStormMakesRunBackOffThenRecover() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let ids = harness.createPayments(2)
        let text = Fixtures.config(
            bankURL: harness.bank.url, state: harness.statePath, endpoints: Fixtures.endpoint("erp", url: receiver.url),
            extraSource: "  maxBackoff: 800ms"
        ).replacingOccurrences(of: "every: 1s", with: "every: 100ms").replacingOccurrences(of: "retries: 1", with: "retries: 0")
        let path = try harness.directory.write("pb.yaml", text)
        let (process, _, _) = try Binary.start(["run", "--config", path])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        for _ in 0..<100 where harness.bank.paymentRequests.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        let storm = Mutex<[Date]>([])
        harness.bank.bank.setInterceptor { request in
            guard request.path.hasPrefix("/api/v1/payments") else { return nil }
            storm.withLock { $0.append(request.receivedAt) }
            return .json(500, #"{"errorCode":"Internal"}"#)
        }
        // Six polls into the storm: without backoff a 100 ms watch asks every 0.1 s; backing off
        // it waits 0.2, 0.4, 0.8, 0.8 … s (never more than maxBackoff, 800 ms).
        try await until("six polls during the storm") { storm.withLock { $0.count } >= 6 }
        let times = storm.withLock { $0 }
        let waits = zip(times.dropFirst(), times).map { $0.timeIntervalSince($1) }
        #expect(waits.count >= 5)
        if waits.count >= 5 {
            // A wait runs from its poll's start, and the request comes a little into the poll:
            // the bounds leave room for that. Without backoff the five waits add up to 0.5 s.
            #expect(waits.prefix(5).reduce(0, +) >= 1.8 && waits[2] >= 0.5 && waits[3] >= 0.5, "backs off: \(waits)")
            #expect(waits.max() ?? 0 < 3, "up to maxBackoff (with room for a slow machine): \(waits)")
        }
        harness.bank.bank.setInterceptor(nil)
        harness.bank.bank.setStatus(ids[0], "Rejected")
        #expect(await receiver.waitFor(count: 1, timeout: .seconds(5)))
        process.terminate()
        #expect(await Binary.exitStatus(of: process) == 0)
        #expect(receiver.requests.map(\.paymentId) == [ids[0]])  // no false events from the storm
        await receiver.stop()
        await harness.stop()
    }

    @Test func pagesThatDriftWhilePagingMakeNoFalseEvents() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let ids = harness.createPayments(25)
        let bridge = try await harness.bridge(
            Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, pageSize: 10, endpoints: Fixtures.endpoint("erp", url: receiver.url)))
        _ = await bridge.pollOnce()

        // New payments arrive (newest first: they push everything down a page) and others
        // vanish from the window, between the requests for page 1 and page 2.
        let bank = harness.bank.bank
        let added = Mutex<[String]>([])
        let drifted = Mutex(false)
        bank.setInterceptor { request in
            guard request.queryValue("PageNumber") == "2" else { return nil }
            let first = drifted.withLock { done -> Bool in
                defer { done = true }
                return !done
            }
            guard first else { return nil }
            let new = (0..<3).map { _ in bank.createPayment(amount: 5, status: "PendingProcessing") }
            added.withLock { $0 = new }
            bank.removePayment(ids[0])
            bank.removePayment(ids[24])
            return nil
        }
        let drift = await bridge.pollOnce()
        #expect(added.withLock { $0.count } == 3)
        #expect(drift.failures.isEmpty)
        #expect(drift.reports.first?.pages == 3)
        #expect(drift.reports.first?.events == 0)
        #expect(receiver.requests.isEmpty)

        bank.setInterceptor(nil)
        _ = await bridge.pollOnce()
        #expect(receiver.requests.count == 3)
        #expect(Set(receiver.requests.map(\.paymentId)) == Set(added.withLock { $0 }))
        #expect(receiver.requests.allSatisfy { $0.type == "payment.created" })
        bridge.close()
        await receiver.stop()
        await harness.stop()
    }
}

@Suite(.serialized) struct RetentionTests {
    @Test func deliveredEventsArePrunedDeadLettersKeptUntilReplayedOrPurged() async throws {
        // The first attempt for ids[0] fails and is retried; Rejected always fails and dies.
        let scenario = try await Scenario.start(payments: 3, retry: "[50ms]")
        let first = scenario.ids[0]
        let failedOnce = Mutex(false)
        scenario.receiver.setResponder { request, _ in
            if request.status == "Rejected" { return .status(500) }
            if request.paymentId == first, !failedOnce.withLock({ done in defer { done = true }; return done }) { return .status(500) }
            return .ok
        }
        _ = await scenario.bridge.pollOnce()
        scenario.bank.setStatus(scenario.ids[0], "Processed")
        scenario.bank.setStatus(scenario.ids[1], "Processed")
        scenario.bank.setStatus(scenario.ids[2], "Rejected")
        _ = await scenario.bridge.pollOnce()
        try await Task.sleep(for: .milliseconds(100))
        await scenario.bridge.deliverDue()
        let store = scenario.bridge.store
        #expect(try await store.deliveryCounts()["erp"] == [.delivered: 2, .dead: 1])

        // Within the retention period nothing goes; after it, delivered events and their logs do.
        #expect(await scenario.bridge.prune(now: Date().addingTimeInterval(29 * 86400)) == PruneReport())
        let report = try #require(await scenario.bridge.prune(now: Date().addingTimeInterval(31 * 86400)))
        #expect(report == PruneReport(deliveries: 2, attempts: 2, events: 2))
        #expect(try await store.deliveryCounts()["erp"] == [.dead: 1])

        // The dead letter stays until replayed…
        scenario.receiver.setResponder { _, _ in .ok }
        let dead = try await #require(try store.deliveries(endpoint: "erp", state: .dead, limit: 1).first)
        #expect(try await store.replay(ids: [dead.id], at: Date()) == [dead.id])
        await scenario.bridge.deliverDue()
        #expect(scenario.receiver.requests.last?.webhookId == dead.eventId)
        #expect(try await store.deliveryCounts()["erp"] == [.delivered: 1])

        // …or purged.
        scenario.bank.setStatus(scenario.ids[2], "Reversed")
        scenario.receiver.setResponder { _, _ in .status(500) }
        _ = await scenario.bridge.pollOnce()
        try await Task.sleep(for: .milliseconds(100))
        await scenario.bridge.deliverDue()
        #expect(try await store.purgeDead(endpoint: "erp", before: Date().addingTimeInterval(1)) == 1)
        #expect(try await store.deliveryCounts()["erp"] == [.delivered: 1])
        await scenario.stop()
    }

    @Test func operatorsReplayAndPurgeFromTheCommandLine() async throws {
        let scenario = try await Scenario.start(payments: 2, retry: "[]") { _, _ in .status(503) }
        let path = try scenario.harness.directory.write(
            "pb.yaml", Fixtures.config(bankURL: scenario.harness.bank.url, state: scenario.harness.statePath, endpoints: Fixtures.endpoint("erp", url: scenario.receiver.url, retry: "[]")))
        _ = await scenario.bridge.pollOnce()
        for id in scenario.ids { scenario.bank.setStatus(id, "Rejected") }
        _ = await scenario.bridge.pollOnce()
        let listed = try await Binary.run(["deliveries", "list", "--config", path, "--state", "dead"])
        #expect(listed.stdout.contains("erp: pending=0 delivered=0 dead=2"))
        #expect(listed.stdout.contains("payment.status_changed"))
        let dead = try await scenario.bridge.store.deliveries(endpoint: "erp", state: .dead, limit: 10)
        let replayed = try await Binary.run(["deliveries", "replay", "--config", path, "--id", "\(dead[0].id)"])
        #expect(replayed.stdout.contains("1 delivery queued again"), "\(replayed.stdout)\(replayed.stderr)")
        let dryRun = try await Binary.run(["deliveries", "purge", "--config", path, "--endpoint", "erp"])
        #expect(dryRun.stdout.contains("would delete 1 dead delivery of erp; add --yes to do it"), "\(dryRun.stdout)")
        let dryJSON = try await Binary.run(["deliveries", "purge", "--config", path, "--endpoint", "erp", "--json"])
        let dryObject = try JSONSerialization.jsonObject(with: Data(dryJSON.stdout.utf8)) as? [String: Any]
        #expect(dryObject?["dryRun"] as? Bool == true && dryObject?["ids"] as? [Int] == [Int(dead[1].id)], "\(dryJSON.stdout)")
        let purged = try await Binary.run(["deliveries", "purge", "--config", path, "--endpoint", "erp", "--yes", "--json"])
        let purgedObject = try JSONSerialization.jsonObject(with: Data(purged.stdout.utf8)) as? [String: Any]
        #expect(purgedObject?["deleted"] as? Int == 1 && purgedObject?["dryRun"] as? Bool == false, "\(purged.stdout)")
        #expect(try await scenario.bridge.store.deliveryCounts()["erp"] == [.pending: 1])
        await scenario.stop()
    }
}

@Suite(.serialized) struct PagingTests {
    @Test func aBankThatIgnoresPageNumberFailsThePollInsteadOfLooping() async throws {
        let scenario = try await Scenario.start(payments: 25, pageSize: 10)
        let harness = scenario.harness
        // Answer every page with page 1.
        scenario.bank.setInterceptor { request in
            guard request.path.hasSuffix("/singles"), request.queryValue("PageNumber") != "1" else { return nil }
            var query = request.query.filter { $0.name != "PageNumber" }
            query.append(("PageNumber", "1"))
            let rewritten = SandboxRequest(method: request.method, path: request.path, query: query, headers: request.headers, receivedAt: request.receivedAt)
            return harness.bank.bank.handleWithoutInterceptor(rewritten)
        }
        let result = await scenario.bridge.pollOnce()
        #expect(result.failures.first.map { "\($0)".contains("pages 2 and 3 repeat page 1: the bank seems to ignore PageNumber") } == true)
        #expect(harness.bank.paymentRequests.count <= 4)
        await scenario.stop()
    }

    /// As many payments inserted between two page calls as a page holds: the next page repeats
    /// the one before. Drift, not a bank ignoring PageNumber: the poll goes on to the end.
    @Test func onePageRepeatedByDriftIsNotAFailure() async throws {
        let harness = try await Harness.start()
        _ = harness.createPayments(25)
        // From page 2 on, every page is the one before it: the set moved by one page.
        harness.bank.bank.setInterceptor { request in
            guard request.path.hasSuffix("/singles"), let number = request.queryValue("PageNumber").flatMap(Int.init), number > 1 else { return nil }
            var query = request.query.filter { $0.name != "PageNumber" }
            query.append(("PageNumber", "\(number - 1)"))
            let rewritten = SandboxRequest(method: request.method, path: request.path, query: query, headers: request.headers, receivedAt: request.receivedAt)
            return harness.bank.bank.handleWithoutInterceptor(rewritten)
        }
        // Through the binary, as operators poll: the whole poll succeeds, four pages read.
        let path = try harness.directory.write(
            "pb.yaml",
            Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, pageSize: 10, endpoints: Fixtures.endpoint("erp", url: "http://127.0.0.1:9/x")))
        let poll = try await Binary.run(["poll", "--once", "--config", path])
        #expect(poll.status == 0, "\(poll.stderr)")
        #expect(!poll.stderr.contains("ignore PageNumber"), "\(poll.stderr)")
        #expect(harness.bank.paymentRequests.count == 4, "pages 1, 2 (a repeat), 3, 4 (short)")
        await harness.stop()
    }

    /// Stale copies of two payments (another status, an older `latestStatusChangedTimestamp`,
    /// as a lagging replica lists them) on page 2 of the poll that sees them change: one on a
    /// later page than its fresh copy, one on the same page before it. One event each, the
    /// fresh status, and the state keeps it (§3: seen twice, counts once).
    @Test func aStaleCopyOfAPaymentIsNotASecondChange() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let ids = harness.createPayments(15)  // newest first: the last on page 1, the first on page 2
        let path = try harness.directory.write(
            "pb.yaml", Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, pageSize: 10, endpoints: Fixtures.endpoint("erp", url: receiver.url)))
        #expect(try await Binary.run(["poll", "--once", "--config", path]).status == 0)
        let bank = harness.bank.bank
        let changed = try [#require(ids.last), #require(ids.first)]
        let stale = try changed.map { id in
            try #require(bank.json(of: id)).replacingOccurrences(of: #""status":"\#(bank.statuses()[id] ?? "")""#, with: #""status":"Rejected""#)
        }
        for id in changed { bank.setStatus(id, "Processed") }
        bank.setInterceptor { request in
            guard request.path.hasSuffix("/singles"), request.queryValue("PageNumber") == "2" else { return nil }
            let answer = bank.handleWithoutInterceptor(request)
            let text = String(decoding: answer.body, as: UTF8.self)
                .replacingOccurrences(of: #"{"result":["#, with: #"{"result":["# + stale.joined(separator: ",") + ",")
            return .json(answer.status, text)
        }
        let poll = try await Binary.run(["poll", "--once", "--config", path])
        #expect(poll.status == 0, "\(poll.stderr)")
        let sent = receiver.requests.map { "\($0.paymentId) \($0.data["status"] ?? "")" }
        #expect(Set(sent) == Set(changed.map { "\($0) Processed" }) && sent.count == 2, "\(sent)")
        for id in changed {
            let shown = try await Binary.run(["payments", "show", id, "--json", "--config", path])
            let payment = (try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any])?["payment"] as? [String: Any]
            #expect(payment?["status"] as? String == "Processed", "\(shown.stdout)")
        }
        await receiver.stop()
        await harness.stop()
    }

    /// A bank that answers fewer payments than PageSize asks for, and says so in
    /// `pageInfo.pageSize`, is paged by what it answers: the payments past its first page are
    /// read, and their changes sent.
    @Test func aBankThatCapsThePageSizeIsPagedByWhatItAnswers() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let ids = harness.createPayments(25)
        Self.capPages(of: harness.bank.bank, at: 4, echo: true)
        let path = try harness.directory.write(
            "pb.yaml", Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, pageSize: 10, endpoints: Fixtures.endpoint("erp", url: receiver.url)))
        let baseline = try await Binary.run(["poll", "--once", "--config", path])
        #expect(baseline.status == 0, "\(baseline.stderr)")
        #expect(baseline.stderr.contains("the bank answers pages of 4 payments, fewer than the pageSize asked for"), "\(baseline.stderr)")
        // The oldest payment: the sandbox lists newest first, so it is on the last page.
        let oldest = try #require(ids.first)
        harness.bank.bank.setStatus(oldest, harness.bank.bank.statuses()[oldest] == "Rejected" ? "Processed" : "Rejected")
        #expect(try await Binary.run(["poll", "--once", "--config", path]).status == 0)
        #expect(receiver.requests.map(\.paymentId) == [oldest])
        await receiver.stop()
        await harness.stop()
    }

    /// The same bank saying nothing of it: the pages end early, and the poll says that the
    /// bank counts more payments than were read.
    @Test func pagesEndingBeforeTheBanksRowCountAreAWarning() async throws {
        let harness = try await Harness.start()
        _ = harness.createPayments(25)
        Self.capPages(of: harness.bank.bank, at: 4, echo: false)
        let path = try harness.directory.write(
            "pb.yaml",
            Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, pageSize: 10, endpoints: Fixtures.endpoint("erp", url: "http://127.0.0.1:9/x")))
        let poll = try await Binary.run(["poll", "--once", "--config", path, "--log-format", "json"])
        #expect(poll.status == 0, "\(poll.stderr)")
        let warning = poll.stderr.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .first { ($0["message"] as? String)?.hasPrefix("the bank counts more payments than its pages held") == true }
        #expect(warning?["rowCount"] as? Int == 25 && warning?["read"] as? Int == 4, "\(poll.stderr)")
        await harness.stop()
    }

    /// Answers every page of payments with at most `cap` of them, as the bank's own page of
    /// that size; `echo: false` keeps the PageSize asked for in `pageInfo`.
    static func capPages(of bank: SandboxBank, at cap: Int, echo: Bool) {
        bank.setInterceptor { request in
            guard request.path.hasSuffix("/singles"), let asked = request.queryValue("PageSize").flatMap(Int.init), asked > cap else { return nil }
            var query = request.query.filter { $0.name != "PageSize" }
            query.append(("PageSize", "\(cap)"))
            let answer = bank.handleWithoutInterceptor(
                SandboxRequest(method: request.method, path: request.path, query: query, headers: request.headers, receivedAt: request.receivedAt))
            guard !echo else { return answer }
            let text = String(decoding: answer.body, as: UTF8.self).replacingOccurrences(of: #""pageSize":\#(cap)"#, with: #""pageSize":\#(asked)"#)
            return .json(answer.status, text)
        }
    }

    @Test func aCurrentPageThatDoesNotEchoIsOnlyAWarning() async throws {
        let scenario = try await Scenario.start(payments: 25, pageSize: 10)
        let bank = scenario.bank
        bank.setInterceptor { request in
            guard request.path.hasSuffix("/singles") else { return nil }
            let answer = bank.handleWithoutInterceptor(request)
            let text = String(decoding: answer.body, as: UTF8.self)
                .replacingOccurrences(of: #""currentPage":\d+"#, with: #""currentPage":0"#, options: .regularExpression)
            return .json(answer.status, text)
        }
        let result = await scenario.bridge.pollOnce()
        #expect(result.failures.isEmpty)
        #expect(result.reports.first?.payments == 25)
        await scenario.stop()
    }
}

@Suite(.serialized) struct BankTimeoutTests {
    func scenario(slowAttempts: Int) async throws -> (Scenario, Counter) {
        let scenario = try await Scenario.start(payments: 3)
        let calls = Counter()
        let bank = scenario.bank
        bank.setInterceptor { request in
            // The first `slowAttempts` list calls answer well after the 1 s timeout (a delayed
            // answer: a thread held asleep here would starve the in-process bank's other
            // answers). The timeout is not shorter: it bounds the token request too, and at the
            // suite's start, with every test starting on two cores, the in-process bank has
            // taken longer than 300 ms to answer it.
            guard request.path.hasSuffix("/singles"), calls.next() < slowAttempts else { return nil }
            var answer = bank.handleWithoutInterceptor(request)
            answer.delay = .milliseconds(2500)
            return answer
        }
        return (scenario, calls)
    }

    func withTimeout(_ scenario: Scenario) async throws -> Bridge {
        let text = Fixtures.config(
            bankURL: scenario.harness.bank.url, state: scenario.harness.directory.file("state-timeouts"),
            endpoints: Fixtures.endpoint("erp", url: scenario.receiver.url), extraSource: "  timeout: 1s")
        return try await scenario.harness.bridge(text)
    }

    @Test func aSlowPageIsRetriedWithAFreshRequestId() async throws {
        let (scenario, _) = try await scenario(slowAttempts: 1)
        let bridge = try await withTimeout(scenario)
        let result = await bridge.pollOnce()
        #expect(result.failures.isEmpty, "\(result.failures)")
        #expect(result.reports.first?.recorded == 3)
        let lists = scenario.harness.bank.paymentRequests.filter { $0.path.hasSuffix("/singles") }
        #expect(lists.count == 2)
        #expect(Set(lists.compactMap { $0.headers["x-request-id"] }).count == 2)
        bridge.close()
        await scenario.stop()
    }

    @Test func pagesThatAlwaysTimeOutFailThePollWithoutEvents() async throws {
        let (scenario, _) = try await scenario(slowAttempts: 1000)
        let bridge = try await withTimeout(scenario)
        let result = await bridge.pollOnce()
        let message = result.failures.first.map { "\($0)" } ?? ""
        #expect(message.contains("timed out") && message.contains("request id ") && message.contains("after 2 attempts"), "\(message)")
        #expect(scenario.receiver.requests.isEmpty)
        #expect(try await bridge.store.paymentStates(for: scenario.ids).isEmpty)
        bridge.close()
        await scenario.stop()
    }
}
