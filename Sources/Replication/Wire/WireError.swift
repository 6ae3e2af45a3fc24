/// Why bytes from the replication channel were rejected. Any of these ends the connection: the
/// stream is never trusted again.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The stream does not start a frame with "LKSP": not a Lockstep peer, or a lost frame boundary.
    case badMagic(UInt32)
    /// The peer speaks another version of the protocol.
    case unsupportedVersion(UInt16)
    /// The frame's type is 0 (invalid) or unknown to this version.
    case unknownFrameType(UInt16)
    /// The frame's body length is outside the limits of its type.
    case badFrameLength(FrameType, UInt32)
    /// A frame of this type is not allowed at this point of the connection.
    case unexpectedFrame(FrameType)
    /// A sealed frame did not authenticate: the wrong key, or a forged, corrupted, replayed,
    /// reordered, dropped or reflected frame.
    case authenticationFailed(FrameType, sequence: UInt64)
    /// A handshake message is malformed.
    case badHandshake(String)
    /// The replication message stream holds something invalid.
    case badMessage(MessageType?, String)
    /// A replication message claims a length past the limit of its direction.
    case messageTooLarge(UInt16, UInt32, limit: Int)
    /// The message type is 0 (invalid) or unknown to this version.
    case unknownMessageType(UInt16)
    /// A message arrived that this side never accepts from its peer.
    case wrongDirection(MessageType)
    /// A receipt claims more bytes than were ever sent.
    case receiptBeyondSent(claimed: UInt64, sent: UInt64)
    /// The sending side ran out of sequence numbers (2^64 frames): never in practice.
    case sequenceExhausted

    public var description: String {
        switch self {
        case .badMagic(let magic):
            "not a Lockstep replication frame (magic 0x\(String(magic, radix: 16)))"
        case .unsupportedVersion(let v):
            "peer speaks replication protocol version \(v), this is version \(Frame.version)"
        case .unknownFrameType(let t): "unknown frame type \(t)"
        case .badFrameLength(let type, let n):
            "a \(type) frame of \(n) bytes is outside its limits (\(Frame.bodyLimits(type)))"
        case .unexpectedFrame(let type): "unexpected \(type) frame"
        case .authenticationFailed(let type, let sequence):
            "sealed \(type) frame \(sequence) does not authenticate (wrong key, or a forged, corrupted, replayed or reordered frame)"
        case .badHandshake(let why): "malformed handshake: \(why)"
        case .badMessage(let type, let why):
            type.map { "malformed \($0) message: \(why)" } ?? "malformed message: \(why)"
        case .messageTooLarge(let type, let n, let limit):
            "a message of type \(type) claims \(n) bytes, past the limit of \(limit)"
        case .unknownMessageType(let t): "unknown message type \(t)"
        case .wrongDirection(let type): "a \(type) message in the wrong direction"
        case .receiptBeyondSent(let claimed, let sent):
            "the peer acknowledged \(claimed) bytes, but only \(sent) were sent"
        case .sequenceExhausted: "the connection ran out of frame sequence numbers"
        }
    }
}
