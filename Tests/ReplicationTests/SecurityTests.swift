import Crypto
import Foundation
import Hypervisor
import MachineCore
import NIOCore
import Testing

@testable import Replication

let identity = ReplicaIdentity(imageBytes: [1, 2, 3], options: RunOptions(guestPath: "/g"),
                               engine: .emulator, epochClock: .recoveryCounter, epochLength: 100,
                               diskSectors: nil)
let testSession: [UInt8] = Array(0x40..<0x50)

/// Reads every frame in `bytes`.
func frames(in bytes: [UInt8]) throws -> [RawFrame] {
    var reader = FrameReader()
    reader.append(contentsOf: bytes)
    var out: [RawFrame] = []
    while let f = try reader.next() { out.append(f) }
    return out
}

/// The failure in a handshake outcome, if it is one.
func failure(_ outcome: Result<EstablishedSession, HandshakeFailure>?) -> HandshakeFailure? {
    if case .failure(let f)? = outcome { f } else { nil }
}

/// Two handshake state machines talking in memory: the backup's output goes to the primary and
/// back, until both are done. Returns both outcomes and every byte each side sent.
struct HandshakeRun {
    var primary: HandshakeStateMachine
    var backup: HandshakeStateMachine
    var primaryOutcome: Result<EstablishedSession, HandshakeFailure>?
    var backupOutcome: Result<EstablishedSession, HandshakeFailure>?
    var primarySent: [UInt8] = []
    var backupSent: [UInt8] = []

    init(primaryKey: ReplicationKey = .insecure, backupKey: ReplicationKey = .insecure,
         primaryIdentity: ReplicaIdentity = identity, backupIdentity: ReplicaIdentity = identity)
    {
        primary = HandshakeStateMachine(role: .primary, key: primaryKey, identity: primaryIdentity, session: testSession)
        backup = HandshakeStateMachine(role: .backup, key: backupKey, identity: backupIdentity)
    }

    mutating func run() throws {
        var toPrimary = backup.start().send
        backupSent += toPrimary
        var rounds = 0
        while (!toPrimary.isEmpty) && rounds < 10 {
            rounds += 1
            var toBackup: [UInt8] = []
            for f in try frames(in: toPrimary) where !primary.isFinished {
                let step = primary.receive(f)
                toBackup += step.send
                if let o = step.outcome { primaryOutcome = o }
            }
            primarySent += toBackup
            toPrimary = []
            for f in try frames(in: toBackup) where !backup.isFinished {
                let step = backup.receive(f)
                toPrimary += step.send
                if let o = step.outcome { backupOutcome = o }
            }
            backupSent += toPrimary
        }
    }
}

@Suite struct HandshakeTests {
    @Test func bothSidesEstablishTheSameSessionAndTheirKeysMatch() throws {
        var run = HandshakeRun(primaryKey: .insecure, backupKey: .insecure)
        try run.run()
        var p = try #require(try run.primaryOutcome?.get())
        var b = try #require(try run.backupOutcome?.get())
        #expect(b.session == testSession)
        #expect(p.session == testSession)
        #expect(p.peer.role == .backup && b.peer.role == .primary)
        // Data sealed by each side opens on the other, in order.
        var out = ByteBuffer()
        try p.sealer.seal(.data, [1, 2, 3], into: &out)
        try p.sealer.seal(.data, [4], into: &out)
        let sealed = try frames(in: Array(out.readableBytesView))
        #expect(Array(try b.opener.open(sealed[0]).readableBytesView) == [1, 2, 3])
        #expect(Array(try b.opener.open(sealed[1]).readableBytesView) == [4])
        var back = ByteBuffer()
        try b.sealer.seal(.receipt, [0, 0, 0, 0, 0, 0, 0, 0], into: &back)
        #expect(try p.opener.open(try frames(in: Array(back.readableBytesView))[0]).readableBytes == 8)
    }

    @Test func aWrongKeyIsRefusedOnBothSidesBeforeAnythingAboutTheGuestIsSent() throws {
        var run = HandshakeRun(primaryKey: .generate(), backupKey: .generate())
        try run.run()
        #expect(failure(run.primaryOutcome) == .authenticationFailed)
        #expect(failure(run.backupOutcome) == .alert(.authenticationFailed))
        // The primary sent its answer (nonce, ephemeral key) and an alert: nothing sealed.
        #expect(try frames(in: run.primarySent).map(\.type) == [.handshake, .handshake])
    }

    @Test func anotherImageIsRefusedWithTheReasonOnBothSides() throws {
        let other = ReplicaIdentity(imageBytes: [9], options: RunOptions(guestPath: "/g"), engine: .emulator,
                                    epochClock: .recoveryCounter, epochLength: 100, diskSectors: nil)
        var run = HandshakeRun(backupIdentity: other)
        try run.run()
        guard case .failure(.mismatch(let reason))? = run.primaryOutcome,
              case .failure(.refusedByPeer(let peerReason))? = run.backupOutcome
        else { Issue.record("\(String(describing: run.primaryOutcome)) \(String(describing: run.backupOutcome))"); return }
        #expect(reason.contains("guest image differs"))
        #expect(peerReason.contains("guest image differs"))
        // The primary's identity (its session) never left it.
        #expect(try frames(in: run.primarySent).map(\.type) == [.handshake, .refusal])
    }

