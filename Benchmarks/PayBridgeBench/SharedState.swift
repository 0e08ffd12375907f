import ArgumentParser
import Foundation

/// A PostgreSQL server for B5: `PAYBRIDGE_BENCH_POSTGRES_URL` (Benchmarks/run starts a
/// throwaway cluster with scripts/postgres and sets it). Statements go through `psql`, so the
/// figures are read from the database exactly as an operator would.
struct PostgresServerForBench {
    let url: String

    static func fromEnvironment() throws -> PostgresServerForBench {
        guard let url = ProcessInfo.processInfo.environment["PAYBRIDGE_BENCH_POSTGRES_URL"], !url.isEmpty else {
            throw BenchError("B5 needs PostgreSQL: run it as `Benchmarks/run b5` (which starts a cluster) or set PAYBRIDGE_BENCH_POSTGRES_URL")
        }
        return PostgresServerForBench(url: url)
    }

    /// A new empty database on the server; its URL.
    func createDatabase() throws -> String {
        let name = "bench_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        _ = try Self.psql(url, "CREATE DATABASE \(name)")
        var components = URLComponents(string: url)
        components?.path = "/" + name
        guard let database = components?.string else { throw BenchError("bad PostgreSQL URL") }
        return database
    }

    /// One value (`psql -At`), or "" when the query returns no row.
    static func psql(_ url: String, _ sql: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BenchError("psql failed: \(sql)") }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// B5: B1's burst on PostgreSQL — one instance (`poll --once`, comparable to B1), then
/// `paybridge run` instances sharing one database.
struct SharedStateBurst: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "b5", abstract: "B5 shared state: B1's burst on PostgreSQL, one instance, then several `run` instances on one database.")

    @Option var payments = 20_000
    @Option var concurrency = 64
    @Option(help: "Instances in the scale-out runs.") var instances = 3
    @Option(help: "Endpoints in the scale-out runs (each event goes to every one; an endpoint is delivered by one instance at a time).")
    var endpoints = 3

    func run() async throws {
        let server = try PostgresServerForBench.fromEnvironment()
        let environment = try await Environment.start(payments: payments)
        let (bank, nginx) = (environment.bank, environment.nginx)
        print("B5 shared state on PostgreSQL: \(payments) changes (B1's burst), nginx return 204, concurrency \(concurrency)")

        // One instance, `poll --once`: the same measurement as B1, state in PostgreSQL.
        let single = try Run(bank: bank.url, receiver: nginx.url, concurrency: concurrency, postgres: try server.createDatabase())
        _ = try await single.pollOnce(label: "b5-baseline")
        try bank.post("/bench/change?count=0")
        let exit = try await single.pollOnce(label: "b5")
        let delivered = Int(try PostgresServerForBench.psql(single.state, "SELECT COUNT(*) FROM delivery WHERE state = 'delivered'")) ?? 0
        let latencies = try PostgresServerForBench.psql(
            single.state, "SELECT d.delivered_at - e.created_at FROM delivery d JOIN event e ON e.row_id = d.event_row WHERE d.delivered_at IS NOT NULL"
        ).split(separator: "\n").compactMap { Double($0) }.sorted()
        print("  1 instance, poll --once, 1 endpoint")
        print("    delivered          \(delivered) of \(payments) in \(String(format: "%.2f s", exit.seconds)) = \(rate(Double(delivered) / exit.seconds)) events/s")
        print("    detection → 2xx    p50 \(ms(Bench.percentile(latencies, 0.5)))  p99 \(ms(Bench.percentile(latencies, 0.99)))")
        print("    peak RSS           \(String(format: "%.1f MiB", exit.peakRSS))   CPU \(String(format: "%.2f s", exit.cpuSeconds)) (paybridge only; PostgreSQL's is not counted)")

        for count in [1, instances] {
            let figures = try await daemons(count, bank: bank, nginx: nginx, server: server)
            print("  \(count) × paybridge run, \(endpoints) endpoints (each event to every endpoint)")
            print(
                "    delivered          \(figures.deliveries) deliveries of \(payments) events in \(String(format: "%.2f s", figures.seconds)) "
                    + "(change → last 2xx) = \(rate(Double(figures.deliveries) / figures.seconds)) deliveries/s")
            print("    endpoints per instance  \(figures.owners)")
        }
        await environment.stop()
    }

    struct DaemonFigures {
        var deliveries: Int
        var seconds: Double
        var owners: String
    }

    /// `count` `run` processes on one new database: baseline, then the burst, timed from the
    /// bank's change to the last delivery recorded.
    func daemons(_ count: Int, bank: BankProcess, nginx: Nginx, server: PostgresServerForBench) async throws -> DaemonFigures {
        let database = try server.createDatabase()
        let receivers = (1...endpoints).map { ("receiver\($0)", nginx.url) }
        let run = try Run(bank: bank.url, receivers: receivers, every: "500ms", concurrency: concurrency, postgres: database)
        var children: [Child] = []
        for index in 0..<count {
            children.append(
                try Child.spawn(
                    Bench.paybridge, ["run", "--config", run.config], output: Bench.file("b5-run-\(count)-\(index).log"),
                    environment: ["PAYBRIDGE_LOG_LEVEL": "info"]))
        }
        defer { for child in children { child.signal(SIGKILL) } }
        // Baselined, and every endpoint owned with the instances' fair shares settled.
        let settle = Date().addingTimeInterval(120)
        while Date() < settle {
            // The tables appear with the first instance's migration.
            let baselined = (try? PostgresServerForBench.psql(database, "SELECT COUNT(*) FROM watch WHERE baselined_at IS NOT NULL")) == "1"
            let owned = try? PostgresServerForBench.psql(
                database, "SELECT COUNT(DISTINCT holder) || ':' || COUNT(*) FROM lease WHERE name LIKE 'endpoint:%' AND expires_at > extract(epoch FROM now())")
            if baselined, owned == "\(min(count, endpoints)):\(endpoints)" { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        try await Task.sleep(for: .seconds(2))
        let owners = try PostgresServerForBench.psql(
            database, "SELECT string_agg(n::text, ' ') FROM (SELECT COUNT(*) AS n FROM lease WHERE name LIKE 'endpoint:%' GROUP BY holder ORDER BY 1 DESC) s")
        let expected = payments * endpoints
        let start = Date()
        try bank.post("/bench/change?count=0")
        let deadline = start.addingTimeInterval(600)
        var delivered = 0
        while Date() < deadline {
            delivered = Int(try PostgresServerForBench.psql(database, "SELECT COUNT(*) FROM delivery WHERE state = 'delivered'")) ?? 0
            if delivered >= expected { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let seconds = Date().timeIntervalSince(start)
        for child in children { child.signal(SIGTERM) }
        for child in children { _ = await child.wait() }
        guard delivered >= expected else { throw BenchError("only \(delivered) of \(expected) deliveries within 10 minutes; logs in \(Bench.directory)") }
        return DaemonFigures(deliveries: delivered, seconds: seconds, owners: owners)
    }
}
