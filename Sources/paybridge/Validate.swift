import ArgumentParser
import PayBridge

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a config file; print each problem as FILE:LINE:COLUMN: message.")

    @Option(name: .long, help: "The config file.")
    var config: String

    func run() throws {
        do {
            let loaded = try ConfigLoader.load(file: config)
            for warning in loaded.warnings { printError(warning.description) }
            let configuration = loaded.configuration
            print(
                "\(config): OK (\(configuration.source.watches.count) watches, \(configuration.endpoints.count) endpoints, "
                    + "\(configuration.routes.count) routes)")
        } catch {
            printError(error.description)
            throw ExitCode(1)
        }
    }
}
