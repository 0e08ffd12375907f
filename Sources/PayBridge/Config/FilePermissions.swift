import Foundation

/// Warns when a config file that holds a secret literally can be read by other users.
enum FilePermissions {
    static func warnings(forConfig path: String, configuration: Configuration, text: String) -> [ConfigIssue] {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue, mode & 0o044 != 0
        else { return [] }
        var secrets = [configuration.source.password.value]
        secrets += configuration.endpoints.flatMap { $0.secrets.map(\.value) }
        guard secrets.contains(where: { $0.count >= 4 && text.contains($0) }) else { return [] }
        let who = mode & 0o004 != 0 ? "all users" : "its group"
        return [
            ConfigIssue(
                file: path, line: 1, column: 1,
                message: "the file holds a secret and can be read by \(who); run chmod 600 on it, or move the secret to an environment variable or a secretFile",
                severity: .warning)
        ]
    }
}
