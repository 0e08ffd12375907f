import Foundation
import Synchronization

/// How the simulated bank behaves.
public struct SandboxOptions: Sendable {
    public var username: String
    public var password: String
    /// How long an issued token is accepted.
    public var tokenLifetime: Duration
    /// Send `expires_in` as a string of digits (as Banking Circle's clients decode it) or a number.
    public var expiresInAsString: Bool
    /// A new payment waits this long in PendingProcessing before its amount decides its fate.
    public var processingDelay: Duration
    /// Processed → Reversed for the 27.00 trigger.
    public var reversalDelay: Duration
    /// Payments present when the bank starts.
    public var initialPayments: Int
    /// When set, a new payment arrives this often (the demo's stream of activity).
    public var newPaymentEvery: Duration?
    /// Seed of the ids and amounts, so a run can be replayed.
    public var seed: UInt64
    /// Refuse payment calls whose `X-Request-ID` is not a UUID or was used before (the bank's rule).
    public var requireRequestId: Bool
    /// AISP / PISP access: every call must be signed with this certificate's key.
    public var signature: SignatureRequirement?
    /// Multiplies the bank's waits between attempts at a notification that failed (15 s, 30 s,
    /// 1 m, … 48 h; the subscription is deactivated after the last): 0.01 makes 15 s into
    /// 0.15 s, so a test or a demo sees the whole schedule.
    public var notificationRetryScale: Double

    public init(
        username: String = "sandbox", password: String = "sandbox", tokenLifetime: Duration = .seconds(300),
        expiresInAsString: Bool = true, processingDelay: Duration = .seconds(2), reversalDelay: Duration = .seconds(30),
        initialPayments: Int = 0, newPaymentEvery: Duration? = nil, seed: UInt64 = 1, requireRequestId: Bool = true,
        signature: SignatureRequirement? = nil, notificationRetryScale: Double = 1
    ) {
        self.username = username
        self.password = password
        self.tokenLifetime = tokenLifetime
        self.expiresInAsString = expiresInAsString
        self.processingDelay = processingDelay
        self.reversalDelay = reversalDelay
        self.initialPayments = initialPayments
        self.newPaymentEvery = newPaymentEvery
        self.seed = seed
        self.requireRequestId = requireRequestId
        self.signature = signature
        self.notificationRetryScale = notificationRetryScale
    }
}

/// An HTTP request as the sandbox sees it (and logs it).
public struct SandboxRequest: Sendable {
    public var method: String
    public var path: String
    public var query: [(name: String, value: String)]
    /// Header names lower-cased.
    public var headers: [String: String]
    public var body: [UInt8]
    public var receivedAt: Date

    public init(method: String, path: String, query: [(name: String, value: String)] = [], headers: [String: String] = [:], body: [UInt8] = [], receivedAt: Date = Date()) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.receivedAt = receivedAt
    }

    public func queryValue(_ name: String) -> String? {
        query.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }
}

public struct SandboxResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// How long the server waits before it answers (a slow bank, for tests; the wait holds
    /// no thread).
    public var delay: Duration = .zero

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func json(_ status: Int, _ text: String) -> SandboxResponse {
        SandboxResponse(status: status, headers: [("Content-Type", "application/json; charset=utf-8")], body: Array(text.utf8))
    }

    static func error(_ status: Int, code: String, description: String, property: String? = nil) -> SandboxResponse {
        let property = property.map { "\"\(Payment.escape($0))\"" } ?? "null"
        return .json(
            status, "{\"errorCode\":\"\(Payment.escape(code))\",\"errorDescription\":\"\(Payment.escape(description))\",\"propertyName\":\(property)}")
    }
}

/// A simulated Banking Circle payments API: auth with expiring tokens, the list call with its
/// filters and paging, look-ups by id, and payments that move through the sandbox's lifecycles
/// as time passes. Its Notification Self Service keeps subscriptions and queues a notification
/// when a payment moves to a status they asked for; `SandboxNotifier` pushes them.
/// HTTP-agnostic: `SandboxServer` puts it on a port (and runs the notifier).
public final class SandboxBank: Sendable {
    /// A hook consulted before the bank answers, to inject faults in tests: return a response
    /// to send it instead.
    public typealias Interceptor = @Sendable (SandboxRequest) -> SandboxResponse?

