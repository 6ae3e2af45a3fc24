import Crypto

/// A SHA-256 digest of (part of) a machine's state, used to check that two replicas agree.
public struct StateDigest: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The 32 digest bytes.
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 32, "a SHA-256 digest has 32 bytes")
        self.bytes = bytes
    }

    public init(_ digest: SHA256.Digest) { self.bytes = Array(digest) }

    /// SHA-256 of `data`.
    public static func of(_ data: [UInt8]) -> StateDigest {
        StateDigest(SHA256.hash(data: data))
    }

    /// Lower-case hexadecimal, 64 characters.
    public var description: String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}

/// Builds a digest from several labelled parts, so that the same state always hashes the same way.
public struct StateHasher {
    private var hasher = SHA256()

    public init() {}

    /// Adds a label and a byte string (length-prefixed, so parts cannot run together).
    public mutating func add(_ label: String, _ bytes: some Collection<UInt8>) {
        addRaw(Array(label.utf8))
        addRaw(Array(bytes))
    }

    /// Adds a label and an integer (little-endian, 8 bytes).
    public mutating func add(_ label: String, _ value: UInt64) {
        add(label, littleEndianBytes(value))
    }

    private mutating func addRaw(_ bytes: [UInt8]) {
        hasher.update(data: littleEndianBytes(UInt64(bytes.count)))
        hasher.update(data: bytes)
    }

    public func finalize() -> StateDigest { StateDigest(hasher.finalize()) }
}

/// The 8 little-endian bytes of `value`.
@inlinable public func littleEndianBytes(_ value: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
}
