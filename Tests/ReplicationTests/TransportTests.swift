import Foundation
import Hypervisor
import MachineCore
import NIOCore
import NIOPosix
import Testing

@testable import Replication

/// A connected primary/backup pair of connections over real loopback TCP.
struct LoopbackPair {
    let network = ReplicationNetwork()
    let primary: PeerConnection
    let backup: PeerConnection

    init(timeoutMilliseconds: Int = 2000) throws {
        let timing = ConnectionTiming(timeoutMilliseconds: timeoutMilliseconds)
        let listener = try network.listen(on: Endpoint(host: "127.0.0.1", port: 0), timing: timing)
        backup = try network.connect(to: Endpoint(host: "127.0.0.1", port: listener.port), timing: timing,
                                     until: Date(timeIntervalSinceNow: 5))
        primary = try #require(listener.accept(until: Date(timeIntervalSinceNow: 5)))
        listener.close()
    }

    func shutdown() {
        primary.close()
        backup.close()
        network.shutdown()
    }
}

let identity = ReplicaIdentity(imageBytes: [1, 2, 3], options: RunOptions(guestPath: "/g"),
                               engine: .emulator, epochClock: .recoveryCounter, epochLength: 100,
                               diskSectors: nil)

@Suite(.serialized) struct TransportTests {
    @Test func messagesArriveInOrderAndAreAcknowledged() throws {
        let pair = try LoopbackPair()
        defer { pair.shutdown() }
        pair.primary.startMonitoring()
        pair.backup.startMonitoring()
        var last: UInt64 = 0
        for i in 0..<100 { last = pair.primary.send(.outputDone(UInt64(i))) }
        pair.primary.flush()
        for i in 0..<100 {
            let received = pair.backup.receive(until: Date(timeIntervalSinceNow: 5))
            #expect(received == .success(.outputDone(UInt64(i))))
        }
        // The backup acknowledges what it received, without being asked.
        #expect(pair.primary.waitForAcknowledgement(through: last) == nil)
        pair.backup.setExecutedEpochs(7)
        pair.backup.send(.ack(AckRecord(received: last + 1, executedEpochs: 7)))
        pair.backup.flush()
        #expect(pair.primary.waitForExecution(of: 7) == nil)
    }

    @Test func peerDeathIsSeenAsClosed() throws {
        let pair = try LoopbackPair()
        defer { pair.shutdown() }
        pair.primary.close()
        #expect(pair.backup.receive(until: Date(timeIntervalSinceNow: 5)) == .failure(.peerClosed))
    }

    @Test func silenceIsDetectedByTimeout() throws {
        let pair = try LoopbackPair(timeoutMilliseconds: 300)
        defer { pair.shutdown() }
        // Only the backup monitors: the primary sends no heartbeats, as if frozen.
        pair.backup.startMonitoring()
        let start = Date()
        #expect(pair.backup.receive(until: Date(timeIntervalSinceNow: 5)) == .failure(.timeout(milliseconds: 300)))
        #expect(Date().timeIntervalSince(start) >= 0.3)
    }

    @Test func heartbeatsKeepAnIdleConnectionAlive() throws {
        // Three timeouts of silence but for heartbeats (every 120 ms).
        let pair = try LoopbackPair(timeoutMilliseconds: 600)
        defer { pair.shutdown() }
        pair.primary.startMonitoring()
        pair.backup.startMonitoring()
        Thread.sleep(forTimeInterval: 1.8)
        #expect(pair.primary.closed == nil)
        #expect(pair.backup.closed == nil)
    }

    @Test func aMessageTooLargeForAFrameIsNeverSent() throws {
        let pair = try LoopbackPair()
        defer { pair.shutdown() }
        pair.primary.send(.outputDone(1))
        let huge = [UInt8](repeating: 0x61, count: Frame.maximumPayload + 1)
        pair.primary.send(.epochEnd(EpochRecord(epoch: 0, progress: 1, stop: .epochEnd, time: .zero,
                                                events: [.consoleInput(huge)], environmentCount: 0,
                                                outputCount: 0, stateDigest: nil)))
        pair.primary.flush()
        guard case .ioError(let reason) = pair.primary.closed else {
            Issue.record("the sender did not refuse the message: \(String(describing: pair.primary.closed))")
            return
        }
        #expect(reason.contains("frame limit"))
        // The peer sees the connection end, never a frame it must reject.
        #expect(pair.backup.receive(until: Date(timeIntervalSinceNow: 5)) == .failure(.peerClosed))
    }