    private struct State: ~Copyable {
        var payments: [String: Payment] = [:]
        var tokens: [String: Date] = [:]
        var seenRequestIds = Set<String>()
        var requests: [SandboxRequest] = []
        var random: SplitMix64
        var nextArrival: Date?
        var arrivals = 0
        var interceptor: Interceptor?
        /// Payment ids in the list call's order (newest first), kept sorted as payments are
        /// added so a page costs one scan, not a sort of every payment.
        var order: [(createdAt: Date, id: String)] = []
        var notifications = NotificationBook()

        mutating func add(_ payment: Payment) {
            if let known = payments[payment.id] { remove(known.id) }
            payments[payment.id] = payment
            let key = (createdAt: payment.createdAt, id: payment.id)
            var low = 0
            var high = order.count
            while low < high {
                let middle = (low + high) / 2
                if (order[middle].createdAt, order[middle].id) > (key.createdAt, key.id) { low = middle + 1 } else { high = middle }
            }
            order.insert(key, at: low)
        }

        mutating func remove(_ paymentId: String) {
            guard let payment = payments.removeValue(forKey: paymentId) else { return }
            order.removeAll { $0.id == payment.id }
        }

        /// Moves a payment to `status` and queues what subscribers are to hear of it.
        mutating func move(_ paymentId: String, to status: String, at date: Date) {
            guard var payment = payments[paymentId], payment.status != status else { return }
            payment.move(to: status, at: date)
            payments[paymentId] = payment
            notifications.paymentMoved(payment, at: date, random: &random)
        }

        /// A payment that was created in a status subscribers hear of (a test's or a demo's).
        mutating func announce(_ paymentId: String, at date: Date) {
            guard let payment = payments[paymentId], notifications.listens(to: payment.status) else { return }
            notifications.paymentMoved(payment, at: date, random: &random)
        }
    }

    public let options: SandboxOptions
    private let now: @Sendable () -> Date
    private let state: Mutex<State>

    public init(options: SandboxOptions = SandboxOptions(), now: @escaping @Sendable () -> Date = Date.init) {
        self.options = options
        self.now = now
        var initial = State(random: SplitMix64(seed: options.seed))
        let start = now()
        for index in 0..<options.initialPayments {
            let amount = Self.demoAmounts[index % Self.demoAmounts.count]
            let created = start.addingTimeInterval(-Double(options.initialPayments - index) * 60)
            let payment = Payment.make(
                id: initial.random.uuid(), amountCents: amount, createdAt: created, status: "Processed", random: &initial.random)
            initial.add(payment)
        }
        initial.nextArrival = options.newPaymentEvery.map { start.addingTimeInterval($0.timeInterval) }
        state = Mutex(initial)
    }

    /// Amounts of the demo's payments: ordinary ones mixed with the sandbox's triggers.
    static let demoAmounts: [Int] = [12_000, 1_300, 25_050, 1_900, 98_010, 2_700, 4_525, 5_300, 31_000, 1_700]

    // MARK: Test and demo controls

    /// Adds a payment. With `status` it stays there until `setStatus`; without, it starts in
    /// PendingProcessing and its amount decides what follows (13.00 → MissingFunding,
    /// 19.00 → Rejected, 27.00 → Processed then Reversed, 53.00 → Cancelled, 17.00 stays
    /// pending, anything else → Processed).
    @discardableResult
    public func createPayment(amount: Double, currency: String = "EUR", status: String? = nil, instructedAt: Date? = nil) -> String {
        let at = now()
        return state.withLock { state in
            let cents = Int((amount * 100).rounded())
            var payment = Payment.make(
                id: state.random.uuid(), amountCents: cents, currency: currency, createdAt: instructedAt ?? at,
                status: status ?? "PendingProcessing", random: &state.random)
            if status == nil { payment.plan = lifecycle(amountCents: cents, from: at) }
            state.add(payment)
            state.announce(payment.id, at: at)
            return payment.id
        }
    }

