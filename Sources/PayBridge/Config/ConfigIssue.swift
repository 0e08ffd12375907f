/// A problem in a config file, at a place in it. Its message never holds a secret: values
/// are only quoted for enum and duration fields, and never for unknown keys.
public struct ConfigIssue: Sendable, Equatable, CustomStringConvertible {
    public enum Severity: Sendable, Equatable { case error, warning }

    public var file: String
    public var line: Int
    public var column: Int
    public var message: String
    public var severity: Severity

    public init(file: String, line: Int, column: Int, message: String, severity: Severity = .error) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
        self.severity = severity
    }

    /// `FILE:LINE:COLUMN: message`, the form editors and CI annotations understand.
    public var description: String {
        "\(file):\(line):\(column): \(severity == .warning ? "warning: " : "")\(message)"
    }
}

/// The config could not be used; `issues` holds every error found (and the warnings).
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public var issues: [ConfigIssue]
    /// Unset variables when they were deferred (`ConfigLoader.UnsetVariables.deferred`).
    public var unsetVariables: [ConfigIssue]

    public init(issues: [ConfigIssue], unsetVariables: [ConfigIssue] = []) {
        self.issues = issues
        self.unsetVariables = unsetVariables
    }

    public var errors: [ConfigIssue] { issues.filter { $0.severity == .error } }

    public var description: String { issues.map(\.description).joined(separator: "\n") }
}

/// A configuration that loaded, with the warnings found on the way.
public struct LoadedConfiguration: Sendable {
    public var configuration: Configuration
    public var warnings: [ConfigIssue]
    /// The secrets written in the file itself (not `${ENV}` or a `secretFile`), each at its
    /// key's place, its message the key.
    public var literalSecrets: [ConfigIssue] = []
    /// `${NAME}`s that were not set, when deferred; their settings are left out.
    public var unsetVariables: [ConfigIssue] = []

    public var holdsLiteralSecret: Bool { !literalSecrets.isEmpty }
}