    @Test func aSmallMaximumLagIsAcknowledgedAtItsOwnPace() throws {
        // Heartbeats every 2 s: an acknowledgement that waited for one would be late.
        let pair = try LoopbackPair(timeoutMilliseconds: 10_000)
        defer { pair.shutdown() }
        pair.primary.startMonitoring()
        pair.backup.startMonitoring()
        for epoch in 0..<3 { pair.primary.send(.outputDone(UInt64(epoch))) }
        pair.primary.flush()
        for executed in 1...3 as ClosedRange<UInt64> {
            _ = pair.backup.receive(until: Date(timeIntervalSinceNow: 5))
            Thread.sleep(forTimeInterval: 0.05)
            pair.backup.setExecutedEpochs(executed, maximumLag: 3)
        }
        let start = Date()
        #expect(pair.primary.waitForExecution(of: 3) == nil)
        #expect(Date().timeIntervalSince(start) < 1.5, "waited for a heartbeat (every 2 s)")
    }

    @Test func acknowledgementsNeverMoveBackwards() throws {
        let pair = try LoopbackPair()
        defer { pair.shutdown() }
        pair.backup.send(.ack(AckRecord(received: 0, executedEpochs: 9)))
        pair.backup.send(.ack(AckRecord(received: 0, executedEpochs: 3)))
        pair.backup.send(.heartbeat)
        pair.backup.flush()
        #expect(pair.primary.waitForExecution(of: 9) == nil)
        Thread.sleep(forTimeInterval: 0.2)
        #expect(pair.primary.statistics.peerExecutedEpochs == 9)
    }

    @Test func aCorruptedFrameEndsTheConnectionWithAProtocolError() throws {
        let pair = try LoopbackPair()
        defer { pair.shutdown() }
        var bytes = Frame(type: .outputDone, sequence: 0, payload: littleEndianBytes(1)).encoded()
        bytes[22] ^= 0x40
        let channel = pair.primary.channel
        try channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).wait()
        guard case .failure(.protocolError(.checksumMismatch)) = pair.backup.receive(until: Date(timeIntervalSinceNow: 5)) else {
            Issue.record("corruption was not reported as a checksum mismatch")
            return
        }
    }

    @Test func handshakeAcceptsAMatchingBackup() throws {
        let network = ReplicationNetwork()
        defer { network.shutdown() }
        let timing = ConnectionTiming(timeoutMilliseconds: 2000)
        let listener = try network.listen(on: Endpoint(host: "127.0.0.1", port: 0), timing: timing)
        let port = listener.port
        let session: [UInt8] = Array(repeating: 0xAB, count: 16)
        let box = ResultBox<Result<[UInt8], ReplicationError>>()
        DedicatedThread.start(name: "test-backup") {
            do {
                let c = try network.connect(to: Endpoint(host: "127.0.0.1", port: port), timing: timing,
                                            until: Date(timeIntervalSinceNow: 5))
                box.put(.success(try Handshake.joinPrimary(c, identity: identity, timeout: 5)))
            } catch let error as ReplicationError {
                box.put(.failure(error))
            } catch {
                box.put(.failure(.handshakeFailed("\(error)")))
            }
        }
        let connection = try Handshake.acceptBackup(on: listener, identity: identity, session: session,
                                                    timeout: 5) { _ in }
        #expect(box.take() == .success(session))
        connection.close()
    }

    @Test func handshakeRefusesADifferentImageOnBothSides() throws {
        let network = ReplicationNetwork()
        defer { network.shutdown() }
        let timing = ConnectionTiming(timeoutMilliseconds: 2000)
        let listener = try network.listen(on: Endpoint(host: "127.0.0.1", port: 0), timing: timing)
        let port = listener.port
        let other = ReplicaIdentity(imageBytes: [9], options: RunOptions(guestPath: "/g"), engine: .emulator,
                                    epochClock: .recoveryCounter, epochLength: 100, diskSectors: nil)
        let box = ResultBox<String>()
        DedicatedThread.start(name: "test-backup") {
            do {
                let c = try network.connect(to: Endpoint(host: "127.0.0.1", port: port), timing: timing,
                                            until: Date(timeIntervalSinceNow: 5))
                _ = try Handshake.joinPrimary(c, identity: other, timeout: 5)
                box.put("joined")
            } catch {
                box.put("\(error)")
            }
        }
        #expect {
            try Handshake.acceptBackup(on: listener, identity: identity, session: [], timeout: 5) { _ in }
        } throws: { error in
            "\(error)".contains("guest image differs")
        }
        #expect(box.take().contains("guest image differs"))
    }

    @Test func handshakeDropsForeignConnectionsAndKeepsListening() throws {
        let network = ReplicationNetwork()
        defer { network.shutdown() }
        let timing = ConnectionTiming(timeoutMilliseconds: 2000)
        let listener = try network.listen(on: Endpoint(host: "127.0.0.1", port: 0), timing: timing)
        let port = listener.port
        DedicatedThread.start(name: "test-foreign-then-backup") {
            // A foreign client speaks HTTP at the primary, then a real backup connects.
            if let foreign = try? ClientBootstrap(group: network.group)
                .connect(host: "127.0.0.1", port: port).wait() {
                _ = try? foreign.writeAndFlush(foreign.allocator.buffer(string: "GET / HTTP/1.1\r\n\r\n")).wait()
            }
            if let c = try? network.connect(to: Endpoint(host: "127.0.0.1", port: port), timing: timing,
                                            until: Date(timeIntervalSinceNow: 5)) {
                _ = try? Handshake.joinPrimary(c, identity: identity, timeout: 5)
            }
        }
        let dropped = LockedLines()
        let connection = try Handshake.acceptBackup(on: listener, identity: identity, session: [],
                                                    timeout: 5) { dropped.append($0) }
        #expect(dropped.lines.count == 1)
        #expect(dropped.lines.first?.contains("not a Lockstep replication frame") == true)
        connection.close()
    }

    @Test func endpointParsing() {
        #expect(Endpoint("127.0.0.1:7000") == Endpoint(host: "127.0.0.1", port: 7000))
        #expect(Endpoint("[::1]:0") == Endpoint(host: "::1", port: 0))
        #expect(Endpoint("host") == nil)
        #expect(Endpoint("host:99999") == nil)
        #expect(Endpoint(":80") == nil)
    }
}