    /// Moves a payment to `status` now (and cancels what its lifecycle still had planned).
    public func setStatus(_ paymentId: String, _ status: String) {
        let at = now()
        state.withLock { state in
            state.payments[paymentId]?.plan = []
            state.move(paymentId, to: status, at: at)
        }
    }

    /// Forgets a payment (as if it slid out of every window).
    public func removePayment(_ paymentId: String) {
        state.withLock { $0.remove(paymentId) }
    }

    /// Current statuses by payment id.
    public func statuses() -> [String: String] {
        let at = now()
        return state.withLock { state in
            advance(&state, to: at)
            return state.payments.mapValues(\.status)
        }
    }

    /// The payment's JSON as the API serves it now, or nil for an unknown id.
    public func json(of paymentId: String) -> String? {
        let at = now()
        return state.withLock { state in
            advance(&state, to: at)
            return state.payments[paymentId]?.json
        }
    }

    /// Every request received so far, in order.
    public var requests: [SandboxRequest] { state.withLock { $0.requests } }

    /// Makes every issued token invalid (the next payment call gets a 401).
    public func revokeTokens() {
        state.withLock { $0.tokens.removeAll() }
    }

    public func setInterceptor(_ interceptor: Interceptor?) {
        state.withLock { $0.interceptor = interceptor }
    }

    /// Every POST of notifications made so far (the last 10,000), in the order their answers
    /// came: when, where, which events, and what the endpoint answered.
    public func notificationsSent() -> [SandboxNotificationDelivery] {
        state.withLock { $0.notifications.deliveries }
    }

    // MARK: Notifications (for `SandboxNotifier`)

    /// The bank's clock (the one given to `init`), which the notification record and the
    /// retry schedule use too.
    func currentTime() -> Date { now() }

    /// Brings the bank up to now (the lifecycles' steps queue their notifications) and hands
    /// out the deliveries due: the notifier's tick.
    func dueNotificationAttempts() -> [NotificationAttempt] {
        let at = now()
        return state.withLock { state in
            guard state.notifications.isListening else { return [] }
            advance(&state, to: at)
            return state.notifications.dueAttempts(at: at)
        }
    }

    /// What became of an attempt: `status` is the HTTP answer, nil when none came. Returns the
    /// status message when this failure deactivated the subscription.
    @discardableResult
    func settleNotificationAttempt(_ attempt: NotificationAttempt, status: Int?, error: String?, sentAt: Date) -> String? {
        let at = now()
        return state.withLock { state in
            state.notifications.settle(
                attempt, status: status, error: error, sentAt: sentAt, at: at, retryScale: options.notificationRetryScale)
        }
    }

    // MARK: Requests

    public func handle(_ request: SandboxRequest) -> SandboxResponse {
        let interceptor = state.withLock { state -> Interceptor? in
            if state.requests.count < 200_000 { state.requests.append(request) }
            return state.interceptor
        }
        if let interceptor, let response = interceptor(request) { return response }
        return handleWithoutInterceptor(request)
    }

    /// Answers as the bank would, bypassing the interceptor (for interceptors that alter answers).
    public func handleWithoutInterceptor(_ request: SandboxRequest) -> SandboxResponse {
        let at = now()
        return state.withLock { state in
            advance(&state, to: at)
            return route(request, state: &state, at: at)
        }
    }