    /// The backup stops for the proof of sharing before ready; a refusal from it reaches the
    /// primary sealed, with the reason, and nothing about the guest was sent by the backup.
    @Test func theBackupProvesSharingBeforeReadyAndARefusalReachesThePrimary() throws {
        for verdict in [nil, "the arbiter is not shared: /b holds no nonce"] as [String?] {
            var primary = HandshakeStateMachine(role: .primary, key: .insecure, identity: identity, session: testSession)
            var backup = HandshakeStateMachine(role: .backup, key: .insecure, identity: identity, proof: .byCaller)
            let answer = primary.receive(try frames(in: backup.start().send)[0]).send
            let identityB = backup.receive(try frames(in: answer)[0]).send
            let identityP = primary.receive(try frames(in: identityB)[0]).send
            let pause = backup.receive(try frames(in: identityP)[0])
            #expect(pause.verify == testSession, "the backup asks its caller to prove the primary's session")
            #expect(pause.send.isEmpty && pause.outcome == nil && !backup.isFinished)
            let step = backup.verified(refusal: verdict)
            let last = primary.receive(try frames(in: step.send)[0])
            switch (verdict, step.outcome, last.outcome) {
            case (nil, .success?, .success?):
                break
            case (let reason?, .failure(.mismatch(let mine))?, .failure(.refusedByPeer(let theirs))?):
                #expect(mine == reason && theirs == reason)
            default:
                Issue.record("\(String(describing: verdict)): \(String(describing: step.outcome)) \(String(describing: last.outcome))")
            }
        }
    }

    @Test func anEchoOfThePrimarysAnswerIsRefused() throws {
        var primary = HandshakeStateMachine(role: .primary, key: .insecure, identity: identity, session: testSession)
        var backup = HandshakeStateMachine(role: .backup, key: .insecure, identity: identity)
        let offer = backup.start().send
        let answer = primary.receive(try frames(in: offer)[0]).send
        // An impostor sends the primary's own answer back to it.
        var fresh = HandshakeStateMachine(role: .primary, key: .insecure, identity: identity, session: testSession)
        let step = fresh.receive(try frames(in: answer)[0])
        guard case .failure(.malformed)? = step.outcome else { Issue.record("\(String(describing: step.outcome))"); return }
        // An offer claiming to come from a primary is refused too.
        var reflected = HandshakeStateMachine(role: .primary, key: .insecure, identity: identity, session: testSession)
        let fake = HandshakeStateMachine.clearFrame(HandshakeMessage.offer(
            role: .primary, purpose: .replicateFromBoot, nonce: Array(repeating: 0, count: 32),
            publicKey: Array(Curve25519.KeyAgreement.PrivateKey().publicKey.rawRepresentation)).encoded())
        guard case .failure(.malformed)? = reflected.receive(try frames(in: fake)[0]).outcome else {
            Issue.record("a primary-role offer was accepted"); return
        }
    }

    @Test func aReplayedSessionDoesNotAuthenticate() throws {
        // Record a real session's backup side, then replay it to a new primary.
        var recorded = HandshakeRun()
        try recorded.run()
        #expect(failure(recorded.primaryOutcome) == nil && recorded.primaryOutcome != nil)
        var primary = HandshakeStateMachine(role: .primary, key: .insecure, identity: identity, session: testSession)
        var outcome: Result<EstablishedSession, HandshakeFailure>?
        for f in try frames(in: recorded.backupSent) where !primary.isFinished {
            if let o = primary.receive(f).outcome { outcome = o }
        }
        #expect(failure(outcome) == .authenticationFailed)
    }

    @Test func everyBitOfTheHandshakeIsBound() throws {
        // Flip each bit of the backup's offer in turn: the session keys then differ and the
        // primary cannot open the backup's identity.
        var backup = HandshakeStateMachine(role: .backup, key: .insecure, identity: identity)
        let offer = backup.start().send
        for index in stride(from: Frame.headerSize + 3, to: offer.count, by: 7) {
            var damaged = offer
            damaged[index] ^= 0x01
            var primary = HandshakeStateMachine(role: .primary, key: .insecure, identity: identity, session: testSession)
            let answer = primary.receive(try frames(in: damaged)[0]).send
            guard !answer.isEmpty, let answerFrame = try frames(in: answer).first, answerFrame.type == .handshake else { continue }
            var b = backup
            let identityFrames = b.receive(answerFrame).send
            guard !identityFrames.isEmpty else { continue }
            let outcome = primary.receive(try frames(in: identityFrames)[0]).outcome
            #expect(failure(outcome) == .authenticationFailed, "bit at \(index)")
        }
    }
}

