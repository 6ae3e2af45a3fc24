/// Why bytes from the replication channel were rejected. Any of these ends replication cleanly.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The stream does not start a frame with "LKSP": not a Lockstep peer, or a lost frame boundary.
    case badMagic(UInt32)
    /// The peer speaks another version of the protocol.
    case unsupportedVersion(UInt16)
    /// The frame's message type is 0 (invalid) or unknown to this version.
    case unknownMessageType(UInt16)
    /// The frame claims a payload larger than any valid message.
    case frameTooLarge(UInt32)
    /// The frame's CRC-32 does not match its contents: corrupted in transit.
    case checksumMismatch(expected: UInt32, actual: UInt32)
    /// The payload ended before the message did.
    case truncated(MessageType)
    /// The payload is well framed but its contents make no sense.
    case malformed(MessageType, String)
    /// The frame's sequence number is not the one after the previous frame's.
    case outOfSequence(expected: UInt64, actual: UInt64)

    public var description: String {
        switch self {
        case .badMagic(let magic):
            "not a Lockstep replication frame (magic 0x\(String(magic, radix: 16)))"
        case .unsupportedVersion(let v):
            "peer speaks replication protocol version \(v), this is version \(Frame.version)"
        case .unknownMessageType(let t): "unknown message type \(t)"
        case .frameTooLarge(let n): "frame payload of \(n) bytes exceeds the limit of \(Frame.maximumPayload)"
        case .checksumMismatch(let expected, let actual):
            "frame checksum mismatch (carried 0x\(String(expected, radix: 16)), computed 0x\(String(actual, radix: 16))): corrupted in transit"
        case .truncated(let type): "\(type) message is truncated"
        case .malformed(let type, let reason): "malformed \(type) message: \(reason)"
        case .outOfSequence(let expected, let actual):
            "frame \(actual) arrived where frame \(expected) was expected"
        }
    }
}

/// Appends little-endian fields to a byte array.
struct WireWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { for i in 0..<2 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func u64(_ v: UInt64) { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func i32(_ v: Int32) { u32(UInt32(bitPattern: v)) }
    mutating func bool(_ v: Bool) { u8(v ? 1 : 0) }
    /// A length-prefixed byte string.
    mutating func blob(_ v: [UInt8]) { u32(UInt32(v.count)); bytes += v }
    mutating func string(_ v: String) { blob(Array(v.utf8)) }
    /// Exactly `count` raw bytes.
    mutating func raw(_ v: [UInt8]) { bytes += v }
}

/// Reads little-endian fields from a message payload; every read is bounds-checked.
struct WireReader {
    let bytes: [UInt8]
    let type: MessageType
    var index = 0

    init(_ bytes: [UInt8], type: MessageType) {
        self.bytes = bytes
        self.type = type
    }

    var isAtEnd: Bool { index == bytes.count }

    mutating func take(_ n: Int) throws(WireError) -> ArraySlice<UInt8> {
        guard n >= 0, bytes.count - index >= n else { throw .truncated(type) }
        defer { index += n }
        return bytes[index..<index + n]
    }

    mutating func u8() throws(WireError) -> UInt8 { try take(1).first! }
    mutating func u32() throws(WireError) -> UInt32 { try integer(UInt32.self) }
    mutating func u64() throws(WireError) -> UInt64 { try integer(UInt64.self) }
    mutating func i32() throws(WireError) -> Int32 { Int32(bitPattern: try u32()) }
    mutating func bool() throws(WireError) -> Bool {
        switch try u8() {
        case 0: return false
        case 1: return true
        case let v: throw .malformed(type, "boolean field holds \(v)")
        }
    }

    mutating func blob(limit: Int = Frame.maximumPayload) throws(WireError) -> [UInt8] {
        let n = Int(try u32())
        guard n <= limit else { throw .malformed(type, "a field of \(n) bytes exceeds \(limit)") }
        return Array(try take(n))
    }

    mutating func string() throws(WireError) -> String {
        let b = try blob(limit: 1 << 16)
        guard let s = String(validating: b, as: UTF8.self) else {
            throw .malformed(type, "text is not UTF-8")
        }
        return s
    }

    mutating func raw(_ n: Int) throws(WireError) -> [UInt8] { Array(try take(n)) }

    /// A count of following items, each at least `minimumSize` bytes: rejects counts the
    /// remaining payload cannot hold.
    mutating func count(minimumSize: Int) throws(WireError) -> Int {
        let n = Int(try u32())
        guard n * max(minimumSize, 1) <= bytes.count - index else {
            throw .malformed(type, "\(n) items cannot fit in the rest of the message")
        }
        return n
    }

    private mutating func integer<T: FixedWidthInteger>(_: T.Type) throws(WireError) -> T {
        let slice = try take(MemoryLayout<T>.size)
        var v: T = 0
        for (i, b) in slice.enumerated() { v |= T(b) << (8 * i) }
        return v
    }

    func finish() throws(WireError) {
        guard isAtEnd else { throw .malformed(type, "\(bytes.count - index) unexpected trailing bytes") }
    }
}
