import Foundation

// The operations' facts as JSON, written once: the CLI's `--json` output and the operations
// API (`/api/v1/…`) print the same documents.

extension JSONValue {
    public static func text(_ value: String?) -> JSONValue { value.map { .string($0) } ?? .null }
    public static func int(_ value: Int?) -> JSONValue { value.map { .number(String($0)) } ?? .null }
    public static func double(_ value: Double?) -> JSONValue { value.map { .number(String(format: "%.1f", $0)) } ?? .null }
    public static func time(_ value: Date?) -> JSONValue { value.map { .string(Timestamp.iso8601($0)) } ?? .null }

    /// Adds members to an object (other values are returned as they are).
    func adding(_ members: [(key: String, value: JSONValue)]) -> JSONValue {
        guard case .object(let fields) = self else { return self }
        return .object(fields + members)
    }
}

extension DeliveryRecord {
    /// `pending`, `failing`, `dead`, `delivered`.
    public var stateText: String { isFailing ? "failing" : state.rawValue }

    public var json: JSONValue {
        .object([
            ("id", .int(Int(id))), ("eventId", .string(eventId)), ("eventType", .string(eventType)), ("endpoint", .string(endpoint)),
            ("subject", .string(subject)), ("sequence", .int(sequence)), ("state", .string(stateText)), ("attempts", .int(attempts)),
            ("dueAt", .time(dueAt)), ("createdAt", .time(createdAt)), ("updatedAt", .time(updatedAt)), ("deliveredAt", .time(deliveredAt)),
            ("lastAttemptAt", .time(lastAttemptAt)), ("lastStatus", .int(lastStatus)), ("lastError", .text(lastError)),
        ])
    }
}

extension EventSummary {
    public var json: JSONValue {
        .object([
            ("id", .string(id)), ("type", .string(type)), ("subject", .string(subject)), ("sequence", .int(sequence)),
            ("status", .text(status)), ("previousStatus", .text(previousStatus)), ("watch", .text(watch)), ("createdAt", .time(createdAt)),
        ])
    }

    /// `Rejected ← PendingProcessing`.
    public var change: String {
        guard let status else { return type }
        return previousStatus.map { "\(status) ← \($0)" } ?? "\(status) (new)"
    }
}

extension GroupHold {
    public var json: JSONValue {
        .object([
            ("endpoint", .string(endpoint)), ("group", .string(group)), ("messageId", .text(messageId)), ("waitingUntil", .time(waitingUntil)),
        ])
    }
}

extension AttemptLog {
    public var json: JSONValue {
        .object([
            ("number", .int(number)), ("startedAt", .time(startedAt)), ("durationMs", .double(durationMs)), ("httpStatus", .int(httpStatus)),
            ("error", .text(error)), ("response", .text(response)),
        ])
    }
}

/// A group message's members.
public enum GroupMembers {
    public static func json(_ events: [EventSummary]) -> JSONValue {
        .array(
            events.map { member in
                .object([
                    ("eventId", .string(member.id)), ("type", .string(member.type)), ("paymentId", .string(member.subject)),
                    ("status", .text(member.status)),
                ])
            })
    }
}

extension Operations.PaymentTimeline {
    /// `{"payment": …, "events": [{…, "groups": […], "deliveries": [{…, "attempts": […]}]}]}`.
    public var json: JSONValue {
        let paymentJSON = JSONValue.object([
            ("paymentId", .string(payment.paymentId)), ("status", .string(payment.status)), ("changes", .int(payment.sequence)),
            ("updatedAt", .time(payment.updatedAt)), ("firstSeenAt", .time(payment.firstSeenAt)),
            ("firstStatus", .text(payment.firstStatus)), ("firstWatch", .text(payment.firstWatch)),
        ])
        let eventsJSON = events.map { event -> JSONValue in
            var members: [(key: String, value: JSONValue)] = []
            if let holds = groups[event.id] { members.append(("groups", .array(holds.map(\.json)))) }
            // Each delivery's `attempts` is its attempt log here (its length is the count).
            let rows = (deliveries[event.id] ?? []).map { delivery -> JSONValue in
                guard case .object(let fields) = delivery.json else { return delivery.json }
                return .object(fields.filter { $0.key != "attempts" } + [("attempts", .array((attempts[delivery.id] ?? []).map(\.json)))])
            }
            members.append(("deliveries", .array(rows)))
            return event.json.adding(members)
        }
        return .object([("payment", paymentJSON), ("events", .array(eventsJSON))])
    }
}

extension Operations.DeliveryDetail {
    /// `{"delivery": …, "attempts": […], "members"?: […]}`.
    public var json: JSONValue {
        var document: [(key: String, value: JSONValue)] = [("delivery", delivery.json), ("attempts", .array(attempts.map(\.json)))]
        if let members { document.append(("members", GroupMembers.json(members))) }
        return .object(document)
    }
}

extension EndpointOverview {
    /// `ok`, `failing`, `disabled`.
    public var health: String {
        if record.disabledAt != nil { return "disabled" }
        return record.failingSince != nil ? "failing" : "ok"
    }

    /// `closed`, `open`, `half-open`, `disabled`.
    public var circuit: String {
        (record.disabledAt != nil ? .disabled : record.stats.circuit ?? .closed).rawValue
    }

