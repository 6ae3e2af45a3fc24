import NIOCore

/// The type of a frame. 0 is never valid; every type but `handshake` is sealed.
///
/// ```
/// offset size  field
///      0    4  magic "LKSP" (0x4C 0x4B 0x53 0x50)
///      4    2  protocol version, 2
///      6    2  frame type (this enum)
///      8    4  body length n (limits per type: `Frame.bodyLimits`)
///     12    n  body: a handshake message, or AES-256-GCM ciphertext and its 16-byte tag
/// ```
/// All integers are little-endian. See docs/protocol.md for the state diagrams.
public enum FrameType: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    case invalid = 0
    /// A handshake message, in the clear (offer, answer, alert).
    case handshake = 1
    /// Sealed: bytes of the replication message stream.
    case data = 2
    /// Sealed: how many bytes of the peer's message stream are held (also the heartbeat).
    case receipt = 3
    /// Sealed: who I am and what I run (handshake).
    case identity = 4
    /// Sealed: the identities match, replication starts (handshake).
    case ready = 5
    /// Sealed: the sender refuses, for the reason in the text, and closes.
    case refusal = 6

    public var isSealed: Bool { self != .handshake && self != .invalid }

    public var description: String {
        switch self {
        case .invalid: "invalid"
        case .handshake: "handshake"
        case .data: "data"
        case .receipt: "receipt"
        case .identity: "identity"
        case .ready: "ready"
        case .refusal: "refusal"
        }
    }
}

/// Constants of the frame format.
public enum Frame {
    /// "LKSP" as a little-endian word.
    public static let magic: UInt32 = 0x5053_4B4C
    public static let version: UInt16 = 2
    public static let headerSize = 12
    /// The AES-GCM tag at the end of a sealed body.
    public static let tagSize = 16
    /// The largest plaintext of a data frame: larger messages travel in several frames.
    public static let maximumPlaintext = 65536
    /// The largest refusal text.
    public static let maximumRefusal = 1024
    /// The largest identity plaintext (fixed fields, 4 KiB of configuration text, a session).
    public static let maximumIdentity = 1 + 32 + 32 + 2 + 4096 + 1 + 64

    /// The body lengths a frame of each type may have.
    public static func bodyLimits(_ type: FrameType) -> ClosedRange<Int> {
        switch type {
        case .invalid: 0...0
        case .handshake: 1...HandshakeMessage.maximumSize
        case .data: (1 + tagSize)...(maximumPlaintext + tagSize)
        case .receipt: (8 + tagSize)...(8 + tagSize)
        case .identity: (1 + tagSize)...(maximumIdentity + tagSize)
        case .ready: tagSize...tagSize
        case .refusal: tagSize...(maximumRefusal + tagSize)
        }
    }

    /// The largest frame of any type, header included: what a receiver may have to buffer.
    public static let maximumSize = headerSize + maximumPlaintext + tagSize

    /// Writes a frame header.
    static func writeHeader(type: FrameType, bodyLength: Int, into buffer: inout ByteBuffer) {
        buffer.writeInteger(magic, endianness: .little)
        buffer.writeInteger(version, endianness: .little)
        buffer.writeInteger(type.rawValue, endianness: .little)
        buffer.writeInteger(UInt32(bodyLength), endianness: .little)
    }
}

/// A frame whose header has been checked; its body is not yet trusted.
public struct RawFrame: Sendable {
    public let type: FrameType
    /// The 12 header bytes (authenticated with a sealed body).
    public let header: ByteBuffer
    public let body: ByteBuffer
}

/// Reassembles frames from a byte stream. Each header is checked as its bytes arrive (the magic
/// byte by byte, then version, type and the type's length limit) before the body is waited for,
/// so a stranger can make it buffer at most one bounded frame. After an error the stream cannot
/// be trusted and must be closed.
public struct FrameReader: Sendable {
    private var buffer: ByteBuffer
    /// Whether handshake frames are still allowed (only before the first sealed frame).
    public var acceptsHandshake = true

    public init(allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        buffer = allocator.buffer(capacity: 4096)
    }

    /// Adds bytes received from the peer.
    public mutating func append(_ bytes: inout ByteBuffer) {
        compactIfNeeded()
        buffer.writeBuffer(&bytes)
    }

    /// Adds bytes received from the peer.
    public mutating func append(contentsOf bytes: some Sequence<UInt8>) {
        compactIfNeeded()
        buffer.writeBytes(bytes)
    }

    /// Whether bytes of an incomplete frame are buffered.
    public var hasPartialFrame: Bool { buffer.readableBytes > 0 }

    /// The next complete frame, or nil if more bytes are needed.
    public mutating func next() throws(WireError) -> RawFrame? {
        let available = buffer.readableBytes
        let start = buffer.readerIndex
        for i in 0..<min(4, available) {
            let expected = UInt8(truncatingIfNeeded: Frame.magic >> (8 * i))
            if buffer.getInteger(at: start + i, as: UInt8.self) != expected {
                throw .badMagic(partialWord(at: start, count: min(4, available)))
            }
        }
        guard available >= Frame.headerSize,
              let version = buffer.getInteger(at: start + 4, endianness: .little, as: UInt16.self),
              let rawType = buffer.getInteger(at: start + 6, endianness: .little, as: UInt16.self),
              let length = buffer.getInteger(at: start + 8, endianness: .little, as: UInt32.self)
        else { return nil }
        guard version == Frame.version else { throw .unsupportedVersion(version) }
        guard let type = FrameType(rawValue: rawType), type != .invalid else { throw .unknownFrameType(rawType) }
        if type == .handshake && !acceptsHandshake { throw .unexpectedFrame(type) }
        guard Frame.bodyLimits(type).contains(Int(length)) else { throw .badFrameLength(type, length) }
        guard available >= Frame.headerSize + Int(length) else { return nil }
        if type.isSealed { acceptsHandshake = false }
        // Both slices share the buffer's storage: nothing is copied.
        let header = buffer.readSlice(length: Frame.headerSize)!
        let body = buffer.readSlice(length: Int(length))!
        return RawFrame(type: type, header: header, body: body)
    }

    /// Moves the unread bytes to the front once most of the buffer has been read, so the
    /// buffer never grows beyond about two frames.
    private mutating func compactIfNeeded() {
        if buffer.readableBytes == 0 {
            buffer.clear()
        } else if buffer.readerIndex > Frame.maximumSize {
            buffer.discardReadBytes()
        }
    }

    private func partialWord(at offset: Int, count: Int) -> UInt32 {
        var v: UInt32 = 0
        for i in 0..<count { v |= UInt32(buffer.getInteger(at: offset + i, as: UInt8.self) ?? 0) << (8 * i) }
        return v
    }
}
