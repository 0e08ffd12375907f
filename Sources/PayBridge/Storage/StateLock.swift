import Foundation

/// An exclusive lock on a SQLite state folder, held for the life of the process that polls and
/// delivers from it (`run`, `poll`). Two such processes on one folder would both deliver every
/// queued row; the second one stops at once instead. The reading commands take no lock.
///
/// `flock(2)` on `paybridge.lock` in the folder: the kernel drops it when the process ends, even
/// by kill -9, so a crash never leaves a stale lock behind.
public final class StateLock: Sendable {
    public static let fileName = "paybridge.lock"
    private let descriptor: Int32

    private init(descriptor: Int32) { self.descriptor = descriptor }

    deinit { close(descriptor) }

    /// Takes the lock on `folder`, creating the folder (`0700`) if need be.
    /// - Throws: `StateLockError.held` when another process holds it; `.fileSystem` otherwise.
    public static func acquire(folder: String) throws(StateLockError) -> StateLock {
        if !FileManager.default.fileExists(atPath: folder) {
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw .fileSystem("cannot create the state folder: \(FileProblem.describe(error, path: folder))")
            }
        }
        let path = (folder as NSString).appendingPathComponent(fileName)
        var descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        // A folder paybridge may read but not write: a lock file made earlier still locks.
        if descriptor < 0, errno == EACCES || errno == EROFS { descriptor = open(path, O_RDONLY | O_CLOEXEC) }
        guard descriptor >= 0 else {
            throw .fileSystem("cannot lock the state folder: \(FileProblem.describe(errno: errno, path: path))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(descriptor)
            if code == EWOULDBLOCK { throw .held(folder: folder) }
            throw .fileSystem("cannot lock the state folder: \(FileProblem.describe(errno: code, path: path))")
        }
        return StateLock(descriptor: descriptor)
    }
}

public enum StateLockError: Error, Sendable, CustomStringConvertible {
    /// Another `run` or `poll` is using the folder.
    case held(folder: String)
    case fileSystem(String)

    public var description: String {
        switch self {
        case .held(let folder):
            return "another paybridge (run or poll) is using the state in \(folder): a SQLite state serves one process at a time, "
                + "or both would deliver every event. Stop the other one, or, to run several, use PostgreSQL (state.kind: postgres)"
        case .fileSystem(let text): return text
        }
    }
}