    /// An endpoint's URL as operators and `read` tokens see it: where it goes, not what
    /// authorizes it. A Slack or Teams webhook's URL is its secret (a long path segment, a
    /// `sig=` query): user info and the query are left out, and path segments of 16
    /// characters or more shown as `…`.
    public static func shown(url: String) -> String {
        guard let parts = URLComponents(string: url), let scheme = parts.scheme, let host = parts.host else { return "…" }
        let path = parts.percentEncodedPath.split(separator: "/", omittingEmptySubsequences: false).map { $0.count >= 16 ? "…" : String($0) }
        let port = parts.port.map { ":\($0)" } ?? ""
        return "\(scheme)://\(host)\(port)" + path.joined(separator: "/") + (parts.percentEncodedQuery != nil ? "?…" : "")
    }

    public func json(_ endpoint: EndpointConfiguration, now: Date) -> JSONValue {
        let oldestSeconds = oldestPendingAt.map { Int(now.timeIntervalSince($0)) }
        return .object([
            ("name", .string(endpoint.name)), ("health", .string(health)),
            ("url", .text(endpoint.kind == .http ? Self.shown(url: endpoint.url) : nil)), ("pending", .int(pending)), ("dead", .int(dead)),
            ("oldestPendingAt", .time(oldestPendingAt)), ("oldestPendingSeconds", .int(oldestSeconds)),
            ("lastSuccessAt", .time(record.stats.lastSuccessAt)), ("lastFailureAt", .time(record.stats.lastFailureAt)),
            ("failures", .int(record.stats.failures)), ("failingSince", .time(record.failingSince)),
            ("circuit", .string(circuit)), ("disabledAt", .time(record.disabledAt)),
            ("disabledReason", .text(record.disabledReason)),
        ])
    }
}

extension PaymentRecord {
    public var json: JSONValue {
        .object([
            ("paymentId", .string(paymentId)), ("status", .string(status)), ("changes", .int(sequence)),
            ("updatedAt", .time(updatedAt)), ("firstSeenAt", .time(firstSeenAt)),
            ("firstStatus", .text(firstStatus)), ("firstWatch", .text(firstWatch)),
        ])
    }
}

extension Bridge {
    /// What on-call asks first (`GET /api/v1/status`, the console's overview): is it polling,
    /// each watch's last polls, each endpoint's health and queue, the notifications
    /// subscription, and whether it is ready (with the reasons when not).
    public func statusJSON(now: Date? = nil) async throws -> JSONValue {
        let now = now ?? clock.now()
        let (ready, reasons) = readiness()
        let watchesJSON = watches.map { watch in
            JSONValue.object([
                ("name", .string(watch.name)), ("every", .string(DurationText.format(watch.every))),
                ("lastSuccessAt", .time(watch.lastSuccessAt)), ("lastFailureAt", .time(watch.lastFailureAt)), ("lastError", .text(watch.lastError)),
            ])
        }
        let overview = try await operations.endpointOverview()
        let endpointsJSON = zip(configuration.endpoints, overview).map { $1.json($0, now: now) }
        var notificationsJSON = JSONValue.null
        if let notifications {
            let subscription: [(key: String, value: JSONValue)]
            switch notifications.subscription.status {
            case .unknown: subscription = [("status", .string("unknown"))]
            case .unreadable(let error): subscription = [("status", .string("unreadable")), ("error", .string(error))]
            case .active(let found), .inactive(let found?):
                subscription = [
                    ("status", .string(found.status.isEmpty ? "unknown" : found.status)), ("subscriptionId", .string(found.id)),
                    ("statusMessage", .text(found.statusMessage)),
                ]
            case .inactive(nil): subscription = [("status", .string("Missing"))]
            }
            let active: Bool
            if case .active = notifications.subscription.status { active = true } else { active = false }
            notificationsJSON = .object(
                [("publicURL", .string(notifications.configuration.publicURL)), ("active", .bool(active))] + subscription
                    + [("pendingLookups", .int(try await store.pendingLookups()))])
        }
        return .object([
            ("polling", .bool(isLeader)), ("ready", .bool(ready)), ("reasons", .array(reasons.map { .string($0) })),
            ("watches", .array(watchesJSON)), ("endpoints", .array(endpointsJSON)),
            ("queue", .object([("pending", .int(overview.reduce(0) { $0 + $1.pending })), ("dead", .int(overview.reduce(0) { $0 + $1.dead }))])),
            ("notifications", notificationsJSON), ("time", .time(now)),
        ])
    }
}

/// What an operator's action answers: the same document from the CLI's `--json` and from the
/// operations API.
public enum ActionJSON {
    public static func replay(_ plan: Operations.ReplayPlan, replayed: [Int64], dryRun: Bool) -> JSONValue {
        .object([
            ("dryRun", .bool(dryRun)), ("ids", .array(plan.ids.map { .int(Int($0)) })),
            ("outOfOrder", .array(plan.outOfOrder.map { .int(Int($0)) })), ("replayed", .array(replayed.map { .int(Int($0)) })),
        ])
    }

    public static func redeliver(delivery: Int64, outOfOrder: Bool) -> JSONValue {
        .object([("delivery", .int(Int(delivery))), ("outOfOrder", .bool(outOfOrder))])
    }

    /// `deliveries purge`: what a dry run would delete, or how many were.
    public static func purge(_ endpoint: String, ids: [Int64]) -> JSONValue {
        .object([("dryRun", .bool(true)), ("endpoint", .string(endpoint)), ("ids", .array(ids.map { .int(Int($0)) }))])
    }

    public static func purge(_ endpoint: String, deleted: Int) -> JSONValue {
        .object([("dryRun", .bool(false)), ("endpoint", .string(endpoint)), ("deleted", .int(deleted))])
    }

    public static func endpoint(_ name: String, enabled: Bool, changed: Bool) -> JSONValue {
        .object([("endpoint", .string(name)), ("state", .string(enabled ? "enabled" : "disabled")), ("changed", .bool(changed))])
    }
}
