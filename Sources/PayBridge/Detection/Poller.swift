import CMemory
import Foundation
import Logging

/// Where payments come from. The Banking Circle client is the real one.
public protocol PaymentSource: Sendable {
    /// One page of the watch's query. Relative times resolve against `pollStartedAt`, so
    /// every page of a poll asks for the same window.
    func fetchPage(watch: Watch, pageNumber: Int, pageSize: Int, pollStartedAt: Date) async throws -> PaymentPage
    /// One payment by id: a page with the payment, or with none when the bank does not know
    /// it (a 404).
    func fetchPayment(id: String) async throws -> PaymentPage
    /// Takes back a page the poller is done with (its buffer receives a later page).
    func recycle(_ page: consuming PaymentPage)
}

extension PaymentSource {
    public func recycle(_ page: consuming PaymentPage) {}
}

/// When a payment that left a status-filtered watch with its status still matching (the
/// watch's window slid past it) is asked for again: at every poll while its last change is
/// recent, then on a ladder of periods as that change ages (about a tenth of its age: every
/// 30 s, 1, 5 and at most 15 minutes). Each period divides the next, and the moments are
/// multiples of the period shifted by a phase of the payment's own, so a change of period
/// never skips a moment (an exit is caught within its period and one poll), no look-up time
/// is stored, and members of the same age are not all asked for in the same poll. On a watch
/// reading `LastChangedTimestampFrom` (which reaches back 30 days), a member unchanged for 30
/// days is asked for one last time and then no more.
enum ExitCheck: Equatable {
    case lookUp
    /// Ask for it, then let it go if its status still matches.
    case lastLookUp
    case later

    static let periods: [TimeInterval] = [30, 60, 300, 900]
    static let horizon: TimeInterval = 30 * 86400

    static func decide(paymentId: String, lastChange: Date?, now: Date, previousPoll: Date?, horizon: TimeInterval?) -> ExitCheck {
        guard let lastChange, let previousPoll, previousPoll < now else { return .lookUp }
        let age = now.timeIntervalSince(lastChange)
        if let horizon, age > horizon { return .lastLookUp }
        guard let period = periods.last(where: { $0 <= age / 10 }) else { return .lookUp }
        let phase = Double(phase(of: paymentId) % UInt64(periods[periods.count - 1]))
        let moment = { (date: Date) in ((date.timeIntervalSince1970 + phase) / period).rounded(.down) }
        return moment(now) != moment(previousPoll) ? .lookUp : .later
    }

    /// FNV-1a of the id: the same in every process (Swift's `hashValue` is not).
    static func phase(of paymentId: String) -> UInt64 {
        paymentId.utf8.reduce(14_695_981_039_346_656_037 as UInt64) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 }
    }
}

/// What a look-up by id found: the payment's change (if any), or that the bank does not know
/// it (with the request that asked, for the log line).
public enum PaymentLookUp: Sendable {
    case found(PollReport)
    case unknown(requestId: String?)
}

/// A poll that did not finish; pages committed before the failure stay committed.
public struct PollError: Error, Sendable, CustomStringConvertible {
    public enum Stage: Sendable {
        /// The bank did not answer as it should.
        case source
        /// The state database refused a read or a write.
        case storage
    }

    public var stage: Stage
    public var watch: String
    /// The page that failed (nil for a failure outside paging).
    public var page: Int?
    public var paymentId: String?
    public var underlying: any Error

    /// The bank's request id of the call that failed, when the bank failed (§9: every line
    /// about a bank call carries it).
    public var requestId: String? { (underlying as? BankError)?.requestId }

    public var description: String {
        var place = stage == .storage ? "state storage, watch '\(watch)'" : "watch '\(watch)'"
        if let page { place += ", page \(page)" }
        if let paymentId { place += ", payment \(paymentId)" }
        return "\(place): \(underlying)"
    }
}

/// What one poll saw and did.
public struct PollReport: Sendable, Equatable {
    public var watch: String
    public var baseline: Bool
    public var pages = 0
    public var payments = 0
    public var recorded = 0
    public var created = 0
    public var changed = 0
    public var lookups = 0
    /// False when the poll stopped early for a shutdown.
    public var complete = true

    public var events: Int { created + changed }
}

/// Polls one watch: pages through the bank's answer, diffs each page against the store
/// and commits the page's state changes with their events through the outbox, in chunks of
/// one transaction each.
public struct Poller: Sendable {
    /// Stops paging when the bank keeps answering full pages beyond this.
    public static let maxPages = 100_000

