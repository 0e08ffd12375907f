import Foundation

/// A watch as this process has seen it poll.
public struct WatchStatus: Sendable, Equatable {
    public var name: String
    public var every: Duration
    public var lastSuccessAt: Date?
    public var lastFailureAt: Date?
    public var lastError: String?
}
