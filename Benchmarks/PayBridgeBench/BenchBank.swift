import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Synchronization

/// A bank for benchmarks: payments held compactly (an id and a status index each) and pages
/// rendered from a byte template on request, so the bank is never what is measured.
final class BenchBankState: Sendable {
    static let statuses = ["PendingProcessing", "Processed", "Rejected", "MissingFunding", "Hold", "Reversed"]

    private struct State: ~Copyable {
        var statuses: [UInt8]
        var churnCursor = 0
    }

    let count: Int
    private let ids: [UInt8]  // 36 bytes per payment, back to back
    private let state: Mutex<State>
    private let before: [UInt8]
    private let middle: [UInt8]
    private let after: [UInt8]

    init(count: Int) {
        self.count = count
        var random = SystemRandomNumberGenerator()
        var ids: [UInt8] = []
        ids.reserveCapacity(count * 36)
        for _ in 0..<count { ids += Array(UUID().uuidString.lowercased().utf8) }
        _ = random.next()
        self.ids = ids
        state = Mutex(State(statuses: Array(repeating: 0, count: count)))
        // A Banking Circle payment as the API returns it (≈1.3 KB), with the id and status cut out.
        let template = """
            {"paymentId":"§","transactionReference":"INV-708768","concurrencyToken":"361287d49a0f2740","classification":"Outgoing",\
            "subClassification":null,"status":"¤","processedTimestamp":"2026-11-22T02:49:08.1407418+00:00",\
            "latestStatusChangedTimestamp":"2026-11-22T02:49:08.1407418+00:00","lastChangedTimestamp":"2026-11-22T02:49:08.1407418+00:00",\
            "booked":true,"return":false,"paymentRail":"Sepa","statusReasons":null,"errors":null,"debtorInformation":\
            {"paymentBulkId":null,"accountId":"1ac6d8bc-a676-47c7-b4a1-f80d6340dd9f","account":{"account":"DK5045471932752818",\
            "accountIban":"DK5045471932752818","financialInstitution":"SXPYDKKK","country":"DK"},"viban":null,\
            "instructedDate":"2026-11-22T02:49:08.1407418+00:00","debitAmount":{"currency":"EUR","amount":120.00},\
            "debitValueDate":"2026-11-22T00:00:00+00:00","instruction":{"debtorReference":"INV-708768",\
            "requestedExecutionDate":"2026-11-22T00:00:00+00:00","remittanceInformation":{"line1":"Invoice INV-708768",\
            "line2":null,"line3":null,"line4":null}}},"transfer":{"debtorName":"Paybridge Demo ApS","amount":{"currency":"EUR",\
            "amount":120.00},"valueDate":"2026-11-22T00:00:00+00:00","remittanceInformation":{"line1":"Invoice INV-708768",\
            "line2":null,"line3":null,"line4":null},"creditorAccount":{"account":"DE89370400440532013000",\
            "financialInstitution":"COBADEFFXXX","country":"DE"},"creditorName":"Müller & Söhne GmbH"},"creditorInformation":null}
            """
        let parts = template.components(separatedBy: "§")
        let rest = parts[1].components(separatedBy: "¤")
        before = Array(parts[0].utf8)
        middle = Array(rest[0].utf8)
        after = Array(rest[1].utf8)
    }