@Suite struct SealingTests {
    func pair() -> (FrameSealer, FrameOpener) {
        let keys = DirectionKeys(key: SymmetricKey(size: .bits256), iv: Array(repeating: 7, count: 12))
        return (FrameSealer(keys: keys), FrameOpener(keys: keys))
    }

    @Test func everyFlippedBitIsDetected() throws {
        var (sealer, _) = pair()
        var out = ByteBuffer()
        try sealer.seal(.data, Array(repeating: 0xAB, count: 40), into: &out)
        let bytes = Array(out.readableBytesView)
        for index in 0..<bytes.count {
            var damaged = bytes
            damaged[index] ^= 0x10
            var opener = FrameOpener(keys: sealer.keys)
            do {
                let f = try frames(in: damaged)
                guard let frame = f.first else { continue }
                #expect(throws: WireError.self, "bit at \(index)") { _ = try opener.open(frame) }
            } catch {
                // The header check caught it before any sealing was involved.
            }
        }
    }

    @Test func replayedReorderedAndReflectedFramesDoNotOpen() throws {
        var (sealer, opener) = pair()
        var out = ByteBuffer()
        try sealer.seal(.data, [1], into: &out)
        try sealer.seal(.data, [2], into: &out)
        let f = try frames(in: Array(out.readableBytesView))
        // Reordered: frame 1 where frame 0 is expected.
        var reordered = opener
        #expect(throws: WireError.authenticationFailed(.data, sequence: 0)) { _ = try reordered.open(f[1]) }
        // Replayed: frame 0 twice.
        #expect(Array(try opener.open(f[0]).readableBytesView) == [1])
        #expect(throws: WireError.self) { _ = try opener.open(f[0]) }
        // Reflected: another direction's keys.
        var other = FrameOpener(keys: DirectionKeys(key: SymmetricKey(size: .bits256), iv: Array(repeating: 7, count: 12)))
        #expect(throws: WireError.self) { _ = try other.open(f[0]) }
    }
}

@Suite struct KeyFileTests {
    func scratch(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("lockstep-key-\(getpid())-\(name)-\(UInt32.random(in: 0...UInt32.max))").path
    }

    @Test func aGeneratedKeyIsPrivateAndReadsBack() throws {
        let path = scratch("roundtrip")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let key = ReplicationKey.generate()
        try key.write(to: path)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o600)
        #expect(try ReplicationKey(contentsOf: path) == key)
        #expect(ReplicationKey.generate() != key)
        #expect(throws: KeyFileError.exists(path)) { try ReplicationKey.generate().write(to: path) }
        #expect(try ReplicationKey(contentsOf: path) == key, "keygen overwrote a key")
    }

    @Test func aKeyFileReadableByOthersIsRefused() throws {
        let path = scratch("open")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try ReplicationKey.generate().write(to: path)
        for mode in [0o644, 0o640, 0o604, 0o620] {
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
            #expect(throws: KeyFileError.permissive(path, mode)) { _ = try ReplicationKey(contentsOf: path) }
        }
    }

    @Test func malformedKeyFilesAreRefusedWithOneLine() throws {
        let texts = ["", "# only a comment\n", "lockstep-key-v1\n", "lockstep-key-v1 abcd\n",
                     "lockstep-key-v2 " + String(repeating: "0", count: 64) + "\n",
                     "lockstep-key-v1 " + String(repeating: "g", count: 64) + "\n",
                     "lockstep-key-v1 " + String(repeating: "0", count: 64) + "\nlockstep-key-v1 " + String(repeating: "1", count: 64) + "\n"]
        for text in texts {
            #expect(throws: KeyFileError.self, "\(text)") { _ = try ReplicationKey(fileText: text) }
        }
        #expect(throws: KeyFileError.self) { _ = try ReplicationKey(contentsOf: "/nonexistent/key") }
        #expect(throws: KeyFileError.notRegular("/tmp")) { _ = try ReplicationKey(contentsOf: "/tmp") }
        let key = try ReplicationKey(fileText: "  # c\n\nlockstep-key-v1   " + String(repeating: "aB", count: 32) + "  \n")
        #expect(key.bytes == Array(repeating: 0xAB, count: 32))
    }
}

@Suite struct PeerTextTests {
    @Test func controlCharactersAndEscapesNeverReachTheTerminal() {
        let hostile = "ok\u{1B}[2J\u{7}\r\nnext\u{202E}é"
        let safe = PeerText.sanitized(hostile)
        #expect(!safe.unicodeScalars.contains { $0.value < 0x20 || $0.value >= 0x7F })
        #expect(safe.hasPrefix("ok\\u{1b}[2J\\u{7}\\u{d}\\u{a}next"))
        #expect(PeerText.sanitized(String(repeating: "x", count: 10_000)).count <= PeerText.limit + 1)
        #expect(PeerText.sanitized(bytes: [0xFF, 0x41]).hasSuffix("A"))
    }
}
