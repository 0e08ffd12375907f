import Foundation

/// A sandbox payment and its JSON, shaped like Banking Circle's: nulls, amounts as numbers
/// with two decimals, timestamps with seven fractional digits and an offset.
struct Payment: Sendable {
    var id: String
    var amountCents: Int
    var currency: String
    var createdAt: Date
    var status: String
    var lastChanged: Date
    var processedAt: Date?
    var plan: [(at: Date, status: String)] = []
    var reference: String
    var accountId: String
    var iban: String
    var creditorIban: String
    var concurrencyToken: String

    static func make(
        id: String, amountCents: Int, currency: String = "EUR", createdAt: Date, status: String, random: inout SplitMix64
    ) -> Payment {
        Payment(
            id: id, amountCents: amountCents, currency: currency, createdAt: createdAt, status: status, lastChanged: createdAt,
            processedAt: status == "Processed" ? createdAt : nil, reference: "INV-\(random.next() % 900_000 + 100_000)",
            accountId: random.uuid(), iban: "DK50" + random.digits(14), creditorIban: "DE89" + random.digits(18),
            concurrencyToken: random.hex(bytes: 8))
    }

    mutating func move(to newStatus: String, at date: Date) {
        guard newStatus != status else { return }
        status = newStatus
        lastChanged = date
        if newStatus == "Processed" { processedAt = date }
    }

    var amount: Double { Double(amountCents) / 100 }

