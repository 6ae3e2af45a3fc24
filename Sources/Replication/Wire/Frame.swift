import CZlib

/// One frame on the replication channel.
///
/// ```
/// offset size  field
///      0    4  magic "LKSP" (0x4C 0x4B 0x53 0x50)
///      4    2  protocol version (little-endian), currently 1
///      6    2  message type (MessageType; 0 is invalid)
///      8    4  payload length in bytes
///     12    8  sequence number (0, 1, 2, ... per direction)
///     20    n  payload
///   20+n    4  CRC-32 (zlib) of bytes 0 ..< 20+n
/// ```
/// All integers are little-endian. See docs/protocol.md for the messages and state diagrams.
public struct Frame: Equatable, Sendable {
    public static let magic: [UInt8] = Array("LKSP".utf8)
    public static let version: UInt16 = 1
    public static let headerSize = 20
    public static let trailerSize = 4
    /// No valid message is larger than this (a disk read of many sectors is the largest).
    public static let maximumPayload = 64 << 20

    public let type: MessageType
    public let sequence: UInt64
    public let payload: [UInt8]

    public init(type: MessageType, sequence: UInt64, payload: [UInt8]) {
        self.type = type
        self.sequence = sequence
        self.payload = payload
    }

    /// The frame's bytes on the wire.
    public func encoded() -> [UInt8] {
        var w = WireWriter()
        w.raw(Self.magic)
        w.u16(Self.version)
        w.u16(type.rawValue)
        w.u32(UInt32(payload.count))
        w.u64(sequence)
        w.raw(payload)
        w.u32(Self.checksum(w.bytes))
        return w.bytes
    }

    /// CRC-32 as zlib computes it.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        UInt32(truncatingIfNeeded: crc32(0, bytes, UInt32(bytes.count)))
    }
}

/// Reassembles frames from a byte stream, checking each one fully before it is returned.
public struct FrameDecoder: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0
    private var expectedSequence: UInt64 = 0

    public init() {}

    /// Adds bytes received from the peer.
    public mutating func append(_ bytes: some Collection<UInt8>) {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        buffer += bytes
    }

    /// The next complete frame, or nil if more bytes are needed. Throws on the first sign of a
    /// corrupt, truncated-then-garbled, foreign or out-of-order stream; after an error the
    /// stream cannot be trusted and must be closed.
    public mutating func next() throws(WireError) -> Frame? {
        let available = buffer.count - start
        // Check the magic as soon as it can be seen, so a foreign peer is rejected at once.
        for i in 0..<min(4, available) where buffer[start + i] != Frame.magic[i] {
            throw .badMagic(word32(at: start, partial: min(4, available)))
        }
        guard available >= Frame.headerSize else { return nil }
        let version = UInt16(buffer[start + 4]) | UInt16(buffer[start + 5]) << 8
        guard version == Frame.version else { throw .unsupportedVersion(version) }
        let rawType = UInt16(buffer[start + 6]) | UInt16(buffer[start + 7]) << 8
        let length = word32(at: start + 8, partial: 4)
        guard length <= Frame.maximumPayload else { throw .frameTooLarge(length) }
        let total = Frame.headerSize + Int(length) + Frame.trailerSize
        guard available >= total else { return nil }
        let body = Array(buffer[start..<start + total - Frame.trailerSize])
        let carried = word32(at: start + total - Frame.trailerSize, partial: 4)
        let computed = Frame.checksum(body)
        guard carried == computed else { throw .checksumMismatch(expected: carried, actual: computed) }
        guard let type = MessageType(rawValue: rawType), type != .invalid else {
            throw .unknownMessageType(rawType)
        }
        var sequence: UInt64 = 0
        for i in 0..<8 { sequence |= UInt64(buffer[start + 12 + i]) << (8 * i) }
        guard sequence == expectedSequence else {
            throw .outOfSequence(expected: expectedSequence, actual: sequence)
        }
        expectedSequence += 1
        start += total
        if start > 1 << 20 {
            buffer.removeFirst(start)
            start = 0
        }
        return Frame(type: type, sequence: sequence,
                     payload: Array(body[Frame.headerSize...]))
    }

    private func word32(at offset: Int, partial: Int) -> UInt32 {
        var v: UInt32 = 0
        for i in 0..<partial { v |= UInt32(buffer[offset + i]) << (8 * i) }
        return v
    }
}
