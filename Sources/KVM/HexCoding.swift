/// Byte strings in `Codable` state as lower-case hexadecimal text: a JSON array of 4096
/// numbers (an XSAVE area) took milliseconds to encode, and a snapshot is encoded while the
/// guest waits (a live state transfer's final copy). Decoding also takes the arrays of numbers
/// that older snapshots hold.
enum HexCoding {
    private static let digits = Array("0123456789abcdef".utf8)

    /// `bytes` as 2 hexadecimal digits each.
    static func string(_ bytes: [UInt8]) -> String {
        var text: [UInt8] = []
        text.reserveCapacity(2 * bytes.count)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// The bytes `text` spells in hexadecimal (either case), or nil if it is not an even number
    /// of hexadecimal digits. The result is half as long as the (already bounded) input.
    static func bytes(_ text: String) -> [UInt8]? {
        let characters = Array(text.utf8)
        guard characters.count % 2 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(characters.count / 2)
        var index = 0
        while index < characters.count {
            guard let high = value(characters[index]), let low = value(characters[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }
}

extension KeyedEncodingContainer {
    mutating func encodeHex(_ bytes: [UInt8], forKey key: Key) throws {
        try encode(HexCoding.string(bytes), forKey: key)
    }

    mutating func encodeHex(rows: [[UInt8]], forKey key: Key) throws {
        try encode(rows.map(HexCoding.string), forKey: key)
    }
}

extension KeyedDecodingContainer {
    /// Bytes written by `encodeHex`, or (older snapshots) an array of numbers.
    func decodeHex(forKey key: Key) throws -> [UInt8] {
        guard let text = try? decode(String.self, forKey: key) else { return try decode([UInt8].self, forKey: key) }
        guard let bytes = HexCoding.bytes(text) else {
            throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: "not hexadecimal bytes")
        }
        return bytes
    }

    /// Rows of bytes written by `encodeHex(rows:)`, or (older snapshots) arrays of numbers.
    func decodeHexRows(forKey key: Key) throws -> [[UInt8]] {
        guard let texts = try? decode([String].self, forKey: key) else { return try decode([[UInt8]].self, forKey: key) }
        return try texts.map { text in
            guard let bytes = HexCoding.bytes(text) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: "not hexadecimal bytes")
            }
            return bytes
        }
    }
}
