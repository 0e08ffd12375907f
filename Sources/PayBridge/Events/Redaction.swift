import Foundation

/// What an endpoint must not see (§8 `redact`): applied to that endpoint's body only, before
/// rendering and signing; the stored event and other endpoints keep the bank's bytes.
public struct Redaction: Sendable, Equatable {
    /// Every IBAN-shaped account number in the payment: `DK50 **** **** 6453`.
    public var iban: Bool
    /// The debtor's and creditor's names: first letter kept.
    public var names: Bool
    /// The remittance lines.
    public var remittance: Bool
    /// Fields whose value is removed (`null`).
    public var paths: [JSONPath]

    public init(iban: Bool = false, names: Bool = false, remittance: Bool = false, paths: [JSONPath] = []) {
        self.iban = iban
        self.names = names
        self.remittance = remittance
        self.paths = paths
    }

    public var isEmpty: Bool { !iban && !names && !remittance && paths.isEmpty }

    var key: String {
        ([iban ? "iban" : "", names ? "names" : "", remittance ? "remittance" : ""] + paths.map(\.description)).joined(separator: ",")
    }

    /// The document with every payment in it redacted (a group message carries several).
    func apply(to document: EventDocument) -> EventDocument {
        var copy = document
        if document.isGroup, case .array(let events)? = document.data["events"] {
            let redacted = events.map { event in event.replacing([.member("payment")][...]) { apply(toPayment: $0) } }
            copy.data = document.data.replacing([.member("events")][...]) { _ in .array(redacted) }
        } else {
            copy.data = document.data.replacing([.member("payment")][...]) { apply(toPayment: $0) }
        }
        return copy
    }

    func apply(toPayment payment: JSONValue) -> JSONValue {
        var value = payment
        for path in paths { value = value.replacing(path.segments[...]) { _ in .null } }
        if names {
            for path in Self.namePaths { value = value.replacing(path.segments[...]) { Self.maskName($0) } }
        }
        if remittance {
            for path in Self.remittancePaths {
                value = value.replacing(path.segments[...]) { lines in
                    guard case .object(let members) = lines else { return lines }
                    return .object(members.map { member in (member.key, member.value.isNull ? .null : .string("***")) })
                }
            }
        }
        if iban { value = value.mappingStrings(Self.maskIBANs) }
        return value
    }

    static let namePaths: [JSONPath] = ["$.transfer.debtorName", "$.transfer.creditorName", "$.debtorName", "$.creditorName"]
        .compactMap(JSONPath.init)
    static let remittancePaths: [JSONPath] = [
        "$.transfer.remittanceInformation", "$.debtorInformation.instruction.remittanceInformation",
    ].compactMap(JSONPath.init)

    /// `Müller & Söhne GmbH` → `M***`: the length says nothing either.
    static func maskName(_ value: JSONValue) -> JSONValue {
        guard case .string(let name) = value, let first = name.first else { return value }
        return .string("\(first)***")
    }

    /// Replaces every IBAN-shaped run (two letters, two digits, 11–30 letters or digits,
    /// spaces allowed between groups) with its country, check digits and last four.
    static func maskIBANs(_ text: String) -> String {
        let characters = Array(text)
        var output = ""
        var index = 0
        while index < characters.count {
            if let end = ibanEnd(characters, from: index) {
                let compact = characters[index..<end].filter { $0 != " " }
                output += String(compact.prefix(4)) + " **** **** " + String(compact.suffix(4))
                index = end
            } else {
                output.append(characters[index])
                index += 1
            }
        }
        return output
    }

    /// Where an IBAN starting at `start` ends, or nil: upper-case letters and digits after
    /// the check digits, written whole or in groups of four separated by single spaces.
    private static func ibanEnd(_ characters: [Character], from start: Int) -> Int? {
        func isUpper(_ c: Character) -> Bool { c.isASCII && c.isUppercase && c.isLetter }
        func isDigit(_ c: Character) -> Bool { c.isASCII && c.isNumber }
        func isPart(_ c: Character) -> Bool { isUpper(c) || isDigit(c) }
        // Not inside a longer word.
        if start > 0, characters[start - 1].isLetter || characters[start - 1].isNumber { return nil }
        guard start + 4 <= characters.count, isUpper(characters[start]), isUpper(characters[start + 1]), isDigit(characters[start + 2]),
            isDigit(characters[start + 3])
        else { return nil }
        var index = start + 4
        var count = 0
        var group = 4  // characters since the last space; the check digits close the first group
        var end = index
        while index < characters.count, count < 30 {
            let c = characters[index]
            if isPart(c) {
                count += 1
                group += 1
                index += 1
                end = index
            } else if c == " ", group == 4, index + 1 < characters.count, isPart(characters[index + 1]) {
                group = 0
                index += 1
            } else {
                break
            }
        }
        // Followed by more of a word: not an account number.
        if end < characters.count, characters[end].isLetter || characters[end].isNumber { return nil }
        return count >= 11 ? end : nil
    }
}
