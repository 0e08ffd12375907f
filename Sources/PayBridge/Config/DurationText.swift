/// Durations as written in the config: `250ms`, `30s`, `5m`, `2h`, `1d`, or a sum such as `1h30m`.
public enum DurationText {
    /// No setting means more than a century; a longer text is a typo, not a duration (and
    /// `99999999999999999999d` overflowed the milliseconds: found by `scripts/fuzz config`).
    public static let longest: Duration = .seconds(100 * 365 * 86400)

    public static func parse(_ text: String) -> Duration? {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        guard !rest.isEmpty else { return nil }
        var total = Duration.zero
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
            guard !digits.isEmpty, let amount = Double(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            let unit = rest.prefix { $0.isLetter }
            rest = rest.dropFirst(unit.count)
            let seconds: Double
            switch unit {
            case "ms": seconds = amount / 1000
            case "s": seconds = amount
            case "m": seconds = amount * 60
            case "h": seconds = amount * 3600
            case "d": seconds = amount * 86400
            default: return nil
            }
            guard seconds.isFinite, seconds <= longest.seconds else { return nil }
            total += .milliseconds(Int64((seconds * 1000).rounded()))
            guard total <= longest else { return nil }
        }
        return total
    }

    /// `1500ms` → "1.5s": for logs and messages.
    public static func format(_ duration: Duration) -> String {
        let milliseconds = duration.milliseconds
        if milliseconds % 1000 != 0 || milliseconds < 1000 { return "\(Double(milliseconds) / 1000)s" }
        let seconds = milliseconds / 1000
        if seconds % 3600 == 0 { return "\(seconds / 3600)h" }
        if seconds % 60 == 0 { return "\(seconds / 60)m" }
        return "\(seconds)s"
    }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
