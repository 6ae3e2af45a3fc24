import Foundation
import Hypervisor
import MachineCore
import NIOCore
import NIOPosix
import Replication
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 11's "done means", with real processes: strangers, wrong keys, replays, flipped bits,
/// echoes and out-of-range values are refused cleanly, nothing about the guest reaches a peer
/// without the key, floods do not grow memory past the bound, and a large record on a slow link
/// does not cause a takeover.
@Suite(.serialized) struct ChannelSecurityTests {
    static let skip = "lockstep or the PA-RISC guests are not built (swift build, scripts/build-guests)"

    /// The hello guest's output, from an unreplicated run.
    static func reference(_ guest: String, cmdline: String = "") throws -> Lockstep.Result {
        try Lockstep.run(["run", "--cmdline", cmdline, Lockstep.guest(Replicas.arch, guest)])
    }

    /// Lets a real backup join `primary` and checks the run ends as the unreplicated one.
    func finishWithRealBackup(_ primary: Replicas.Primary, key: String, guest: String = "hello",
                              cmdline: String = "") throws
    {
        let reference = try Self.reference(guest, cmdline: cmdline)
        let backup = try Replicas.backup(port: primary.port, guest: guest, cmdline: cmdline, key: key)
        #expect(Replicas.wait(primary.process), "the primary hung")
        #expect(Replicas.wait(backup.process), "the backup hung")
        #expect(primary.process.terminationStatus == reference.status, "\(primary.started.stderr.text())")
        #expect(backup.process.terminationStatus == reference.status, "\(backup.stderr.text())")
        #expect(primary.started.stdout.text() == reference.stdout)
    }

    /// Handshake frames only (an answer, maybe an alert), nothing sealed, a few dozen bytes.
    func expectNoGuestData(_ bytes: [UInt8], _ who: String) {
        let types = Replicas.frameTypes(bytes)
        #expect(types != nil && types!.allSatisfy { $0 == .handshake }, "\(who) received \(String(describing: types))")
        #expect(bytes.count <= 2 * (Frame.headerSize + HandshakeMessage.maximumSize), "\(who) received \(bytes.count) bytes")
    }

    @Test(.enabled(if: Replicas.available, "\(skip)"))
    func strangersAreRefusedAndThePrimaryWaitsForItsBackup() throws {
        let key = try Replicas.keyFile()
        let primary = try Replicas.Primary(guest: "hello", key: key)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        var refusals = 0

        // An unauthenticated client that speaks HTTP.
        let http = try RawPeer(group: group, port: primary.port)
        http.send(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(http.waitForClose(), "the primary kept a foreign connection open")
        refusals += 1
        #expect(primary.waitForRefusals(refusals))
        #expect(http.received.bytes.isEmpty)

        // A well-formed offer without the key: the answer comes, then nothing until it gives up.
        var impostor = HandshakeStateMachine(role: .backup, key: .generate(), identity: try Replicas.identity("hello"))
        let client = try RawPeer(group: group, port: primary.port)
        let offerBytes = impostor.start().send
        client.send(offerBytes)
        let answer = client.waitForBytes(Frame.headerSize + 66)
        #expect(Replicas.frameTypes(answer) == [.handshake])
        // The impostor echoes the primary's answer back as its next frame.
        client.send(answer)
        #expect(client.waitForClose())
        refusals += 1
        #expect(primary.waitForRefusals(refusals))
        expectNoGuestData(client.received.bytes, "an impostor echoing the answer")

        // A replica with the wrong key, through the protocol: refused on both sides.
        let network = ReplicationNetwork()
        defer { network.shutdown() }
        #expect(throws: HandshakeFailure.alert(.authenticationFailed)) {
            _ = try network.connect(to: Endpoint(host: "127.0.0.1", port: primary.port),
                                    timing: ConnectionTiming(timeoutMilliseconds: 1000),
                                    credentials: .init(key: .generate(), identity: try Replicas.identity("hello")),
                                    until: Date(timeIntervalSinceNow: 5))
        }
        refusals += 1
        #expect(primary.waitForRefusals(refusals))

        // A connection cut in the middle of its offer.
        let cut = try RawPeer(group: group, port: primary.port)
        cut.send(Array(offerBytes.prefix(30)))
        cut.close()
        refusals += 1
        #expect(primary.waitForRefusals(refusals))

        #expect(primary.process.isRunning, "the primary stopped: \(primary.started.stderr.snapshot())")
        let lines = primary.log.filter { $0.contains("refused a connection from 127.0.0.1:") }
        #expect(lines.count == refusals)
        #expect(lines.contains { $0.contains("not a Lockstep peer") })
        #expect(lines.contains { $0.contains("authentication failed") })
        #expect(lines.contains { $0.contains("ended during the handshake") })
        try finishWithRealBackup(primary, key: key)
    }