final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String] = []
    func append(_ line: String) { lock.withLock { storage.append(line) } }
    var lines: [String] { lock.withLock { storage } }
}

@Suite struct ArbiterTests {
    @Test func exactlyOneClaimantWins() throws {
        let directory = FileManager.default.temporaryDirectory.path
        let arbiter = Arbiter(directory: directory, session: (0..<16).map { _ in UInt8.random(in: 0...255) })
        defer { arbiter.release() }
        #expect(!arbiter.isClaimed)
        #expect(try arbiter.acquire(claimant: "backup pid 1") == .won)
        #expect(try arbiter.acquire(claimant: "primary pid 2") == .lost(holder: "backup pid 1"))
        #expect(arbiter.isClaimed)
        #expect(arbiter.holder == "backup pid 1")
    }

    @Test func concurrentClaimsHaveOneWinner() throws {
        let arbiter = Arbiter(directory: FileManager.default.temporaryDirectory.path,
                              session: (0..<16).map { _ in UInt8.random(in: 0...255) })
        defer { arbiter.release() }
        let wins = LockedLines()
        DispatchQueue.concurrentPerform(iterations: 16) { i in
            if (try? arbiter.acquire(claimant: "claimant \(i)")) == .won { wins.append("\(i)") }
        }
        #expect(wins.lines.count == 1)
    }

    @Test func unusableDirectoryIsAnErrorNotALoss() {
        let arbiter = Arbiter(directory: "/nonexistent-directory", session: [1])
        #expect(throws: ArbiterError.self) { try arbiter.acquire(claimant: "x") }
        #expect(throws: ArbiterError.self) { try Arbiter.checkDirectory("/nonexistent-directory") }
    }

    @Test func checkingADirectoryLeavesNothingBehind() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lockstep-arbiter-check-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Arbiter.checkDirectory(directory.path)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }
}

@Suite struct IdentityTests {
    @Test func differencesAreNamed() {
        var options = RunOptions(guestPath: "/other/path/g")  // paths do not matter
        let same = ReplicaIdentity(imageBytes: [1, 2, 3], options: options, engine: .emulator,
                                   epochClock: .recoveryCounter, epochLength: 100, diskSectors: nil)
        #expect(identity.refusal(of: same.hello(role: .backup, session: []), expecting: .backup) == nil)
        options.memorySize = 128 << 20
        let bigger = ReplicaIdentity(imageBytes: [1, 2, 3], options: options, engine: .emulator,
                                     epochClock: .recoveryCounter, epochLength: 100, diskSectors: nil)
        let reason = identity.refusal(of: bigger.hello(role: .backup, session: []), expecting: .backup)
        #expect(reason?.contains("configuration differs") == true)
        #expect(reason?.contains("memory=134217728") == true)
        #expect(identity.refusal(of: same.hello(role: .primary, session: []), expecting: .backup) != nil)
    }
}