    let source: any PaymentSource
    let store: any OutboxStore & RecordStore
    let outbox: Outbox
    let pageSize: Int
    let clock: WallClock
    let logger: Logger
    let events: EventMetrics?
    /// The poller lease a shared state's detection commits are fenced by (nil: tests' own).
    let lease: (any Coordination)?

    public init(
        source: any PaymentSource, store: any OutboxStore & RecordStore, outbox: Outbox, pageSize: Int, logger: Logger,
        clock: WallClock = .system, events: EventMetrics? = nil, lease: (any Coordination)? = nil
    ) {
        self.source = source
        self.store = store
        self.outbox = outbox
        self.pageSize = pageSize
        self.clock = clock
        self.events = events
        self.logger = logger
        self.lease = lease
    }

    /// Polls `watch` once. `shouldStop` is checked between pages. Its commits carry the
    /// poller lease's token as held when it began (§7: a leader paused mid-poll commits
    /// nothing once the lease changed hands, even if it holds it again by then).
    public func poll(_ watch: Watch, shouldStop: @Sendable () -> Bool = { false }) async throws(PollError) -> PollReport {
        try await fenced { () async throws(PollError) in try await pollPages(watch, shouldStop: shouldStop) }
    }

    /// Runs `work` under the poller lease as held now (`Coordination.underPollerLease`).
    private func fenced<T: Sendable>(_ work: () async throws(PollError) -> T) async throws(PollError) -> T {
        guard let lease else { return try await work() }
        let outcome: Result<T, PollError> = await lease.underPollerLease {
            do throws(PollError) {
                return .success(try await work())
            } catch {
                return .failure(error)
            }
        }
        return try outcome.get()
    }

