import MachineCore
import NIOCore

/// Who a replica is and what it runs: the plaintext of the sealed `identity` frame.
///
/// ```
/// u8 role, 32 bytes image digest, 32 bytes configuration digest,
/// u16 length + configuration text (UTF-8, at most 4096 bytes),
/// u8 length + session (16 bytes from the primary, none from the backup)
/// ```
public struct IdentityMessage: Equatable, Sendable {
    public var role: ReplicaRole
    /// SHA-256 of the guest ELF file.
    public var imageDigest: StateDigest
    /// SHA-256 of the canonical configuration text.
    public var configurationDigest: StateDigest
    /// The canonical configuration, shown when the digests differ.
    public var configuration: String
    /// 16 random bytes chosen by the primary, naming this pair (the arbiter uses them); empty
    /// from the backup.
    public var session: [UInt8]

    public static let sessionSize = 16
    public static let maximumConfiguration = 4096

    public init(role: ReplicaRole, imageDigest: StateDigest, configurationDigest: StateDigest,
                configuration: String, session: [UInt8])
    {
        self.role = role
        self.imageDigest = imageDigest
        self.configurationDigest = configurationDigest
        self.configuration = configuration
        self.session = session
    }

    public func encode(into buffer: inout ByteBuffer) {
        let text = Array(configuration.utf8.prefix(Self.maximumConfiguration))
        buffer.writeInteger(role.rawValue)
        buffer.writeBytes(imageDigest.bytes)
        buffer.writeBytes(configurationDigest.bytes)
        buffer.writeInteger(UInt16(text.count), endianness: .little)
        buffer.writeBytes(text)
        buffer.writeInteger(UInt8(session.count))
        buffer.writeBytes(session)
    }

    /// Decodes an opened identity frame. The role decides the session's exact length.
    public init(plaintext: ByteBuffer) throws(WireError) {
        var b = plaintext
        func fail(_ why: String) -> WireError { .badHandshake("identity: \(why)") }
        guard let rawRole = b.readInteger(as: UInt8.self) else { throw fail("truncated") }
        guard let role = ReplicaRole(rawValue: rawRole) else { throw fail("role \(rawRole)") }
        guard let image = b.readBytes(length: 32), let configuration = b.readBytes(length: 32),
              let textLength = b.readInteger(endianness: .little, as: UInt16.self)
        else { throw fail("truncated") }
        guard Int(textLength) <= Self.maximumConfiguration else { throw fail("configuration of \(textLength) bytes") }
        guard let textBytes = b.readBytes(length: Int(textLength)) else { throw fail("truncated") }
        guard let text = String(validating: textBytes, as: UTF8.self) else { throw fail("configuration is not UTF-8") }
        guard let sessionLength = b.readInteger(as: UInt8.self) else { throw fail("truncated") }
        let expected = role == .primary ? Self.sessionSize : 0
        guard Int(sessionLength) == expected else {
            throw fail("a \(role)'s session must be \(expected) bytes, not \(sessionLength)")
        }
        guard let session = b.readBytes(length: Int(sessionLength)) else { throw fail("truncated") }
        guard b.readableBytes == 0 else { throw fail("\(b.readableBytes) unexpected trailing bytes") }
        self.init(role: role, imageDigest: StateDigest(bytes: image), configurationDigest: StateDigest(bytes: configuration),
                  configuration: text, session: session)
    }
}
