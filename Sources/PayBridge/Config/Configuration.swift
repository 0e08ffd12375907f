import Foundation

/// A value that must never reach a log, an error or an event. `description` is redacted.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public let value: String

    public init(_ value: String) { self.value = value }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}

/// The whole configuration of one paybridge process.
public struct Configuration: Sendable {
    public var source: SourceConfiguration
    public var state: StateConfiguration
    public var endpoints: [EndpointConfiguration]
    public var routes: [Route]
    public var delivery: DeliveryConfiguration
    /// The admin server (`/healthz`, `/readyz`, `/metrics`, `/v1/events`), or nil for none.
    public var admin: AdminConfiguration?

    public init(
        source: SourceConfiguration, state: StateConfiguration, endpoints: [EndpointConfiguration], routes: [Route],
        delivery: DeliveryConfiguration = DeliveryConfiguration(), admin: AdminConfiguration? = nil
    ) {
        self.source = source
        self.state = state
        self.endpoints = endpoints
        self.routes = routes
        self.delivery = delivery
        self.admin = admin
    }

    public func endpoint(named name: String) -> EndpointConfiguration? {
        endpoints.first { $0.name == name }
    }
}

/// `admin: {listen, token | tokenFile, tokens, tls}` (§9, §11).
public struct AdminConfiguration: Sendable {
    /// A bearer token with a name (in the log of every action) and a role.
    public struct Token: Sendable {
        public enum Role: String, Sendable, CaseIterable {
            /// Sees everything, acts on nothing (403).
            case read
            /// Sees everything and acts: replay, redeliver, enable, disable.
            case operate
        }

        public var name: String
        public var token: Secret
        public var role: Role

        public init(name: String, token: Secret, role: Role) {
            self.name = name
            self.token = token
            self.role = role
        }
    }

    /// `host:port`.
    public var listen: String
    /// `admin.token`: one `operate` token (named `admin`).
    public var token: Secret?
    /// `admin.tokens`, with `admin.token` first when both are set. Required (one at least)
    /// unless `listen` is loopback.
    public var tokens: [Token]
    /// Certificate and key (PEM files): the admin server speaks HTTPS (the console's session
    /// cookie is then `Secure`).
    public var tls: (certificate: String, key: String)?

    public init(listen: String, token: Secret? = nil, tokens: [Token] = [], tls: (certificate: String, key: String)? = nil) {
        self.listen = listen
        self.token = token
        self.tokens = (token.map { [Token(name: "admin", token: $0, role: .operate)] } ?? []) + tokens
        self.tls = tls
    }

    public var host: String { String(listen[..<(listen.lastIndex(of: ":") ?? listen.endIndex)]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")) }
    public var port: Int { Int(listen[listen.index(after: listen.lastIndex(of: ":") ?? listen.startIndex)...]) ?? 9464 }

    /// 127.0.0.0/8, ::1, localhost.
    public var isLoopback: Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}

/// Where payments come from: Banking Circle (or the sandbox) and the watches that poll it.
public struct SourceConfiguration: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case bankingCircle = "banking-circle"
        case sandbox
    }

    public var kind: Kind
    /// Base URL for `/api/v1/payments/singles`. Nil only for `kind: sandbox`, which then
    /// runs the simulated API inside the process.
    public var apiURL: String?
    /// Base URL for `/api/v1/authorizations/authorize`; defaults to `apiURL`.
    public var authURL: String?
    public var username: Secret
    public var password: Secret
    public var tls: TLSOptions
    public var pageSize: Int
    /// Whole-request timeout for each bank call.
    public var timeout: Duration
    public var connectTimeout: Duration
    /// Extra tries after a 5xx, a timeout or a connection error (then the poll fails).
    public var retries: Int
    /// Wait before the first retry; doubled for each further one, with jitter.
    public var retryBackoff: Duration
    /// After this long without a successful poll, one `source.unavailable` event.
    public var unavailableAfter: Duration
    /// Failed polls are retried ever later (doubling from the watch's interval) up to this.
    public var maxBackoff: Duration
    public var watches: [Watch]
    /// QSEAL signing of every request (AISP / PISP access), or nil.
    public var signing: RequestSigner?
    /// The proxy to the bank (nil: libcurl's environment variables).
    public var proxy: Proxy?
    /// The bank's own notifications as a fast path (§10), or nil.
    public var notifications: NotificationsConfiguration?

