/// Appends little-endian fields to a byte array (the snapshot format's encoding).
public struct ByteWriter {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { integer(v) }
    public mutating func u32(_ v: UInt32) { integer(v) }
    public mutating func u64(_ v: UInt64) { integer(v) }
    public mutating func bool(_ v: Bool) { u8(v ? 1 : 0) }
    /// A length-prefixed (u32) byte string.
    public mutating func blob(_ v: [UInt8]) {
        u32(UInt32(v.count))
        bytes += v
    }
    /// A length-prefixed UTF-8 string.
    public mutating func string(_ v: String) { blob(Array(v.utf8)) }
    /// Exactly these bytes, no length.
    public mutating func raw(_ v: some Sequence<UInt8>) { bytes.append(contentsOf: v) }

    private mutating func integer<T: FixedWidthInteger>(_ v: T) {
        for i in 0..<MemoryLayout<T>.size { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) }
    }
}

/// Reads little-endian fields from hostile bytes: every read is bounds-checked, every length is
/// checked against what remains, and a failure names the part being read.
public struct ByteReader {
    public let bytes: [UInt8]
    /// What is being read, for error messages ("machine record").
    public let what: String
    public private(set) var index = 0

    public init(_ bytes: [UInt8], what: String) {
        self.bytes = bytes
        self.what = what
    }

    public var remaining: Int { bytes.count - index }
    public var isAtEnd: Bool { index == bytes.count }

    public mutating func take(_ n: Int) throws(SnapshotError) -> ArraySlice<UInt8> {
        guard n >= 0, remaining >= n else { throw .truncated("the \(what) ends early") }
        defer { index += n }
        return bytes[index..<index + n]
    }

    public mutating func u8() throws(SnapshotError) -> UInt8 { try take(1).first! }
    public mutating func u16() throws(SnapshotError) -> UInt16 { try integer(UInt16.self) }
    public mutating func u32() throws(SnapshotError) -> UInt32 { try integer(UInt32.self) }
    public mutating func u64() throws(SnapshotError) -> UInt64 { try integer(UInt64.self) }

    public mutating func bool() throws(SnapshotError) -> Bool {
        switch try u8() {
        case 0: return false
        case 1: return true
        case let v: throw .malformed("a boolean in the \(what) holds \(v)")
        }
    }

    /// A u32-length-prefixed byte string of at most `limit` bytes.
    public mutating func blob(limit: Int) throws(SnapshotError) -> [UInt8] {
        let n = Int(try u32())
        guard n <= limit else { throw .malformed("a field of \(n) bytes in the \(what) exceeds \(limit)") }
        return Array(try take(n))
    }

    /// A length-prefixed UTF-8 string of at most `limit` bytes.
    public mutating func string(limit: Int = 1 << 16) throws(SnapshotError) -> String {
        let b = try blob(limit: limit)
        guard let s = String(validating: b, as: UTF8.self) else {
            throw .malformed("text in the \(what) is not UTF-8")
        }
        return s
    }

    /// A count of following items, each at least `minimumSize` bytes: counts the rest of the
    /// bytes cannot hold are refused before anything is allocated for them.
    public mutating func count(minimumSize: Int) throws(SnapshotError) -> Int {
        let n = Int(try u32())
        guard n <= remaining / max(minimumSize, 1) else {
            throw .malformed("\(n) items cannot fit in the rest of the \(what)")
        }
        return n
    }

    /// Refuses trailing bytes.
    public func finish() throws(SnapshotError) {
        guard isAtEnd else { throw .malformed("\(remaining) unexpected bytes at the end of the \(what)") }
    }

    private mutating func integer<T: FixedWidthInteger>(_: T.Type) throws(SnapshotError) -> T {
        let slice = try take(MemoryLayout<T>.size)
        var v: T = 0
        for (i, b) in slice.enumerated() { v |= T(b) << (8 * i) }
        return v
    }
}
