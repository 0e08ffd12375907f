import Foundation

/// `poll --once` on a shared state while a running instance polls.
public struct PollerLeaseHeld: Error, CustomStringConvertible {
    public var description: String {
        "another paybridge instance holds the poller lease and polls the bank; poll --once would poll twice (stop it, or let it do the polling)"
    }
}

/// The state folder could not be opened.
public struct StateUnavailable: Error, CustomStringConvertible {
    public var path: String
    public var underlying: any Error

    public var description: String { "cannot open the state database in \(path): \(underlying)" }
}

/// The notifications' listener cannot start.
public struct NotificationReceiverError: Error, Sendable, CustomStringConvertible {
    public var description: String
}
