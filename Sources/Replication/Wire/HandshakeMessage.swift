import NIOCore

/// Which side of a replicated pair a process is.
public enum ReplicaRole: UInt8, Sendable, Codable, CustomStringConvertible {
    case primary = 1
    case backup = 2
    public var description: String { self == .primary ? "primary" : "backup" }
}

/// The clear-text messages of the handshake, each the body of one `handshake` frame.
///
/// ```
/// offer  (backup -> primary): u8 1, u8 role (2), u8 purpose (1), 32 bytes nonce, 32 bytes X25519 public key
/// answer (primary -> backup): u8 2, u8 role (1), 32 bytes nonce, 32 bytes X25519 public key
/// alert  (either)           : u8 3, u8 reason
/// ```
public enum HandshakeMessage: Equatable, Sendable {
    /// The backup's opening: its fresh randomness and ephemeral key.
    case offer(role: ReplicaRole, purpose: JoinPurpose, nonce: [UInt8], publicKey: [UInt8])
    /// The primary's reply: its fresh randomness and ephemeral key.
    case answer(role: ReplicaRole, nonce: [UInt8], publicKey: [UInt8])
    /// Why the sender is closing the handshake. Unauthenticated: a hint, never trusted.
    case alert(HandshakeAlert)

    /// The largest handshake message.
    public static let maximumSize = 128
    static let nonceSize = 32
    static let publicKeySize = 32

    /// The message's bytes (a frame's body).
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        switch self {
        case .offer(let role, let purpose, let nonce, let publicKey):
            out = [1, role.rawValue, purpose.rawValue] + nonce + publicKey
        case .answer(let role, let nonce, let publicKey):
            out = [2, role.rawValue] + nonce + publicKey
        case .alert(let alert):
            out = [3, alert.rawValue]
        }
        return out
    }

    /// Decodes a handshake frame's body. Every field is checked; nothing is trusted.
    public init(body: ByteBuffer) throws(WireError) {
        var b = body
        guard let kind = b.readInteger(as: UInt8.self) else { throw .badHandshake("empty message") }
        func role() throws(WireError) -> ReplicaRole {
            guard let raw = b.readInteger(as: UInt8.self) else { throw .badHandshake("truncated") }
            guard let role = ReplicaRole(rawValue: raw) else { throw .badHandshake("role \(raw)") }
            return role
        }
        func bytes(_ n: Int) throws(WireError) -> [UInt8] {
            guard let v = b.readBytes(length: n) else { throw .badHandshake("truncated") }
            return v
        }
        switch kind {
        case 1:
            let r = try role()
            guard let rawPurpose = b.readInteger(as: UInt8.self) else { throw .badHandshake("truncated") }
            guard let purpose = JoinPurpose(rawValue: rawPurpose) else {
                throw .badHandshake("purpose \(rawPurpose)")
            }
            self = .offer(role: r, purpose: purpose, nonce: try bytes(Self.nonceSize),
                          publicKey: try bytes(Self.publicKeySize))
        case 2:
            let r = try role()
            self = .answer(role: r, nonce: try bytes(Self.nonceSize), publicKey: try bytes(Self.publicKeySize))
        case 3:
            guard let raw = b.readInteger(as: UInt8.self) else { throw .badHandshake("truncated") }
            self = .alert(HandshakeAlert(rawValue: raw) ?? .protocolError)
        default:
            throw .badHandshake("message kind \(kind)")
        }
        guard b.readableBytes == 0 else { throw .badHandshake("\(b.readableBytes) unexpected trailing bytes") }
    }
}

/// What a backup asks for when it connects.
public enum JoinPurpose: UInt8, Sendable {
    /// Follow the primary from the guest's first instruction (both replicas boot the same image).
    case replicateFromBoot = 1
    /// Join a primary whose guest is already running: receive its state (live state transfer),
    /// then follow it from the boundary the transfer ended at.
    case joinRunning = 2
}

/// The reason in a handshake alert.
public enum HandshakeAlert: UInt8, Sendable, CustomStringConvertible {
    /// The peer's first sealed frame did not open: it does not hold the same key.
    case authenticationFailed = 1
    /// The peer's protocol version or purpose is not supported.
    case unsupported = 2
    /// The primary has too many handshakes in progress.
    case busy = 3
    /// Anything else the sender could not accept.
    case protocolError = 4

    public var description: String {
        switch self {
        case .authenticationFailed: "authentication failed (the two sides do not hold the same key)"
        case .unsupported: "unsupported protocol version or purpose"
        case .busy: "too many connections in progress"
        case .protocolError: "protocol error"
        }
    }
}
