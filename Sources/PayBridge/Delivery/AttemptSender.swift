import Foundation
import Logging

/// Starts attempts: signs each and hands it to the transport in small batches, answers for a
/// console endpoint at once, and runs the OAuth2 token protocol's actions for endpoints that
/// use it (one fetch shared by an endpoint's attempts, one renewal after a 401). Results and
/// token answers come back through the inbox. Owned by the dispatcher's loop.
struct AttemptSender {
    /// What it needs of an endpoint to send to it.
    struct Lane {
        let endpoint: EndpointConfiguration
        let signer: WebhookSigner
    }

    /// Token answers and refusals, posted by the transport's thread.
    enum AuthEvent: Sendable {
        case token(lane: Int, Result<AccessToken, OAuth2Tokens.Failure>)
        case refused(lane: Int, OAuth2Tokens.Attempt, token: Secret)
    }

    private typealias Submission = (HTTPRequest, @Sendable (Result<HTTPResponse, TransportError>) -> Void)

    let lanes: [Lane]
    private let http: any HTTPClient
    private let inbox: DeliveryInbox
    private let clock: WallClock
    private let random: @Sendable () -> Double
    private let console: @Sendable ([UInt8]) -> Void
    private let logger: Logger
    /// OAuth2 endpoints' tokens, by lane.
    private var tokens: [Int: OAuth2Tokens] = [:]
    private var requests: [Submission] = []

    init(
        endpoints: [EndpointConfiguration], http: any HTTPClient, inbox: DeliveryInbox, clock: WallClock, random: @escaping @Sendable () -> Double,
        console: @escaping @Sendable ([UInt8]) -> Void, logger: Logger
    ) {
        lanes = endpoints.map { Lane(endpoint: $0, signer: WebhookSigner(secrets: $0.secrets)) }
        self.http = http
        self.inbox = inbox
        self.clock = clock
        self.random = random
        self.console = console
        self.logger = logger
        for (index, endpoint) in endpoints.enumerated() {
            if case .oauth2(let settings) = endpoint.auth { tokens[index] = OAuth2Tokens(settings: settings) }
        }
    }

    /// Begins one attempt. A console endpoint answers at once: its result is returned.
    mutating func start(_ delivery: QueuedDelivery, lane index: Int) -> DeliveryStateMachine.AttemptEnd? {
        let endpoint = lanes[index].endpoint
        let startedAt = clock.now()
        switch endpoint.kind {
        case .console:
            console(delivery.body)
            return DeliveryStateMachine.AttemptEnd(
                lane: index, delivery: delivery, startedAt: startedAt, finishedAt: startedAt,
                result: .response(status: 200, retryAfter: nil, excerpt: ""), random: random())
        case .http:
            switch endpoint.auth {
            case nil:
                send(delivery, lane: index, startedAt: startedAt, authorization: nil)
            case .bearer(let token):
                send(delivery, lane: index, startedAt: startedAt, authorization: token)
            case .oauth2:
                let attempt = OAuth2Tokens.Attempt(delivery: delivery, startedAt: startedAt, renewed: false)
                let actions = tokens[index]?.authorize(attempt, at: startedAt).map { [$0] } ?? []
                _ = carryOut(actions, lane: index)
            }
            return nil
        }
    }

    /// What a token answer or a refusal means for the delivery machine: attempts that could
    /// not even be sent.
    mutating func handle(_ event: AuthEvent) -> [DeliveryStateMachine.Input] {
        switch event {
        case .refused(let index, let attempt, let token):
            logger.info("the receiver refused its token (401); fetching a new one", metadata: ["endpoint": "\(lanes[index].endpoint.name)"])
            let now = clock.now()
            let actions = tokens[index]?.refused(token, attempt, at: now).map { [$0] } ?? []
            return carryOut(actions, lane: index)
        case .token(let index, let result):
            if case .failure(let failure) = result {
                logger.warning("cannot get a token for the endpoint", metadata: ["endpoint": "\(lanes[index].endpoint.name)", "error": "\(failure)"])
            }
            let actions = tokens[index]?.received(result) ?? []
            return carryOut(actions, lane: index)
        }
    }

    /// Hands what was signed to the transport.
    mutating func submit() {
        guard !requests.isEmpty else { return }
        http.submit(batch: requests)
        requests.removeAll(keepingCapacity: true)
    }

    /// Signs one attempt and queues it for the transport.
    /// - Parameter renewed: the token was fetched again after a 401 (a second 401 is the answer).
    private mutating func send(_ delivery: QueuedDelivery, lane index: Int, startedAt: Date, authorization: Secret?, renewed: Bool = false) {
        let request = AttemptRequest.make(
            delivery, to: lanes[index].endpoint, signer: lanes[index].signer, timestamp: Int(clock.now().timeIntervalSince1970),
            authorization: authorization)
        let (clock, random, inbox) = (self.clock, self.random, self.inbox)
        let oauth = tokens[index] != nil
        requests.append((request, { result in
            if oauth, !renewed, case .success(let response) = result, response.status == 401, let authorization {
                // The receiver refused the token: fetch a new one, once, and send again.
                inbox.post(.refused(lane: index, OAuth2Tokens.Attempt(delivery: delivery, startedAt: startedAt, renewed: false), token: authorization))
                return
            }
            inbox.post(
                .attemptFinished(
                    DeliveryStateMachine.AttemptEnd(
                        lane: index, delivery: delivery, startedAt: startedAt, finishedAt: clock.now(), result: AttemptRequest.result(of: result),
                        random: random())))
        }))
        // Hand requests over in small groups: the transport starts sending the first
        // while the rest are being signed.
        if requests.count >= 16 { submit() }
    }

    /// Carries out a token machine's actions; attempts it fails come back as inputs.
    private mutating func carryOut(_ actions: [OAuth2Tokens.Action], lane index: Int) -> [DeliveryStateMachine.Input] {
        var inputs: [DeliveryStateMachine.Input] = []
        for action in actions {
            switch action {
            case .send(let attempt, let token):
                send(attempt.delivery, lane: index, startedAt: attempt.startedAt, authorization: token, renewed: attempt.renewed)
            case .fetch:
                guard let tokens = tokens[index] else { continue }
                let (clock, endpoint, inbox) = (self.clock, lanes[index].endpoint, self.inbox)
                var request = tokens.request(timeout: endpoint.timeout, tls: endpoint.tls)
                request.proxy = endpoint.proxy
                let secretForms = tokens.secretForms
                http.submit(request) { result in
                    inbox.post(.token(lane: index, OAuth2Tokens.parse(result, receivedAt: clock.now(), masking: secretForms)))
                }
            case .fail(let attempts, let reason):
                let now = clock.now()
                inputs += attempts.map { attempt in
                    .attemptFinished(
                        DeliveryStateMachine.AttemptEnd(
                            lane: index, delivery: attempt.delivery, startedAt: attempt.startedAt, finishedAt: now,
                            result: .failure(.other("the token request failed: \(reason)")), random: random()))
                }
            }
        }
        return inputs
    }
}
