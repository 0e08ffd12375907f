import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle

/// The admin server (§9): `/healthz` and `/readyz` for orchestrators, and behind the bearer
/// token `/metrics` (Prometheus text) and `/v1/events` (the catch-up API: events in commit
/// order after an id, so a downstream system that was down pulls exactly what it missed).
public enum AdminServer {
    public static func application(
        _ admin: AdminConfiguration, bridge: Bridge, registry: PrometheusCollectorRegistry, logger: Logger
    ) -> some Service {
        let router = Router()
        let token = admin.token
        router.get("/healthz") { _, _ -> Response in json(.ok, #"{"status":"ok"}"#) }
        router.get("/readyz") { _, _ -> Response in
            let (ready, reasons) = bridge.readiness()
            let body = JSONValue.object([("status", .string(ready ? "ready" : "not ready")), ("reasons", .array(reasons.map { .string($0) }))])
            return json(ready ? .ok : .serviceUnavailable, String(decoding: body.bytes, as: UTF8.self))
        }
        // Kept from earlier versions: endpoints' circuits, for a look by eye.
        router.get("/health") { _, _ -> Response in
            let health = await bridge.health()
            let endpoints = JSONValue.object(
                health.endpoints.map { status in
                    (
                        status.name,
                        .object([
                            ("state", .string(status.failures > 0 && status.state == .closed ? "failing" : status.state.rawValue)),
                            ("failures", .number(String(status.failures))), ("inFlight", .number(String(status.inFlight))),
                            ("failingSince", status.failingSince.map { .string(Timestamp.iso8601($0)) } ?? .null),
                        ])
                    )
                })
            let healthy = health.healthy && health.endpoints.allSatisfy { $0.failures == 0 }
            let body = JSONValue.object([
                ("status", .string(healthy ? "ok" : "degraded")), ("storage", .bool(health.storageAvailable)),
                ("source", .bool(health.sourceAvailable)), ("endpoints", endpoints),
            ])
            return json(healthy ? .ok : .serviceUnavailable, String(decoding: body.bytes, as: UTF8.self))
        }
        router.get("/metrics") { request, _ -> Response in
            guard authorized(request, token) else { return unauthorized() }
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: MetricHelp.annotate(buffer))))
        }
        router.get("/v1/events") { request, _ -> Response in
            guard authorized(request, token) else { return unauthorized() }
            let query = request.uri.queryParameters
            let limit = query["limit"].flatMap { Int(String($0)) } ?? 100
            guard (1...1000).contains(limit) else { return json(.badRequest, #"{"error":"limit must be from 1 to 1000"}"#) }
            do {
                let events = try await bridge.operations.eventsAfter(
                    query["after"].map(String.init), limit: limit, type: query["type"].map(String.init), status: query["status"].map(String.init))
                // Each event as its standard body, with its id first.
                var body = Array(#"{"events":["#.utf8)
                for (index, event) in events.enumerated() {
                    if index > 0 { body.append(UInt8(ascii: ",")) }
                    body += Array(#"{"id":""#.utf8) + Array(event.id.utf8) + Array(#"","#.utf8)
                    body += event.body.dropFirst()
                }
                let next = events.last.map { "\"\($0.id)\"" } ?? query["after"].map { "\"\($0)\"" } ?? "null"
                body += Array(#"],"next":\#(next)}"#.utf8)
                return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
            } catch let error as InspectionError {
                return json(.notFound, String(decoding: JSONValue.object([("error", .string("\(error)"))]).bytes, as: UTF8.self))
            } catch {
                return json(.serviceUnavailable, #"{"error":"the state storage cannot be read"}"#)
            }
        }
        let application = Application(
            router: router, configuration: .init(address: .hostname(admin.host, port: admin.port), serverName: "paybridge-admin"),
            onServerRunning: { channel in
                logger.info("admin server listening", metadata: ["url": "http://\(admin.host):\(channel.localAddress?.port ?? admin.port)"])
            }, logger: logger)
        return Listener(application: application, listen: admin.listen)
    }

    /// The server, its socket errors told as the setting and address they are about.
    struct Listener<Server: Service>: Service {
        let application: Server
        let listen: String

        func run() async throws {
            do {
                try await application.run()
            } catch let error as IOError {
                throw ListenError(description: "admin.listen \(listen): \(String(cString: strerror(error.errnoCode)).lowercased())")
            }
        }
    }

    /// The admin server could not listen where the config says.
    public struct ListenError: Error, CustomStringConvertible {
        public var description: String
    }

    /// `Authorization: Bearer T`, compared in constant time (no token configured: loopback, open).
    static func authorized(_ request: Request, _ token: Secret?) -> Bool {
        guard let token else { return true }
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else { return false }
        let given = Data(SHA256.hash(data: Data(header.dropFirst(7).utf8)))
        let wanted = Data(SHA256.hash(data: Data(token.value.utf8)))
        var difference: UInt8 = 0
        for (a, b) in zip(given, wanted) { difference |= a ^ b }
        return difference == 0
    }

    static func unauthorized() -> Response {
        var response = json(.unauthorized, #"{"error":"a bearer token is required (admin.token)"}"#)
        response.headers[.wwwAuthenticate] = "Bearer"
        return response
    }

    static func json(_ status: HTTPTypes.HTTPResponse.Status, _ text: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
