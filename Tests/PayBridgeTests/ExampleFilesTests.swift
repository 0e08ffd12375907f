import Foundation
import Synchronization
import Testing

/// The shipped operations files work where they run (issue 20): the container's HEALTHCHECK
/// under dash against a real listener, the alert rules under promtool, the systemd unit under
/// systemd-analyze, and a build context without `.build`. A tool that is missing skips its test.
@Suite struct ExampleFilesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func text(_ relativePath: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(relativePath), encoding: .utf8)
    }

    /// The executable `name` on PATH (or in the usual folders), nil when it is not installed.
    static func tool(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let folders = path.split(separator: ":").map(String.init) + ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        return folders.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    struct Missing: Error, CustomStringConvertible {
        var description: String
    }

    /// The HEALTHCHECK's command as argv: a shell-form command runs under /bin/sh, as the engine runs it.
    static func healthcheck() throws -> [String] {
        let joined = try text("examples/Containerfile").replacingOccurrences(of: "\\\n", with: " ")
        guard let line = joined.split(separator: "\n").first(where: { $0.hasPrefix("HEALTHCHECK") }),
            let range = line.range(of: " CMD ")
        else { throw Missing(description: "examples/Containerfile has no HEALTHCHECK ... CMD") }
        let command = line[range.upperBound...].trimmingCharacters(in: .whitespaces)
        if command.hasPrefix("[") {
            return try JSONDecoder().decode([String].self, from: Data(command.utf8))
        }
        return ["/bin/sh", "-c", command]
    }

    static let healthcheckRunnable = (try? healthcheck().joined(separator: " ").contains("curl")) == false || tool("curl") != nil

    struct Output: Sendable {
        var status: Int32
        var text: String
    }

    /// A subprocess's output, read to its end on a thread of its own.
    final class Collected: Sendable {
        let data = Mutex<Data?>(nil)
    }

    /// Runs `arguments` (the first an absolute path), stdout and stderr together; killed after `timeout`.
    static func run(_ arguments: [String], timeout: Duration = .seconds(60)) async throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        let collected = Collected()
        try process.run()
        Thread.detachNewThread {
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            collected.data.withLock { $0 = data }
        }
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            Issue.record("\(arguments.joined(separator: " ")) ran longer than \(timeout)")
        }
        process.waitUntilExit()
        while collected.data.withLock({ $0 == nil }), ContinuousClock.now < deadline + .seconds(5) {
            try await Task.sleep(for: .milliseconds(10))
        }
        let data = collected.data.withLock { $0 } ?? Data()
        return Output(status: process.terminationStatus, text: String(decoding: data, as: UTF8.self))
    }

    /// A listener on 127.0.0.1 that answers `GET /healthz` with 200 and anything else with 404,
    /// each response in one write.
    final class HealthServer: Sendable {
        let port: Int
        private let fd: Int32

        init() throws {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
            guard fd >= 0, bound == 0, listen(fd, 16) == 0 else {
                if fd >= 0 { _ = close(fd) }
                throw POSIXError(.EADDRINUSE)
            }
            _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
            self.fd = fd
            port = Int(UInt16(bigEndian: address.sin_port))
            Thread.detachNewThread {
                while true {
                    let client = accept(fd, nil, nil)
                    if client < 0 { return }
                    var request: [UInt8] = []
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    while !String(decoding: request, as: UTF8.self).contains("\r\n\r\n") {
                        let count = recv(client, &buffer, buffer.count, 0)
                        if count <= 0 { break }
                        request += buffer[0..<count]
                    }
                    let healthz = String(decoding: request, as: UTF8.self).hasPrefix("GET /healthz ")
                    let body = healthz ? #"{"status":"ok"}"# : #"{"error":"not found"}"#
                    let response = "HTTP/1.1 \(healthz ? "200 OK" : "404 Not Found")\r\ncontent-type: application/json\r\n"
                        + "content-length: \(body.utf8.count)\r\nconnection: close\r\n\r\n\(body)"
                    _ = Array(response.utf8).withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    _ = close(client)
                }
            }
        }

        func stop() {
            _ = shutdown(fd, Int32(SHUT_RDWR))
            _ = close(fd)
        }

        /// A port nothing listens on.
        static func closedPort() throws -> Int {
            let server = try HealthServer()
            server.stop()
            return server.port
        }
    }

    @Test(.enabled(if: healthcheckRunnable, "the HEALTHCHECK runs curl, which is not installed here"))
    func healthcheckPassesAgainstHealthzAndFailsWithNothingListening() async throws {
        let command = try Self.healthcheck()
        #expect(!command.joined(separator: " ").contains("/dev/tcp"), "dash has no /dev/tcp")
        #expect(command.contains { $0.contains("127.0.0.1:9464") }, "the admin server's port: \(command)")
        let server = try HealthServer()
        defer { server.stop() }
        let up = try await Self.run(command.map { $0.replacingOccurrences(of: "127.0.0.1:9464", with: "127.0.0.1:\(server.port)") })
        #expect(up.status == 0, "\(command): \(up.text)")
        let closed = try HealthServer.closedPort()
        let down = try await Self.run(command.map { $0.replacingOccurrences(of: "127.0.0.1:9464", with: "127.0.0.1:\(closed)") })
        #expect(down.status != 0, "nothing listens on \(closed), yet the HEALTHCHECK passed")
    }

    @Test(.enabled(if: tool("promtool") != nil, "needs promtool (Debian package prometheus)"))
    func alertRulesPassPromtool() async throws {
        let promtool = try #require(Self.tool("promtool"))
        let check = try await Self.run([promtool, "check", "rules", Self.root.appendingPathComponent("examples/prometheus-alerts.yaml").path])
        #expect(check.status == 0, "\(check.text)")
    }

    @Test func everyRunbookCommandNamesTheConfig() throws {
        var commands: [String] = []
        for line in try Self.text("examples/prometheus-alerts.yaml").split(separator: "\n") {
            guard let range = line.range(of: "runbook:") else { continue }
            let value = line[range.upperBound...].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
            for part in value.split(separator: ";") {
                var command = part.trimmingCharacters(in: .whitespaces)
                if command.hasPrefix("then ") { command.removeFirst(5) }
                if command.hasPrefix("paybridge ") { commands.append(command) }
            }
        }
        #expect(!commands.isEmpty, "the alert rules have runbook commands")
        for command in commands {
            #expect(command.contains("--config /etc/paybridge/paybridge.yaml"), "\(command)")
        }
    }

    @Test(.enabled(if: tool("systemd-analyze") != nil, "needs systemd-analyze (Debian package systemd)"))
    func systemdUnitVerifiesAndIsSandboxed() async throws {
        let analyze = try #require(Self.tool("systemd-analyze"))
        let unit = Self.root.appendingPathComponent("examples/paybridge.service")
        // verify checks that ExecStart's binary exists: a copy runs /bin/true instead.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("paybridge-unit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let copy = directory.appendingPathComponent("paybridge.service")
        let text = try Self.text("examples/paybridge.service").replacingOccurrences(of: "/usr/local/bin/paybridge", with: "/bin/true")
        try text.write(to: copy, atomically: true, encoding: .utf8)
        let verify = try await Self.run([analyze, "verify", copy.path])
        #expect(verify.status == 0, "\(verify.text)")

        let security = try await Self.run([analyze, "security", "--offline=true", "--threshold=30", unit.path])
        #expect(security.status == 0, "exposure above 3.0: \(security.text)")
        let match = security.text.firstMatch(of: /Overall exposure level for [^:]+: ([0-9]+\.[0-9])/)
        let figure = try #require(match.flatMap { Double(String($0.output.1)) }, "no exposure level in: \(security.text)")
        #expect(figure <= 3.0, "\(security.text)")
    }

    @Test func dockerignoreKeepsBuildProductsOutOfTheContext() throws {
        let patterns = try Self.text(".dockerignore").split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        let normalized = Set(patterns.map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "/")) })
        #expect(normalized.contains(".build"), "\(patterns)")
        #expect(normalized.contains(".git"), "\(patterns)")
        // What `swift build` in the Containerfile reads stays in the context.
        for needed in ["Package.swift", "Sources", "Tests", "Benchmarks"] {
            #expect(!normalized.contains(needed) && !normalized.contains("*"), "\(needed) is needed by the build")
        }
    }
}
