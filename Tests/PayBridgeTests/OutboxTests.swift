import Foundation
import Synchronization
import Testing

@testable import PayBridge

/// The one way into the outbox: events are routed before their transaction, and a
/// transaction that names an event nobody routed commits nothing.
@Suite struct OutboxTests {
    /// One page holding one payment, as the bank would answer.
    struct OnePage: PaymentSource {
        let body: [UInt8]

        init(paymentId: String, status: String) {
            body = Array(#"{"result":[{"paymentId":"\#(paymentId)","status":"\#(status)","amount":{"currency":"EUR","amount":12.5}}],"pageInfo":{"currentPage":1,"pageSize":50,"rowCount":1}}"#.utf8)
        }

        func fetchPage(watch: Watch, pageNumber: Int, pageSize: Int, pollStartedAt: Date) async throws -> PaymentPage {
            try PaymentPageScanner.scanList(body)
        }

        func fetchPayment(id: String) async throws -> PaymentPage { PaymentPage(body: [], payments: []) }
    }

    /// The real store, except that right after the poller's read (outside its transaction)
    /// another watch commits a change of the same payment: the poller's transaction then sees
    /// a state its read did not.
    final class Interleaving: OutboxStore, RecordStore {
        let store: any Store & Coordination
        let meanwhile: Mutex<(@Sendable (any Store & Coordination) async throws -> Void)?>

        init(_ store: any Store & Coordination, meanwhile: @escaping @Sendable (any Store & Coordination) async throws -> Void) {
            self.store = store
            self.meanwhile = Mutex(meanwhile)
        }

        func paymentStates(for paymentIds: [String]) async throws -> [String: PaymentState] {
            let states = try await store.paymentStates(for: paymentIds)
            if let change = meanwhile.withLock({ state in defer { state = nil }; return state }) { try await change(store) }
            return states
        }

        func write<T: Sendable>(_ body: nonisolated(nonsending) @Sendable (any StoreTransaction) async throws -> T) async throws -> T {
            try await store.write(body)
        }

        func detect<T: Sendable>(_ body: nonisolated(nonsending) @Sendable (any DetectionTransaction) async throws -> T) async throws -> T {
            try await store.detect(body)
        }

        func checkWritable(at date: Date) async throws { try await store.checkWritable(at: date) }
        func changeMark() async throws -> Int64 { try await store.changeMark() }
        func changes() -> AsyncStream<StateChange> { store.changes() }
        func watchRecord(name: String) async throws -> WatchRecord? { try await store.watchRecord(name: name) }
        func watchMemberChanges(name: String) async throws -> [String: Date?] { try await store.watchMemberChanges(name: name) }
        func endpointRecords() async throws -> [String: EndpointRecord] { try await store.endpointRecords() }
        func sourceRecord(name: String) async throws -> SourceRecord { try await store.sourceRecord(name: name) }
    }

    static func pipeline(in directory: TemporaryDirectory) throws -> Pipeline {
        let text = Fixtures.config(bankURL: "http://127.0.0.1:9", state: directory.file("state"), endpoints: Fixtures.endpoint("erp", url: "http://127.0.0.1:9"))
        return Pipeline(try Fixtures.load(text, in: directory))
    }

    @Test(arguments: Backend.available)
    func aChangeCommittedMeanwhileIsRoutedAgainFromWhatTheTransactionSaw(backend: Backend) async throws {
        let fixture = try await StoreContractTests.Fixture(backend)
        defer { fixture.store.close() }
        try await fixture.lead()
        let date = StoreContractTests.start
        let watch = Watch(name: "recent", every: .seconds(1), query: [])
        // p1 is known as PendingProcessing and the watch has its baseline.
        try await fixture.store.detect { transaction in
            try await transaction.savePaymentState(paymentId: "p1", state: PaymentState(status: "PendingProcessing", sequence: 1), watch: "recent", at: date)
            try await transaction.recordWatchPoll(name: "recent", at: date, baselined: true)
        }
        // Between the poller's read and its transaction, another watch sees p1 on Hold.
        let interleaving = Interleaving(fixture.store) { store in
            try await store.detect { transaction in
                try await transaction.savePaymentState(paymentId: "p1", state: PaymentState(status: "Hold", sequence: 2), watch: "other", at: date)
            }
        }
        let outbox = Outbox(store: interleaving, pipeline: try Self.pipeline(in: fixture.directory))
        let poller = Poller(
            source: OnePage(paymentId: "p1", status: "Rejected"), store: interleaving, outbox: outbox, pageSize: 50,
            logger: Fixtures.quietLogger, clock: ManualClock(date).clock)

        let report = try await poller.poll(watch)

        // The read said PendingProcessing → Rejected; the transaction saw Hold. What was
        // committed is the change from Hold, routed to the endpoint like any other.
        #expect(report.changed == 1)
        let events = try await fixture.store.eventsAfter(nil, limit: 10, type: nil, status: nil)
        #expect(events.count == 1)
        let body = String(decoding: events.first?.body ?? [], as: UTF8.self)
        #expect(body.contains(#""previousStatus":"Hold""#), "\(body)")
        #expect(events.first?.id == Event.id(subject: "p1", sequence: 3, discriminator: "Rejected"))
        let pending = try await fixture.store.deliveries(endpoint: "erp", state: .pending, limit: 10)
        #expect(pending.map(\.eventId) == events.map(\.id))
        #expect(try await fixture.store.paymentStates(for: ["p1"])["p1"] == PaymentState(status: "Rejected", sequence: 3))
    }

    @Test(arguments: Backend.available)
    func aTransactionNamingAnEventNobodyRoutedCommitsNothing(backend: Backend) async throws {
        let fixture = try await StoreContractTests.Fixture(backend)
        defer { fixture.store.close() }
        try await fixture.lead()
        let outbox = Outbox(store: fixture.store, pipeline: try Self.pipeline(in: fixture.directory))
        let routed = outbox.route([Outbox.Emission(StoreContractTests.event("p1", 1, "Processed"))])
        let date = StoreContractTests.start

        await #expect(throws: OutboxError.self) {
            _ = try await outbox.detect(choosingFrom: routed) { transaction in
                try await transaction.savePaymentState(paymentId: "p2", state: PaymentState(status: "Processed", sequence: 1), watch: "recent", at: date)
                return ((), emit: [StoreContractTests.event("p2", 1, "Processed").id])
            }
        }
        #expect(try await fixture.store.paymentStates(for: ["p2"]).isEmpty)
        #expect(try await fixture.store.eventsAfter(nil, limit: 10, type: nil, status: nil).isEmpty)

        // The routed one commits, with its delivery.
        let committed = try await outbox.detect(choosingFrom: routed) { _ in ((), emit: [StoreContractTests.event("p1", 1, "Processed").id]) }
        #expect(committed.queuedWork)
        #expect(try await fixture.store.deliveries(endpoint: "erp", state: .pending, limit: 10).count == 1)
    }
}
