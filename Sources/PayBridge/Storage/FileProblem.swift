import Foundation

/// A file system error in plain words, for the operator who has to fix it: what went wrong,
/// where, and what to do, instead of `Error Domain=NSCocoaErrorDomain Code=4 …`.
public enum FileProblem {
    public static func describe(_ error: any Error, path: String) -> String {
        if let code = errnoCode(error) { return describe(errno: code, path: path) }
        let nsError = error as NSError
        if nsError.domain == NSCocoaErrorDomain {
            switch CocoaError.Code(rawValue: nsError.code) {
            case .fileNoSuchFile, .fileReadNoSuchFile: return describe(errno: ENOENT, path: path)
            case .fileWriteNoPermission, .fileReadNoPermission: return describe(errno: EACCES, path: path)
            case .fileWriteVolumeReadOnly: return describe(errno: EROFS, path: path)
            case .fileWriteOutOfSpace: return describe(errno: ENOSPC, path: path)
            case .fileWriteFileExists: return "\(path) already exists and is not what paybridge expected there"
            default: break
            }
        }
        // Foundation often says only "error 512" or "error 256": look at the path itself.
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
            return describe(errno: EISDIR, path: path)
        }
        if let seen = diagnose(path) { return seen }
        return "\(path): \(nsError.localizedFailureReason ?? nsError.localizedDescription)"
    }

    public static func describe(errno code: Int32, path: String) -> String {
        let user = ProcessInfo.processInfo.userName
        switch code {
        case ENOENT, ENOTDIR:
            // Say which part is wrong: a file where a folder should be, or what is missing.
            var above = parentFolder(of: path)
            var isFolder: ObjCBool = false
            while !above.isEmpty, above != "/", !FileManager.default.fileExists(atPath: above, isDirectory: &isFolder) {
                above = parentFolder(of: above)
            }
            if !above.isEmpty, FileManager.default.fileExists(atPath: above, isDirectory: &isFolder), !isFolder.boolValue {
                return "\(above) is a file, not a folder, so \(path) cannot be there"
            }
            return code == ENOENT ? "\(path) does not exist (or a folder above it does not)" : "\(path): a part of the path is a file, not a folder"
        case EACCES, EPERM:
            return "permission denied on \(path): the user paybridge runs as (\(user)) may not use it; change the owner or mode of the folder, or choose another path"
        case EROFS: return "\(path) is on a read-only file system: choose a path on a writable one"
        case ENOSPC, EDQUOT: return "no space left for \(path): free some space or choose another disk"
        case EISDIR: return "\(path) is a folder, not a file"
        case ELOOP: return "\(path): too many symbolic links"
        default: return "\(path): \(String(cString: strerror(code)))"
        }
    }

    /// What is wrong with a path that cannot be created, seen on disk: a file where a folder
    /// should be, or a folder paybridge may not write in.
    private static func diagnose(_ path: String) -> String? {
        var above = parentFolder(of: path)
        var isFolder: ObjCBool = false
        while !above.isEmpty, above != "/", !FileManager.default.fileExists(atPath: above, isDirectory: &isFolder) {
            above = parentFolder(of: above)
        }
        guard !above.isEmpty, FileManager.default.fileExists(atPath: above, isDirectory: &isFolder) else { return nil }
        if !isFolder.boolValue { return "\(above) is a file, not a folder, so \(path) cannot be there" }
        if access(above, W_OK | X_OK) != 0 { return describe(errno: errno, path: above) }
        return nil
    }

    /// The folder `path` names its file or folder in: "" for a bare name, "/" at the top.
    /// (Foundation's `deletingLastPathComponent` traps on some one-character paths on Linux.)
    static func parentFolder(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "" }
        var parent = trimmed[..<slash]
        while parent.hasSuffix("/") { parent = parent.dropLast() }  // f//x: f
        return parent.isEmpty ? "/" : String(parent)
    }

    /// The errno behind a Foundation or POSIX error, when there is one.
    private static func errnoCode(_ error: any Error) -> Int32? {
        if let posix = error as? POSIXError { return posix.code.rawValue }
        let nsError = error as NSError
        if nsError.domain == NSPOSIXErrorDomain { return Int32(nsError.code) }
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return Int32(underlying.code)
        }
        return nil
    }

    /// Why `folder` cannot hold a state (nil when it can): it must be a folder paybridge can
    /// create, or one it can write in. Creates nothing.
    public static func stateFolderProblem(_ folder: String) -> String? {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder) {
            guard isFolder.boolValue else { return "state.path \(folder) is a file, not a folder" }
            return access(folder, W_OK | X_OK) == 0 ? nil : "state.path: \(describe(errno: errno, path: folder))"
        }
        // The nearest existing folder above must let paybridge create the rest.
        var parent = parentFolder(of: folder)
        while !parent.isEmpty, !FileManager.default.fileExists(atPath: parent, isDirectory: &isFolder) {
            let next = parentFolder(of: parent)
            if next == parent { break }
            parent = next
        }
        if parent.isEmpty { parent = "." }
        guard isFolder.boolValue else { return "state.path \(folder): \(parent) is a file, not a folder" }
        guard access(parent, W_OK | X_OK) == 0 else {
            return "state.path \(folder) cannot be created: \(describe(errno: errno, path: parent))"
        }
        return nil
    }
}
