import Foundation
import PayBridge

/// How commands print: aligned tables for people, one JSON document with `--json`.
enum Output {
    /// Columns padded to their widest cell; the last column is not padded.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header] + rows.map { $0.map(\.oneLine) }
        let widths = header.indices.map { column in all.map { $0.indices.contains(column) ? $0[column].count : 0 }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n")
    }

    /// `3 min ago`, `in 5 s`, `just now`.
    static func relative(_ date: Date, now: Date = Date()) -> String {
        let seconds = now.timeIntervalSince(date)
        let magnitude = abs(seconds)
        let text: String
        switch magnitude {
        case ..<1: return "just now"
        case ..<60: text = "\(Int(magnitude)) s"
        case ..<3600: text = "\(Int(magnitude / 60)) min"
        case ..<86400: text = "\(Int(magnitude / 3600)) h"
        default: text = "\(Int(magnitude / 86400)) d"
        }
        return seconds >= 0 ? "\(text) ago" : "in \(text)"
    }

    /// `2026-12-01T21:00:00.123Z (3 min ago)`.
    static func when(_ date: Date?, now: Date = Date()) -> String {
        guard let date else { return "-" }
        return "\(Timestamp.iso8601(date)) (\(relative(date, now: now)))"
    }

    /// `1 delivery`, `2 deliveries`.
    static func count(_ number: Int, _ singular: String, _ plural: String? = nil) -> String {
        "\(number) \(number == 1 ? singular : plural ?? singular + "s")"
    }

    static func print(_ document: JSONValue) {
        Swift.print(String(decoding: document.bytes, as: UTF8.self))
    }
}

/// A group message's members, for `deliveries show` and `events list`.
enum GroupMessage {
    static func members(_ events: [EventSummary]) -> JSONValue { GroupMembers.json(events) }

    /// `3 payments: 0b9f… (Rejected), 4c1d… (Rejected), …`.
    static func line(_ events: [EventSummary]) -> String {
        Output.count(events.count, "payment") + ": " + events.map { "\($0.subject) (\($0.status ?? $0.type))" }.joined(separator: ", ")
    }
}

/// A point in time (`--since 2h`): that long ago, or an instant as the operations API takes
/// it (`2026-12-01T09:00:00Z`).
func ago(_ text: String?, option: String = "--since") throws -> Date? {
    guard let text else { return nil }
    if let duration = DurationText.parse(text) { return Date().addingTimeInterval(-duration.seconds) }
    if let instant = Timestamp.parse(text) { return instant }
    throw CommandError("\(option): write a duration like 30m, 2h or 7d, or an ISO 8601 time like 2026-12-01T09:00:00Z")
}

/// A command's failure: printed as `error: …`, exit 1.
struct CommandError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension String {
    /// The text on one line and harmless on a terminal: newlines, tabs and every other control
    /// character (a terminal's escape sequences start with one) written as `\n`, `\t`, `\u{1B}`.
    /// For what others sent (a receiver's answer, the bank's error) in tables and text logs.
    var oneLine: String {
        guard unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { return self }
        var text = ""
        for scalar in unicodeScalars {
            switch scalar {
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            case _ where scalar.properties.generalCategory == .control: text += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            default: text.unicodeScalars.append(scalar)
            }
        }
        return text
    }
}
