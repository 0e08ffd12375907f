import Foundation
import Sandbox
import Testing

@testable import PayBridge

/// The whole path through the library entry point: sandbox bank on 127.0.0.1 → poll →
/// SQLite in a temp folder → signed deliveries to a receiver on 127.0.0.1.
@Suite(.serialized) struct EndToEndTests {
    @Test(arguments: Backend.available)
    func baselineIsSilentAcrossPagesThenExactEventsThenNothing(backend: Backend) async throws {
        let scenario = try await Scenario.start(payments: 25, pageSize: 10, backend: backend)
        let (harness, receiver, bridge, ids) = (scenario.harness, scenario.receiver, scenario.bridge, scenario.ids)

        let baseline = await bridge.pollOnce()
        #expect(baseline.failures.isEmpty)
        #expect(baseline.reports.first?.pages == 3)
        #expect(baseline.reports.first?.recorded == 25)
        #expect(baseline.reports.first?.events == 0)
        #expect(receiver.requests.isEmpty)
        let pages = harness.bank.paymentRequests.compactMap { $0.queryValue("PageNumber") }
        #expect(pages == ["1", "2", "3"])
        #expect(harness.bank.paymentRequests.allSatisfy { $0.queryValue("PageSize") == "10" })

        harness.bank.bank.setStatus(ids[3], "Rejected")
        harness.bank.bank.setStatus(ids[17], "Processed")
        let newId = harness.bank.bank.createPayment(amount: 19, status: "PendingProcessing")
        let changed = await bridge.pollOnce()
        #expect(changed.failures.isEmpty)
        #expect(changed.reports.first?.created == 1)
        #expect(changed.reports.first?.changed == 2)
        let received = receiver.requests
        #expect(received.count == 3)
        let byPayment = Dictionary(uniqueKeysWithValues: received.map { ($0.paymentId, $0) })
        #expect(byPayment[ids[3]]?.type == "payment.status_changed")
        #expect(byPayment[ids[3]]?.status == "Rejected")
        #expect(byPayment[ids[3]]?.data["previousStatus"] as? String == "PendingProcessing")
        #expect(byPayment[ids[17]]?.status == "Processed")
        #expect(byPayment[newId]?.type == "payment.created")
        #expect(byPayment[newId]?.data["previousStatus"] is NSNull)
        #expect(byPayment[newId]?.data["watch"] as? String == "recent")
        for request in received {
            // The payment object is the bank's, byte for byte (amounts like 19.00, 7-digit fractions, nulls).
            #expect(request.rawPayment == harness.bank.bank.json(of: request.paymentId))
            #expect(request.webhookId.hasPrefix("evt_"))
            #expect(request.headers["content-type"] == "application/json")
            #expect(request.headers["user-agent"] == "paybridge/\(PayBridgeVersion.string)")
        }
        #expect(byPayment[newId]?.rawPayment.contains("\"amount\":19.00") == true)

        let again = await bridge.pollOnce()
        #expect(again.reports.first?.events == 0)
        #expect(receiver.requests.count == 3)
        await scenario.stop()
    }

    @Test func routesByStatus() async throws {
        let harness = try await Harness.start()
        let erp = try await TestReceiver.start()
        let alerts = try await TestReceiver.start()
        let ids = harness.createPayments(4)
        let bridge = try await harness.bridge(
            Fixtures.config(
                bankURL: harness.bank.url, state: harness.statePath,
                endpoints: Fixtures.endpoint("erp", url: erp.url) + Fixtures.endpoint("alerts", url: alerts.url),
                routes: """
                      - to: [erp]
                      - when: { status: [Rejected, MissingFunding] }
                        to: [alerts, erp]
                    """))
        _ = await bridge.pollOnce()
        harness.bank.bank.setStatus(ids[0], "Rejected")
        harness.bank.bank.setStatus(ids[1], "MissingFunding")
        harness.bank.bank.setStatus(ids[2], "Processed")
        _ = await bridge.pollOnce()
        #expect(Set(erp.requests.map(\.paymentId)) == Set(ids[0...2]))
        #expect(erp.requests.count == 3)
        #expect(Set(alerts.requests.map(\.status)) == ["Rejected", "MissingFunding"])
        #expect(alerts.requests.count == 2)
        bridge.close()
        await erp.stop()
        await alerts.stop()
        await harness.stop()
    }