    @Test(.enabled(if: Replicas.available, "\(skip)"))
    func aBackupWithTheWrongKeyExitsWithOneLineAndThePrimaryWaits() throws {
        let key = try Replicas.keyFile()
        let primary = try Replicas.Primary(guest: "hello", key: key)
        let wrong = try Replicas.backup(port: primary.port, guest: "hello", key: try Replicas.keyFile())
        #expect(Replicas.wait(wrong.process, seconds: 20))
        #expect(wrong.process.terminationStatus == ExitStatus.replicationFailed)
        let lines = wrong.stderr.text().split(separator: "\n")
        #expect(lines.count == 1 && lines[0].contains("authentication failed"), "\(lines)")
        #expect(wrong.stdout.text().isEmpty)
        #expect(primary.waitForRefusals(1))
        #expect(primary.process.isRunning)
        try finishWithRealBackup(primary, key: key)
    }

    @Test(.enabled(if: Replicas.available, "\(skip)"))
    func aSecondBackupIsRefusedAndNeverGoesLive() throws {
        // Two backups race for one primary: one replicates, the other is refused (or finds the
        // primary no longer listening) and exits with one line; it never takes over.
        let key = try Replicas.keyFile()
        let cmdline = "rounds=3"
        let reference = try Self.reference("cpu", cmdline: cmdline)
        let primary = try Replicas.Primary(guest: "cpu", cmdline: cmdline, key: key)
        let backups = try (0..<2).map { _ in try Replicas.backup(port: primary.port, guest: "cpu", cmdline: cmdline, key: key) }
        #expect(Replicas.wait(primary.process))
        for b in backups { #expect(Replicas.wait(b.process)) }
        #expect(primary.process.terminationStatus == reference.status, "\(primary.started.stderr.text())")
        #expect(primary.started.stdout.text() == reference.stdout)
        let statuses = backups.map(\.process.terminationStatus).sorted()
        #expect(statuses.first == reference.status, "\(backups.map { $0.stderr.text() })")
        let loser = try #require(backups.first { $0.process.terminationStatus != reference.status }, "both backups replicated")
        #expect(loser.stdout.text().isEmpty, "the refused backup went live")
        #expect(!loser.stderr.text().contains("taking over"), "\(loser.stderr.text())")
        #expect(loser.stderr.text().split(separator: "\n").filter { $0.hasPrefix("lockstep:") }.count == 1, "\(loser.stderr.text())")
    }

    @Test(.enabled(if: Replicas.available, "\(skip)"))
    func aReplayedCaptureOfARealSessionIsRefused() throws {
        let key = try Replicas.keyFile()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        // A real session, recorded on the wire.
        let first = try Replicas.Primary(guest: "hello", key: key)
        let recorder = try PairProxy(group: group, primaryPort: first.port, mode: .record)
        defer { recorder.close() }
        let backup = try Replicas.backup(port: recorder.port, guest: "hello", key: key)
        #expect(Replicas.wait(first.process) && Replicas.wait(backup.process))
        #expect(first.process.terminationStatus == 0 && backup.process.terminationStatus == 0)
        let captured = recorder.fromBackup.bytes
        #expect(Replicas.frameTypes(captured)?.contains(.identity) == true)

        // Replayed to a new primary with the same key and guest: refused, nothing sealed sent back.
        let second = try Replicas.Primary(guest: "hello", key: key)
        let replay = try RawPeer(group: group, port: second.port)
        replay.send(captured)
        #expect(replay.waitForClose())
        #expect(second.waitForRefusals(1))
        #expect(second.log.contains { $0.contains("authentication failed") })
        expectNoGuestData(replay.received.bytes, "a replay")
        try finishWithRealBackup(second, key: key)
    }

    @Test(.enabled(if: Replicas.available, "\(skip)"))
    func aFlippedBitInASealedFrameEndsReplicationWithoutATakeover() throws {
        let key = try Replicas.keyFile()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let cmdline = "rounds=3"
        let reference = try Self.reference("cpu", cmdline: cmdline)
        let primary = try Replicas.Primary(guest: "cpu", cmdline: cmdline, key: key, extra: ["--epoch-length", "2000"])
        // Past the handshake (a few hundred bytes), inside the sealed log.
        let proxy = try PairProxy(group: group, primaryPort: primary.port, mode: .flipBit(atOffset: 3000))
        defer { proxy.close() }
        let backup = try Replicas.backup(port: proxy.port, guest: "cpu", cmdline: cmdline, key: key,
                                         extra: ["--epoch-length", "2000"])
        #expect(Replicas.wait(primary.process) && Replicas.wait(backup.process))
        #expect(backup.process.terminationStatus == ExitStatus.replicationFailed)
        let lines = backup.stderr.text().split(separator: "\n").filter { $0.hasPrefix("lockstep:") }
        #expect(lines.count == 1 && lines[0].contains("does not authenticate"), "\(backup.stderr.text())")
        #expect(backup.stdout.text().isEmpty, "the backup took over")
        #expect(primary.process.terminationStatus == reference.status, "\(primary.started.stderr.text())")
        #expect(primary.started.stdout.text() == reference.stdout)
    }

    // MARK: A fake primary with the key

    /// Runs a real backup process against a fake primary (this process, holding the key) that
    /// sends `batches` after the handshake. Returns the backup's outcome and the time the fake
    /// primary closed the connection.
    func againstFakePrimary(guest: String = "cpu", cmdline: String = "rounds=2", timeout: Int = 1000, throttle: Int? = nil,
                            holdOpen: Double = 0.5, _ batches: [ByteBuffer]) throws
        -> (status: Int32, stderr: String, stdout: String, stats: ReplicationStatus.Snapshot?, closedAt: Double, peakRSS: Int?)
    {
        let key = try Replicas.keyFile()
        let network = ReplicationNetwork()
        defer { network.shutdown() }
        var session: [UInt8] = Array(repeating: 0x33, count: 16)
        session[0] = UInt8.random(in: 0...255)
        let listener = try network.listen(on: Endpoint(host: "127.0.0.1", port: 0),
                                          timing: ConnectionTiming(timeoutMilliseconds: timeout),
                                          credentials: .init(key: try ReplicationKey(contentsOf: key), identity: try Replicas.identity(guest, cmdline: cmdline)),
                                          session: session) { _ in }
        var port = listener.port
        var proxy: PairProxy?
        if let throttle {
            proxy = try PairProxy(group: network.group, primaryPort: port, mode: .throttle(bytesPerSecond: throttle))
            port = proxy!.port
        }
        defer { proxy?.close() }
        let stats = Scratch.path("fake-backup-\(UInt32.random(in: 0...UInt32.max)).json")
        // The fake primary proves its arbiter as a real one does, so the backup joins.
        let arbiter = try Replicas.publishProof(session: session, key: key)
        defer { arbiter.release() }
        let backup = try Replicas.backup(port: port, guest: guest, cmdline: cmdline, key: key, timeout: timeout,
                                         extra: ["--stats-json", stats, "--arbiter-dir", FileManager.default.temporaryDirectory.path])
        let connection = try #require(listener.accept(until: Date(timeIntervalSinceNow: 10)), "the backup did not join")
        listener.close()
        let sampler = PeakSampler(backup.process.processIdentifier)
        for batch in batches {
            guard case .success(let end) = connection.send(batch) else { break }
            // Wait until the backup holds it (or has gone).
            _ = connection.waitForReceipt(covering: end)
        }
        Thread.sleep(forTimeInterval: holdOpen)
        let peak: Int? = sampler.stop()
        let closedAt = Date().timeIntervalSince1970
        connection.close()
        // Once the backup has taken over (or stopped), the rest of its run does not matter here.
        let deadline = Date(timeIntervalSinceNow: 60)
        while backup.process.isRunning && Date() < deadline {
            if let state = ReplicationStatus.Snapshot.load(stats)?.state, state == .live || state.isFinal { break }
            Thread.sleep(forTimeInterval: 0.01)
        }
        if backup.process.isRunning, ReplicationStatus.Snapshot.load(stats)?.state == .live {
            Replicas.wait(backup.process, seconds: 0)
        }
        #expect(Replicas.wait(backup.process, seconds: 30), "the backup hung")
        return (backup.process.terminationStatus, backup.stderr.text(), backup.stdout.text(),
                ReplicationStatus.Snapshot.load(stats), closedAt, peak)
    }

    static func batch(_ build: (inout MessageWriter) -> Void) -> ByteBuffer {
        var writer = MessageWriter()
        build(&writer)
        return writer.take()
    }

    static func raw(type: UInt16, length: UInt32, payload: [UInt8] = []) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeInteger(type, endianness: .little)
        b.writeInteger(length, endianness: .little)
        b.writeBytes(payload)
        return b
    }

