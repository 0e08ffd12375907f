import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import Prometheus
import ServiceLifecycle

/// The admin server (§9, §11): `/healthz` and `/readyz` for orchestrators, and behind a token
/// `/metrics` (Prometheus text), `/v1/events` (the catch-up API: events in commit order after
/// an id, so a downstream system that was down pulls exactly what it missed), the operations
/// API under `/api/v1/` and the console at `/console`. HTTPS with `admin.tls`.
public enum AdminServer {
    /// Throws when `admin.tls`'s certificate or key cannot be loaded.
    public static func application(
        _ admin: AdminConfiguration, bridge: Bridge, registry: PrometheusCollectorRegistry, logger: Logger
    ) throws -> some Service {
        let router = Router()
        let access = AdminAccess(admin)
        router.get("/healthz") { _, _ -> Response in json(.ok, #"{"status":"ok"}"#) }
        // Load balancers' and probes' HEAD: the status without the body.
        router.head("/healthz") { _, _ -> Response in Response(status: .ok) }
        router.get("/readyz") { _, _ -> Response in
            let (ready, reasons) = bridge.readiness()
            let body = JSONValue.object([("status", .string(ready ? "ready" : "not ready")), ("reasons", .array(reasons.map { .string($0) }))])
            return json(ready ? .ok : .serviceUnavailable, String(decoding: body.bytes, as: UTF8.self))
        }
        router.head("/readyz") { _, _ -> Response in Response(status: bridge.readiness().ready ? .ok : .serviceUnavailable) }
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
            guard access.identify(request) != nil else { return unauthorized() }
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: MetricHelp.annotate(buffer))))
        }
        router.get("/v1/events") { request, _ -> Response in
            guard access.identify(request) != nil else { return unauthorized() }
            let query = OperationsAPI.parameters(request)
            let limit = query["limit"].map { Int(String($0)) ?? 0 } ?? 100
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
        OperationsAPI.register(on: router, bridge: bridge, access: access, logger: logger)
        Console.register(on: router, access: access, logger: logger)
        var server = HTTPServerBuilder.http1()
        if let tls = admin.tls {
            do {
                let certificates = try NIOSSLCertificate.fromPEMFile(tls.certificate).map { NIOSSLCertificateSource.certificate($0) }
                var settings = TLSConfiguration.makeServerConfiguration(
                    certificateChain: certificates, privateKey: .privateKey(try NIOSSLPrivateKey(file: tls.key, format: .pem)))
                settings.minimumTLSVersion = .tlsv12
                server = try .tls(.http1(), tlsConfiguration: settings)
            } catch {
                throw ListenError(description: "admin.tls: cannot load the certificate or key: \(error)")
            }
        }
        let scheme = admin.tls == nil ? "http" : "https"
        let application = Application(
            router: router, server: server, configuration: .init(address: .hostname(admin.host, port: admin.port), serverName: "paybridge-admin"),
            onServerRunning: { channel in
                logger.info("admin server listening", metadata: ["url": "\(scheme)://\(admin.host):\(channel.localAddress?.port ?? admin.port)"])
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

    static func unauthorized() -> Response {
        var response = json(.unauthorized, #"{"error":"a bearer token is required (admin.token)"}"#)
        response.headers[.wwwAuthenticate] = "Bearer"
        return response
    }

    static func json(_ status: HTTPTypes.HTTPResponse.Status, _ text: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
