/// Parses sizes as QEMU's `-m` takes them: a bare number is in MiB (`64` is 64 MiB); a suffix
/// gives the unit: `B` (bytes), `K`/`KiB`, `M`/`MiB`, `G`/`GiB`, `T`/`TiB` (powers of 1024,
/// case-insensitive, `KB`/`MB`/... accepted as the same).
public enum SizeParser {
    /// The unit of a number without a suffix.
    public static let bareUnit: UInt64 = 1 << 20

    /// The size in bytes, or nil when `text` is not a size (or overflows 64 bits).
    public static func bytes(_ text: String) -> UInt64? {
        var digits = Substring(text.trimmingCharacters(in: .whitespaces))
        var unit = ""
        while let last = digits.last, last.isLetter {
            unit = String(last) + unit
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = UInt64(digits) else {
            return nil
        }
        let multiplier: UInt64
        switch unit.lowercased() {
        case "": multiplier = bareUnit
        case "b": multiplier = 1
        case "k", "kb", "kib": multiplier = 1 << 10
        case "m", "mb", "mib": multiplier = 1 << 20
        case "g", "gb", "gib": multiplier = 1 << 30
        case "t", "tb", "tib": multiplier = 1 << 40
        default: return nil
        }
        let (result, overflow) = value.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : result
    }

    /// `bytes` as a short human string (64 MiB).
    public static func describe(_ bytes: UInt64) -> String {
        if bytes >= 1 << 30 && bytes % (1 << 30) == 0 { return "\(bytes >> 30) GiB" }
        if bytes >= 1 << 20 && bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
        if bytes >= 1 << 10 && bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
        return "\(bytes) bytes"
    }
}