    static let digest = StateDigest.of([0])

    static let hostileBatches: [(String, ByteBuffer)] = [
        ("an epoch of 2^64-1", batch { $0.epochEnd(EpochRecord(epoch: .max, progress: 100, stop: .epochEnd, time: .zero, events: [],
                                                               environmentCount: 0, outputCount: 0, stateDigest: nil)) }),
        ("a finished record at epoch 2^64-1", batch { $0.finished(FinishedRecord(epoch: .max, progress: .max, status: 0,
                                                                                ending: .exited, stateDigest: digest)) }),
        ("progress of 2^64-1", batch { $0.epochEnd(EpochRecord(epoch: 0, progress: .max, stop: .epochEnd, time: .zero, events: [],
                                                               environmentCount: 0, outputCount: 0, stateDigest: nil)) }),
        ("output sequence 2^64-1", batch { $0.output(OutputRecord(sequence: .max, epoch: 0, kind: .console, digest: digest)) }),
        ("an event count that overflows", raw(type: 2, length: 46, payload: [UInt8](repeating: 0, count: 42) + [0xFF, 0xFF, 0xFF, 0xFF])),
        ("a message length past the limit", raw(type: 2, length: .max)),
        ("a value count past the epoch", batch { w in for i in 0..<20_000 { w.value(.intervalTimer, UInt64(i)) } }),
    ]

