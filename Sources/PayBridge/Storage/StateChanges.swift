import Foundation
import Synchronization

/// What the storage seam tells those who wait for work.
public enum StateChange: Sendable, Equatable {
    /// A commit queued deliveries (this process's, or another instance's on PostgreSQL).
    case queued
    /// Another process committed something, or an operator corrected the state (a replay, an
    /// enable): records and queues are worth reading again.
    case changed
}

/// The one wake-up signal of a store: its own commits that queued work, announced as they
/// commit, and other processes' commits, found by asking the store's change mark (SQLite's
/// `data_version`: no I/O when nothing changed; PostgreSQL's notifications, and its listener's
/// reconnections) every quarter of a second, through the store (never blocking the pool).
final class StateChanges: Sendable {
    static let interval: Duration = .milliseconds(250)

    private struct Subscribers {
        var next: UInt64 = 0
        var continuations: [UInt64: AsyncStream<StateChange>.Continuation] = [:]
    }

    private let subscribers = Mutex(Subscribers())

    /// Tells every subscriber.
    func announce(_ change: StateChange) {
        for continuation in subscribers.withLock({ Array($0.continuations.values) }) { continuation.yield(change) }
    }

    /// A subscription: what is announced from now on, and `.changed` whenever `changeMark`
    /// moves (the first reading counts: a commit made while the subscriber started is not
    /// missed). It ends when its consumer stops iterating or is cancelled.
    func subscribe(changeMark: @escaping @Sendable () async throws -> Int64) -> AsyncStream<StateChange> {
        let (stream, continuation) = AsyncStream.makeStream(of: StateChange.self, bufferingPolicy: .bufferingNewest(8))
        let id = subscribers.withLock { subscribers -> UInt64 in
            subscribers.next += 1
            subscribers.continuations[subscribers.next] = continuation
            return subscribers.next
        }
        let watch = Task {
            var last: Int64?
            while !Task.isCancelled {
                if let mark = try? await changeMark() {
                    if mark != last { continuation.yield(.changed) }
                    last = mark
                }
                try? await Task.sleep(for: Self.interval)
            }
        }
        continuation.onTermination = { [weak self] _ in
            watch.cancel()
            self?.subscribers.withLock { _ = $0.continuations.removeValue(forKey: id) }
        }
        return stream
    }
}
