import ArgumentParser
import Foundation
import GRDB
import PayBridge

@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "paybridge-bench",
        abstract: "paybridge's benchmarks: real processes (bench bank, nginx, the paybridge binary beside this one).",
        discussion: "Build in release first: swift build -c release. See Benchmarks/README.md.",
        subcommands: [DetectDeliver.self, Scan.self, ScaleOfState.self, SteadyLoad.self, SharedStateBurst.self, NotificationLatency.self, BankCommand.self])
}

/// The bench bank and nginx, started together and stopped together.
struct Environment {
    let bank: BankProcess
    let nginx: Nginx

    static func start(payments: Int) async throws -> Environment {
        try checkBinary()
        return Environment(bank: try await BankProcess.start(payments: payments), nginx: try await Nginx.start())
    }

    func stop() async {
        await nginx.stop()
        await bank.stop()
    }
}

/// Writes a config for the paybridge binary and runs it.
struct Run {
    let state: String
    let config: String

    /// `receiver: nil` configures no endpoint (detection alone). `postgres`: the state is that
    /// database (B5) instead of a SQLite folder; `state` is then its URL.
    init(
        bank: String, receiver: String?, pageSize: Int = 5000, every: String = "1h", concurrency: Int, retry: String? = nil, state: String? = nil,
        format: String = "standard", postgres: String? = nil, notifications: String = ""
    ) throws {
        try self.init(
            bank: bank, receivers: receiver.map { [("receiver", $0)] } ?? [], pageSize: pageSize, every: every, concurrency: concurrency,
            retry: retry, state: state, format: format, postgres: postgres, notifications: notifications)
    }

    init(
        bank: String, receivers: [(name: String, url: String)], pageSize: Int = 5000, every: String = "1h", concurrency: Int, retry: String? = nil,
        state: String? = nil, format: String = "standard", postgres: String? = nil, notifications: String = ""
    ) throws {
        self.state = postgres ?? state ?? Bench.file("state-\(UUID().uuidString.prefix(6))")
        config = Bench.file("paybridge-\(UUID().uuidString.prefix(6)).yaml")
        let endpoints = receivers.isEmpty ? "" : "endpoints:\n" + receivers.map { receiver in
            """
              \(receiver.name):
                url: \(receiver.url)
                secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
                concurrency: \(concurrency)
                timeout: 30s
                format: \(format)
            \(retry.map { "    retry: \($0)" } ?? "")
            """
        }.joined(separator: "\n")
        let stateYAML = postgres.map { "  kind: postgres\n  url: \($0)" } ?? "  path: \(self.state)"
        try """
            source:
              apiURL: \(bank)
              username: bench
              password: bench
              pageSize: \(pageSize)
              timeout: 120s
            \(notifications)
              watches:
                - name: all
                  every: \(every)
            state:
            \(stateYAML)
            \(endpoints)
            """.write(toFile: config, atomically: true, encoding: .utf8)
    }

    /// Runs another paybridge command (`deliveries replay`, …) with this config.
    func command(_ arguments: [String], label: String) async throws {
        let child = try Child.spawn(Bench.paybridge, arguments + ["--config", config], output: Bench.file("\(label).log"))
        let exit = await child.wait()
        guard exit.status == 0 else { throw BenchError("paybridge \(arguments.joined(separator: " ")) failed:\n\(child.text.suffix(2000))") }
    }

    /// `paybridge poll --once`, reaped with its rusage.
    func pollOnce(label: String) async throws -> Child.Exit {
        let child = try Child.spawn(
            Bench.paybridge, ["poll", "--once", "--config", config], output: Bench.file("\(label).log"),
            environment: ["PAYBRIDGE_LOG_LEVEL": "warning"])
        let exit = await child.wait()
        guard exit.status == 0 else { throw BenchError("paybridge poll --once failed (\(exit.status)):\n\(child.text.suffix(2000))") }
        return exit
    }

    func database() throws -> DatabaseQueue {
        var configuration = GRDB.Configuration()
        configuration.readonly = true
        return try DatabaseQueue(path: state + "/" + SQLiteStore.fileName, configuration: configuration)
    }

