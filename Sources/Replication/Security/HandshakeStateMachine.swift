@preconcurrency import Crypto
import NIOCore

/// Why a handshake ended without a connection. Each description is one line for the user.
public enum HandshakeFailure: Error, Equatable, Sendable, CustomStringConvertible {
    /// The peer sent something that is not this protocol (a stranger, garbage, an echo).
    case malformed(WireError)
    /// The peer's first sealed frame did not open: it does not hold this pair's key.
    case authenticationFailed
    /// The peer closed the handshake with an alert (unauthenticated: a hint).
    case alert(HandshakeAlert)
    /// The peer holds the key but refused this replica (its reason, sanitised).
    case refusedByPeer(String)
    /// The peer holds the key but runs another image or configuration (this side's reason).
    case mismatch(String)
    /// The connection closed or failed before the handshake finished.
    case closed(String)
    /// The handshake did not finish in time.
    case timedOut(seconds: Int)
    /// The primary had too many handshakes in progress.
    case busy

    /// Whether a backup should connect again (the failure says nothing about the peer).
    public var isTransient: Bool {
        switch self {
        case .closed, .timedOut, .busy, .alert(.busy): true
        case .malformed, .authenticationFailed, .alert, .refusedByPeer, .mismatch: false
        }
    }

    public var description: String {
        switch self {
        case .malformed(let error): "not a Lockstep peer: \(error)"
        case .authenticationFailed: "authentication failed: the peer does not hold this pair's key (check --key-file on both sides)"
        case .alert(let alert): "the peer ended the handshake: \(alert)"
        case .refusedByPeer(let reason): "the peer refused: \(reason)"
        case .mismatch(let reason): reason
        case .closed(let why): "the connection ended during the handshake: \(why)"
        case .timedOut(let seconds): "the handshake did not finish within \(seconds) s"
        case .busy: "too many connections in progress"
        }
    }
}

/// The fresh values one side contributes to a handshake: a nonce and an ephemeral X25519 key.
/// Random in use; fixed in tests.
public struct HandshakeRandomness: Sendable {
    let nonce: [UInt8]
    let ephemeral: Curve25519.KeyAgreement.PrivateKey

    public static func fresh() -> HandshakeRandomness {
        var generator = SystemRandomNumberGenerator()
        return HandshakeRandomness(nonce: (0..<HandshakeMessage.nonceSize).map { _ in UInt8.random(in: .min ... .max, using: &generator) },
                                   ephemeral: Curve25519.KeyAgreement.PrivateKey())
    }

    init(nonce: [UInt8], ephemeral: Curve25519.KeyAgreement.PrivateKey) {
        self.nonce = nonce
        self.ephemeral = ephemeral
    }

    /// Fixed values, for tests and fuzzing only: a real handshake needs fresh ones.
    public static func fixed(_ byte: UInt8) -> HandshakeRandomness {
        // 32 bytes are always a valid X25519 private key.
        HandshakeRandomness(nonce: Array(repeating: byte, count: HandshakeMessage.nonceSize),
                            ephemeral: try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: Array(repeating: byte, count: 32)))
    }
}

/// A connection whose handshake succeeded: the sealing state continues from the handshake's
/// frames, and the peer is known.
public struct EstablishedSession: Sendable {
    public var sealer: FrameSealer
    public var opener: FrameOpener
    public let peer: IdentityMessage
    /// The pair's session (the primary's 16 bytes).
    public let session: [UInt8]
    /// What the backup asked for in its offer.
    public let purpose: JoinPurpose
}

/// The handshake of one connection, as a state machine: frames in, frames to send and an outcome
/// out. No socket, no clock: the connection feeds it and performs what it returns.
///
/// ```
/// backup (initiator)                                  primary (responder)
///   start: offer ------------------------------------> [awaitingOffer] -> answer
///   [offered] <------------------------------------- answer
///   derive keys, identity_B (sealed #0) ------------> [answered]: open (the key), compare
///   [identified] <---------------------------------- identity_P (sealed #0) or refusal
///   open, compare, ready (sealed #1) ---------------> [awaitingReady]
///   established                                       established
/// ```
public struct HandshakeStateMachine: Sendable {
    private enum State: Sendable {
        case initial
        /// Backup: the offer is sent.
        case offered(offer: [UInt8])
        /// Primary: the answer is sent; the backup's identity must open with the derived keys.
        case answered(sealer: FrameSealer, opener: FrameOpener, purpose: JoinPurpose)
        /// Backup: its identity is sent; the primary's must follow.
        case identified(sealer: FrameSealer, opener: FrameOpener)
        /// Primary: its identity is sent; the backup's ready must follow.
        case awaitingReady(sealer: FrameSealer, opener: FrameOpener, peer: IdentityMessage, purpose: JoinPurpose)
        /// Backup: the primary's identity matched; the caller proves the arbiter and the disk
        /// are shared (`SharingProof`) before ready or a refusal goes out.
        case verifying(sealer: FrameSealer, opener: FrameOpener, peer: IdentityMessage)
        case done
    }