    private func pollPages(_ watch: Watch, shouldStop: @Sendable () -> Bool) async throws(PollError) -> PollReport {
        let startedAt = clock.now()
        let record = try await attempt(watch, page: nil) { try await store.watchRecord(name: watch.name) }
        let baselined = record?.baselinedAt != nil
        let emitNew = baselined || watch.baseline == .emit
        var report = PollReport(watch: watch.name, baseline: !baselined)
        let statusFilter = watch.statusFilter
        var seen = Set<String>()
        // Payments this poll changed (by their id's hash: a million-payment scan keeps little),
        // with when the bank says their status changed (NaN: it did not say): a later page
        // listing one again (drift, or a stale copy) counts only as a newer copy (§3).
        var changedInPoll: [Int: Double] = [:]
        // What the bank pages by: the size asked for, or what it answers should it cap it.
        var size = pageSize

        // While a page is diffed and committed, the next one is already on its way (asked
        // for only when this one was full, so no request is wasted).
        var pageNumber = 1
        var previousEnds: (first: String, last: String)?
        var repeats = 0
        var next: Task<PaymentPage, any Error>? = Self.fetch(source, watch, pageNumber, pageSize, startedAt)
        while let fetching = next {
            next = nil
            let page: PaymentPage
            do {
                page = try await fetching.value
            } catch {
                throw PollError(stage: .source, watch: watch.name, page: pageNumber, underlying: error)
            }
            if let echoed = page.currentPage, echoed != pageNumber {
                logger.warning(
                    "the bank's pageInfo.currentPage does not echo the page asked for",
                    metadata: [
                        "watch": "\(watch.name)", "asked": .stringConvertible(pageNumber), "answered": .stringConvertible(echoed),
                        "requestId": "\(page.requestId ?? "none")",
                    ])
            }
            if let answered = page.pageSize, (1..<size).contains(answered) {
                logger.warning(
                    "the bank answers pages of \(answered) payments, fewer than the pageSize asked for: paging by \(answered); set pageSize to at most \(answered)",
                    metadata: [
                        "watch": "\(watch.name)", "asked": .stringConvertible(pageSize), "answered": .stringConvertible(answered),
                        "requestId": "\(page.requestId ?? "none")",
                    ])
                size = answered
            }
            let full = page.payments.count >= size
            // Full pages that keep repeating the one before mean PageNumber is ignored: paging
            // would never end. One repeat alone can be drift (as many payments inserted between
            // two page calls as a page holds): its payments make no second event (the state
            // already has their status), and paging goes on.
            let ends = page.payments.first.map { ($0.paymentId, page.payments[page.payments.count - 1].paymentId) }
            if full, let ends, let previousEnds, ends == previousEnds {
                repeats += 1
                if repeats == 2 {
                    next?.cancel()
                    throw PollError(
                        stage: .source, watch: watch.name, page: pageNumber,
                        underlying: SourceContractError(
                            "pages \(pageNumber - 1) and \(pageNumber) repeat page \(pageNumber - 2): the bank seems to ignore PageNumber"))
                }
            } else {
                repeats = 0
            }
            previousEnds = ends
            if full, pageNumber < Self.maxPages, !shouldStop() {
                // The size it pages by: the offset is then the same whichever size it counts it by.
                next = Self.fetch(source, watch, pageNumber + 1, size, startedAt)
            }
            let counted = changedInPoll
            let applied = try await attempt(watch, page: pageNumber) { [report] in
                try await apply(page, watch: watch, emitNew: emitNew, report: report, counted: counted)
            }
            report = applied.report
            changedInPoll.merge(applied.changed) { $1 }
            report.pages += 1
            report.payments += page.payments.count
            if statusFilter != nil { seen.formUnion(page.payments.lazy.map(\.paymentId)) }
            source.recycle(page)
            // A page's scan, diff and commit run on different threads, so what they free sits
            // in more than one malloc arena; handing free pages back after each page keeps a
            // million-payment scan within B3's 64 MB (65 MiB without, 61 with).
            _ = paybridge_release_free_memory()
            guard full else {
                // Pages end on a short page; fewer payments than the bank counts means some were
                // never read (a bank answering fewer than PageSize without saying so).
                if let rowCount = page.rowCount, rowCount > report.payments {
                    logger.warning(
                        "the bank counts more payments than its pages held: the rest were not read; set a smaller pageSize",
                        metadata: [
                            "watch": "\(watch.name)", "rowCount": .stringConvertible(rowCount), "read": .stringConvertible(report.payments),
                            "pageSize": .stringConvertible(pageSize), "requestId": "\(page.requestId ?? "none")",
                        ])
                }
                break
            }
            if shouldStop() {
                next?.cancel()
                report.complete = false
                return report
            }
            pageNumber += 1
            if pageNumber > Self.maxPages {
                throw PollError(
                    stage: .source, watch: watch.name, page: pageNumber,
                    underlying: SourceContractError("more than \(Self.maxPages) full pages: is PageNumber ignored?"))
            }
        }

        var members = seen
        if let statusFilter {
            // A payment that left a status-filtered watch may have left because its status
            // changed (Rejected -> Processed): ask the bank for it by id. One whose status still
            // matches left the window instead; it stays a member, asked for less often as its
            // last change ages (`ExitCheck`), so the look-ups do not grow with every payment
            // that ever matched.
            let known = try await attempt(watch, page: nil) { try await store.watchMemberChanges(name: watch.name) }
            let horizon = watch.query.contains { $0.name.lowercased() == "lastchangedtimestampfrom" } ? ExitCheck.horizon : nil
            var letGo: [String] = []
            for (paymentId, lastChange) in known.filter({ !seen.contains($0.key) }).sorted(by: { $0.key < $1.key }) {
                if shouldStop() {
                    report.complete = false
                    return report
                }
                let check = ExitCheck.decide(paymentId: paymentId, lastChange: lastChange, now: startedAt, previousPoll: record?.lastSuccessAt, horizon: horizon)
                if check == .later {
                    members.insert(paymentId)
                    continue
                }
                let single: PaymentPage
                do {
                    single = try await source.fetchPayment(id: paymentId)
                } catch {
                    throw PollError(stage: .source, watch: watch.name, paymentId: paymentId, underlying: error)
                }
                report.lookups += 1
                guard !single.payments.isEmpty else {
                    var metadata: Logger.Metadata = ["watch": "\(watch.name)", "paymentId": "\(paymentId)"]
                    if let requestId = single.requestId { metadata["requestId"] = "\(requestId)" }
                    logger.warning("payment left the watch and the bank no longer knows it", metadata: metadata)
                    continue
                }
                report = try await attempt(watch, paymentId: paymentId) { [report] in try await apply(single, watch: watch, emitNew: emitNew, report: report).report }
                if let status = single.payments.first?.status, statusFilter.contains(status) {
                    if check == .lastLookUp { letGo.append(paymentId) } else { members.insert(paymentId) }
                }
            }
            if !letGo.isEmpty {
                logger.info(
                    "payments that left the watch's window 30 days after their last change, asked for one last time: no longer looked up",
                    metadata: ["watch": "\(watch.name)", "count": .stringConvertible(letGo.count), "paymentIds": "\(letGo.prefix(20).joined(separator: ","))"])
            }
        }
        let stillMembers = members
        try await attempt(watch, page: nil) {
            try await store.detect { transaction in
                if statusFilter != nil { try await transaction.replaceWatchMembers(name: watch.name, paymentIds: stillMembers) }
                try await transaction.recordWatchPoll(name: watch.name, at: startedAt, baselined: true)
            }
        }
        return report
    }

