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
    /// Whether the process that held the lock before this one ended without a graceful stop
    /// (killed, crashed, the machine lost): its deliveries in flight then go out again.
    public let previousEndedUncleanly: Bool

    private init(descriptor: Int32, previousEndedUncleanly: Bool) {
        self.descriptor = descriptor
        self.previousEndedUncleanly = previousEndedUncleanly
    }

    /// Records a graceful stop, for the next start to see (see `previousEndedUncleanly`).
    public func markStopped() { write("stopped\n") }

    private func write(_ text: String) {
        guard ftruncate(descriptor, 0) == 0 else { return }
        _ = Array(text.utf8).withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
    }

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
        let path = folder.hasSuffix("/") ? folder + fileName : folder + "/" + fileName
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
        // "running" left behind: the last holder never reached markStopped().
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
        let previous = count > 0 ? String(decoding: buffer.prefix(count), as: UTF8.self) : ""
        let lock = StateLock(descriptor: descriptor, previousEndedUncleanly: previous.hasPrefix("running"))
        lock.write("running pid \(getpid())\n")
        return lock
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