    var amountText: String {
        let sign = amountCents < 0 ? "-" : ""
        let cents = abs(amountCents)
        let fraction = cents % 100
        return "\(sign)\(cents / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }

    var instructedDay: String { String(Self.timestamp(createdAt).prefix(10)) }

    var json: String {
        let processed = processedAt.map { "\"\(Self.timestamp($0))\"" } ?? "\"0001-01-01T00:00:00+00:00\""
        let created = Self.timestamp(createdAt)
        let changed = Self.timestamp(lastChanged)
        let amount = "{\"currency\":\"\(currency)\",\"amount\":\(amountText)}"
        let (reasons, errors) = Self.rejectionReasons(status)
        return """
            {"paymentId":"\(id)","transactionReference":"\(reference)","concurrencyToken":"\(concurrencyToken)",\
            "classification":"Outgoing","subClassification":null,"status":"\(status)","processedTimestamp":\(processed),\
            "latestStatusChangedTimestamp":"\(changed)","lastChangedTimestamp":"\(changed)","booked":\(status == "Processed"),\
            "return":false,"paymentRail":"Sepa","statusReasons":\(reasons),"errors":\(errors),\
            "debtorInformation":{"paymentBulkId":null,"accountId":"\(accountId)","account":{"account":"\(iban)",\
            "accountIban":"\(iban)","financialInstitution":"SXPYDKKK","country":"DK"},"viban":null,\
            "instructedDate":"\(created)","debitAmount":\(amount),"debitValueDate":"\(created.prefix(10))T00:00:00+00:00",\
            "instruction":{"debtorReference":"\(reference)","requestedExecutionDate":"\(created.prefix(10))T00:00:00+00:00",\
            "remittanceInformation":{"line1":"Invoice \(reference)","line2":null,"line3":null,"line4":null}}},\
            "transfer":{"debtorName":"Paybridge Demo ApS","amount":\(amount),"valueDate":"\(created.prefix(10))T00:00:00+00:00",\
            "remittanceInformation":{"line1":"Invoice \(reference)","line2":null,"line3":null,"line4":null},\
            "creditorAccount":{"account":"\(creditorIban)","financialInstitution":"COBADEFFXXX","country":"DE"},\
            "creditorName":"Müller & Söhne GmbH"},"creditorInformation":null}
            """
    }

    /// Why the bank stopped a payment, as its objects carry it: ISO 20022 reason codes in
    /// `statusReasons`, and for a rejection the same in `errors`.
    static func rejectionReasons(_ status: String) -> (statusReasons: String, errors: String) {
        switch status {
        case "Rejected":
            return (
                #"[{"code":"AC04","description":"Closed account number"}]"#,
                #"[{"errorCode":"AC04","errorText":"Closed account number","propertyName":"creditorAccount"}]"#
            )
        case "MissingFunding":
            return (#"[{"code":"AM04","description":"Insufficient funds on the debtor account"}]"#, "null")
        default:
            return ("null", "null")
        }
    }

    /// `2023-09-23T15:33:51.0133333+00:00`: the bank's seven fractional digits.
    static func timestamp(_ date: Date) -> String {
        let interval = date.timeIntervalSince1970
        var seconds = time_t(interval.rounded(.down))
        let ticks = Int(((interval - interval.rounded(.down)) * 10_000_000).rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(Int(parts.tm_year) + 1900, 4))-\(pad(Int(parts.tm_mon) + 1, 2))-\(pad(Int(parts.tm_mday), 2))T"
            + "\(pad(Int(parts.tm_hour), 2)):\(pad(Int(parts.tm_min), 2)):\(pad(Int(parts.tm_sec), 2)).\(pad(ticks, 7))+00:00"
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    }
}

/// The list call's filters, as the bank documents them.
struct PaymentFilter {
    var paymentId: String?
    var statuses: Set<String>?
    var instructedFrom: String?
    var instructedTo: String?
    var changedSince: Date?
    var amountFrom: Double?
    var amountTo: Double?
    var reference: String?

    static let changedSinceStatuses: Set<String> = ["rejected", "missingfunding", "declinedbyapprover", "declinedbyauthorizer"]

    init(_ request: SandboxRequest) throws(FilterRefusal) {
        if let id = request.queryValue("PaymentId") {
            // An exact id ignores every other filter.
            paymentId = id.lowercased()
            return
        }
        statuses = request.queryValue("Status").map { text in
            Set(text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() })
        }
        instructedFrom = try Self.day(request, "InstructedDateFrom")
        instructedTo = try Self.day(request, "InstructedDateTo")
        if let text = request.queryValue("LastChangedTimestampFrom") {
            guard let date = Self.instant(text) else {
                throw FilterRefusal(.error(400, code: "InvalidDate", description: "LastChangedTimestampFrom is not a date-time", property: "LastChangedTimestampFrom"))
            }
            // Only honoured together with one of the failure statuses; ignored otherwise.
            if let statuses, !statuses.isDisjoint(with: Self.changedSinceStatuses) { changedSince = date }
        }
        amountFrom = try Self.number(request, "AmountFrom")
        amountTo = try Self.number(request, "AmountTo")
        reference = request.queryValue("DebtorReference")
    }

    static func parse(_ request: SandboxRequest) -> Result<PaymentFilter, FilterRefusal> {
        do throws(FilterRefusal) {
            return .success(try PaymentFilter(request))
        } catch {
            return .failure(error)
        }
    }

    func matches(_ payment: Payment) -> Bool {
        if let paymentId { return payment.id == paymentId }
        if let statuses, !statuses.contains(payment.status.lowercased()) { return false }
        if let instructedFrom, payment.instructedDay < instructedFrom { return false }
        if let instructedTo, payment.instructedDay > instructedTo { return false }
        if let changedSince, payment.lastChanged < changedSince { return false }
        if let amountFrom, payment.amount < amountFrom { return false }
        if let amountTo, payment.amount > amountTo { return false }
        if let reference, payment.reference != reference { return false }
        return true
    }

    private static func day(_ request: SandboxRequest, _ name: String) throws(FilterRefusal) -> String? {
        guard let text = request.queryValue(name) else { return nil }
        let day = String(text.prefix(10))
        guard day.count == 10, instant(day + "T00:00:00Z") != nil else {
            throw FilterRefusal(.error(400, code: "InvalidDate", description: "\(name) must be YYYY-MM-DD", property: name))
        }
        return day
    }

    private static func number(_ request: SandboxRequest, _ name: String) throws(FilterRefusal) -> Double? {
        guard let text = request.queryValue(name) else { return nil }
        guard let value = Double(text) else {
            throw FilterRefusal(.error(400, code: "InvalidAmount", description: "\(name) must be a number", property: name))
        }
        return value
    }

    static func instant(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withFullDate]
        return formatter.date(from: text)
    }
}

struct FilterRefusal: Error {
    var response: SandboxResponse

    init(_ response: SandboxResponse) { self.response = response }
}

/// A small seeded generator (SplitMix64), so ids and amounts repeat for a seed.
struct SplitMix64: Sendable {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func hex(bytes: Int) -> String {
        var text = ""
        while text.count < bytes * 2 {
            let word = String(next(), radix: 16)
            text += String(repeating: "0", count: 16 - word.count) + word
        }
        return String(text.prefix(bytes * 2))
    }

    mutating func digits(_ count: Int) -> String {
        String((0..<count).map { _ in Character(String(next() % 10)) })
    }

    /// A version-4-shaped UUID, lower-case.
    mutating func uuid() -> String {
        let hex = Array(self.hex(bytes: 16))
        let variant = ["8", "9", "a", "b"][Int(next() % 4)]
        return String(hex[0..<8]) + "-" + String(hex[8..<12]) + "-4" + String(hex[13..<16]) + "-" + variant
            + String(hex[17..<20]) + "-" + String(hex[20..<32])
    }
}