    public init(
        kind: Kind = .bankingCircle, apiURL: String?, authURL: String? = nil, username: Secret, password: Secret,
        tls: TLSOptions = TLSOptions(), pageSize: Int = 1000, timeout: Duration = .seconds(30),
        connectTimeout: Duration = .seconds(10), retries: Int = 2, retryBackoff: Duration = .milliseconds(500),
        unavailableAfter: Duration = .seconds(300), maxBackoff: Duration = .seconds(300), watches: [Watch],
        signing: RequestSigner? = nil
    ) {
        self.kind = kind
        self.apiURL = apiURL
        self.authURL = authURL
        self.username = username
        self.password = password
        self.tls = tls
        self.pageSize = pageSize
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.retries = retries
        self.retryBackoff = retryBackoff
        self.unavailableAfter = unavailableAfter
        self.maxBackoff = maxBackoff
        self.watches = watches
        self.signing = signing
    }
}

/// A named query polled on an interval.
public struct Watch: Sendable, Equatable {
    public enum Baseline: String, Sendable, CaseIterable {
        /// The first poll records payments without events.
        case silent
        /// The first poll emits `payment.created` for every payment.
        case emit
    }

    public var name: String
    public var every: Duration
    public var query: [QueryParameter]
    public var baseline: Baseline

    public init(name: String, every: Duration, query: [QueryParameter], baseline: Baseline = .silent) {
        self.name = name
        self.every = every
        self.query = query
        self.baseline = baseline
    }

    /// The statuses named by the watch's `Status` parameter, or nil when it has none.
    public var statusFilter: Set<String>? {
        guard let parameter = query.first(where: { $0.name.caseInsensitiveCompare("Status") == .orderedSame }) else {
            return nil
        }
        switch parameter.value {
        case .text(let text):
            return Set(text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        case .list(let values):
            return Set(values)
        case .relativeTime:
            return nil
        }
    }
}

/// One Banking Circle query parameter, spelt as the API spells it.
public struct QueryParameter: Sendable, Equatable {
    public enum Value: Sendable, Equatable {
        case text(String)
        case list([String])
        /// `-3d`, `-2h`, `-90m`: resolved against the clock at each poll.
        case relativeTime(Duration)
    }

    public var name: String
    public var value: Value

    public init(name: String, value: Value) {
        self.name = name
        self.value = value
    }
}

public struct StateConfiguration: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        /// The embedded default: SQLite in `path`, one process.
        case sqlite
        /// PostgreSQL at `url`, shared by several processes.
        case postgres
    }

    public enum TLSMode: String, Sendable, CaseIterable {
        case disable
        /// Encrypted; the server's certificate not verified.
        case require
        /// Encrypted, the certificate verified against `caFile` (or the system's roots) and the host name.
        case verifyFull = "verify-full"
    }

    public var kind: Kind
    /// Folder of the SQLite database.
    public var path: String
    /// Delivered events and their attempt logs are deleted after this; dead letters stay
    /// until replayed or purged.
    public var retention: Duration
    /// How long a write waits for another writer before it counts as a storage fault.
    public var busyTimeout: Duration
    /// PostgreSQL: `postgres://user:password@host:5432/database` (a secret: it holds the password).
    public var url: Secret?
    public var tls: TLSMode
    public var caFile: String?
    /// PostgreSQL: how long the poller's and the endpoints' leases last without renewal.
    public var lease: Duration
    /// Where `state.path` is written in the config (1:1 when it is the default), for
    /// messages about the folder.
    public var line = 1
    public var column = 1

    public init(
        path: String, retention: Duration = .seconds(30 * 86400), busyTimeout: Duration = .seconds(5), kind: Kind = .sqlite,
        url: Secret? = nil, tls: TLSMode = .disable, caFile: String? = nil, lease: Duration = .seconds(10)
    ) {
        self.kind = kind
        self.path = path
        self.retention = retention
        self.busyTimeout = busyTimeout
        self.url = url
        self.tls = tls
        self.caFile = caFile
        self.lease = lease
    }
}

/// Settings of the delivery side as a whole.
public struct DeliveryConfiguration: Sendable {
    /// How long a graceful stop lets in-flight deliveries finish before leaving them queued.
    public var shutdownGrace: Duration

