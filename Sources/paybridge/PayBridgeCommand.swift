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
            LoggingSystem.bootstrap { _ in
                json ? JSONLogHandler(logLevel: level) as any LogHandler : TextLogHandler(logLevel: level)
            }
        }
        var logger = Logger(label: "paybridge")
        logger.logLevel = level
        return logger
    }
}

/// Loads a config or prints its errors as FILE:LINE:COLUMN lines and exits.
func loadConfiguration(_ path: String) throws -> Configuration {
    do {
        let loaded = try ConfigLoader.load(file: path)
        for warning in loaded.warnings { printError(warning.description) }
        return loaded.configuration
    } catch {
        printError(error.description)
        throw ExitCode(2)
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