    /// Reads one payment by id and detects its change as `watch` (the look-up a notification
    /// of the bank triggers): the same diff, chunk commit and event ids as a poll, so the
    /// next poll finds nothing new. A payment never seen before is `payment.created`.
    public func lookUp(_ paymentId: String, as watch: Watch) async throws(PollError) -> PaymentLookUp {
        try await fenced { () async throws(PollError) in try await lookUpPayment(paymentId, as: watch) }
    }

    private func lookUpPayment(_ paymentId: String, as watch: Watch) async throws(PollError) -> PaymentLookUp {
        let single: PaymentPage
        do {
            single = try await source.fetchPayment(id: paymentId)
        } catch {
            throw PollError(stage: .source, watch: watch.name, paymentId: paymentId, underlying: error)
        }
        guard !single.payments.isEmpty else { return .unknown(requestId: single.requestId) }
        var report = PollReport(watch: watch.name, baseline: false)
        report.lookups = 1
        report.payments = single.payments.count
        report = try await attempt(watch, paymentId: paymentId) { [report] in try await apply(single, watch: watch, emitNew: true, report: report).report }
        source.recycle(single)
        return .found(report)
    }

    private static func fetch(
        _ source: any PaymentSource, _ watch: Watch, _ number: Int, _ size: Int, _ startedAt: Date
    ) -> Task<PaymentPage, any Error> {
        Task { try await source.fetchPage(watch: watch, pageNumber: number, pageSize: size, pollStartedAt: startedAt) }
    }

    /// Changes committed per transaction: each change's state, event and deliveries always
    /// commit together. Chunks start small so the first events are being delivered while the
    /// rest commit (B4's latency), and grow so a big scan pays for few commits (B1's rate).
    static func commitChunk(_ index: Int) -> Int { min(512, 16 << min(index, 5)) }

    /// Diffs one page and commits what changed. The diff is made first from a read and made
    /// again inside the write, so a page with no change never takes the write lock and two
    /// watches seeing the same payment cannot both emit its change. A payment in `counted`
    /// (changed by an earlier page of this poll) is looked at only in a newer copy. Returns
    /// `report` with the page's counts added, and the payments the page changed (those only
    /// recorded by a silent baseline are not counted: a baseline would remember every one).
    private func apply(
        _ page: PaymentPage, watch: Watch, emitNew: Bool, report: PollReport, counted: [Int: Double] = [:]
    ) async throws -> (report: PollReport, changed: [Int: Double]) {
        var report = report
        // Copied only when the page lists one of them (rarely): no array per page otherwise.
        let listsCounted = !counted.isEmpty && page.payments.contains { counted[$0.paymentId.hashValue] != nil }
        let payments = !listsCounted ? page.payments : page.payments.filter { sighting in
            guard let earlier = counted[sighting.paymentId.hashValue] else { return true }
            // NaN (a time not known) is never earlier.
            return page.statusChangedAt(sighting).map { $0.timeIntervalSince1970 > earlier } ?? false
        }
        let known = try await store.paymentStates(for: payments.map(\.paymentId))
        let newer = Self.newer(on: page)
        let candidates = ChangeDetector.changes(in: payments, known: known, emitNew: emitNew, newer: newer)
        guard !candidates.isEmpty else { return (report, [:]) }
        let changedIds = Set(candidates.map(\.payment.paymentId))
        let sightings = payments.filter { changedIds.contains($0.paymentId) }
        // A payment's sightings stay in one chunk, in page order.
        var chunks: [[ScannedPayment]] = [[]]
        var chunkOf: [String: Int] = [:]
        for sighting in sightings {
            if let index = chunkOf[sighting.paymentId] {
                chunks[index].append(sighting)
                continue
            }
            if chunks[chunks.count - 1].count >= Self.commitChunk(chunks.count - 1) { chunks.append([]) }
            chunkOf[sighting.paymentId] = chunks.count - 1
            chunks[chunks.count - 1].append(sighting)
        }
        for chunk in chunks where !chunk.isEmpty {
            try await commit(chunk, of: page, known: known, watch: watch, emitNew: emitNew, report: &report)
        }
        let changed = candidates.lazy.filter { $0.kind != .recorded }.map { change in
            (change.payment.paymentId.hashValue, page.statusChangedAt(change.payment)?.timeIntervalSince1970 ?? .nan)
        }
        return (report, Dictionary(changed) { $1 })
    }

