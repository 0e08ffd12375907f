import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ServiceLifecycle

/// Serves a `SandboxBank` over HTTP on 127.0.0.1, and pushes its notifications.
public enum SandboxServer {
    /// An application to run (it is a `Service`): the HTTP server and, beside it, a
    /// `SandboxNotifier` for the bank's notification subscriptions. `onListening` receives the
    /// bound port, which matters when `port` is 0 (an ephemeral port).
    public static func application(
        bank: SandboxBank, host: String = "127.0.0.1", port: Int, logger: Logger? = nil,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some Service {
        let router = Router()
        let respond: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
            var request = request
            let body = try await request.collectBody(upTo: 8 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let incoming = SandboxRequest(
                method: request.method.rawValue, path: request.uri.path, query: parseQuery(request.uri.query), headers: headers,
                body: Array(body.readableBytesView), receivedAt: Date())
            let answer = bank.handle(incoming)
            if answer.delay > .zero { try await Task.sleep(for: answer.delay) }
            var fields = HTTPFields()
            for header in answer.headers {
                if let name = HTTPField.Name(header.name) { fields.append(HTTPField(name: name, value: header.value)) }
            }
            return Response(
                status: HTTPResponse.Status(code: answer.status), headers: fields,
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: answer.body)))
        }
        for path in ["/api/v1/authorizations/authorize", "/api/v1/payments/singles", "/api/v1/payments/singles/{id}", "/api/v1/payments/singles/{id}/status"] {
            router.get(RouterPath(path), use: respond)
        }
        router.post("/api/v1/payments/singles", use: respond)
        let selfService = "/api/v1/notificationselfservice"
        router.get(RouterPath("\(selfService)/subscription"), use: respond)
        router.post(RouterPath("\(selfService)/subscription"), use: respond)
        router.get(RouterPath("\(selfService)/subscription/{id}"), use: respond)
        router.put(RouterPath("\(selfService)/subscription/{id}"), use: respond)
        router.delete(RouterPath("\(selfService)/subscription/{id}"), use: respond)
        router.put(RouterPath("\(selfService)/subscription/{id}/activate"), use: respond)
        router.put(RouterPath("\(selfService)/subscription/{id}/deactivate"), use: respond)
        router.post(RouterPath("\(selfService)/subscriptionEvent"), use: respond)
        router.delete(RouterPath("\(selfService)/subscriptionEvent/{id}"), use: respond)
        router.post(RouterPath("\(selfService)/clienttest/{id}"), use: respond)
        var quiet = logger ?? Logger(label: "paybridge.sandbox")
        if logger == nil { quiet.logLevel = .warning }
        let application = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "paybridge-sandbox"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? port) }, logger: quiet)
        return WithNotifier(server: application, notifier: SandboxNotifier(bank: bank, logger: quiet))
    }

    /// The server and the notifier as one service, so every caller of `application` (the
    /// `sandbox` command, the demo, tests) gets the pushes without wiring anything: the notifier
    /// stops when the server does, and a server that fails takes it down.
    struct WithNotifier<Server: Service>: Service {
        let server: Server
        let notifier: SandboxNotifier

        func run() async throws {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await notifier.run() }
                do {
                    try await server.run()
                } catch {
                    group.cancelAll()
                    throw error
                }
                group.cancelAll()
            }
        }
    }

    static func parseQuery(_ query: String?) -> [(name: String, value: String)] {
        guard let query, !query.isEmpty else { return [] }
        return query.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String {
                String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(text)
            }
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        }
    }
}
