import Crypto
import Foundation
import Hummingbird
import Synchronization

/// Who is asking the admin server: a bearer token (`Authorization: Bearer T`) or a console
/// session (its cookie), with the token's name and role. Tokens are compared in constant time
/// and never logged; actions are logged with the token's name.
public final class AdminAccess: Sendable {
    public struct Identity: Sendable, Equatable {
        public var name: String
        public var role: AdminConfiguration.Token.Role
        /// The console session's CSRF token (nil for a bearer token: no cookie, no CSRF).
        public var csrf: String?
    }

    static let cookieName = "paybridge_session"
    /// A console session lasts this long after sign-in.
    static let sessionLifetime: TimeInterval = 12 * 3600

    private struct Session {
        var identity: Identity
        var expiresAt: Date
    }

    private let tokens: [AdminConfiguration.Token]
    private let sessions = Mutex<[String: Session]>([:])
    let secureCookies: Bool

    public init(_ admin: AdminConfiguration) {
        tokens = admin.tokens
        secureCookies = admin.tls != nil
    }

    /// Without any token (a loopback listener), everyone may read, as `/metrics` was open
    /// before roles; nobody may act (an action needs an `operate` token).
    public var open: Bool { tokens.isEmpty }

    /// The token that matches `given`, compared with every configured token in constant time.
    func identify(token given: String) -> Identity? {
        // No token is never a token (the config refuses an empty one as well).
        guard !given.isEmpty else { return nil }
        let digest = Array(SHA256.hash(data: Data(given.utf8)))
        var found: Identity?
        for token in tokens {
            let wanted = Array(SHA256.hash(data: Data(token.token.value.utf8)))
            var difference: UInt8 = 0
            for (a, b) in zip(digest, wanted) { difference |= a ^ b }
            if difference == 0, found == nil { found = Identity(name: token.name, role: token.role, csrf: nil) }
        }
        return found
    }

    /// The bearer token's identity, else the session cookie's; nil when neither is valid.
    func identify(_ request: Request) -> Identity? {
        if open { return Identity(name: "anonymous", role: .read, csrf: nil) }
        // The scheme is case-insensitive (RFC 9110 §11.1): `bearer T` is `Bearer T`.
        if let header = request.headers[.authorization], header.prefix(7).lowercased() == "bearer " {
            return identify(token: header.dropFirst(7).trimmingCharacters(in: .whitespaces))
        }
        guard let id = Self.cookie(request, Self.cookieName) else { return nil }
        let now = Date()
        return sessions.withLock { sessions in
            guard let session = sessions[id], session.expiresAt > now else {
                sessions[id] = nil
                return nil
            }
            return session.identity
        }
    }

    /// Starts a console session for a valid token: its id (the cookie) and the identity.
    func signIn(token: String) -> (id: String, identity: Identity)? {
        guard var identity = identify(token: token) else { return nil }
        identity.csrf = Self.random()
        let id = Self.random()
        let now = Date()
        sessions.withLock { sessions in
            sessions = sessions.filter { $0.value.expiresAt > now }
            sessions[id] = Session(identity: identity, expiresAt: now.addingTimeInterval(Self.sessionLifetime))
        }
        return (id, identity)
    }

    func signOut(_ request: Request) {
        guard let id = Self.cookie(request, Self.cookieName) else { return }
        sessions.withLock { _ = $0.removeValue(forKey: id) }
    }

    /// The `Set-Cookie` value for a session (empty id: the cookie removed).
    func cookie(for id: String) -> String {
        var cookie = "\(Self.cookieName)=\(id); Path=/; HttpOnly; SameSite=Strict"
        if id.isEmpty { cookie += "; Max-Age=0" } else { cookie += "; Max-Age=\(Int(Self.sessionLifetime))" }
        if secureCookies { cookie += "; Secure" }
        return cookie
    }

    /// An action's check: a session must send its CSRF token (`X-CSRF-Token`); a bearer token
    /// carries no cookie and needs none.
    func allowsAction(_ identity: Identity, _ request: Request) -> Bool {
        guard let csrf = identity.csrf else { return true }
        let given = request.headers.first { $0.name.canonicalName == "x-csrf-token" }?.value ?? ""
        // In constant time, as the tokens.
        let a = Array(SHA256.hash(data: Data(given.utf8)))
        let b = Array(SHA256.hash(data: Data(csrf.utf8)))
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }

    static func cookie(_ request: Request, _ name: String) -> String? {
        for header in request.headers[values: .cookie] {
            for part in header.split(separator: ";") {
                let pair = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                if pair.count == 2, pair[0] == name { return String(pair[1]) }
            }
        }
        return nil
    }

    static func random() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(generator.next() as UInt64, radix: 16) }.joined()
    }
}