    /// Whether a payment's second sighting on `page` is a newer copy than its first.
    static func newer(on page: PaymentPage) -> (ScannedPayment, ScannedPayment) -> Bool {
        { first, second in
            guard let before = page.statusChangedAt(first), let after = page.statusChangedAt(second) else { return false }
            return after > before
        }
    }

    /// Commits one chunk. What each change emits is routed first, outside the transaction,
    /// from the read diff; the transaction diffs again and only persists. Should another watch
    /// have committed one of these payments meanwhile, the diffs differ: the transaction
    /// commits nothing, and the chunk is routed again from the states it saw.
    private func commit(
        _ sightings: [ScannedPayment], of page: PaymentPage, known: [String: PaymentState], watch: Watch, emitNew: Bool,
        report: inout PollReport
    ) async throws {
        let ids = Array(Set(sightings.map(\.paymentId)))
        var known = known
        while true {
            let committedAt = clock.now()
            var emissions: [Outbox.Emission] = []
            var eventIds: [ChangeKey: String] = [:]
            for change in ChangeDetector.changes(in: sightings, known: known, emitNew: emitNew, newer: Self.newer(on: page)) {
                guard let emission = emission(for: change, of: page, watch: watch, at: committedAt) else { continue }
                eventIds[ChangeKey(change)] = emission.event.id
                emissions.append(emission)
            }
            let expected = eventIds
            let committed = try await outbox.detect(choosingFrom: outbox.route(emissions)) { transaction -> (ChunkCommit, emit: [String]) in
                let current = try await transaction.paymentStates(for: ids)
                let changes = ChangeDetector.changes(in: sightings, known: current, emitNew: emitNew, newer: Self.newer(on: page))
                var chosen: [String] = []
                for change in changes where change.kind != .recorded {
                    guard let id = expected[ChangeKey(change)] else { return (.stale(current), []) }
                    chosen.append(id)
                }
                var counts = (recorded: 0, created: 0, changed: 0)
                for change in changes {
                    try await transaction.savePaymentState(paymentId: change.payment.paymentId, state: change.state, watch: watch.name, at: committedAt)
                    switch change.kind {
                    case .recorded: counts.recorded += 1
                    case .created: counts.created += 1
                    case .statusChanged: counts.changed += 1
                    }
                }
                return (.committed(recorded: counts.recorded, created: counts.created, changed: counts.changed), chosen)
            }
            switch committed.value {
            case .stale(let current):
                for id in ids { known[id] = current[id] }
            case .committed(let recorded, let created, let changed):
                report.recorded += recorded
                report.created += created
                report.changed += changed
                if let events { for event in committed.events { events.count(event) } }
                return
            }
        }
    }

    /// What one chunk's transaction did.
    private enum ChunkCommit: Sendable {
        case committed(recorded: Int, created: Int, changed: Int)
        /// Another watch committed one of the chunk's payments since the read: nothing was
        /// committed; these are the states the transaction saw.
        case stale([String: PaymentState])
    }

    /// The event a change emits; nil for a silent baseline record.
    private func emission(for change: DetectedChange, of page: PaymentPage, watch: Watch, at date: Date) -> Outbox.Emission? {
        let type: EventType
        switch change.kind {
        case .recorded: return nil
        case .created: type = .paymentCreated
        case .statusChanged: type = .paymentStatusChanged
        }
        let raw = page.rawObject(of: change.payment)
        let event = Event.payment(
            type: type, paymentId: change.payment.paymentId, status: change.state.status, previousStatus: change.previous?.status,
            watch: watch.name, sequence: change.state.sequence, createdAt: date, payment: raw)
        return Outbox.Emission(event, payment: raw)
    }

    /// A change as the read diff and the transaction's diff both name it.
    private struct ChangeKey: Hashable {
        var paymentId: String
        var sequence: Int
        var status: String

        init(_ change: DetectedChange) {
            paymentId = change.payment.paymentId
            sequence = change.state.sequence
            status = change.state.status
        }
    }

    /// Runs store work (never on the cooperative pool: see `SQLiteSession`); its errors are storage
    /// faults.
    private func attempt<T>(
        _ watch: Watch, page: Int? = nil, paymentId: String? = nil, _ body: () async throws -> T
    ) async throws(PollError) -> T {
        do {
            return try await body()
        } catch {
            throw PollError(stage: .storage, watch: watch.name, page: page, paymentId: paymentId, underlying: error)
        }
    }
}

/// The bank answered something its contract rules out.
public struct SourceContractError: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}