    private func route(_ request: SandboxRequest, state: inout State, at: Date) -> SandboxResponse {
        let parts = request.path.split(separator: "/").map(String.init)
        switch (request.method, parts.count) {
        case ("GET", 4) where parts == ["api", "v1", "authorizations", "authorize"]:
            return authorize(request, state: &state, at: at)
        case (_, 4...6) where Array(parts.prefix(4)) == ["api", "v1", "payments", "singles"]:
            if let refusal = checkAccess(request, state: &state, at: at) { return refusal }
            switch (request.method, parts.count) {
            case ("GET", 4): return list(request, state: state)
            case ("POST", 4): return create(request, state: &state, at: at)
            case ("GET", 5): return lookUp(parts[4], state: state, statusOnly: false)
            case ("GET", 6) where parts[5] == "status": return lookUp(parts[4], state: state, statusOnly: true)
            default: return .error(405, code: "MethodNotAllowed", description: "\(request.method) is not supported here")
            }
        case (_, 4...6) where Array(parts.prefix(3)) == ["api", "v1", "notificationselfservice"]:
            if let refusal = checkAccess(request, state: &state, at: at) { return refusal }
            let path = Array(parts.dropFirst(3))
            // The client test tells of the newest payment, when there is one.
            let sample = path.first == "clienttest" ? state.order.first.flatMap { state.payments[$0.id]?.json } : nil
            return state.notifications.handle(request, path: path, at: at, random: &state.random, samplePayment: sample)
        default:
            return .error(404, code: "NotFound", description: "no such resource")
        }
    }

    private func authorize(_ request: SandboxRequest, state: inout State, at: Date) -> SandboxResponse {
        let expected = "Basic " + Data("\(options.username):\(options.password)".utf8).base64EncodedString()
        guard request.headers["authorization"] == expected else {
            return .json(401, "[{\"errorCode\":\"InvalidCredentials\",\"errorText\":\"The username or password is incorrect\"}]")
        }
        if let reason = options.signature?.refusal(ofAuthorize: request) {
            return .error(401, code: "InvalidClientCertificate", description: reason, property: "X-ARR-ClientCert")
        }
        let token = state.random.hex(bytes: 32)
        state.tokens[token] = at.addingTimeInterval(options.tokenLifetime.timeInterval)
        let seconds = Int(options.tokenLifetime.timeInterval)
        let expires = options.expiresInAsString ? "\"\(seconds)\"" : "\(seconds)"
        return .json(200, "{\"access_token\":\"\(token)\",\"expires_in\":\(expires)}")
    }

    private func checkAccess(_ request: SandboxRequest, state: inout State, at: Date) -> SandboxResponse? {
        let authorization = request.headers["authorization"] ?? ""
        guard authorization.hasPrefix("Bearer "), let expiry = state.tokens[String(authorization.dropFirst(7))], at < expiry else {
            return SandboxResponse(status: 401)
        }
        // A missing id is let through (a person trying the sandbox with curl); a malformed or
        // reused one is refused as the bank refuses it, which is what tests a client.
        if options.requireRequestId, let requestId = request.headers["x-request-id"] {
            guard UUID(uuidString: requestId) != nil else {
                return .error(400, code: "InvalidRequestId", description: "X-Request-ID must be a UUID", property: "X-Request-ID")
            }
            guard state.seenRequestIds.insert(requestId.lowercased()).inserted else {
                return .error(400, code: "DuplicateRequestId", description: "X-Request-ID was already used", property: "X-Request-ID")
            }
        }
        if let reason = options.signature?.refusal(of: request) {
            return .error(401, code: "InvalidSignature", description: reason, property: "Signature")
        }
        return nil
    }

    private func list(_ request: SandboxRequest, state: borrowing State) -> SandboxResponse {
        let pageNumber = request.queryValue("PageNumber").map { Int($0) } ?? 1
        let pageSize = request.queryValue("PageSize").map { Int($0) } ?? 50
        guard let pageNumber, pageNumber >= 1 else {
            return .error(400, code: "InvalidPageNumber", description: "PageNumber must be 1 or more", property: "PageNumber")
        }
        guard let pageSize, (1...5000).contains(pageSize) else {
            return .error(400, code: "InvalidPageSize", description: "PageSize must be from 1 to 5000", property: "PageSize")
        }
        let filter: PaymentFilter
        switch PaymentFilter.parse(request) {
        case .success(let parsed): filter = parsed
        case .failure(let refusal): return refusal.response
        }
        let start = (pageNumber - 1) * pageSize
        var rowCount = 0
        var page: [String] = []
        for key in state.order {
            guard let payment = state.payments[key.id], filter.matches(payment) else { continue }
            if rowCount >= start, page.count < pageSize { page.append(payment.json) }
            rowCount += 1
        }
        let body = "{\"result\":[" + page.joined(separator: ",")
            + "],\"pageInfo\":{\"currentPage\":\(pageNumber),\"pageSize\":\(pageSize),\"rowCount\":\(rowCount)}}"
        return .json(200, body)
    }