    /// What the connection does after an event.
    public struct Step: Sendable {
        /// Frames to write, in order (before closing, if the handshake failed).
        public var send: [UInt8] = []
        /// Set when the handshake is over.
        public var outcome: Result<EstablishedSession, HandshakeFailure>?
        /// Backup: the primary's session, to be proven shared; answer with `verified(refusal:)`.
        public var verify: [UInt8]?
    }

    public let role: ReplicaRole
    private let key: ReplicationKey
    private let identity: ReplicaIdentity
    /// The primary's session; empty at the backup until it learns it.
    private let session: [UInt8]
    private let randomness: HandshakeRandomness
    /// The backup's purpose (what it offers); the primary learns the peer's from the offer.
    private let purpose: JoinPurpose
    /// Backup: whether the caller proves sharing before ready (`Step.verify`).
    private let proof: SharingCheck
    private var state: State = .initial

    /// Whether a backup's handshake stops for the proof of sharing before sending ready.
    public enum SharingCheck: Sendable {
        /// Ready follows the identity check at once (in-process tests).
        case none
        /// `Step.verify` asks the caller; `verified(refusal:)` answers.
        case byCaller
    }

    /// - Parameters:
    ///   - role: `.backup` connects and speaks first; `.primary` answers.
    ///   - session: the primary's 16 bytes (ignored at the backup).
    public init(role: ReplicaRole, key: ReplicationKey, identity: ReplicaIdentity, session: [UInt8] = [],
                purpose: JoinPurpose = .replicateFromBoot, randomness: HandshakeRandomness = .fresh(),
                proof: SharingCheck = .none)
    {
        self.purpose = purpose
        precondition(role == .backup || session.count == IdentityMessage.sessionSize, "a primary names its session with 16 bytes")
        self.role = role
        self.key = key
        self.identity = identity
        self.session = role == .primary ? session : []
        self.randomness = randomness
        self.proof = role == .backup ? proof : .none
    }

    /// Whether the handshake is over (either way).
    public var isFinished: Bool { if case .done = state { true } else { false } }

    /// The backup's first move: its offer. (The primary waits for one.)
    public mutating func start() -> Step {
        guard role == .backup, case .initial = state else { return Step() }
        let offer = HandshakeMessage.offer(role: .backup, purpose: purpose, nonce: randomness.nonce,
                                           publicKey: Array(randomness.ephemeral.publicKey.rawRepresentation)).encoded()
        state = .offered(offer: offer)
        return Step(send: Self.clearFrame(offer))
    }

    /// A frame arrived.
    public mutating func receive(_ frame: RawFrame) -> Step {
        let current = state
        switch (current, frame.type) {
        case (.done, _):
            return Step()
        case (_, .handshake):
            let message: HandshakeMessage
            do { message = try HandshakeMessage(body: frame.body) } catch { return fail(.malformed(error), alert: .protocolError) }
            return receive(message, in: current)
        case (.answered(var sealer, var opener, let purpose), .identity):
            guard let plaintext = try? opener.open(frame) else {
                return fail(.authenticationFailed, alert: .authenticationFailed)
            }
            let peer: IdentityMessage
            do { peer = try IdentityMessage(plaintext: plaintext) } catch { return fail(.malformed(error), alert: .protocolError) }
            if let reason = identity.refusal(of: peer, expecting: .backup) {
                return refuse(reason, sealer: &sealer)
            }
            var out = ByteBufferAllocator().buffer(capacity: 512)
            var mine = ByteBufferAllocator().buffer(capacity: 512)
            identity.message(role: .primary, session: session).encode(into: &mine)
            do { try sealer.seal(.identity, mine.readableBytesView, into: &out) } catch { return fail(.malformed(error), alert: nil) }
            state = .awaitingReady(sealer: sealer, opener: opener, peer: peer, purpose: purpose)
            return Step(send: Array(out.readableBytesView))
        case (.identified(var sealer, var opener), .identity):
            guard let plaintext = try? opener.open(frame) else { return fail(.authenticationFailed, alert: nil) }
            let peer: IdentityMessage
            do { peer = try IdentityMessage(plaintext: plaintext) } catch { return fail(.malformed(error), alert: nil) }
            if let reason = identity.refusal(of: peer, expecting: .primary) {
                return refuse(reason, sealer: &sealer)
            }
            switch proof {
            case .none:
                return ready(sealer: &sealer, opener: opener, peer: peer)
            case .byCaller:
                state = .verifying(sealer: sealer, opener: opener, peer: peer)
                return Step(verify: peer.session)
            }
        case (.awaitingReady(let sealer, var opener, let peer, let purpose), .ready):
            guard (try? opener.open(frame)) != nil else { return fail(.authenticationFailed, alert: nil) }
            state = .done
            return Step(outcome: .success(EstablishedSession(sealer: sealer, opener: opener, peer: peer, session: session,
                                                             purpose: purpose)))
        case (.answered(_, var opener, _), .refusal), (.identified(_, var opener), .refusal),
             (.awaitingReady(_, var opener, _, _), .refusal):
            guard let plaintext = try? opener.open(frame) else {
                return fail(.authenticationFailed, alert: role == .primary ? .authenticationFailed : nil)
            }
            return fail(.refusedByPeer(PeerText.sanitized(bytes: plaintext.readableBytesView)), alert: nil)
        default:
            return fail(.malformed(.unexpectedFrame(frame.type)), alert: .protocolError)
        }
    }

