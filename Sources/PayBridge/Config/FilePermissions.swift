import Foundation

/// Warns when a config file that holds a secret literally can be read by other users.
enum FilePermissions {
    /// Call only for a file that holds a secret literally (`LoadedConfiguration.holdsLiteralSecret`).
    static func warnings(forConfig path: String) -> [ConfigIssue] {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue, mode & 0o044 != 0
        else { return [] }
        let who = mode & 0o004 != 0 ? "all users" : "its group"
        return [
            ConfigIssue(
                file: path, line: 1, column: 1,
                message: "the file holds a secret and can be read by \(who); run chmod 600 on it, or move the secret to an environment variable or a secretFile",
                severity: .warning)
        ]
    }
}
