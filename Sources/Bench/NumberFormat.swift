import Foundation

/// How numbers read in tables and on chart axes.
enum NumberFormat {
    /// Three significant digits, no exponent for everyday magnitudes: 0.0123, 1.23, 123, 12300.
    static func compact(_ v: Double) -> String {
        guard v.isFinite else { return "-" }
        if v == 0 { return "0" }
        let a = abs(v)
        if a >= 1e9 { return String(format: "%.2f G", v / 1e9) }
        if a >= 1e6 { return String(format: "%.2f M", v / 1e6) }
        if a >= 100 { return String(format: "%.0f", v) }
        if a >= 10 { return trimmed(String(format: "%.1f", v)) }
        if a >= 1 { return trimmed(String(format: "%.2f", v)) }
        return trimmed(String(format: "%.3g", v))
    }

    /// Binary multiples for counts such as epoch lengths: 1024 is 1K, 65536 is 64K.
    static func binary(_ v: Double) -> String {
        guard v.isFinite, v >= 1 else { return compact(v) }
        let n = UInt64(v.rounded())
        if n >= 1 << 20, n % (1 << 20) == 0 { return "\(n >> 20)M" }
        if n >= 1 << 10, n % (1 << 10) == 0 { return "\(n >> 10)K" }
        return "\(n)"
    }

    /// A fixed number of decimals.
    static func fixed(_ v: Double, _ decimals: Int) -> String {
        guard v.isFinite else { return "-" }
        return String(format: "%.\(decimals)f", v)
    }

    /// Milliseconds from seconds, with a sensible precision.
    static func milliseconds(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "-" }
        let ms = seconds * 1000
        if abs(ms) >= 100 { return String(format: "%.0f", ms) }
        if abs(ms) >= 10 { return String(format: "%.1f", ms) }
        return String(format: "%.2f", ms)
    }

    /// Microseconds from seconds.
    static func microseconds(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "-" }
        let us = seconds * 1e6
        if abs(us) >= 100 { return String(format: "%.0f", us) }
        if abs(us) >= 10 { return String(format: "%.1f", us) }
        return String(format: "%.2f", us)
    }

    /// A ratio: "6.50x".
    static func ratio(_ v: Double) -> String {
        guard v.isFinite else { return "-" }
        if v >= 100 { return String(format: "%.0fx", v) }
        if v >= 10 { return String(format: "%.1fx", v) }
        if v >= 0.1 || v <= 0 { return String(format: "%.2fx", v) }
        return String(format: "%.2gx", v)
    }

    private static func trimmed(_ s: String) -> String {
        guard s.contains("."), !s.contains("e") else { return s }
        var t = s
        while t.hasSuffix("0") { t.removeLast() }
        if t.hasSuffix(".") { t.removeLast() }
        return t
    }
}
