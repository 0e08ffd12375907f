import Foundation

/// A bearer token and when to stop using it.
public struct AccessToken: Sendable, Equatable {
    public var value: Secret
    public var expiresAt: Date
    /// `expiresAt` minus a safety margin: after this the token is renewed.
    public var renewAt: Date
}

/// Caches the bank's token: renewed before it expires, one renewal in flight at a time,
/// and dropped when the bank answers 401 to it. A renewal that failed (after its own
/// retries) answers every watch that asks within `failureHold`: the watches of one round share
/// one authorize call and its retries instead of each starting its own.
actor TokenCache {
    typealias Fetch = @Sendable () async throws(BankError) -> AccessToken

    static let failureHold: TimeInterval = 1

    private let fetch: Fetch
    private let now: @Sendable () -> Date
    private var current: AccessToken?
    private var renewal: Task<Result<AccessToken, BankError>, Never>?
    private var failure: (error: BankError, at: Date)?

    init(now: @escaping @Sendable () -> Date, fetch: @escaping Fetch) {
        self.now = now
        self.fetch = fetch
    }

    func token() async throws(BankError) -> AccessToken {
        if let current, now() < current.renewAt { return current }
        if renewal == nil, let failure, now().timeIntervalSince(failure.at) < Self.failureHold { throw failure.error }
        let task: Task<Result<AccessToken, BankError>, Never>
        if let renewal {
            task = renewal
        } else {
            let fetch = self.fetch
            task = Task {
                do throws(BankError) {
                    return .success(try await fetch())
                } catch {
                    return .failure(error)
                }
            }
            renewal = task
        }
        let result = await task.value
        if renewal == task { renewal = nil }
        switch result {
        case .success(let token):
            failure = nil
            current = token
            return token
        case .failure(let error):
            failure = (error, now())
            throw error
        }
    }

    /// Forgets `token` after the bank refused it (a newer token is kept).
    func invalidate(_ token: AccessToken) {
        if current == token { current = nil }
    }

    /// The margin kept before expiry: 30 s, or a fifth of a short lifetime.
    static func renewalMargin(lifetime: TimeInterval) -> TimeInterval {
        min(30, lifetime / 5)
    }
}