    /// Seconds from each event's detection to its 2xx, sorted.
    func latencies() throws -> [Double] {
        try database().read { db in
            try Double.fetchAll(
                db,
                sql: """
                    SELECT d.delivered_at - e.created_at
                    FROM delivery d JOIN event e ON e.rowid = d.event_row
                    WHERE d.delivered_at IS NOT NULL
                    """
            ).sorted()
        }
    }

    func count(_ sql: String) throws -> Int { try database().read { try Int.fetchOne($0, sql: sql) ?? 0 } }
}

func mb(_ bytes: Int) -> String { String(format: "%.1f MB", Double(bytes) / 1e6) }
func ms(_ seconds: Double) -> String { String(format: "%.1f ms", seconds * 1000) }
func rate(_ value: Double) -> String { value >= 1000 ? String(format: "%.1fk", value / 1000) : String(format: "%.0f", value) }

func checkBinary() throws {
    guard FileManager.default.isExecutableFile(atPath: Bench.paybridge) else {
        throw BenchError("no paybridge binary beside this one (\(Bench.paybridge)): swift build -c release")
    }
    #if DEBUG
        print("warning: this is a debug build; figures are only meaningful from `swift build -c release`")
    #endif
}

/// B1: N payments all change status; from the start of the poll to the last 2xx.
struct DetectDeliver: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "b1", abstract: "B1 detect + deliver: N changes, one endpoint (nginx), vs wrk.")

    @Option var payments = 20_000
    @Option(help: "Deliveries in flight (and wrk's connections).") var concurrency = 64
    @Option(help: "The endpoint's format: standard, slack, teams, cloudevents.") var format = "standard"

    func run() async throws {
        let environment = try await Environment.start(payments: payments)
        let (bank, nginx) = (environment.bank, environment.nginx)
        let run = try Run(bank: bank.url, receiver: nginx.url, concurrency: concurrency, format: format)
        _ = try await run.pollOnce(label: "b1-baseline")
        try bank.post("/bench/change?count=0")
        let exit = try await run.pollOnce(label: "b1")
        let delivered = try run.count("SELECT COUNT(*) FROM delivery WHERE state = 'delivered'")
        let latencies = try run.latencies()
        let detected = try await run.database().read { db in
            try Double.fetchOne(db, sql: "SELECT MAX(created_at) - MIN(created_at) FROM event") ?? 0
        }
        let body = try await run.database().read { db in try Data.fetchOne(db, sql: "SELECT body FROM event LIMIT 1") ?? Data() }

        // The two halves alone. Detection: the same change, no endpoint.
        let detectOnly = try Run(bank: bank.url, receiver: nil, concurrency: concurrency)
        _ = try await detectOnly.pollOnce(label: "b1-detect-baseline")
        try bank.post("/bench/change?count=0")
        let detection = try await detectOnly.pollOnce(label: "b1-detect")
        // Delivery: deliveries dead-lettered against a closed port, replayed to nginx.
        let closed = "http://127.0.0.1:\(try Bench.freePort())/hook"
        let deliverOnly = try Run(bank: bank.url, receiver: closed, concurrency: concurrency, retry: "[]", format: format)
        _ = try await deliverOnly.pollOnce(label: "b1-deliver-baseline")
        try bank.post("/bench/change?count=0")
        _ = try await deliverOnly.pollOnce(label: "b1-deliver-dead")
        let replay = try Run(bank: bank.url, receiver: nginx.url, concurrency: concurrency, state: deliverOnly.state, format: format)
        try await replay.command(["deliveries", "replay", "--endpoint", "receiver", "--state", "dead", "--yes"], label: "b1-replay")
        let delivery = try await replay.pollOnce(label: "b1-deliver")

        let wrk = try await Wrk.rate(url: nginx.url, body: body, connections: concurrency)
        let ours = Double(delivered) / exit.seconds
        print("B1 detect + deliver: \(payments) changes, one endpoint (nginx return 204, format \(format)), concurrency \(concurrency)")
        print("  delivered          \(delivered) of \(payments) (signed, durably queued)")
        print("  poll start → last 2xx  \(String(format: "%.2f s", exit.seconds))  (detection and commits spread over \(String(format: "%.2f s", detected)))")
        print("  events/s           \(rate(ours))")
        print("  detection → 2xx    p50 \(ms(Bench.percentile(latencies, 0.5)))  p99 \(ms(Bench.percentile(latencies, 0.99)))")
        print("  peak RSS           \(String(format: "%.1f MiB", exit.peakRSS))   CPU \(String(format: "%.2f s", exit.cpuSeconds))")
        print("  detection alone    \(rate(Double(payments) / detection.seconds))/s  (CPU \(String(format: "%.2f s", detection.cpuSeconds)), no endpoint)")
        print("  delivery alone     \(rate(Double(payments) / delivery.seconds))/s  (CPU \(String(format: "%.2f s", delivery.cpuSeconds)), \(payments) replayed deliveries)")
        print("  wrk -t1 -c\(concurrency)        \(rate(wrk)) req/s with the same \(body.count)-byte body")
        print("  paybridge / wrk    \(String(format: "%.2f", ours / wrk))")
        await environment.stop()
    }
}