    @Test(arguments: Backend.available)
    func aFailedPageCommitsNothingFromItAndTheNextPollEmitsEachChangeOnce(backend: Backend) async throws {
        let scenario = try await Scenario.start(payments: 25, pageSize: 10, backend: backend)
        let (harness, receiver, bridge, ids) = (scenario.harness, scenario.receiver, scenario.bridge, scenario.ids)
        _ = await bridge.pollOnce()
        for id in ids { harness.bank.bank.setStatus(id, "Processed") }
        harness.bank.bank.setInterceptor { request in
            request.queryValue("PageNumber") == "2" ? .json(500, #"{"errorCode":"Internal","errorDescription":"boom"}"#) : nil
        }
        let before = harness.bank.paymentRequests.count
        let failed = await bridge.pollOnce()
        #expect(failed.failures.count == 1)
        let pageTwo = harness.bank.paymentRequests.dropFirst(before).filter { $0.queryValue("PageNumber") == "2" }
        #expect(pageTwo.count == 2)  // one retry (retries: 1)
        let message = failed.failures.first.map { "\($0)" } ?? ""
        #expect(message.contains("page 2"))
        #expect(message.contains("HTTP 500: Internal: boom"))
        #expect(message.contains("request id \(pageTwo.last?.headers["x-request-id"] ?? "?")"))
        #expect(receiver.requests.count == 10)  // page 1 committed on its own

        harness.bank.bank.setInterceptor(nil)
        let recovered = await bridge.pollOnce()
        #expect(recovered.failures.isEmpty)
        #expect(receiver.requests.count == 25)
        #expect(Set(receiver.requests.map(\.paymentId)) == Set(ids))
        #expect(Set(receiver.requests.map(\.webhookId)).count == 25)
        await scenario.stop()
    }

    @Test(arguments: Backend.available)
    func malformedJSONChangesNothing(backend: Backend) async throws {
        let scenario = try await Scenario.start(payments: 3, backend: backend)
        let (harness, receiver, bridge, ids) = (scenario.harness, scenario.receiver, scenario.bridge, scenario.ids)
        _ = await bridge.pollOnce()
        harness.bank.bank.setStatus(ids[0], "Rejected")
        let before = try await bridge.store.paymentStates(for: ids)
        harness.bank.bank.setInterceptor { request in
            request.path.hasSuffix("/singles") ? .json(200, #"{"result":[{"paymentId":"\#(ids[0])","status":"Rejected"},"#) : nil
        }
        let failed = await bridge.pollOnce()
        #expect(failed.failures.count == 1)
        #expect(failed.failures.first.map { "\($0)".contains("malformed response") } == true)
        #expect(failed.failures.first.map { "\($0)".contains("request id ") } == true)
        #expect(try await bridge.store.paymentStates(for: ids) == before)
        #expect(receiver.requests.isEmpty)
        #expect(try await bridge.store.deliveries(endpoint: nil, state: nil, limit: 10).isEmpty)

        harness.bank.bank.setInterceptor { request in
            request.path.hasSuffix("/singles") ? .json(200, #"{"result":[{"paymentId":"\#(ids[1])","status":null}]}"#) : nil
        }
        let missing = await bridge.pollOnce()
        #expect(missing.failures.first.map { "\($0)".contains("payment \(ids[1]) has a null \"status\"") } == true)
        #expect(try await bridge.store.paymentStates(for: ids) == before)

        harness.bank.bank.setInterceptor(nil)
        _ = await bridge.pollOnce()
        #expect(receiver.requests.map(\.paymentId) == [ids[0]])
        await scenario.stop()
    }

    @Test func aStatusFilteredWatchCatchesRejectedToProcessed() async throws {
        let harness = try await Harness.start()
        let receiver = try await TestReceiver.start()
        let rejected = harness.bank.bank.createPayment(amount: 19, status: "Rejected")
        let other = harness.bank.bank.createPayment(amount: 20, status: "Processed")
        let watch = """
                - name: failures
                  every: 15s
                  query:
                    Status: [Rejected, MissingFunding]
            """
        let bridge = try await harness.bridge(
            Fixtures.config(bankURL: harness.bank.url, state: harness.statePath, watches: watch, endpoints: Fixtures.endpoint("alerts", url: receiver.url)))
        let baseline = await bridge.pollOnce()
        #expect(baseline.reports.first?.payments == 1)
        #expect(Set(try await bridge.store.watchMemberChanges(name: "failures").keys) == [rejected])

        harness.bank.bank.setStatus(rejected, "Processed")
        let next = await bridge.pollOnce()
        #expect(next.failures.isEmpty)
        #expect(next.reports.first?.lookups == 1)
        #expect(harness.bank.paymentRequests.last?.path == "/api/v1/payments/singles/\(rejected)")
        #expect(receiver.requests.count == 1)
        #expect(receiver.requests.first?.status == "Processed")
        #expect(receiver.requests.first?.data["previousStatus"] as? String == "Rejected")
        #expect(receiver.requests.first?.data["watch"] as? String == "failures")
        #expect(Set(try await bridge.store.watchMemberChanges(name: "failures").keys).isEmpty)

        // It left for good: no more look-ups, and the other payment never mattered.
        _ = await bridge.pollOnce()
        #expect(harness.bank.paymentRequests.filter { $0.path.contains(rejected) }.count == 1)
        #expect(!harness.bank.paymentRequests.contains { $0.path.contains(other) })
        bridge.close()
        await receiver.stop()
        await harness.stop()
    }

    @Test func eventIdsDependOnlyOnTheChange() async throws {
        // Two bridges with separate state see the same changes: the same ids, as a re-run
        // after a crash (same state, same change) must produce.
        let scenario = try await Scenario.start(payments: 3)
        let other = try await TestReceiver.start()
        let second = try await Bridge(
            configuration: try Fixtures.load(
                Fixtures.config(bankURL: scenario.harness.bank.url, state: scenario.harness.directory.file("state-2"), endpoints: Fixtures.endpoint("erp", url: other.url)),
                in: scenario.harness.directory), logger: Fixtures.quietLogger)
        _ = await scenario.bridge.pollOnce()
        _ = await second.pollOnce()
        for id in scenario.ids { scenario.bank.setStatus(id, "Rejected") }
        _ = await scenario.bridge.pollOnce()
        _ = await second.pollOnce()
        #expect(scenario.receiver.requests.count == 3)
        #expect(Set(scenario.receiver.requests.map(\.webhookId)) == Set(other.requests.map(\.webhookId)))
        second.close()
        await other.stop()
        await scenario.stop()
    }

    @Test func anUnknownStatusPassesThrough() async throws {
        let scenario = try await Scenario.start(payments: 1)
        _ = await scenario.bridge.pollOnce()
        scenario.bank.setStatus(scenario.ids[0], "QuantumEntangled")
        let result = await scenario.bridge.pollOnce()
        #expect(result.failures.isEmpty)
        #expect(scenario.receiver.requests.first?.status == "QuantumEntangled")
        await scenario.stop()
    }

    @Test func baselineEmitCreatesEveryPayment() async throws {
        let watch = """
                - name: all
                  every: 30s
                  baseline: emit
            """
        let scenario = try await Scenario.start(payments: 3, watches: watch)
        _ = await scenario.bridge.pollOnce()
        #expect(Set(scenario.receiver.requests.map(\.paymentId)) == Set(scenario.ids))
        #expect(scenario.receiver.requests.allSatisfy { $0.type == "payment.created" })
        await scenario.stop()
    }

    @Test func theSandboxLifecycleProducesTheTriggerStatuses() async throws {
        // The bank's lifecycle moves on its clock, which the test advances.
        let bankClock = try BinaryClock()
        let scenario = try await Scenario.start(payments: 0, options: SandboxOptions(processingDelay: .milliseconds(200)), bankClock: bankClock)
        let (harness, receiver, bridge) = (scenario.harness, scenario.receiver, scenario.bridge)
        _ = await bridge.pollOnce()
        let amounts: [Double: String] = [13: "MissingFunding", 19: "Rejected", 53: "Cancelled", 100: "Processed"]
        var expected: [String: String] = [:]
        for (amount, status) in amounts { expected[harness.bank.bank.createPayment(amount: amount)] = status }
        _ = await bridge.pollOnce()
        try bankClock.advance(by: 0.3)
        _ = await bridge.pollOnce()
        var finalStatus: [String: String] = [:]
        for request in receiver.requests { finalStatus[request.paymentId] = request.status }
        #expect(finalStatus == expected)
        #expect(receiver.requests.filter { $0.type == "payment.created" }.count == 4)
        await scenario.stop()
    }
}
