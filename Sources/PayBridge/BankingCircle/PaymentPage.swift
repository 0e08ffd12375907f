import Foundation

/// One payment found on a page: its id, its status, and where its JSON object lies in
/// the page's bytes. The object itself is never decoded, so what paybridge forwards is
/// exactly what the bank sent.
public struct ScannedPayment: Sendable, Equatable {
    public var paymentId: String
    public var status: String
    /// Byte range of the payment's JSON object within `PaymentPage.body`.
    public var range: Range<Int>
    /// Byte range of its `latestStatusChangedTimestamp` string's text, when it has one.
    public var changedAt: Range<Int>?

    public init(paymentId: String, status: String, range: Range<Int>, changedAt: Range<Int>? = nil) {
        self.paymentId = paymentId
        self.status = status
        self.range = range
        self.changedAt = changedAt
    }
}

/// A page of `GET /api/v1/payments/singles`, validated and indexed by `PaymentPageScanner`.
public struct PaymentPage: Sendable {
    public var body: [UInt8]
    public var payments: [ScannedPayment]
    public var currentPage: Int?
    public var pageSize: Int?
    public var rowCount: Int?
    /// The `X-Request-ID` of the call that brought it (for the lines logged about it).
    public var requestId: String?

    public init(
        body: [UInt8], payments: [ScannedPayment], currentPage: Int? = nil, pageSize: Int? = nil, rowCount: Int? = nil, requestId: String? = nil
    ) {
        self.requestId = requestId
        self.body = body
        self.payments = payments
        self.currentPage = currentPage
        self.pageSize = pageSize
        self.rowCount = rowCount
    }

    /// The payment's JSON object exactly as the bank sent it.
    public func rawObject(of payment: ScannedPayment) -> ArraySlice<UInt8> {
        body[payment.range]
    }

    /// When the payment's status last changed, as the bank says (`latestStatusChangedTimestamp`).
    public func statusChangedAt(_ payment: ScannedPayment) -> Date? {
        payment.changedAt.flatMap { Timestamp.parse(String(decoding: body[$0], as: UTF8.self)) }
    }
}

/// Where and why a page is not what the bank's contract promises.
public struct PageScanError: Error, Sendable, Equatable, CustomStringConvertible {
    public var offset: Int
    public var line: Int
    public var column: Int
    public var message: String

    public var description: String { "\(message) (line \(line), column \(column), byte \(offset))" }
}
