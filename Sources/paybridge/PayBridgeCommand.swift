import ArgumentParser
import Foundation
import Logging
import PayBridge
import Synchronization

@main
struct PayBridgeCommand: AsyncParsableCommand {
    static func main() async {
        MemoryTuning.apply()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as CommandError {
            printError("error: \(error)")
            Foundation.exit(1)
        } catch {
            exit(withError: error)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "paybridge",
        abstract: "Turns Banking Circle's polled payments API into signed webhook events.",
        discussion: """
            Start with the demo (the sandbox bank in-process, events printed as they happen):
              paybridge run
            With your config:
              paybridge validate --config paybridge.yaml
              paybridge run --config paybridge.yaml
            On call ("did the ERP get the rejection for payment 0b9f…?"):
              paybridge payments show 0b9f… --config paybridge.yaml
              paybridge deliveries list --config paybridge.yaml --state failing
              paybridge deliveries replay --config paybridge.yaml --id 42
            """,
        version: PayBridgeVersion.string,
        subcommands: [
            Run.self, Poll.self, Validate.self, SandboxCommand.self, Routes.self, Payments.self, Events.self, Deliveries.self, Endpoints.self,
            NotificationsCommand.self,
        ])
}

/// Options every command shares: `--log-level`, `--log-format` (also `PAYBRIDGE_LOG_LEVEL`,
/// `PAYBRIDGE_LOG_FORMAT`). Logs go to standard error.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = ProcessInfo.processInfo.environment["PAYBRIDGE_LOG_LEVEL"] ?? "info"

    @Option(name: .long, help: "Log format: text (a line per entry, the message first) or json (one JSON object a line).")
    var logFormat: String = ProcessInfo.processInfo.environment["PAYBRIDGE_LOG_FORMAT"] ?? "text"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel.lowercased()) != nil else {
            throw ValidationError("--log-level must be one of: trace, debug, info, notice, warning, error, critical")
        }
        guard ["text", "json"].contains(logFormat.lowercased()) else { throw ValidationError("--log-format must be text or json") }
    }

    var logsJSON: Bool { logFormat.lowercased() == "json" }
    /// Whether the config's warnings show: not at `--log-level error`, in either format.
    var showsWarnings: Bool { Logger.Level(rawValue: logLevel.lowercased()).map { $0 <= .warning } ?? true }

    private static let bootstrapped = Mutex(false)

    /// Sets up logging (once per process) and returns the root logger.
    func bootstrapLogging() -> Logger {
        let level = Logger.Level(rawValue: logLevel.lowercased()) ?? .info
        let json = logFormat.lowercased() == "json"
        let first = Self.bootstrapped.withLock { done -> Bool in
            defer { done = true }
            return !done
        }
        if first {
            if json { JSONLogHandler.everyLine.store(true, ordering: .relaxed) }
            LoggingSystem.bootstrap { _ in
                json ? JSONLogHandler(logLevel: level) as any LogHandler : TextLogHandler(logLevel: level)
            }
        }
        var logger = Logger(label: "paybridge")
        logger.logLevel = level
        return logger
    }
}

/// Loads a config or prints its errors as FILE:LINE:COLUMN lines and exits 2. `run`, `poll`
/// and `notifications` print its warnings (through the log, so `--log-format json` keeps every line JSON).
func loadConfiguration(
    _ path: String, unsetVariables: ConfigLoader.UnsetVariables = .error, warnings: Bool = true, logger: Logger? = nil
) throws -> Configuration {
    do {
        let loaded = try ConfigLoader.load(file: path, unsetVariables: unsetVariables)
        if warnings {
            for warning in loaded.warnings where warning.severity == .warning { report(warning, logger: logger) }
        }
        return loaded.configuration
    } catch {
        for issue in error.issues { report(issue, logger: logger) }
        throw ExitCode(2)
    }
}

/// A config issue as `FILE:LINE:COLUMN: message` on stderr, or as a log entry with the place
/// in its metadata when a logger is given.
func report(_ issue: ConfigIssue, logger: Logger?) {
    guard let logger else {
        printError(issue.description)
        return
    }
    let metadata: Logger.Metadata = [
        "file": "\(issue.file)", "line": .stringConvertible(issue.line), "column": .stringConvertible(issue.column),
    ]
    let message = Logger.Message(stringLiteral: "\(issue.file):\(issue.line):\(issue.column): \(issue.message)")
    logger.log(level: issue.severity == .warning ? .warning : .error, message, metadata: metadata)
}

/// Where the config is when `--config` is not given, for `--help`.
let configDefaults = "Without --config: $PAYBRIDGE_CONFIG, else ./paybridge.yaml, else /etc/paybridge/paybridge.yaml."

/// The config file: `--config`, else `$PAYBRIDGE_CONFIG`, else `./paybridge.yaml` or
/// `/etc/paybridge/paybridge.yaml`, whichever exists first (on call, no `--config` to type).
func configPath(_ given: String?) throws -> String {
    if let given { return given }
    if let named = ProcessInfo.processInfo.environment["PAYBRIDGE_CONFIG"], !named.isEmpty { return named }
    for candidate in ["paybridge.yaml", "/etc/paybridge/paybridge.yaml"] where FileManager.default.fileExists(atPath: candidate) {
        return candidate
    }
    throw CommandError("no config: pass --config FILE, or set PAYBRIDGE_CONFIG (neither ./paybridge.yaml nor /etc/paybridge/paybridge.yaml exists)")
}

/// Takes a SQLite state's lock for this process's life (nil for PostgreSQL, where several
/// processes share the state by design); another `run` or `poll` holding it is an error.
func lockState(_ configuration: Configuration) throws(StateLockError) -> StateLock? {
    guard configuration.state.kind == .sqlite else { return nil }
    return try StateLock.acquire(folder: configuration.state.path)
}

/// After a process that held the state was killed or crashed: one line saying its queue
/// resumes now, and that what it had in flight goes out again (same webhook-id).
func announceResume(after lock: StateLock?, bridge: Bridge, logger: Logger) async {
    guard let lock, lock.previousEndedUncleanly else { return }
    let pending = await bridge.operations.pendingDeliveries()
    logger.notice(
        "the last run did not stop gracefully (killed or crashed): resuming its queue; deliveries it had in flight go out again with the same webhook-id",
        metadata: ["pending": .stringConvertible(pending)])
}

extension StateLockError {
    /// The line an operator reads: another process, or the folder itself.
    func message(_ configuration: Configuration) -> String {
        switch self {
        case .held: return "error: \(self)"
        case .fileSystem: return "error: cannot open the state database in \(configuration.state.path): \(self)"
        }
    }
}

/// A line on standard error outside the logger (a command's errors, `validate`'s findings).
/// With `--log-format json` it is a JSON object like every log line (`level` warning for a
/// `warning:` line, else error), so no plain line breaks a JSON log.
/// `metadata` follows as on a log line (`requestId=…`, or a JSON member).
func printError(_ text: String, metadata: Logger.Metadata = [:]) {
    guard JSONLogHandler.everyLine.load(ordering: .relaxed) else {
        let fields = metadata.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }.joined()
        FileHandle.standardError.write(Data((text + fields + "\n").utf8))
        return
    }
    let warning = text.hasPrefix("warning:") || text.contains(": warning: ")
    Terminal.shared.write(line: JSONLogHandler.line(level: warning ? .warning : .error, message: text, metadata: metadata))
}
