import ArgumentParser
import Foundation
import PayBridge

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a config file; print each problem as FILE:LINE:COLUMN: message.",
        discussion: "Example: paybridge validate --config paybridge.yaml (exit 1 on an error; warnings do not fail)")

    @Option(name: .long, help: "The config file.")
    var config: String

    @OptionGroup var common: CommonOptions

    func run() throws {
        do {
            let loaded = try ConfigLoader.load(file: config)
            for warning in loaded.warnings { printError(warning.description) }
            let configuration = loaded.configuration
            for warning in configuration.state.kind == .sqlite ? StateFolder.warnings(configuration.state.path) : [] { printError("\(config):1:1: warning: \(warning)") }
            print(
                "\(config): OK (\(Output.count(configuration.source.watches.count, "watch", "watches")), "
                    + "\(Output.count(configuration.endpoints.count, "endpoint")), \(Output.count(configuration.routes.count, "route")))")
        } catch {
            printError(error.description)
            throw ExitCode(1)
        }
    }
}

/// The state holds payment data: folder `0700`, files `0600`.
enum StateFolder {
    static func warnings(_ path: String) -> [String] {
        var warnings: [String] = []
        for (file, kind) in [(path, "folder"), (path + "/" + SQLiteStore.fileName, "database")] {
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: file),
                let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue, mode & 0o077 != 0
            else { continue }
            warnings.append(
                "the state \(kind) \(file) can be read by other users (mode \(String(mode, radix: 8))); it holds payment data: chmod \(kind == "folder" ? "700" : "600") \(file)")
        }
        return warnings
    }
}
