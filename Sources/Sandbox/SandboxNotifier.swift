import Crypto
import Foundation
import Logging
import ServiceLifecycle

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Pushes the bank's queued notifications to the subscribers' endpoints, as Banking Circle
/// does: a POST of the AES-256-GCM ciphertext of a JSON array (up to the subscription's
/// `maxNotificationsPerMessage`), the nonce, tag and the plaintext's SHA-256 in headers, one
/// message in flight per subscription (so order is kept), retries on the bank's schedule.
///
/// The bank advances lazily, so the tick is what makes time pass for it: each tick brings it
/// up to now (lifecycle steps queue their notifications) and takes the deliveries due.
/// `SandboxServer.application` runs one beside the HTTP server.
public struct SandboxNotifier: Service {
    public let bank: SandboxBank
    /// How often due deliveries are looked for: a notification leaves within a tick.
    public let tick: Duration
    let logger: Logger

    /// The bank asks for an answer within 10 s and counts silence as a failure.
    static let answerTimeout: TimeInterval = 10

    public init(bank: SandboxBank, tick: Duration = .milliseconds(100), logger: Logger = Logger(label: "paybridge.sandbox.notifier")) {
        self.bank = bank
        self.tick = tick
        self.logger = logger
    }

    public func run() async {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = Self.answerTimeout
        configuration.timeoutIntervalForResource = Self.answerTimeout
        let session = URLSession(configuration: configuration)
        defer { session.invalidateAndCancel() }
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled, !Task.isShuttingDownGracefully {
                for attempt in bank.dueNotificationAttempts() {
                    group.addTask { await deliver(attempt, session: session) }
                }
                try? await Task.sleep(for: tick)
            }
            // Stopping: what is on the wire is abandoned, as a bank restart would.
            group.cancelAll()
        }
    }

    private func deliver(_ attempt: NotificationAttempt, session: URLSession) async {
        let sentAt = bank.currentTime()
        var status: Int?
        var failure: String?
        do {
            let request = try Self.request(for: attempt)
            let (_, response) = try await session.data(for: request)
            status = (response as? HTTPURLResponse)?.statusCode
            if status == nil { failure = "not an HTTP answer" }
        } catch let error as NotifierError {
            failure = error.description
        } catch {
            if Task.isCancelled { return }
            // URLSession's errors print as their whole user info; the description says it.
            failure = (error as NSError).localizedDescription
        }
        if let status, (200..<300).contains(status) {
            logger.debug(
                "notifications delivered",
                metadata: ["endpoint": "\(attempt.endpoint)", "count": "\(attempt.eventIds.count)", "status": "\(status)"])
        } else {
            logger.info(
                "notification delivery failed",
                metadata: [
                    "endpoint": "\(attempt.endpoint)", "attempt": "\(attempt.attempt)",
                    "outcome": "\(status.map { "HTTP \($0)" } ?? failure ?? "")",
                ])
        }
        if let deactivated = bank.settleNotificationAttempt(attempt, status: status, error: failure, sentAt: sentAt) {
            logger.warning(
                "notification subscription deactivated",
                metadata: ["subscriptionId": "\(attempt.subscriptionId)", "reason": "\(deactivated)"])
        }
    }

    /// The POST as the bank makes it: a fresh random 12-byte nonce each attempt, no
    /// additional authenticated data, the key being the 32 characters' bytes.
    static func request(for attempt: NotificationAttempt) throws(NotifierError) -> URLRequest {
        guard let url = URL(string: attempt.endpoint) else { throw NotifierError("endpoint is not a URL: \(attempt.endpoint)") }
        let key = SymmetricKey(data: Array(attempt.encryptionKey.utf8))
        let sealed: AES.GCM.SealedBox
        do {
            sealed = try AES.GCM.seal(attempt.plaintext, using: key, nonce: AES.GCM.Nonce())
        } catch {
            throw NotifierError("cannot encrypt: \(error)")
        }
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: answerTimeout)
        request.httpMethod = "POST"
        request.httpBody = sealed.ciphertext
        request.setValue("application/octet-stream", forHTTPHeaderField: "Content-Type")
        request.setValue(Data(sealed.nonce).base64EncodedString(), forHTTPHeaderField: "Nonce")
        request.setValue(sealed.tag.base64EncodedString(), forHTTPHeaderField: "AuthenticationTag")
        request.setValue(Data(SHA256.hash(data: attempt.plaintext)).base64EncodedString(), forHTTPHeaderField: "Checksum")
        request.setValue("1", forHTTPHeaderField: "SubscriptionVersion")
        return request
    }
}

/// Why a notification could not be sent at all (counted as a failed attempt).
struct NotifierError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) { self.description = description }
}