    public init(shutdownGrace: Duration = .seconds(10)) {
        self.shutdownGrace = shutdownGrace
    }
}

/// Where events go: an HTTP receiver or the console.
public struct EndpointConfiguration: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case http
        /// Prints each event as one line on standard output (the demo's endpoint).
        case console
    }

    public var name: String
    public var kind: Kind
    public var url: String
    /// Standard Webhooks secrets (`whsec_…`); every one signs during a rotation.
    public var secrets: [Secret]
    public var timeout: Duration
    public var connectTimeout: Duration
    public var concurrency: Int
    public var retry: RetrySchedule
    /// How events are rendered for this endpoint (format, its options, redaction).
    public var format: EventFormat
    public var headers: [(name: String, value: String)]
    public var tls: TLSOptions
    /// At most this many requests per second, spaced evenly (nil: no limit).
    public var rateLimit: Double?
    public var breaker: BreakerSettings
    /// Failing without a single success for this long disables the endpoint.
    public var disableAfter: Duration
    /// Events collect into group messages instead of going one by one (nil: one by one).
    public var group: GroupSettings?
    /// How paybridge authenticates to the receiver, besides the signature.
    public var auth: EndpointAuth?
    /// The proxy to the receiver (nil: libcurl's environment variables).
    public var proxy: Proxy?

    public init(
        name: String, kind: Kind = .http, url: String, secrets: [Secret] = [], timeout: Duration = .seconds(10),
        connectTimeout: Duration = .seconds(5), concurrency: Int = 8, retry: RetrySchedule = .standard,
        format: EventFormat = .standard, headers: [(name: String, value: String)] = [], tls: TLSOptions = TLSOptions(),
        rateLimit: Double? = nil, breaker: BreakerSettings = BreakerSettings(), disableAfter: Duration = .seconds(5 * 86400),
        group: GroupSettings? = nil, auth: EndpointAuth? = nil
    ) {
        self.name = name
        self.kind = kind
        self.url = url
        self.secrets = secrets
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.concurrency = concurrency
        self.retry = retry
        self.format = format
        self.headers = headers
        self.tls = tls
        self.rateLimit = rateLimit
        self.breaker = breaker
        self.disableAfter = disableAfter
        self.group = group
        self.auth = auth
    }
}

/// `group: {by, wait, interval, max}` (§8): events routed to the endpoint with equal `by`
/// values collect into one message; the first goes out `wait` after its first event, later
/// ones no sooner than `interval` after the previous.
public struct GroupSettings: Sendable, Equatable {
    public enum Field: String, Sendable, CaseIterable {
        case type, status, previousStatus, watch, currency, accountId, classification
    }

    public var by: [Field]
    public var wait: Duration
    public var interval: Duration
    /// The events a message lists; the rest are counted in `truncated`.
    public var max: Int

    public init(by: [Field] = [], wait: Duration = .seconds(30), interval: Duration = .seconds(300), max: Int = 10) {
        self.by = by
        self.wait = wait
        self.interval = interval
        self.max = max
    }
}

/// `auth:` of an endpoint (§8): a bearer token, or an OAuth2 client-credentials grant.
public enum EndpointAuth: Sendable {
    case bearer(Secret)
    case oauth2(OAuth2Settings)
}

public struct OAuth2Settings: Sendable {
    public var tokenURL: String
    public var clientId: String
    public var clientSecret: Secret
    public var scope: String?

    public init(tokenURL: String, clientId: String, clientSecret: Secret, scope: String? = nil) {
        self.tokenURL = tokenURL
        self.clientId = clientId
        self.clientSecret = clientSecret
        self.scope = scope
    }
}

/// When an endpoint's circuit opens: after `failures` failures in a row spanning at least
/// `minimumDuration` (so a brief blip never opens it). While open, one probe is sent every
/// `openFor`, doubling up to ten times that.
public struct BreakerSettings: Sendable, Equatable {
    public var failures: Int
    public var minimumDuration: Duration
    public var openFor: Duration

    public init(failures: Int = 10, minimumDuration: Duration = .seconds(60), openFor: Duration = .seconds(30)) {
        self.failures = failures
        self.minimumDuration = minimumDuration
        self.openFor = openFor
    }
}
