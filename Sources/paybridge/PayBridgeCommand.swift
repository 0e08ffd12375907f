import ArgumentParser
import Foundation
import Logging
import PayBridge

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
        } catch {
            exit(withError: error)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "paybridge",
        abstract: "Turns Banking Circle's polled payments API into signed webhook events.",
        version: PayBridgeVersion.string,
        subcommands: [Run.self, Poll.self, Validate.self, SandboxCommand.self, Routes.self, Deliveries.self, Endpoints.self])
}

/// Options every command that reads a config shares.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = ProcessInfo.processInfo.environment["PAYBRIDGE_LOG_LEVEL"] ?? "info"

    func bootstrapLogging() -> Logger {
        let level = Logger.Level(rawValue: logLevel.lowercased()) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: "paybridge")
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
