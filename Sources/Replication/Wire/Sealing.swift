@preconcurrency import Crypto
import Foundation
import NIOCore
import NIOFoundationCompat

/// The AES-256-GCM key and IV of one direction of one session.
public struct DirectionKeys: Sendable {
    let key: SymmetricKey
    /// 12 bytes; each frame's nonce is this IV with its sequence number XORed into the last 8.
    let iv: [UInt8]

    init(key: SymmetricKey, iv: [UInt8]) {
        precondition(iv.count == 12, "an AES-GCM IV has 12 bytes")
        self.key = key
        self.iv = iv
    }

    func nonce(_ sequence: UInt64) -> AES.GCM.Nonce {
        var bytes = iv
        for i in 0..<8 { bytes[4 + i] ^= UInt8(truncatingIfNeeded: sequence >> (8 * i)) }
        // 12 bytes is always a valid AES-GCM nonce size.
        return try! AES.GCM.Nonce(data: bytes)
    }
}

/// Seals frames in one direction: numbers them 0, 1, 2, ... (the number is the nonce, never sent)
/// and authenticates each header with its body.
public struct FrameSealer: Sendable {
    let keys: DirectionKeys
    /// The sequence number of the next sealed frame.
    public private(set) var nextSequence: UInt64 = 0

    init(keys: DirectionKeys) { self.keys = keys }

    /// Appends a sealed frame of `type` holding `plaintext` (within the type's limits) to `out`.
    public mutating func seal(_ type: FrameType, _ plaintext: ByteBufferView, into out: inout ByteBuffer) throws(WireError) {
        precondition(type.isSealed && Frame.bodyLimits(type).contains(plaintext.count + Frame.tagSize),
                     "a \(type) frame cannot hold \(plaintext.count) bytes")
        guard nextSequence < .max else { throw .sequenceExhausted }
        var header = ByteBufferAllocator().buffer(capacity: Frame.headerSize)
        Frame.writeHeader(type: type, bodyLength: plaintext.count + Frame.tagSize, into: &header)
        let box: AES.GCM.SealedBox
        do {
            box = try AES.GCM.seal(plaintext, using: keys.key, nonce: keys.nonce(nextSequence),
                                   authenticating: header.readableBytesView)
        } catch {
            // Sealing with a valid key and nonce cannot fail; if BoringSSL ever refuses, the
            // frame is not sent and the connection ends.
            throw .authenticationFailed(type, sequence: nextSequence)
        }
        nextSequence += 1
        out.writeBuffer(&header)
        out.writeBytes(box.ciphertext)
        out.writeBytes(box.tag)
    }

    /// Appends a sealed frame of `type` holding `plaintext`.
    public mutating func seal(_ type: FrameType, _ plaintext: [UInt8], into out: inout ByteBuffer) throws(WireError) {
        let buffer = ByteBufferAllocator().buffer(bytes: plaintext)
        try seal(type, buffer.readableBytesView, into: &out)
    }
}

/// Opens sealed frames in one direction, in order: a frame that is not the next one, or that
/// was altered in any bit, does not authenticate.
public struct FrameOpener: Sendable {
    let keys: DirectionKeys
    /// The sequence number the next frame must have.
    public private(set) var nextSequence: UInt64 = 0

    init(keys: DirectionKeys) { self.keys = keys }

    /// The plaintext of `frame`, which must be sealed.
    public mutating func open(_ frame: RawFrame) throws(WireError) -> ByteBuffer {
        precondition(frame.type.isSealed, "only sealed frames are opened")
        let body = frame.body.readableBytesView
        guard body.count >= Frame.tagSize, nextSequence < .max else {
            throw .authenticationFailed(frame.type, sequence: nextSequence)
        }
        let split = body.index(body.endIndex, offsetBy: -Frame.tagSize)
        let plaintext: Data
        do {
            let box = try AES.GCM.SealedBox(nonce: keys.nonce(nextSequence), ciphertext: body[..<split],
                                            tag: body[split...])
            plaintext = try AES.GCM.open(box, using: keys.key, authenticating: frame.header.readableBytesView)
        } catch {
            throw .authenticationFailed(frame.type, sequence: nextSequence)
        }
        nextSequence += 1
        return ByteBufferAllocator().buffer(bytes: plaintext)
    }
}

/// The keys of one session, as one side sees them.
public struct SessionKeys: Sendable {
    public let send: DirectionKeys
    public let receive: DirectionKeys

    /// The key schedule (HKDF-SHA256, as TLS 1.3 chains its secrets):
    /// ```
    /// early     = HKDF-Extract(salt: "lockstep v2" || nonce_B || nonce_P, key)
    /// secret    = HKDF(input: X25519 shared secret, salt: early, info: SHA-256(offer || answer))
    /// k_dir     = HKDF-Expand(secret, "lockstep v2 key " + direction, 32)
    /// iv_dir    = HMAC-SHA256(secret, "lockstep v2 iv " + direction)[0..<12]
    /// ```
    /// The pre-shared key authenticates (only its holders derive the keys), the ephemeral
    /// exchange gives forward secrecy, and both nonces make every session's keys fresh.
    static func derive(role: ReplicaRole, key: ReplicationKey, shared: SharedSecret,
                       backupNonce: [UInt8], primaryNonce: [UInt8], offer: [UInt8], answer: [UInt8]) -> SessionKeys
    {
        let early = HKDF<SHA256>.extract(inputKeyMaterial: key.symmetricKey,
                                         salt: Array("lockstep v2".utf8) + backupNonce + primaryNonce)
        let transcript = Array(SHA256.hash(data: offer + answer))
        let secret = shared.hkdfDerivedSymmetricKey(using: SHA256.self, salt: Array(early),
                                                    sharedInfo: transcript, outputByteCount: 32)
        func direction(_ name: String) -> DirectionKeys {
            let key = HKDF<SHA256>.expand(pseudoRandomKey: secret, info: Array("lockstep v2 key \(name)".utf8),
                                          outputByteCount: 32)
            let iv = HMAC<SHA256>.authenticationCode(for: Array("lockstep v2 iv \(name)".utf8), using: secret)
            return DirectionKeys(key: key, iv: Array(Array(iv).prefix(12)))
        }
        let toBackup = direction("primary to backup"), toPrimary = direction("backup to primary")
        return role == .primary ? SessionKeys(send: toBackup, receive: toPrimary)
            : SessionKeys(send: toPrimary, receive: toBackup)
    }
}