/// B2: a full scan where nothing changed, vs Python's json.loads on the same bytes.
struct Scan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "b2", abstract: "B2 scan: N unchanged payments in pages of 5,000, vs json.loads.")

    @Option var payments = 100_000
    @Option var rounds = 5

    func run() async throws {
        let environment = try await Environment.start(payments: payments)
        let (bank, nginx) = (environment.bank, environment.nginx)
        let run = try Run(bank: bank.url, receiver: nginx.url, concurrency: 64)
        _ = try await run.pollOnce(label: "b2-baseline")
        var best = Double.infinity
        var cpu = 0.0
        for round in 0..<rounds {
            let exit = try await run.pollOnce(label: "b2-\(round)")
            if exit.seconds < best { (best, cpu) = (exit.seconds, exit.cpuSeconds) }
        }
        let pages = (payments + 4999) / 5000
        var bodies: [[UInt8]] = []
        for number in 1...pages { bodies.append([UInt8](try bank.page(number, size: 5000))) }
        let bytes = bodies.reduce(0) { $0 + $1.count }

        // The scanner alone, on the same bytes.
        var scannerBest = Double.infinity
        for _ in 0..<rounds {
            let start = ContinuousClock.now
            for body in bodies { _ = try PaymentPageScanner.scanList(body) }
            scannerBest = min(scannerBest, (ContinuousClock.now - start).seconds)
        }
        // Python's json.loads on the same bytes.
        var files: [String] = []
        for (index, body) in bodies.enumerated() {
            let file = Bench.file("page-\(index).json")
            try Data(body).write(to: URL(fileURLWithPath: file))
            files.append(file)
        }
        let script = Bench.file("loads.py")
        try """
            import json, sys, time
            pages = [open(f, "rb").read() for f in sys.argv[1:]]
            best = float("inf")
            for _ in range(\(rounds)):
                start = time.perf_counter()
                for page in pages:
                    json.loads(page)
                best = min(best, time.perf_counter() - start)
            print(f"seconds {best}")
            """.write(toFile: script, atomically: true, encoding: .utf8)
        let python = try Child.spawn("/usr/bin/env", ["python3", script] + files, output: Bench.file("python.log"))
        _ = await python.wait()
        guard let pythonSeconds = Double(try await python.line(startingWith: "seconds ")) else { throw BenchError("python failed") }

        func line(_ name: String, _ seconds: Double) -> String {
            "  \(name.padding(toLength: 34, withPad: " ", startingAt: 0)) \(String(format: "%7.3f s", seconds))  "
                + "\(rate(Double(payments) / seconds)) payments/s  \(String(format: "%6.1f MB/s", Double(bytes) / 1e6 / seconds))  "
                + "\(String(format: "%.1f×", pythonSeconds / seconds)) json.loads"
        }
        print("B2 scan: \(payments) unchanged payments, \(pages) pages of 5,000, \(mb(bytes)) of JSON (best of \(rounds))")
        print(line("paybridge poll --once (whole run)", best) + String(format: "  (CPU %.2f s)", cpu))
        print(line("PaymentPageScanner alone", scannerBest))
        print(line("python3 json.loads", pythonSeconds))
        await environment.stop()
    }
}

