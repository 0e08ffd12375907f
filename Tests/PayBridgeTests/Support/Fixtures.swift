import Foundation
import Logging
import Synchronization
import Testing

@testable import PayBridge

/// A temporary folder removed at the end of the test.
final class TemporaryDirectory: Sendable {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("paybridge-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    @discardableResult
    func write(_ name: String, _ text: String, permissions: Int = 0o600) throws -> String {
        let target = file(name)
        try text.write(toFile: target, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: permissions], ofItemAtPath: target)
        return target
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

enum Fixtures {
    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    /// A config for a test bank and endpoints; `extraSource`/`endpoints`/`routes` are YAML.
    static func config(
        bankURL: String, state: String, watches: String = defaultWatch, pageSize: Int = 1000, endpoints: String,
        routes: String? = nil, extraSource: String = ""
    ) -> String {
        """
        source:
          kind: banking-circle
          apiURL: \(bankURL)
          username: sandbox
          password: sandbox
          pageSize: \(pageSize)
          retries: 1
          retryBackoff: 10ms
        \(extraSource)
          watches:
        \(watches)
        state:
        \(stateYAML(state))
        endpoints:
        \(endpoints)
        """ + (routes.map { "\nroutes:\n\($0)\n" } ?? "\n")
    }

    /// `state:`'s keys for a folder (SQLite) or a URL (PostgreSQL).
    static func stateYAML(_ state: String, lease: String? = nil) -> String {
        guard state.hasPrefix("postgres") else { return "  path: \(state)" }
        return "  kind: postgres\n  url: \(state)" + (lease.map { "\n  lease: \($0)" } ?? "")
    }

    static let defaultWatch = """
            - name: recent
              every: 1s
              query:
                InstructedDateFrom: -3d
        """

    static func endpoint(_ name: String, url: String, retry: String = "[100ms, 100ms]", concurrency: Int = 8, extra: String = "") -> String {
        """
          \(name):
            url: \(url)
            secret: \(secret)
            timeout: 5s
            concurrency: \(concurrency)
            retry: \(retry)
        \(extra)
        """
    }

    static func load(_ text: String, in directory: TemporaryDirectory) throws -> Configuration {
        try ConfigLoader.load(text: text, file: "test.yaml", baseDirectory: directory.path).configuration
    }

    static var quietLogger: Logger {
        var logger = Logger(label: "paybridge-test")
        // PAYBRIDGE_TEST_LOG_LEVEL=debug shows what a test's bridge did (a test that hangs).
        logger.logLevel = ProcessInfo.processInfo.environment["PAYBRIDGE_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        return logger
    }
}

/// Runs the real `paybridge` executable.
enum Binary {
    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static var path: String {
        let sibling = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("paybridge").path
        if FileManager.default.isExecutableFile(atPath: sibling) { return sibling }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/paybridge").path
    }

    static func start(_ arguments: [String], environment: [String: String] = [:], directory: String? = nil) throws -> (Process, Pipe, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        var env = ProcessInfo.processInfo.environment
        env["PAYBRIDGE_LOG_LEVEL"] = env["PAYBRIDGE_LOG_LEVEL"] ?? "info"
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        return (process, out, err)
    }

    static func run(_ arguments: [String], environment: [String: String] = [:], directory: String? = nil) async throws -> Output {
        let (process, out, err) = try start(arguments, environment: environment, directory: directory)
        // Pipes are drained on threads of their own: blocking reads on the cooperative pool
        // would starve the in-process servers the child talks to.
        let stdout = PipeReader(out)
        let stderr = PipeReader(err)
        let status = await exitStatus(of: process)
        return Output(status: status, stdout: await stdout.text(), stderr: await stderr.text())
    }

    /// Waits for the process to end without blocking a thread.
    static func exitStatus(of process: Process) async -> Int32 {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                process.waitUntilExit()
                continuation.resume(returning: process.terminationStatus)
            }
        }
    }
}

/// Reads a pipe to its end on a thread of its own.
final class PipeReader: Sendable {
    private let state = Mutex((data: Data(), ended: false))

    init(_ pipe: Pipe) {
        Thread.detachNewThread { [self] in
            let handle = pipe.fileHandleForReading
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                state.withLock { $0.data.append(chunk) }
            }
            state.withLock { $0.ended = true }
        }
    }

    /// Everything written, once the writer has closed the pipe.
    func text() async -> String {
        while true {
            if let data = state.withLock({ $0.ended ? $0.data : nil }) { return String(decoding: data, as: UTF8.self) }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Whether `needle` has been written (or is, within `timeout`): what a test waits for
    /// before its next step, instead of a fixed time.
    func shows(_ needle: String, within timeout: Duration = .seconds(30)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let (data, ended) = state.withLock { ($0.data, $0.ended) }
            if String(decoding: data, as: UTF8.self).contains(needle) { return true }
            if ended { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}

/// A count shared by tasks and threads.
final class Tally: Sendable {
    private let count = Mutex(0)

    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
