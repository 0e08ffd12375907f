import Foundation
import Hummingbird
import Logging
import PayBridge
import Prometheus
import ServiceLifecycle

/// `/metrics` (Prometheus text) and `/health` (JSON; 503 when something is unhealthy).
enum AdminServer {
    static func application(listen: String, bridge: Bridge, registry: PrometheusCollectorRegistry, logger: Logger) -> some Service {
        let parts = listen.split(separator: ":")
        let host = String(parts.first ?? "127.0.0.1")
        let port = parts.count > 1 ? Int(parts[1]) ?? 9464 : 9464
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: buffer)))
        }
        router.get("/health") { _, _ -> Response in
            let health = await bridge.health()
            let endpoints = health.endpoints.map { status in
                "\"\(status.name)\":{\"state\":\"\(status.state)\",\"failures\":\(status.failures),\"inFlight\":\(status.inFlight)"
                    + (status.failingSince.map { ",\"failingSince\":\"\(Timestamp.iso8601($0))\"" } ?? "") + "}"
            }.joined(separator: ",")
            let body = "{\"status\":\"\(health.healthy ? "ok" : "degraded")\",\"storage\":\(health.storageAvailable),"
                + "\"source\":\(health.sourceAvailable),\"endpoints\":{\(endpoints)}}"
            return Response(
                status: health.healthy ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
        }
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "paybridge-admin"),
            onServerRunning: { channel in
                logger.info("admin server listening", metadata: ["url": "http://\(host):\(channel.localAddress?.port ?? port)"])
            }, logger: logger)
    }
}