/// B3: 1,000,000 tracked payments, a full scan with 1 % changed.
struct ScaleOfState: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "b3", abstract: "B3 scale of state: 1M tracked payments, full scan with 1 % changed.")

    @Option var payments = 1_000_000
    @Option(help: "Percent changed before each measured scan.") var changed = 1.0

    func run() async throws {
        let environment = try await Environment.start(payments: payments)
        let (bank, nginx) = (environment.bank, environment.nginx)
        let run = try Run(bank: bank.url, receiver: nginx.url, concurrency: 64)
        let baseline = try await run.pollOnce(label: "b3-baseline")
        let changes = Int(Double(payments) * changed / 100)
        print("B3 scale of state: \(payments) tracked payments")
        print("  baseline (record all, silent, pages of 5000)  \(String(format: "%6.1f s", baseline.seconds))  peak RSS \(String(format: "%.1f MiB", baseline.peakRSS))")
        // The same state scanned with the default page size (1000) and with 5000.
        for pageSize in [1000, 5000] {
            let scan = try Run(bank: bank.url, receiver: nginx.url, pageSize: pageSize, concurrency: 64, state: run.state)
            try bank.post("/bench/change?random=1&count=\(changes)")
            let exit = try await scan.pollOnce(label: "b3-scan-\(pageSize)")
            print(
                "  full scan, \(changes) changed, pages of \(pageSize)  \(String(format: "%6.1f s", exit.seconds))  "
                    + "peak RSS \(String(format: "%.1f MiB", exit.peakRSS))  (events delivered in the same run)")
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: run.state + "/" + SQLiteStore.fileName)[.size] as? Int) ?? 0
        print("  database size                  \(mb(size))")
        await environment.stop()
    }
}

/// B4: a steady 1,000 changes/s for a minute.
struct SteadyLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "b4", abstract: "B4 steady load: 1,000 changes/s for 60 s, watch every 100 ms.")

    @Option var rate = 1000
    @Option var seconds = 60
    @Option(help: "Payments in the watch's window (one page).") var payments = 5000

    func run() async throws {
        let environment = try await Environment.start(payments: payments)
        let (bank, nginx) = (environment.bank, environment.nginx)
        let run = try Run(bank: bank.url, receiver: nginx.url, every: "100ms", concurrency: 64)
        _ = try await run.pollOnce(label: "b4-baseline")
        let child = try Child.spawn(
            Bench.paybridge, ["run", "--config", run.config], output: Bench.file("b4-run.log"), environment: ["PAYBRIDGE_LOG_LEVEL": "warning"])
        try await Task.sleep(for: .seconds(1))
        try bank.post("/bench/churn?rate=\(rate)")
        try await Task.sleep(for: .seconds(seconds))
        try bank.post("/bench/stop")
        try await Task.sleep(for: .seconds(2))
        child.signal(SIGTERM)
        let exit = await child.wait()
        let latencies = try run.latencies()
        let events = try run.count("SELECT COUNT(*) FROM event")
        print("B4 steady load: \(rate) changes/s for \(seconds) s, a watch over \(payments) payments every 100 ms")
        print("  events             \(events) (\(String(format: "%.0f", Double(events) / Double(seconds)))/s)")
        print("  detection → 2xx    p50 \(ms(Bench.percentile(latencies, 0.5)))  p99 \(ms(Bench.percentile(latencies, 0.99)))  max \(ms(latencies.last ?? .nan))")
        print("  CPU                \(String(format: "%.0f %% of one core", exit.cpuSeconds / exit.seconds * 100))  peak RSS \(String(format: "%.1f MiB", exit.peakRSS))")
        await environment.stop()
    }
}
