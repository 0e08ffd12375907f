import Foundation

/// A child process started with posix_spawn and reaped with wait4, so its peak RSS and CPU
/// time are its own (Foundation's Process reaps children itself and hides their rusage).
struct Child {
    let pid: pid_t
    let output: String

    struct Exit {
        var status: Int32
        var usage: rusage
        var seconds: Double

        /// Peak resident set, MiB.
        var peakRSS: Double { Double(usage.ru_maxrss) / 1024 }
        var cpuSeconds: Double {
            Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
                + Double(usage.ru_stime.tv_usec) / 1e6
        }
    }

    private let started: Date

    /// Starts `path` with `arguments`; stdout and stderr go to `output` (a file).
    static func spawn(_ path: String, _ arguments: [String], output: String, environment: [String: String] = [:]) throws -> Child {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, path, &actions, nil, argv, envp)
        guard result == 0 else { throw BenchError("cannot start \(path): \(String(cString: strerror(result)))") }
        return Child(pid: pid, output: output, started: Date())
    }

    func signal(_ signal: Int32) { kill(pid, signal) }

    /// Waits for the exit without blocking a cooperative thread.
    func wait() async -> Exit {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var status: Int32 = 0
                var usage = rusage()
                _ = wait4(pid, &status, 0, &usage)
                let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
                continuation.resume(returning: Exit(status: code, usage: usage, seconds: Date().timeIntervalSince(started)))
            }
        }
    }

    var text: String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }

    /// Waits until the output has a line starting with `prefix`; returns the rest of it.
    func line(startingWith prefix: String, timeout: Double = 30) async throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) {
                return String(line.dropFirst(prefix.count))
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw BenchError("no '\(prefix)' from pid \(pid) within \(timeout) s:\n\(text.suffix(2000))")
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) { self.description = description }
}

/// Where the benchmark's files live, and its sibling executables.
enum Bench {
    static let directory: String = {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("paybridge-bench-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    static func file(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    static var executableDirectory: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
    }

    static var paybridge: String { (executableDirectory as NSString).appendingPathComponent("paybridge") }

    static func require(_ tool: String) throws -> String {
        for folder in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/sbin"] {
            let path = folder + "/" + tool
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw BenchError("\(tool) is not installed: apt-get install -y \(tool == "nginx" ? "nginx-light" : tool)")
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
    }
}

/// The benchmark bank, as a process of its own.
struct BankProcess {
    let child: Child
    let url: String

    static func start(payments: Int) async throws -> BankProcess {
        let child = try Child.spawn(
            CommandLine.arguments[0], ["bank", "--payments", String(payments)], output: Bench.file("bank.log"))
        let port = try await child.line(startingWith: "port ", timeout: 120)
        return BankProcess(child: child, url: "http://127.0.0.1:\(port)")
    }

    func post(_ path: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-sf", "-X", "POST", url + path]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BenchError("bank control call \(path) failed") }
    }

    func page(_ number: Int, size: Int) throws -> Data {
        let file = Bench.file("page.json")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-sf", "-o", file, "\(url)/api/v1/payments/singles?PageNumber=\(number)&PageSize=\(size)"]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BenchError("cannot fetch page \(number)") }
        return try Data(contentsOf: URL(fileURLWithPath: file))
    }

    func stop() async {
        child.signal(SIGTERM)
        _ = await child.wait()
    }
}

/// nginx answering `204` to every request, one worker (the probe's receiver).
struct Nginx {
    let child: Child
    let port: Int

    var url: String { "http://127.0.0.1:\(port)/hook" }

    static func start() async throws -> Nginx {
        let binary = try Bench.require("nginx")
        let port = try Bench.freePort()
        let prefix = Bench.file("nginx")
        try FileManager.default.createDirectory(atPath: prefix + "/logs", withIntermediateDirectories: true)
        let config = """
            worker_processes 1;
            daemon off;
            error_log \(prefix)/logs/error.log;
            pid \(prefix)/nginx.pid;
            events { worker_connections 4096; }
            http {
              access_log off;
              client_body_temp_path \(prefix)/body;
              keepalive_requests 1000000;
              server {
                listen 127.0.0.1:\(port) backlog=4096;
                location / { return 204; }
              }
            }
            """
        try config.write(toFile: prefix + "/nginx.conf", atomically: true, encoding: .utf8)
        let child = try Child.spawn(binary, ["-p", prefix, "-c", prefix + "/nginx.conf"], output: Bench.file("nginx.log"))
        for _ in 0..<100 {
            let probe = Process()
            probe.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            probe.arguments = ["-s", "-o", "/dev/null", "-X", "POST", "http://127.0.0.1:\(port)/hook"]
            try probe.run()
            probe.waitUntilExit()
            if probe.terminationStatus == 0 { return Nginx(child: child, port: port) }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BenchError("nginx did not start: \(child.text)")
    }

    func stop() async {
        child.signal(SIGQUIT)
        _ = await child.wait()
    }
}

/// wrk POSTing one body: the wire's rate for this receiver.
enum Wrk {
    static func rate(url: String, body: Data, connections: Int, seconds: Int = 5) async throws -> Double {
        let binary = try Bench.require("wrk")
        let bodyFile = Bench.file("wrk-body.json")
        try body.write(to: URL(fileURLWithPath: bodyFile))
        let script = Bench.file("wrk-post.lua")
        try """
            wrk.method = "POST"
            wrk.headers["Content-Type"] = "application/json"
            local file = io.open("\(bodyFile)", "rb")
            wrk.body = file:read("*a")
            file:close()
            """.write(toFile: script, atomically: true, encoding: .utf8)
        let child = try Child.spawn(
            binary, ["-t1", "-c\(connections)", "-d\(seconds)s", "-s", script, url], output: Bench.file("wrk.log"))
        _ = await child.wait()
        guard let line = child.text.split(separator: "\n").first(where: { $0.hasPrefix("Requests/sec:") }),
            let value = Double(line.split(separator: " ").last ?? "")
        else { throw BenchError("wrk printed no rate:\n\(child.text)") }
        return value
    }
}
