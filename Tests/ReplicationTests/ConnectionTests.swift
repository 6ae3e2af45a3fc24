import Foundation
import Hypervisor
import MachineCore
import NIOCore
import NIOPosix
import Testing

@testable import Replication

/// A primary and a backup connection over real loopback TCP, after a real handshake.
struct LoopbackPair {
    let network = ReplicationNetwork()
    let primary: ReplicationConnection
    let backup: ReplicationConnection
    let primaryWatchdog = MachineWatchdog()
    let backupWatchdog = MachineWatchdog()

    init(timeoutMilliseconds: Int = 2000, key: ReplicationKey = .generate()) throws {
        let timing = ConnectionTiming(timeoutMilliseconds: timeoutMilliseconds)
        primaryWatchdog.enter(.waitingForPeer)
        backupWatchdog.enter(.waitingForPeer)
        let listener = try network.listen(on: Endpoint(host: "127.0.0.1", port: 0), timing: timing,
                                          credentials: .init(key: key, identity: identity, watchdog: primaryWatchdog),
                                          session: testSession) { _ in }
        backup = try network.connect(to: Endpoint(host: "127.0.0.1", port: listener.port), timing: timing,
                                     credentials: .init(key: key, identity: identity, watchdog: backupWatchdog),
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

/// Sends `messages` as one batch.
@discardableResult
func send(_ messages: [Message], on connection: ReplicationConnection) -> UInt64? {
    var writer = MessageWriter()
    for m in messages { writer.write(m) }
    return try? connection.send(writer.take()).get()
}

/// Receives messages until `count` have arrived (or the connection ends / 10 s pass).
func receive(_ count: Int, on connection: ReplicationConnection, as receiver: ReplicaRole) throws -> [Message] {
    var parser = MessageParser(receiver: receiver)
    var out: [Message] = []
    let deadline = Date(timeIntervalSinceNow: 10)
    while out.count < count && Date() < deadline {
        while let m = try parser.next() { out.append(m) }
        if out.count >= count { break }
        switch connection.receive(holding: parser.bufferedBytes, wait: true) {
        case .data(let chunks): for c in chunks { parser.append(c) }
        case .closed: return out
        }
    }
    return out
}

@Suite(.serialized) struct ConnectionTests {
    @Test func messagesArriveInOrderAndAreReceipted() throws {
        let pair = try LoopbackPair()
        defer { pair.shutdown() }
        #expect(pair.primary.session == testSession && pair.backup.session == testSession)
        #expect(pair.primary.peer.role == .backup && pair.backup.peer.role == .primary)
        var end: UInt64 = 0
        for i in 0..<100 { end = send([.outputDone(UInt64(i))], on: pair.primary) ?? 0 }
        #expect(try receive(100, on: pair.backup, as: .backup) == (0..<100).map { .outputDone(UInt64($0)) })
        // The backup's event loop receipts what it opened, without the machine thread.
        #expect(pair.primary.waitForReceipt(covering: end) == nil)
        send([.executed(7)], on: pair.backup)
        #expect(try receive(1, on: pair.primary, as: .primary) == [.executed(7)])
    }

    @Test func aLargeRecordTravelsInBoundedFrames() throws {
        let pair = try LoopbackPair()
        defer { pair.shutdown() }
        let data = (0..<(20 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let record = Message.epochEnd(EpochRecord(
            epoch: 0, progress: 1, stop: .epochEnd, time: .zero,
            events: [.blockCompletion(BlockCompletion(id: 1, status: .ok, data: data))],
            environmentCount: 0, outputCount: 0, stateDigest: nil))
        let end = try #require(send([record], on: pair.primary))
        #expect(try receive(1, on: pair.backup, as: .backup) == [record])
        #expect(pair.primary.waitForReceipt(covering: end) == nil)
        // At most 64 KiB of plaintext per frame: the frame overhead shows how many there were.
        let frames = (pair.primary.statistics.sent - UInt64(end)) / UInt64(Frame.headerSize + Frame.tagSize)
        #expect(frames >= UInt64(end) / UInt64(Frame.maximumPlaintext))
    }

    @Test func aBoundedReceiveReturnsNothingAtItsDeadlineAndDataAsItComes() throws {
        let pair = try LoopbackPair()
        defer { pair.shutdown() }
        let start = Date()
        guard case .data(let none) = pair.backup.receive(holding: 0, waitingAtMost: .milliseconds(50)) else {
            Issue.record("the connection ended"); return
        }
        #expect(none.isEmpty)
        #expect(Date().timeIntervalSince(start) >= 0.045)
        let record = Message.executed(7)
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.05) { send([record], on: pair.backup) }
        var parser = MessageParser(receiver: .primary)
        let deadline = Date(timeIntervalSinceNow: 10)
        var got: Message?
        while got == nil && Date() < deadline {
            guard case .data(let chunks) = pair.primary.receive(holding: parser.bufferedBytes, waitingAtMost: .seconds(10)) else {
                Issue.record("the connection ended"); return
            }
            for c in chunks { parser.append(c) }
            got = try parser.next()
        }
        #expect(got == record)
    }

    @Test func onlyTheBackupAcknowledgesWhatItReads() throws {
        let pair = try LoopbackPair(timeoutMilliseconds: 60_000)
        defer { pair.shutdown() }
        // The backup's reports are not acknowledged: nothing waits for that.
        let reported = try #require(send([.executed(1)], on: pair.backup))
        #expect(try receive(1, on: pair.primary, as: .primary) == [.executed(1)])
        // The primary's log is: output commit waits for the receipt.
        let logged = try #require(send([.outputDone(1)], on: pair.primary))
        #expect(try receive(1, on: pair.backup, as: .backup) == [.outputDone(1)])
        #expect(pair.primary.waitForReceipt(covering: logged) == nil)
        // Heartbeats are a minute apart here: no receipt for the report can have come.
        Thread.sleep(forTimeInterval: 0.2)
        #expect(pair.backup.acknowledgedBytes < reported)
    }

    @Test func peerDeathIsSeenAsClosed() throws {
        let pair = try LoopbackPair()
        defer { pair.shutdown() }
        pair.primary.close()
        guard case .closed(.peerClosed) = pair.backup.receive(holding: 0, wait: true) else {
            Issue.record("the backup did not see the primary close"); return
        }
        #expect(pair.backup.waitForReceipt(covering: 1) == .peerClosed)
    }

    @Test func heartbeatsKeepAnIdleConnectionAlive() throws {
        // Three timeouts of silence but for heartbeats (every 100 ms).
        let pair = try LoopbackPair(timeoutMilliseconds: 500)
        defer { pair.shutdown() }
        Thread.sleep(forTimeInterval: 1.5)
        #expect(pair.primary.closed == nil)
        #expect(pair.backup.closed == nil)
    }

    @Test func aStuckMachineThreadGoesSilentAndItsPeerTimesOut() throws {
        let pair = try LoopbackPair(timeoutMilliseconds: 300)
        defer { pair.shutdown() }
        // The primary's machine thread enters a step of host work and never leaves it.
        pair.primaryWatchdog.enter(.host)
        let start = Date()
        guard case .closed(.timeout(milliseconds: 300)) = pair.backup.receive(holding: 0, wait: true) else {
            Issue.record("the backup did not time out"); return
        }
        // At least the stall limit plus the timeout, give or take a heartbeat period.
        #expect(Date().timeIntervalSince(start) >= 0.5)
    }

    @Test func aFullInboxStopsReadingAndTheSenderWaits() throws {
        let pair = try LoopbackPair(timeoutMilliseconds: 1000)
        defer { pair.shutdown() }
        // 48 MiB in 1 MiB batches while the backup reads nothing: the sender must block.
        let batch = [Message.epochEnd(EpochRecord(
            epoch: 0, progress: 1, stop: .epochEnd, time: .zero,
            events: [.consoleInput([UInt8](repeating: 0x55, count: 1 << 20))],
            environmentCount: 0, outputCount: 0, stateDigest: nil))]
        let sent = LockedCounter()
        DedicatedThread.start(name: "test-sender") {
            for _ in 0..<48 {
                guard send(batch, on: pair.primary) != nil else { return }
                sent.increment()
            }
        }
        Thread.sleep(forTimeInterval: 2.5)
        let limits = ConnectionLimits.forRole(.backup)
        let inFlight = sent.value
        // What the sender handed over is bounded by the backup's inbox, its own queue and the
        // sockets' buffers (a few MiB): far less than 48 MiB.
        #expect(inFlight < 48, "the sender never waited")
        #expect(inFlight << 20 <= limits.inbox + limits.outgoing + (12 << 20))
        // Nobody timed out: the backup's silence toward reading was its own choice.
        #expect(pair.primary.closed == nil && pair.backup.closed == nil)
        // Draining the backup lets everything through, intact.
        let all = try receive(48, on: pair.backup, as: .backup)
        #expect(all.count == 48)
        #expect(all.allSatisfy { $0 == batch[0] })
    }

    @Test func strangersAreLoggedAndTheListenerGoesOn() throws {
        let network = ReplicationNetwork()
        defer { network.shutdown() }
        var timing = ConnectionTiming(timeoutMilliseconds: 2000)
        timing.handshake = .milliseconds(400)
        let log = LockedLines()
        let key = ReplicationKey.generate()
        let listener = try network.listen(on: Endpoint(host: "127.0.0.1", port: 0), timing: timing,
                                          credentials: .init(key: key, identity: identity),
                                          session: testSession) { log.append($0) }
        defer { listener.close() }
        let port = listener.port
        // An HTTP client, a silent client, a client with the wrong key.
        let http = try ClientBootstrap(group: network.group).connect(host: "127.0.0.1", port: port).wait()
        try http.writeAndFlush(http.allocator.buffer(string: "GET / HTTP/1.1\r\n\r\n")).wait()
        let silent = try ClientBootstrap(group: network.group).connect(host: "127.0.0.1", port: port).wait()
        #expect(throws: HandshakeFailure.alert(.authenticationFailed)) {
            _ = try network.connect(to: Endpoint(host: "127.0.0.1", port: port), timing: timing,
                                    credentials: .init(key: .generate(), identity: identity),
                                    until: Date(timeIntervalSinceNow: 5))
        }
        // Then the real backup joins.
        let backup = try network.connect(to: Endpoint(host: "127.0.0.1", port: port), timing: timing,
                                         credentials: .init(key: key, identity: identity),
                                         until: Date(timeIntervalSinceNow: 5))
        let primary = try #require(listener.accept(until: Date(timeIntervalSinceNow: 5)))
        Thread.sleep(forTimeInterval: 0.6)
        let lines = log.lines
        #expect(lines.contains { $0.contains("not a Lockstep peer") && $0.contains("not a Lockstep replication frame") })
        #expect(lines.contains { $0.contains("did not finish within") })
        #expect(lines.contains { $0.contains("authentication failed") })
        #expect(lines.allSatisfy { $0.hasPrefix("refused a connection from 127.0.0.1:") })
        primary.close()
        backup.close()
        http.close(promise: nil)
        silent.close(promise: nil)
    }

    @Test func handshakesBeyondTheLimitAreTurnedAwayAtOnce() throws {
        let network = ReplicationNetwork()
        defer { network.shutdown() }
        var timing = ConnectionTiming(timeoutMilliseconds: 2000)
        timing.handshake = .seconds(3)
        let log = LockedLines()
        let listener = try network.listen(on: Endpoint(host: "127.0.0.1", port: 0), timing: timing,
                                          credentials: .init(key: .insecure, identity: identity),
                                          session: testSession) { log.append($0) }
        defer { listener.close() }
        var silent: [Channel] = []
        for _ in 0..<ReplicationListener.maximumHandshakes {
            silent.append(try ClientBootstrap(group: network.group).connect(host: "127.0.0.1", port: listener.port).wait())
        }
        Thread.sleep(forTimeInterval: 0.2)
        let start = Date()
        #expect(throws: (any Error).self) {
            _ = try network.connect(to: Endpoint(host: "127.0.0.1", port: listener.port), timing: timing,
                                    credentials: .init(key: .insecure, identity: identity),
                                    until: Date(timeIntervalSinceNow: 0.5))
        }
        #expect(Date().timeIntervalSince(start) < 2.5, "the ninth connection waited for a slot")
        #expect(log.lines.contains { $0.contains("too many connections") })
        for c in silent { c.close(promise: nil) }
    }
}

final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String] = []
    func append(_ line: String) { lock.withLock { storage.append(line) } }
    var lines: [String] { lock.withLock { storage } }
}

final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.withLock { count += 1 } }
    func add(_ n: Int) { lock.withLock { count += n } }
    var value: Int { lock.withLock { count } }
}
