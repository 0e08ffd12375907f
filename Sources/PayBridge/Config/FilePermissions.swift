import Foundation

/// Warns when a file that holds a secret can be read by other users.
enum FilePermissions {
    /// Call only for a config that holds a secret literally; `secret` is the first one (its
    /// message is its key), where the warning points.
    static func warnings(forConfig path: String, secret: ConfigIssue) -> [ConfigIssue] {
        guard let who = readableByOthers(path) else { return [] }
        return [
            ConfigIssue(
                file: path, line: secret.line, column: secret.column,
                message:
                    "\(secret.message) is written in the file, and the file can be read by \(who); run chmod 600 on it, "
                    + "or take the value from an environment variable (${NAME}) or a file (secretFile, tokenFile) readable only by paybridge",
                severity: .warning)
        ]
    }

    /// "all users" or "its group" when the file's mode lets others read it; nil otherwise.
    static func readableByOthers(_ path: String) -> String? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue, mode & 0o044 != 0
        else { return nil }
        return mode & 0o004 != 0 ? "all users" : "its group"
    }
}
