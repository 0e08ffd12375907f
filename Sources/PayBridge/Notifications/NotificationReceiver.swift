import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import Metrics
import NIOCore
import NIOSSL
import ServiceLifecycle

/// The listener the bank POSTs its notifications to (`source.notifications`, §10). It
/// answers `200` only once the notifications' event ids and their look-ups are committed, so
/// a crash right after the answer loses nothing; `400` (nothing recorded) for a body that
/// does not decrypt or verify; `413` over 50 MB; `404` elsewhere; `405` for another method;
/// `403` from outside `allowFrom`.
public enum NotificationReceiver {
    /// How long a request may take to arrive: a slow sender cannot hold the listener.
    static let requestTimeout: Duration = .seconds(60)

    /// A request context that knows the sender's address (`allowFrom`, and the warning log).
    struct Context: RequestContext {
        var coreContext: CoreRequestContextStorage
        let remoteAddress: String

        init(source: ApplicationRequestContextSource) {
            coreContext = .init(source: source)
            remoteAddress = source.channel.remoteAddress?.ipAddress ?? "unknown"
        }
    }

    /// What one body did.
    public enum Outcome: Sendable, Equatable {
        case accepted(fresh: Int, duplicates: Int)
        case refused(status: Int, reason: String)
    }

    public static func application(
        _ configuration: NotificationsConfiguration, store: any NotificationStore, clock: WallClock, logger: Logger,
        committed: @escaping @Sendable () -> Void, onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws -> some Service {
        let responder = CallbackResponder<Context> { request, context in
            let outcome = await handle(request, from: context.remoteAddress, configuration, store: store, clock: clock, logger: logger, committed: committed)
            switch outcome {
            case .accepted:
                return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: "ok\n")))
            case .refused(let status, let reason):
                var headers: HTTPFields = [.contentType: "text/plain; charset=utf-8"]
                if status == 405 { headers[.allow] = "POST" }
                return Response(
                    status: HTTPTypes.HTTPResponse.Status(code: status), headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: reason + "\n")))
            }
        }
        let http1 = HTTPServerBuilder.http1(configuration: .init(idleTimeout: .seconds(75)))
        let server: HTTPServerBuilder
        if let tls = configuration.tls {
            let certificates = try NIOSSLCertificate.fromPEMFile(tls.certificate).map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(file: tls.key, format: .pem)
            var settings = TLSConfiguration.makeServerConfiguration(certificateChain: certificates, privateKey: .privateKey(key))
            settings.minimumTLSVersion = .tlsv12
            server = try .tls(http1, tlsConfiguration: settings)
        } else {
            server = http1
        }
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .warning)
        return Application(
            responder: responder, server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "paybridge-notifications"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? configuration.port) }, logger: quiet)
    }

    static func handle(
        _ request: Request, from address: String, _ configuration: NotificationsConfiguration, store: any NotificationStore, clock: WallClock,
        logger: Logger, committed: @Sendable () -> Void
    ) async -> Outcome {
        guard configuration.allows(address) else {
            return reject(403, "forbidden: \(address) is not in source.notifications.allowFrom", address: address, logger: logger)
        }
        guard request.uri.path == configuration.path else { return .refused(status: 404, reason: "not found: notifications go to \(configuration.path)") }
        guard request.method == .post else { return .refused(status: 405, reason: "method not allowed: POST the notifications") }
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > NotificationsConfiguration.maxBody {
            return reject(413, "the body is over 50 MB", address: address, logger: logger)
        }
        // Without its headers a body cannot be opened: refused before it is read.
        for name in ["nonce", "authenticationtag", "checksum"] where header(request, name) == nil {
            return reject(400, "missing \(["nonce": "Nonce", "authenticationtag": "AuthenticationTag", "checksum": "Checksum"][name] ?? name) header", address: address, logger: logger)
        }
        let body: ByteBuffer
        do {
            body = try await withTimeout(requestTimeout) { [request] in
                var request = request
                return try await request.collectBody(upTo: NotificationsConfiguration.maxBody)
            }
        } catch let error as HTTPError where error.status == .contentTooLarge {
            return reject(413, "the body is over 50 MB", address: address, logger: logger)
        } catch is NIOTooManyBytesError {
            // A chunked body has no Content-Length to refuse it early.
            return reject(413, "the body is over 50 MB", address: address, logger: logger)
        } catch is CancellationError {
            return reject(400, "the body did not arrive within 60 s", address: address, logger: logger)
        } catch {
            return reject(400, "the body could not be read: \(error)", address: address, logger: logger)
        }
        let notifications: [BankNotification]
        do {
            notifications = try NotificationMessage.open(
                Array(body.readableBytesView), nonce: header(request, "nonce"), tag: header(request, "authenticationtag"),
                checksum: header(request, "checksum"), key: configuration.key)
        } catch {
            return reject(400, error.reason, address: address, logger: logger)
        }
        if notifications.isEmpty {
            logger.warning("a notification body without any eventId: answered 200, nothing to record (the poll reconciles)", metadata: ["remoteAddress": "\(address)"])
        }
        do {
            let fresh = try await store.receive(notifications, at: clock.now())
            Counter(label: "paybridge_notifications_received_total", dimensions: [("outcome", "accepted")]).increment(by: fresh.count)
            Counter(label: "paybridge_notifications_received_total", dimensions: [("outcome", "duplicate")]).increment(by: notifications.count - fresh.count)
            if fresh.contains(where: { $0.paymentId != nil }) { committed() }
            logger.info(
                "notifications received",
                metadata: [
                    "accepted": .stringConvertible(fresh.count), "duplicates": .stringConvertible(notifications.count - fresh.count),
                    "payments": "\(Set(fresh.compactMap(\.paymentId)).sorted().joined(separator: ","))",
                ])
            return .accepted(fresh: fresh.count, duplicates: notifications.count - fresh.count)
        } catch {
            // Not answered 200: the bank sends the body again later.
            logger.error("cannot record notifications; the bank will send them again", metadata: ["error": "\(error)"])
            return .refused(status: 503, reason: "the state storage refused the notifications; send them again later")
        }
    }

    /// A header by its lower-case name.
    private static func header(_ request: Request, _ name: String) -> String? {
        request.headers.first { $0.name.canonicalName == name }?.value
    }

    private static func reject(_ status: Int, _ reason: String, address: String, logger: Logger) -> Outcome {
        Counter(label: "paybridge_notifications_received_total", dimensions: [("outcome", "rejected")]).increment()
        logger.warning("notification refused", metadata: ["remoteAddress": "\(address)", "status": .stringConvertible(status), "reason": "\(reason)"])
        return .refused(status: status, reason: reason)
    }

    private static func withTimeout<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else { throw CancellationError() }
            return value
        }
    }
}
