import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The console (§11): one page served by paybridge itself at `/console` — HTML, CSS and plain
/// JavaScript in the binary, no CDN, no build step. Sign-in exchanges a token for a session
/// cookie (HttpOnly, SameSite=Strict, Secure under TLS); the page then calls the operations API
/// with it, and every action is a POST carrying the session's CSRF token.
enum Console {
    static func register(on router: Router<BasicRequestContext>, access: AdminAccess, logger: Logger) {
        router.get("/console") { _, _ -> Response in
            var headers: HTTPFields = [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"]
            // Everything comes from paybridge itself; no page may frame the console.
            if let name = HTTPField.Name("Content-Security-Policy") {
                headers[name] = "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
            }
            if let name = HTTPField.Name("X-Frame-Options") { headers[name] = "DENY" }
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: ConsolePage.html)))
        }
        router.get("/console/session") { request, _ -> Response in
            guard let identity = access.identify(request), identity.csrf != nil || access.open else {
                return OperationsAPI.error(.init(.unauthorized, "unauthorized", "sign in with a token"))
            }
            return OperationsAPI.ok(describe(identity))
        }
        router.post("/console/session") { request, _ -> Response in
            var request = request
            let body = String(buffer: try await request.collectBody(upTo: 64 << 10))
            // A form (`token=…`) or JSON (`{"token": …}`).
            var token = ""
            if let document = try? JSONValue.parse(Array(body.utf8)), let value = document["token"]?.stringValue {
                token = value
            } else {
                for pair in body.split(separator: "&") where pair.hasPrefix("token=") {
                    token = String(pair.dropFirst(6)).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
                }
            }
            guard let (id, identity) = access.signIn(token: token.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                logger.warning("console sign-in refused: wrong token")
                return OperationsAPI.error(.init(.unauthorized, "unauthorized", "this token is not one of admin.tokens"))
            }
            logger.notice("console sign-in", metadata: ["token": "\(identity.name)", "role": "\(identity.role.rawValue)"])
            var response = OperationsAPI.ok(describe(identity))
            response.headers[.setCookie] = access.cookie(for: id)
            return response
        }
        router.post("/console/signout") { request, _ -> Response in
            access.signOut(request)
            var response = OperationsAPI.ok(.object([("signedOut", .bool(true))]))
            response.headers[.setCookie] = access.cookie(for: "")
            return response
        }
    }

    static func describe(_ identity: AdminAccess.Identity) -> JSONValue {
        .object([("name", .string(identity.name)), ("role", .string(identity.role.rawValue)), ("csrf", .text(identity.csrf))])
    }
}