    @Test(.enabled(if: Replicas.available, "\(skip)"), arguments: 0..<hostileBatches.count)
    func outOfRangeValuesFromAFakePrimaryGetACleanRefusal(_ index: Int) throws {
        let (name, batch) = Self.hostileBatches[index]
        let outcome = try againstFakePrimary([batch])
        #expect(outcome.status == ExitStatus.replicationFailed, "\(name): status \(outcome.status): \(outcome.stderr)")
        let lines = outcome.stderr.split(separator: "\n").filter { $0.hasPrefix("lockstep:") }
        #expect(lines.count == 1, "\(name): \(outcome.stderr)")
        #expect(!outcome.stderr.contains("Fatal error") && !outcome.stderr.contains("runtime failure"), "\(name): trapped")
        #expect(outcome.stdout.isEmpty, "\(name): the backup went live")
        #expect(outcome.stats?.state == .failed, "\(name)")
    }

    @Test(.enabled(if: Replicas.available, "\(skip)"))
    func aSixteenMebibyteRecordOverATwentyMegabitLinkCausesNoTakeover() throws {
        // 16 MiB take 6.7 s at 20 Mbit/s, against a 1 s failure-detection timeout. The record is
        // valid: the cpu guest's first epoch (a whole epoch length: the backup runs each epoch
        // as the primary does, before its record arrives), and 16 MiB of console input.
        let length = try GuestSetup(RunOptions(guestPath: Lockstep.guest(Replicas.arch, "cpu"), commandLine: "rounds=2")).epochLength
        let record = Self.batch {
            $0.epochEnd(EpochRecord(epoch: 0, progress: length, stop: .epochEnd, time: VirtualTime(nanoseconds: 1000),
                                    events: [.consoleInput([UInt8](repeating: 0x61, count: 16 << 20))],
                                    environmentCount: 0, outputCount: 0, stateDigest: nil))
        }
        let start = Date().timeIntervalSince1970
        let outcome = try againstFakePrimary(throttle: 20_000_000 / 8, holdOpen: 1.5, [record])
        let elapsed = outcome.closedAt - start
        #expect(elapsed >= 6, "the link was not throttled (\(elapsed) s)")
        let stats = try #require(outcome.stats, "no statistics: \(outcome.stderr)")
        // The backup executed the record's epoch, and took over only once the fake primary closed.
        #expect(stats.epoch >= 1, "\(outcome.stderr)")
        let tookOverAt = try #require(stats.stateEnteredAt[.takingOver], "\(outcome.stderr)")
        #expect(tookOverAt >= outcome.closedAt, "the backup took over \(outcome.closedAt - tookOverAt) s before the primary closed")
    }

