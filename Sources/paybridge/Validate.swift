import ArgumentParser
import Foundation
import Logging
import PayBridge

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a config file; print each problem as FILE:LINE:COLUMN: message.",
        discussion: """
            Exit 1 on an error; warnings do not fail. An unset ${NAME} is an error, and the rest is still checked;
            with --env-optional it is only listed, for a dry check on a machine without the secrets.
            Examples:
              paybridge validate --config paybridge.yaml
              paybridge validate --config paybridge.yaml --env-optional
            """)

    @Option(name: .long, help: ArgumentHelp("The config file.", discussion: configDefaults))
    var config: String?

    @Flag(name: .long, help: "Unset environment variables are listed, not errors (a check without the secrets).")
    var envOptional = false

    @OptionGroup var common: CommonOptions

    func run() throws {
        let logger = common.bootstrapLogging()
        // With --log-format json each finding is one JSON object with its place and severity.
        let sink = common.logsJSON ? logger : nil
        let config = try configPath(config)
        let loaded: LoadedConfiguration
        do {
            loaded = try ConfigLoader.load(file: config, unsetVariables: .deferred)
        } catch {
            for issue in error.issues { show(issue, sink) }
            for unset in error.unsetVariables { show(note(unset), sink) }
            throw ExitCode(1)
        }
        for warning in loaded.warnings { show(warning, sink) }
        for unset in loaded.unsetVariables { show(note(unset), sink) }
        let configuration = loaded.configuration
        var failed = !envOptional && !loaded.unsetVariables.isEmpty
        if configuration.state.kind == .sqlite {
            if let problem = FileProblem.stateFolderProblem(configuration.state.path) {
                show(ConfigIssue(file: config, line: configuration.state.line, column: configuration.state.column, message: problem), sink)
                failed = true
            }
            for warning in StateFolder.warnings(configuration.state.path) {
                show(ConfigIssue(file: config, line: configuration.state.line, column: configuration.state.column, message: warning, severity: .warning), sink)
            }
        }
        if failed { throw ExitCode(1) }
        print(
            "\(config): OK (\(Output.count(configuration.source.watches.count, "watch", "watches")), "
                + "\(Output.count(configuration.endpoints.count, "endpoint")), \(Output.count(configuration.routes.count, "route")))"
                + (loaded.unsetVariables.isEmpty ? "" : ", \(Output.count(loaded.unsetVariables.count, "unset variable")) not checked"))
    }

    /// A finding on standard error like every command's; an error also as the command's
    /// output on standard output (`FILE:LINE:COLUMN: message`), unless both are one file (a
    /// terminal, `2>&1`): a CI step that keeps only one of them still has the errors. A valid
    /// config's standard output stays its one `OK` line.
    private func show(_ issue: ConfigIssue, _ logger: Logger?) {
        report(issue, logger: logger)
        if issue.severity == .error, Terminal.outputIsSeparate { print(issue.description) }
    }

    /// An unset variable: an error, or with --env-optional a warning.
    private func note(_ unset: ConfigIssue) -> ConfigIssue {
        var issue = unset
        if envOptional { issue.severity = .warning }
        return issue
    }
}

/// The state holds payment data: folder `0700`, files `0600`.
enum StateFolder {
    static func warnings(_ path: String) -> [String] {
        var warnings: [String] = []
        for (file, kind) in [(path, "folder"), (StateStore.databaseFile(inFolder: path), "database")] {
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: file),
                let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue, mode & 0o077 != 0
            else { continue }
            warnings.append(
                "the state \(kind) \(file) can be read by other users (mode \(String(mode, radix: 8))); it holds payment data: chmod \(kind == "folder" ? "700" : "600") \(file)")
        }
        return warnings
    }
}