    private func lookUp(_ paymentId: String, state: borrowing State, statusOnly: Bool) -> SandboxResponse {
        guard let payment = state.payments[paymentId.lowercased()] ?? state.payments[paymentId] else {
            return .error(404, code: "PaymentNotFound", description: "no payment with this id", property: "paymentId")
        }
        return .json(200, statusOnly ? "{\"status\":\"\(payment.status)\"}" : payment.json)
    }

    private func create(_ request: SandboxRequest, state: inout State, at: Date) -> SandboxResponse {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(request.body))) as? [String: Any] else {
            return .error(400, code: "InvalidBody", description: "the body is not a JSON object")
        }
        let amountValue = object["amount"] ?? ((object["transfer"] as? [String: Any])?["amount"] as? [String: Any])?["amount"]
        guard let amount = (amountValue as? NSNumber)?.doubleValue else {
            return .error(400, code: "InvalidAmount", description: "amount is required", property: "amount")
        }
        let currency = object["currency"] as? String ?? "EUR"
        let cents = Int((amount * 100).rounded())
        var payment = Payment.make(
            id: state.random.uuid(), amountCents: cents, currency: currency, createdAt: at, status: "PendingProcessing",
            random: &state.random)
        payment.plan = lifecycle(amountCents: cents, from: at)
        state.add(payment)
        state.announce(payment.id, at: at)
        return .json(201, "{\"paymentId\":\"\(payment.id)\",\"status\":\"\(payment.status)\"}")
    }

    // MARK: Time

    /// The sandbox's trigger amounts (Banking Circle's "simulating payments" page).
    private func lifecycle(amountCents: Int, from start: Date) -> [(at: Date, status: String)] {
        let decided = start.addingTimeInterval(options.processingDelay.timeInterval)
        switch amountCents {
        case 1_300: return [(decided, "MissingFunding")]
        case 1_700: return []
        case 1_900: return [(decided, "Rejected")]
        case 2_700: return [(decided, "Processed"), (decided.addingTimeInterval(options.reversalDelay.timeInterval), "Reversed")]
        case 5_300: return [(decided, "Cancelled")]
        default: return [(decided, "Processed")]
        }
    }

    private func advance(_ state: inout State, to date: Date) {
        if let every = options.newPaymentEvery?.timeInterval, every > 0 {
            while let arrival = state.nextArrival, arrival <= date {
                let cents = Self.demoAmounts[state.arrivals % Self.demoAmounts.count]
                state.arrivals += 1
                var payment = Payment.make(
                    id: state.random.uuid(), amountCents: cents, createdAt: arrival, status: "PendingProcessing", random: &state.random)
                payment.plan = lifecycle(amountCents: cents, from: arrival)
                state.add(payment)
                state.nextArrival = arrival.addingTimeInterval(every)
            }
        }
        // Steps that subscribers hear of are announced after the scan, in time order (the
        // dictionary's order changes from run to run; the notifications' ids must not).
        var announced: [(at: Date, payment: Payment)] = []
        for id in state.payments.keys {
            guard let step = state.payments[id]?.plan.first, step.at <= date else { continue }
            while let step = state.payments[id]?.plan.first, step.at <= date {
                state.payments[id]?.plan.removeFirst()
                let before = state.payments[id]?.status
                state.payments[id]?.move(to: step.status, at: step.at)
                if before != step.status, state.notifications.listens(to: step.status), let payment = state.payments[id] {
                    announced.append((step.at, payment))
                }
            }
        }
        announced.sort { ($0.at, $0.payment.id) < ($1.at, $1.payment.id) }
        for (at, payment) in announced {
            state.notifications.paymentMoved(payment, at: at, random: &state.random)
        }
    }
}

extension Duration {
    var timeInterval: TimeInterval {
        let (seconds, attoseconds) = components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}
