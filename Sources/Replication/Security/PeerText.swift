/// Text that came from the peer (a refusal's reason, its configuration), made safe for a
/// terminal: printable ASCII is kept, everything else (control characters, escape sequences,
/// other scripts) is shown as `\u{...}`, and it is cut at `limit` characters.
public enum PeerText {
    public static let limit = 256

    public static func sanitized(_ text: String, limit: Int = PeerText.limit) -> String {
        var out = ""
        var count = 0
        for scalar in text.unicodeScalars {
            if count >= limit {
                out += "…"
                break
            }
            if scalar.value >= 0x20 && scalar.value < 0x7F {
                out.unicodeScalars.append(scalar)
            } else {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            }
            count += 1
        }
        return out
    }

    /// Bytes from the peer that should be UTF-8 text.
    public static func sanitized(bytes: some Sequence<UInt8>, limit: Int = PeerText.limit) -> String {
        sanitized(String(decoding: Array(bytes.prefix(limit * 4)), as: UTF8.self), limit: limit)
    }
}
