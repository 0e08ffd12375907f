/// Validates a payments page as strict JSON (RFC 8259, UTF-8) and indexes it in one pass.
///
/// Accepted envelopes: `{"result": [Payment…], "pageInfo": {…}}` for the list call, and a
/// bare Payment object for the by-id call. Only `paymentId`, `status` and the `pageInfo`
/// integers are decoded; everything else is validated and skipped.
public enum PaymentPageScanner {
    static let maxDepth = 256

    /// Scans a list response.
    public static func scanList(_ body: [UInt8]) throws(PageScanError) -> PaymentPage {
        var payments: [ScannedPayment] = []
        var info = (currentPage: Int?.none, pageSize: Int?.none, rowCount: Int?.none)
        let result: Result<Void, PageScanError> = body.withUnsafeBufferPointer { buffer in
            var scanner = JSONScanner(buffer)
            do throws(PageScanError) {
                try scanner.scanEnvelope(payments: &payments, info: &info)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        if case .failure(let error) = result { throw error }
        return PaymentPage(
            body: body, payments: payments, currentPage: info.currentPage, pageSize: info.pageSize, rowCount: info.rowCount)
    }

    /// Scans a single payment object (the by-id call).
    public static func scanPayment(_ body: [UInt8]) throws(PageScanError) -> PaymentPage {
        var payments: [ScannedPayment] = []
        let result: Result<Void, PageScanError> = body.withUnsafeBufferPointer { buffer in
            var scanner = JSONScanner(buffer)
            do throws(PageScanError) {
                scanner.skipWhitespace()
                guard scanner.peek() == UInt8(ascii: "{") else {
                    throw scanner.error("expected a payment object")
                }
                payments.append(try scanner.scanPayment(index: 0))
                scanner.skipWhitespace()
                guard scanner.atEnd else { throw scanner.error("unexpected data after the payment object") }
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        if case .failure(let error) = result { throw error }
        return PaymentPage(body: body, payments: payments)
    }
}

private struct JSONScanner {
    let base: UnsafeBufferPointer<UInt8>
    let count: Int
    var index = 0

    init(_ buffer: UnsafeBufferPointer<UInt8>) {
        self.base = buffer
        self.count = buffer.count
    }

    var atEnd: Bool { index >= count }

    @inline(__always) func peek() -> UInt8? { index < count ? base[index] : nil }

    func error(_ message: String, at offset: Int? = nil) -> PageScanError {
        let position = min(offset ?? index, count)
        var line = 1
        var column = 1
        var i = 0
        while i < position {
            if base[i] == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else if base[i] & 0xC0 != 0x80 {
                column += 1
            }
            i += 1
        }
        return PageScanError(offset: position, line: line, column: column, message: message)
    }

    @inline(__always) mutating func skipWhitespace() {
        while index < count {
            let byte = base[index]
            guard byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 else { return }
            index += 1
        }
    }

    @inline(__always) mutating func expect(_ byte: UInt8, _ what: String) throws(PageScanError) {
        skipWhitespace()
        guard index < count, base[index] == byte else {
            throw error(index < count ? "expected \(what)" : "unexpected end of data, expected \(what)")
        }
        index += 1
    }

    // MARK: Envelope

    mutating func scanEnvelope(
        payments: inout [ScannedPayment], info: inout (currentPage: Int?, pageSize: Int?, rowCount: Int?)
    ) throws(PageScanError) {
        skipWhitespace()
        guard peek() == UInt8(ascii: "{") else {
            throw error(atEnd ? "empty response body" : "unexpected envelope: expected an object with \"result\"")
        }
        index += 1
        var sawResult = false
        try scanMembers { key, scanner throws(PageScanError) in
            if scanner.keyIs(key, "result") {
                // Parsers disagree on a repeated name (the first, the last, both): refuse it.
                guard !sawResult else { throw scanner.error("unexpected envelope: \"result\" appears twice", at: key.start - 1) }
                scanner.skipWhitespace()
                guard scanner.peek() == UInt8(ascii: "[") else {
                    throw scanner.error("unexpected envelope: \"result\" is not an array")
                }
                scanner.index += 1
                sawResult = true
                try scanner.scanPayments(into: &payments)
            } else if scanner.keyIs(key, "pageInfo") {
                scanner.skipWhitespace()
                if scanner.peek() == UInt8(ascii: "{") {
                    scanner.index += 1
                    try scanner.scanMembers { key, scanner throws(PageScanError) in
                        let number = try scanner.scanIntegerOrSkip()
                        if scanner.keyIs(key, "currentPage") { info.currentPage = number }
                        else if scanner.keyIs(key, "pageSize") { info.pageSize = number }
                        else if scanner.keyIs(key, "rowCount") { info.rowCount = number }
                    }
                } else {
                    try scanner.scanValue(depth: 1)
                }
            } else {
                try scanner.scanValue(depth: 1)
            }
        }
        skipWhitespace()
        guard atEnd else { throw error("unexpected data after the response object") }
        guard sawResult else { throw error("unexpected envelope: no \"result\" array", at: 0) }
    }

    mutating func scanPayments(into payments: inout [ScannedPayment]) throws(PageScanError) {
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            guard peek() == UInt8(ascii: "{") else {
                throw error(atEnd ? "unexpected end of data in \"result\"" : "payment #\(payments.count + 1) is not an object")
            }
            payments.append(try scanPayment(index: payments.count))
            skipWhitespace()
            guard let byte = peek() else { throw error("unexpected end of data in \"result\"") }
            index += 1
            if byte == UInt8(ascii: "]") { return }
            guard byte == UInt8(ascii: ",") else { throw error("expected ',' or ']' after payment #\(payments.count)", at: index - 1) }
        }
    }

    /// Scans one payment object starting at `{`, capturing `paymentId` and `status`.
    mutating func scanPayment(index position: Int) throws(PageScanError) -> ScannedPayment {
        let start = index
        index += 1
        var paymentId: String?
        var status: String?
        var statusIsNull = false
        var changedAt: Range<Int>?
        var seen = (paymentId: false, status: false)
        try scanMembers { key, scanner throws(PageScanError) in
            scanner.skipWhitespace()
            if scanner.keyIs(key, "paymentId") || scanner.keyIs(key, "status") {
                let isId = scanner.keyIs(key, "paymentId")
                // A receiver reading the raw object might take the other one: refuse it.
                guard !(isId ? seen.paymentId : seen.status) else {
                    throw scanner.error("payment #\(position + 1) on the page has \"\(isId ? "paymentId" : "status")\" twice", at: key.start - 1)
                }
                if isId { seen.paymentId = true } else { seen.status = true }
                if scanner.peek() == UInt8(ascii: "\"") {
                    let text = try scanner.scanString()
                    let value = scanner.decode(text)
                    if isId { paymentId = value } else { status = value }
                } else {
                    if !isId, scanner.peek() == UInt8(ascii: "n") { statusIsNull = true }
                    try scanner.scanValue(depth: 2)
                }
            } else if scanner.keyIs(key, "latestStatusChangedTimestamp"), scanner.peek() == UInt8(ascii: "\"") {
                let text = try scanner.scanString()
                changedAt = text.escaped ? nil : text.start..<text.end
            } else {
                try scanner.scanValue(depth: 2)
            }
        }
        let end = index
        guard let paymentId, !paymentId.isEmpty else {
            throw error("payment #\(position + 1) on the page has no \"paymentId\" string", at: start)
        }
        guard let status, !status.isEmpty else {
            let why = statusIsNull ? "a null \"status\"" : "no \"status\" string"
            throw error("payment \(paymentId) has \(why)", at: start)
        }
        return ScannedPayment(paymentId: paymentId, status: status, range: start..<end, changedAt: changedAt)
    }

    /// Scans `"key": value, …}` after an object's `{`; `member` must consume the value.
    mutating func scanMembers(
        _ member: (_ key: (start: Int, end: Int, escaped: Bool), inout JSONScanner) throws(PageScanError) -> Void
    ) throws(PageScanError) {
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else {
                throw error(atEnd ? "unexpected end of data in an object" : "expected a member name in quotes")
            }
            let key = try scanString()
            try expect(UInt8(ascii: ":"), "':' after a member name")
            try member(key, &self)
            skipWhitespace()
            guard let byte = peek() else { throw error("unexpected end of data in an object") }
            index += 1
            if byte == UInt8(ascii: "}") { return }
            guard byte == UInt8(ascii: ",") else { throw error("expected ',' or '}' in an object", at: index - 1) }
        }
    }

    // MARK: Values

    mutating func scanValue(depth: Int) throws(PageScanError) {
        skipWhitespace()
        guard let byte = peek() else { throw error("unexpected end of data, expected a value") }
        switch byte {
        case UInt8(ascii: "\""):
            _ = try scanString()
        case UInt8(ascii: "{"):
            guard depth < PaymentPageScanner.maxDepth else { throw error("nesting deeper than \(PaymentPageScanner.maxDepth)") }
            index += 1
            try scanMembers { _, scanner throws(PageScanError) in try scanner.scanValue(depth: depth + 1) }
        case UInt8(ascii: "["):
            guard depth < PaymentPageScanner.maxDepth else { throw error("nesting deeper than \(PaymentPageScanner.maxDepth)") }
            index += 1
            skipWhitespace()
            if peek() == UInt8(ascii: "]") {
                index += 1
                return
            }
            while true {
                try scanValue(depth: depth + 1)
                skipWhitespace()
                guard let next = peek() else { throw error("unexpected end of data in an array") }
                index += 1
                if next == UInt8(ascii: "]") { return }
                guard next == UInt8(ascii: ",") else { throw error("expected ',' or ']' in an array", at: index - 1) }
            }
        case UInt8(ascii: "t"):
            try scanLiteral("true")
        case UInt8(ascii: "f"):
            try scanLiteral("false")
        case UInt8(ascii: "n"):
            try scanLiteral("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            _ = try scanNumber()
        default:
            throw error("unexpected character, expected a value")
        }
    }

    mutating func scanLiteral(_ literal: StaticString) throws(PageScanError) {
        let length = literal.utf8CodeUnitCount
        guard index + length <= count else { throw error("invalid literal") }
        let expected = literal.utf8Start
        for offset in 0..<length where base[index + offset] != expected[offset] {
            throw error("invalid literal")
        }
        index += length
    }

    /// Validates a number; returns its bytes' range.
    mutating func scanNumber() throws(PageScanError) -> Range<Int> {
        let start = index
        if base[index] == UInt8(ascii: "-") { index += 1 }
        guard index < count, isDigit(base[index]) else { throw error("invalid number", at: start) }
        if base[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            while index < count, isDigit(base[index]) { index += 1 }
        }
        if index < count, base[index] == UInt8(ascii: ".") {
            index += 1
            guard index < count, isDigit(base[index]) else { throw error("invalid number: no digit after '.'", at: start) }
            while index < count, isDigit(base[index]) { index += 1 }
        }
        if index < count, base[index] == UInt8(ascii: "e") || base[index] == UInt8(ascii: "E") {
            index += 1
            if index < count, base[index] == UInt8(ascii: "+") || base[index] == UInt8(ascii: "-") { index += 1 }
            guard index < count, isDigit(base[index]) else { throw error("invalid number: bad exponent", at: start) }
            while index < count, isDigit(base[index]) { index += 1 }
        }
        return start..<index
    }

    /// A whole number in range, or nil for null, fractions and anything else (validated all the same).
    mutating func scanIntegerOrSkip() throws(PageScanError) -> Int? {
        skipWhitespace()
        guard let byte = peek(), byte == UInt8(ascii: "-") || isDigit(byte) else {
            try scanValue(depth: 2)
            return nil
        }
        let range = try scanNumber()
        guard range.count <= 18 else { return nil }
        var value = 0
        var negative = false
        for offset in range {
            let digit = base[offset]
            if digit == UInt8(ascii: "-") {
                negative = true
            } else if isDigit(digit) {
                value = value * 10 + Int(digit - UInt8(ascii: "0"))
            } else {
                return nil
            }
        }
        return negative ? -value : value
    }

    @inline(__always) func isDigit(_ byte: UInt8) -> Bool { byte &- UInt8(ascii: "0") < 10 }

    /// Validates a string starting at its opening quote; returns the range of its content.
    mutating func scanString() throws(PageScanError) -> (start: Int, end: Int, escaped: Bool) {
        let opening = index
        index += 1
        let start = index
        var escaped = false
        while index < count {
            let byte = base[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                return (start, index - 1, escaped)
            }
            if byte == UInt8(ascii: "\\") {
                escaped = true
                try scanEscape()
            } else if byte < 0x20 {
                throw error("control character in a string")
            } else if byte < 0x80 {
                index += 1
            } else {
                try scanMultibyte()
            }
        }
        throw error("unterminated string", at: opening)
    }

    mutating func scanEscape() throws(PageScanError) {
        guard index + 1 < count else { throw error("unterminated escape") }
        switch base[index + 1] {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
            UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            index += 2
        case UInt8(ascii: "u"):
            guard index + 5 < count else { throw error("truncated \\u escape") }
            for offset in 2...5 where hexValue(base[index + offset]) == nil {
                throw error("invalid \\u escape")
            }
            index += 6
        default:
            throw error("invalid escape")
        }
    }

    /// Validates one UTF-8 sequence of two to four bytes.
    mutating func scanMultibyte() throws(PageScanError) {
        let lead = base[index]
        let length: Int
        var low: UInt8 = 0x80
        var high: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; high = 0x9F
        case 0xF0: length = 4; low = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; high = 0x8F
        default: throw error("invalid UTF-8")
        }
        guard index + length <= count else { throw error("truncated UTF-8 sequence") }
        let second = base[index + 1]
        guard second >= low, second <= high else { throw error("invalid UTF-8") }
        for offset in 2..<length where base[index + offset] & 0xC0 != 0x80 {
            throw error("invalid UTF-8")
        }
        index += length
    }

    @inline(__always) func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    /// The text of a validated string.
    func decode(_ string: (start: Int, end: Int, escaped: Bool)) -> String {
        let raw = UnsafeBufferPointer(rebasing: base[string.start..<string.end])
        guard string.escaped else { return String(decoding: raw, as: UTF8.self) }
        var scalars = String.UnicodeScalarView()
        var bytes: [UInt8] = []
        var i = 0
        func flush() {
            if !bytes.isEmpty {
                scalars.append(contentsOf: String(decoding: bytes, as: UTF8.self).unicodeScalars)
                bytes.removeAll()
            }
        }
        func hex4(_ at: Int) -> UInt32 {
            (0..<4).reduce(UInt32(0)) { $0 << 4 | (hexValue(raw[at + $1]) ?? 0) }
        }
        while i < raw.count {
            guard raw[i] == UInt8(ascii: "\\") else {
                bytes.append(raw[i])
                i += 1
                continue
            }
            flush()
            let kind = raw[i + 1]
            i += 2
            switch kind {
            case UInt8(ascii: "b"): scalars.append("\u{08}")
            case UInt8(ascii: "f"): scalars.append("\u{0C}")
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "u"):
                var code = hex4(i)
                i += 4
                if (0xD800..<0xDC00).contains(code), i + 5 < raw.count, raw[i] == UInt8(ascii: "\\"),
                    raw[i + 1] == UInt8(ascii: "u")
                {
                    let low = hex4(i + 2)
                    if (0xDC00..<0xE000).contains(low) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        i += 6
                    }
                }
                scalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
            default: scalars.append(Unicode.Scalar(kind))
            }
        }
        flush()
        return String(scalars)
    }

    /// Whether a member name is `name`, ignoring ASCII case (the bank's serializer is ASP.NET).
    func keyIs(_ key: (start: Int, end: Int, escaped: Bool), _ name: StaticString) -> Bool {
        if key.escaped { return decode(key).lowercased() == name.description.lowercased() }
        let length = name.utf8CodeUnitCount
        guard key.end - key.start == length else { return false }
        let expected = name.utf8Start
        for offset in 0..<length where base[key.start + offset] | 0x20 != expected[offset] | 0x20 {
            return false
        }
        return true
    }
}