    func page(number: Int, size: Int) -> [UInt8] {
        let start = min((number - 1) * size, count)
        let end = min(start + size, count)
        let statusNames = Self.statuses.map { Array($0.utf8) }
        var body: [UInt8] = []
        body.reserveCapacity((end - start) * (before.count + middle.count + after.count + 60) + 128)
        body += Array(#"{"result":["#.utf8)
        state.withLock { state in
            for index in start..<end {
                if index > start { body.append(UInt8(ascii: ",")) }
                body += before
                body += ids[index * 36..<(index + 1) * 36]
                body += middle
                body += statusNames[Int(state.statuses[index])]
                body += after
            }
        }
        body += Array(#"],"pageInfo":{"currentPage":\#(number),"pageSize":\#(size),"rowCount":\#(count)}}"#.utf8)
        return body
    }

    /// Moves `count` payments (0: all) to their next status; returns how many moved.
    @discardableResult
    func change(count wanted: Int) -> Int {
        state.withLock { state in
            let moves = wanted == 0 ? count : min(wanted, count)
            for _ in 0..<moves {
                let index = state.churnCursor % count
                state.statuses[index] = (state.statuses[index] + 1) % UInt8(Self.statuses.count)
                state.churnCursor += 1
            }
            return moves
        }
    }

    /// One payment as the API returns it by id (nil: unknown id). A scan: B6's 1,000 payments.
    func payment(id: String) -> [UInt8]? {
        let wanted = Array(id.lowercased().utf8)
        guard wanted.count == 36 else { return nil }
        let statusNames = Self.statuses.map { Array($0.utf8) }
        for index in 0..<count where ids[index * 36..<(index + 1) * 36].elementsEqual(wanted) {
            let status = state.withLock { Int($0.statuses[index]) }
            return before + wanted + middle + statusNames[status] + after
        }
        return nil
    }

    /// Moves the payment at `index` to its next status; returns its id.
    func move(index: Int) -> String {
        let index = index % count
        state.withLock { $0.statuses[index] = ($0.statuses[index] + 1) % UInt8(Self.statuses.count) }
        return String(decoding: ids[index * 36..<(index + 1) * 36], as: UTF8.self)
    }

    /// Changes `count` payments spread at random.
    func changeRandom(count wanted: Int) {
        var generator = SystemRandomNumberGenerator()
        state.withLock { state in
            for _ in 0..<wanted {
                let index = Int.random(in: 0..<count, using: &generator)
                state.statuses[index] = (state.statuses[index] + 1) % UInt8(Self.statuses.count)
            }
        }
    }
}

/// `paybridge-bench bank`: serves a BenchBankState (run as its own process).
struct BankCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bank", abstract: "Serve the benchmark bank (used by the benchmarks).", shouldDisplay: false)

    @Option var payments: Int
    @Option var port = 0

    func run() async throws {
        let bank = BenchBankState(count: payments)
        let churn = Mutex<Task<Void, Never>?>(nil)
        let router = Router()
        router.get("/api/v1/authorizations/authorize") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"access_token":"bench","expires_in":"3600"}"#)))
        }
        router.get("/api/v1/payments/singles") { request, _ -> Response in
            let query = request.uri.queryParameters
            let number = query["PageNumber"].flatMap { Int($0) } ?? 1
            let size = query["PageSize"].flatMap { Int($0) } ?? 50
            return Response(
                status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bank.page(number: number, size: size))))
        }
        router.get("/api/v1/payments/singles/{id}") { _, context -> Response in
            guard let id = context.parameters.get("id"), let body = bank.payment(id: id) else { return Response(status: .notFound) }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        router.post("/bench/move") { request, _ -> Response in
            let index = request.uri.queryParameters["index"].flatMap { Int($0) } ?? 0
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: bank.move(index: index))))
        }
        router.post("/bench/change") { request, _ -> Response in
            let query = request.uri.queryParameters
            let count = query["count"].flatMap { Int($0) } ?? 0
            if query["random"] != nil { bank.changeRandom(count: count) } else { bank.change(count: count) }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "changed \(count)\n")))
        }
        router.post("/bench/churn") { request, _ -> Response in
            let rate = request.uri.queryParameters["rate"].flatMap { Int($0) } ?? 1000
            let task = Task {
                // Every 10 ms, a hundredth of the rate.
                let clock = ContinuousClock()
                var next = clock.now
                while !Task.isCancelled {
                    bank.change(count: max(1, rate / 100))
                    next += .milliseconds(10)
                    try? await clock.sleep(until: next)
                }
            }
            churn.withLock { $0?.cancel(); $0 = task }
            return Response(status: .ok)
        }
        router.post("/bench/stop") { _, _ -> Response in
            churn.withLock { $0?.cancel(); $0 = nil }
            return Response(status: .ok)
        }
        var logger = Logger(label: "bench-bank")
        logger.logLevel = .error
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)),
            onServerRunning: { channel in
                FileHandle.standardOutput.write(Data("port \(channel.localAddress?.port ?? 0)\n".utf8))
            }, logger: logger)
        try await app.runService()
    }
}