    /// Backup: the caller's verdict on `Step.verify`: nil sends ready, a reason refuses.
    public mutating func verified(refusal: String?) -> Step {
        guard case .verifying(var sealer, let opener, let peer) = state else { return Step() }
        if let refusal { return refuse(refusal, sealer: &sealer) }
        return ready(sealer: &sealer, opener: opener, peer: peer)
    }

    private mutating func ready(sealer: inout FrameSealer, opener: FrameOpener, peer: IdentityMessage) -> Step {
        var out = ByteBufferAllocator().buffer(capacity: 64)
        do { try sealer.seal(.ready, [], into: &out) } catch { return fail(.malformed(error), alert: nil) }
        state = .done
        return Step(send: Array(out.readableBytesView),
                    outcome: .success(EstablishedSession(sealer: sealer, opener: opener, peer: peer, session: peer.session,
                                                         purpose: purpose)))
    }

    private mutating func receive(_ message: HandshakeMessage, in current: State) -> Step {
        switch (current, message) {
        case (_, .alert(let alert)):
            return fail(.alert(alert), alert: nil)
        case (.initial, .offer(let peerRole, let peerPurpose, let nonce, let publicKey)) where role == .primary:
            guard peerRole == .backup else {
                return fail(.malformed(.badHandshake("the peer offers as a \(peerRole), a primary expects a backup")), alert: .protocolError)
            }
            guard let peerKey = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: publicKey),
                  let shared = try? randomness.ephemeral.sharedSecretFromKeyAgreement(with: peerKey)
            else { return fail(.malformed(.badHandshake("unusable ephemeral key")), alert: .protocolError) }
            let offer = message.encoded()
            let answer = HandshakeMessage.answer(role: .primary, nonce: randomness.nonce,
                                                 publicKey: Array(randomness.ephemeral.publicKey.rawRepresentation)).encoded()
            let keys = SessionKeys.derive(role: .primary, key: key, shared: shared, backupNonce: nonce,
                                          primaryNonce: randomness.nonce, offer: offer, answer: answer)
            state = .answered(sealer: FrameSealer(keys: keys.send), opener: FrameOpener(keys: keys.receive),
                              purpose: peerPurpose)
            return Step(send: Self.clearFrame(answer))
        case (.offered(let offer), .answer(let peerRole, let nonce, let publicKey)):
            guard peerRole == .primary else {
                return fail(.malformed(.badHandshake("the peer answers as a \(peerRole), a backup expects a primary")), alert: .protocolError)
            }
            guard let peerKey = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: publicKey),
                  let shared = try? randomness.ephemeral.sharedSecretFromKeyAgreement(with: peerKey)
            else { return fail(.malformed(.badHandshake("unusable ephemeral key")), alert: .protocolError) }
            let keys = SessionKeys.derive(role: .backup, key: key, shared: shared, backupNonce: randomness.nonce,
                                          primaryNonce: nonce, offer: offer, answer: message.encoded())
            var sealer = FrameSealer(keys: keys.send)
            var mine = ByteBufferAllocator().buffer(capacity: 512)
            identity.message(role: .backup, session: []).encode(into: &mine)
            var out = ByteBufferAllocator().buffer(capacity: 512)
            do { try sealer.seal(.identity, mine.readableBytesView, into: &out) } catch { return fail(.malformed(error), alert: nil) }
            state = .identified(sealer: sealer, opener: FrameOpener(keys: keys.receive))
            return Step(send: Array(out.readableBytesView))
        default:
            return fail(.malformed(.badHandshake("unexpected \(Self.name(message))")), alert: .protocolError)
        }
    }

    /// Refuses a peer that holds the key but runs something else: a sealed refusal, then close.
    private mutating func refuse(_ reason: String, sealer: inout FrameSealer) -> Step {
        var out = ByteBufferAllocator().buffer(capacity: 256)
        let text = Array(reason.utf8.prefix(Frame.maximumRefusal))
        try? sealer.seal(.refusal, text, into: &out)
        state = .done
        return Step(send: Array(out.readableBytesView), outcome: .failure(.mismatch(reason)))
    }

    private mutating func fail(_ failure: HandshakeFailure, alert: HandshakeAlert?) -> Step {
        state = .done
        return Step(send: alert.map { Self.clearFrame(HandshakeMessage.alert($0).encoded()) } ?? [],
                    outcome: .failure(failure))
    }

    /// A handshake frame holding `body`.
    public static func clearFrame(_ body: [UInt8]) -> [UInt8] {
        var out = ByteBufferAllocator().buffer(capacity: Frame.headerSize + body.count)
        Frame.writeHeader(type: .handshake, bodyLength: body.count, into: &out)
        out.writeBytes(body)
        return Array(out.readableBytesView)
    }

    private static func name(_ message: HandshakeMessage) -> String {
        switch message {
        case .offer: "offer"
        case .answer: "answer"
        case .alert: "alert"
        }
    }
}