    @Test(.enabled(if: Replicas.available, "\(skip)"))
    func aFloodDoesNotGrowTheBackupsMemoryPastTheBound() throws {
        // Valid epoch records of a long cpu run, sent much faster than the backup can execute
        // them: its inbox fills, it stops reading, and the sender waits. Then the largest message
        // a primary may send (48 MiB, assembled across frames).
        let key = try Replicas.keyFile()
        let cmdline = "rounds=100000"
        let network = ReplicationNetwork()
        defer { network.shutdown() }
        let listener = try network.listen(on: Endpoint(host: "127.0.0.1", port: 0),
                                          timing: ConnectionTiming(timeoutMilliseconds: 2000),
                                          credentials: .init(key: try ReplicationKey(contentsOf: key),
                                                             identity: try Replicas.identity("cpu", cmdline: cmdline)),
                                          session: Array(repeating: 0x44, count: 16)) { _ in }
        let arbiter = try Replicas.publishProof(session: Array(repeating: 0x44, count: 16), key: key)
        defer { arbiter.release() }
        let backup = try Replicas.backup(port: listener.port, guest: "cpu", cmdline: cmdline, key: key, timeout: 2000,
                                         extra: ["--arbiter-dir", FileManager.default.temporaryDirectory.path])
        let connection = try #require(listener.accept(until: Date(timeIntervalSinceNow: 10)), "the backup did not join")
        listener.close()
        Thread.sleep(forTimeInterval: 0.3)
        let baseline = try #require(Replicas.peakRSS(backup.process.processIdentifier))
        let sampler = PeakSampler(backup.process.processIdentifier)
        let length: UInt64 = 16384
        // One record encoded by the real writer, then copied with its epoch, progress and time
        // patched (this debug-built test could not encode records as fast as a primary does).
        var template = MessageWriter()
        template.epochEnd(EpochRecord(epoch: 0, progress: 0, stop: .epochEnd, time: .zero, events: [],
                                      environmentCount: 0, outputCount: 0, stateDigest: nil))
        let record = Array(template.take().readableBytesView)
        let offered = LockedCounter()
        DedicatedThread.start(name: "test-flood") {
            func put(_ value: UInt64, _ bytes: inout [UInt8], _ at: Int) {
                for i in 0..<8 { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
            }
            var epoch: UInt64 = 0
            while true {
                var bytes = [UInt8](repeating: 0, count: record.count * 4000)
                for i in 0..<4000 {
                    let base = i * record.count
                    let progress = (epoch + 1) * length
                    bytes.replaceSubrange(base..<base + record.count, with: record)
                    put(epoch, &bytes, base + 6)
                    put(progress, &bytes, base + 14)
                    put(progress, &bytes, base + 23)
                    epoch += 1
                }
                // Blocks while the backup's inbox and the sender's queue are full.
                guard case .success = connection.send(ByteBuffer(bytes: bytes)) else { return }
                offered.add(bytes.count)
            }
        }
        Thread.sleep(forTimeInterval: 5)
        let sent = offered.value
        let peak = sampler.stop()
        let limits = ConnectionLimits.forRole(.backup)
        print("ChannelSecurityTests: backup peak RSS \(peak >> 20) MiB while \(sent >> 20) MiB of records were offered in 5 s (baseline \(baseline >> 20) MiB)")
        #expect(backup.process.isRunning, "\(backup.stderr.snapshot())")
        #expect(peak <= baseline + limits.inbox + (16 << 20), "peak RSS \(peak >> 20) MiB")
        #expect(sent >= 12 << 20, "only \(sent >> 20) MiB were offered")
        // The sender is blocked by backpressure: stop the backup, which ends the connection.
        Replicas.wait(backup.process, seconds: 0)
    }

    @Test(.enabled(if: Replicas.available, "\(skip)"))
    func theLargestMessageStaysWithinTheBound() throws {
        // The largest message a primary may send (48 MiB, assembled across frames; its contents
        // are then refused): memory stays within the inbox, one message and the baseline.
        let huge = Self.raw(type: 2, length: UInt32(MessageLimits.fromPrimary),
                            payload: [UInt8](repeating: 0, count: MessageLimits.fromPrimary))
        let baseline = try #require(try againstFakePrimary([Self.batch { $0.outputDone(0) }]).peakRSS)
        let outcome = try againstFakePrimary([huge])
        let peak = try #require(outcome.peakRSS)
        let limits = ConnectionLimits.forRole(.backup)
        print("ChannelSecurityTests: backup peak RSS \(peak >> 20) MiB with a 48 MiB message (baseline \(baseline >> 20) MiB)")
        #expect(peak <= baseline + limits.inbox + MessageLimits.fromPrimary + (24 << 20), "peak RSS \(peak >> 20) MiB")
        #expect(outcome.status == ExitStatus.replicationFailed, "\(outcome.stderr)")
    }

    @Test(.enabled(if: Replicas.available, "\(skip)"))
    func aFloodFromAFakeBackupDoesNotGrowThePrimarysMemoryPastTheBound() throws {
        let key = try Replicas.keyFile()
        let cmdline = "rounds=4"
        let primary = try Replicas.Primary(guest: "cpu", cmdline: cmdline, key: key, timeout: 2000,
                                           extra: ["--epoch-length", "4000"])
        let network = ReplicationNetwork()
        defer { network.shutdown() }
        let fake = try network.connect(to: Endpoint(host: "127.0.0.1", port: primary.port),
                                       timing: ConnectionTiming(timeoutMilliseconds: 2000),
                                       credentials: .init(key: try ReplicationKey(contentsOf: key), identity: try Replicas.identity("cpu", cmdline: cmdline, epochLength: 4000)),
                                       until: Date(timeIntervalSinceNow: 10))
        // Take (and drop) everything the primary sends, so it runs at full speed; meanwhile send
        // as many valid reports as the connection takes: 64 KiB batches of "executed 0".
        let draining = ResultBox<Int>()
        DedicatedThread.start(name: "test-drain") {
            var total = 0
            while case .data(let chunks) = fake.receive(holding: 0, wait: true) { total += chunks.reduce(0) { $0 + $1.readableBytes } }
            draining.put(total)
        }
        var writer = MessageWriter()
        for _ in 0..<(64 << 10) / 14 { writer.executed(0) }
        let report = writer.take()
        Thread.sleep(forTimeInterval: 0.3)
        let baseline = try #require(Replicas.peakRSS(primary.process.processIdentifier))
        let sampler = PeakSampler(primary.process.processIdentifier)
        // Enough to overflow every bound several times; the deadline only guards a stalled
        // primary (a loaded host pushes 4 MiB/s or more).
        let deadline = Date(timeIntervalSinceNow: 15)
        var sent = 0
        while sent < 24 << 20 && Date() < deadline && primary.process.isRunning {
            guard case .success = fake.send(report) else { break }
            sent += report.readableBytes
        }
        let peak = sampler.stop()
        fake.close()
        Replicas.wait(primary.process)
        _ = draining.take()
        print("ChannelSecurityTests: primary peak RSS \(peak >> 20) MiB after \(sent >> 20) MiB of reports (baseline \(baseline >> 20) MiB)")
        let limits = ConnectionLimits.forRole(.primary)
        #expect(peak <= baseline + limits.inbox + limits.outgoing + (16 << 20), "peak RSS \(peak >> 20) MiB")
        // The guest may finish first on a loaded host: at least eight times the primary's inbox
        // bound must have gone in for the figure to mean anything.
        #expect(sent >= 8 * limits.inbox, "only \(sent >> 20) MiB of reports went out")
        // It finished the guest (alone, once the fake backup went away).
        #expect(primary.process.terminationStatus == 0, "\(primary.started.stderr.text())")
    }
}
