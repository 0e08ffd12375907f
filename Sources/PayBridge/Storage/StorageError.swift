import Foundation

/// What the rest of paybridge hears of a storage failure, whichever backend had it.
public enum StorageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// This instance no longer holds the poller lease: another one polls now.
    case leaseLost
    /// The state's schema is one this release cannot open.
    case unsupportedSchema(String)
    /// `state.url` is not a PostgreSQL URL paybridge can use.
    case url(String)
    /// No connection could be opened (the server, the network, TLS or the login refused it).
    case connect(String)
    /// The database refused a statement (its own message, never the bound values).
    case query(String)

    public var description: String {
        switch self {
        case .leaseLost: return "this instance lost the poller lease (another instance polls now); nothing was committed"
        case .unsupportedSchema(let reason): return "cannot open the state: \(reason)"
        case .url(let reason): return "state.url: \(reason)"
        case .connect(let reason): return "cannot connect to PostgreSQL: \(reason)"
        case .query(let message): return "PostgreSQL: \(message)"
        }
    }
}
