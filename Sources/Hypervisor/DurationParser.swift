/// Parses durations as every `lockstep` option takes them: a decimal number with an optional
/// unit, `ns`, `us`, `ms`, `s`, `m` or `h`; a bare number is in seconds (`0.2` and `200ms` are
/// the same). No sign, no exponent: `-1`, `1e3`, `inf` and `nan` are not durations.
public enum DurationParser {
    /// The duration, or nil when `text` is not one.
    public static func duration(_ text: String) -> Duration? {
        let trimmed = Substring(text.trimmingCharacters(in: .whitespaces))
        let number = trimmed.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        let unit = trimmed.dropFirst(number.count)
        let parts = number.split(separator: ".", omittingEmptySubsequences: false)
        guard !number.isEmpty, parts.count <= 2, !parts[0].isEmpty || (parts.count == 2 && !parts[1].isEmpty),
              parts.allSatisfy({ $0.count <= 18 })
        else { return nil }
        // Nanoseconds per unit; the fraction is taken to the nanosecond, exactly.
        let scale: Int64
        switch unit {
        case "ns": scale = 1
        case "us", "µs": scale = 1_000
        case "ms": scale = 1_000_000
        case "", "s": scale = 1_000_000_000
        case "m": scale = 60_000_000_000
        case "h": scale = 3_600_000_000_000
        default: return nil
        }
        guard let whole = parts[0].isEmpty ? 0 : Int64(parts[0]) else { return nil }
        let (wholeNanoseconds, overflow) = whole.multipliedReportingOverflow(by: scale)
        guard !overflow else { return nil }
        var fractionNanoseconds: Int64 = 0
        if parts.count == 2, !parts[1].isEmpty {
            // scale * 0.d1...dn, rounded down to a nanosecond: the product is taken in 128 bits.
            guard let digits = Int64(parts[1]) else { return nil }
            let denominator = (0..<parts[1].count).reduce(Int64(1)) { value, _ in value * 10 }
            fractionNanoseconds = denominator.dividingFullWidth(digits.multipliedFullWidth(by: scale)).quotient
        }
        let (total, overflowTotal) = wholeNanoseconds.addingReportingOverflow(fractionNanoseconds)
        guard !overflowTotal else { return nil }
        return .nanoseconds(total)
    }

    /// `duration` in whole units, as `duration(_:)` reads it back (`500ms`, `2s`, `1500ms`).
    public static func describe(_ duration: Duration) -> String {
        let ns = nanoseconds(duration)
        if ns == 0 { return "0s" }
        if ns % 1_000_000_000 == 0 { return "\(ns / 1_000_000_000)s" }
        if ns % 1_000_000 == 0 { return "\(ns / 1_000_000)ms" }
        if ns % 1_000 == 0 { return "\(ns / 1_000)us" }
        return "\(ns)ns"
    }

    /// The whole nanoseconds in `duration` (saturating).
    public static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let (ns, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return seconds < 0 ? .min : .max }
        let (total, overflowTotal) = ns.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflowTotal ? .max : total
    }
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// The duration in whole milliseconds, rounded down.
    public var milliseconds: Int64 { DurationParser.nanoseconds(self) / 1_000_000 }
}
