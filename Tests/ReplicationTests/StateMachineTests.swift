import MachineCore
import Testing

@testable import Replication

let record1 = OutputRecord(sequence: 1, epoch: 0, kind: .console, digest: digestA)

@Suite struct PrimaryStateMachineTests {
    let ms: UInt64 = 1_000_000

    @Test func anOutputIsPerformedOnlyAfterTheBackupHoldsItsRecord() {
        var rules = PrimaryStateMachine(timeoutMilliseconds: 1000, maximumLag: 8)
        #expect(rules.commit(record1) == .log(record1))
        let v1 = rules.receiptArrived(sinceSent: 10 * ms, arbiter: .unclaimed)
        #expect(v1 == .perform)
        #expect(rules.logs)
    }

    @Test func aReceiptOutsideTheOutputLeaseIsNotTrustedWithoutAnArbiterLease() {
        var rules = PrimaryStateMachine(timeoutMilliseconds: 1000, maximumLag: 8)
        #expect(rules.outputLease == 500 * ms)
        #expect(rules.receiptArrived(sinceSent: 500 * ms, arbiter: .unclaimed) == .perform)
        // Sent 501 ms ago (the primary was frozen, or the link is slow): the backup may be taking
        // over. A file's stat is no lease, nor is a lapsed etcd lease: probe again.
        #expect(rules.receiptArrived(sinceSent: 501 * ms, arbiter: .unclaimed) == .probe)
        #expect(rules.receiptArrived(sinceSent: 5_000 * ms, arbiter: .lapsed) == .probe)
        #expect(rules.logs, "a late receipt alone does not drop the backup")
        // The probe's receipt came in time: perform.
        #expect(rules.receiptArrived(sinceSent: 3 * ms, arbiter: .lapsed) == .perform)
        // An arbiter lease that holds keeps the backup out: perform.
        #expect(rules.receiptArrived(sinceSent: 5_000 * ms, arbiter: .leased) == .perform)
    }

    @Test func aLateReceiptThenALostBackupMeansTheArbiterDecides() {
        var rules = PrimaryStateMachine(timeoutMilliseconds: 1000, maximumLag: 8)
        #expect(rules.receiptArrived(sinceSent: 2_000 * ms, arbiter: .unclaimed) == .probe)
        #expect(rules.backupLost(.peerClosed) == .claimArbiter)
        #expect(rules.arbiterDecided(won: true, holder: "") == .perform)
        guard case .alone = rules.peer else { Issue.record("\(rules.peer)"); return }
        #expect(!rules.logs)
        #expect(rules.commit(record1) == .perform)
        #expect(rules.lagTarget(epoch: 1_000) == nil)
    }

    @Test func aClaimedArbiterStopsEverything() {
        var rules = PrimaryStateMachine(timeoutMilliseconds: 1000, maximumLag: 8)
        let v4 = rules.receiptArrived(sinceSent: 0, arbiter: .claimed(holder: "backup pid 7"))
        #expect(v4 == .stop(holder: "backup pid 7"))
        #expect(rules.commit(record1) == .stop(holder: "backup pid 7"))
        let v5 = rules.backupLost(.peerClosed)
        #expect(v5 == .stop(holder: "backup pid 7"))
    }

    @Test func aLostBackupMeansWinningTheArbiterOrStopping() {
        var rules = PrimaryStateMachine(timeoutMilliseconds: 1000, maximumLag: 8)
        let v6 = rules.backupLost(.peerClosed)
        #expect(v6 == .claimArbiter)
        #expect(rules.commit(record1) == .claimArbiter, "nothing is performed while claiming")
        let v7 = rules.arbiterDecided(won: false, holder: "backup pid 9")
        #expect(v7 == .stop(holder: "backup pid 9"))
        #expect(rules.peer == .deposed(holder: "backup pid 9"))
        let v8 = rules.arbiterDecided(won: true, holder: "")
        #expect(v8 == .stop(holder: "backup pid 9"), "a verdict cannot be undone")
    }

    @Test func theBackupMayLagAtMostMaximumLagEpochs() {
        var rules = PrimaryStateMachine(timeoutMilliseconds: 1000, maximumLag: 8)
        #expect(rules.lagTarget(epoch: 8) == nil)
        #expect(rules.lagTarget(epoch: 9) == 1)
        rules.backupExecuted(5)
        #expect(rules.lagTarget(epoch: 13) == nil)
        #expect(rules.lagTarget(epoch: 14) == 6)
        rules.backupExecuted(2)
        #expect(rules.backupExecuted == 5, "reports never move backwards")
    }
}

@Suite struct BackupStateMachineTests {
    func rules(epochLength: UInt64 = 100, maximumLag: UInt64 = 8) -> BackupStateMachine {
        BackupStateMachine(epochLength: epochLength, maximumLag: maximumLag)
    }

    func end(_ epoch: UInt64, at progress: UInt64, values: UInt64 = 0, outputs: UInt64 = 0) -> Message {
        .epochEnd(EpochRecord(epoch: epoch, progress: progress, stop: .epochEnd, time: .zero, events: [],
                              environmentCount: values, outputCount: outputs, stateDigest: nil))
    }

    @Test func aWellFormedEpochIsExecutedAndReported() throws {
        var r = rules(maximumLag: 4)
        let values = LoggedValues([LoggedValue(read: .intervalTimer, value: 1)])
        #expect(try r.receive(.environmentValues(values), progress: 0) == .log(values))
        #expect(try r.receive(.output(record1), progress: 0) == .announce(record1))
        #expect(try r.receive(.outputDone(1), progress: 0) == .performed(through: 1))
        guard case .execute = try r.receive(end(0, at: 100, values: 1, outputs: 1), progress: 0) else {
            Issue.record("not executed"); return
        }
        let v9 = r.executed()
        #expect(v9 == 1, "a maximum lag of 4 reports every epoch")
        #expect(r.epoch == 1)
        let v10 = r.reportBeforeWaiting()
        #expect(v10 == nil)
    }

    @Test func outOfRangeValuesAreRefusedBeforeAnyArithmetic() {
        let hostile: [(String, Message, UInt64)] = [
            ("epoch 2^64-1", end(.max, at: 50), 0),
            ("a finished at epoch 2^64-1", .finished(FinishedRecord(epoch: .max, progress: .max, status: 0, ending: .exited, stateDigest: digestA)), 0),
            ("progress 2^64-1", end(0, at: .max), 0),
            ("progress behind the backup", end(0, at: 10), 20),
            ("progress equal to the backup's", end(0, at: 20), 20),
            ("an epoch longer than the epoch length", end(0, at: 101), 0),
            ("an output of sequence 2^64-1", .output(OutputRecord(sequence: .max, epoch: 0, kind: .console, digest: digestA)), 0),
            ("an output of sequence 0", .output(OutputRecord(sequence: 0, epoch: 0, kind: .console, digest: digestA)), 0),
            ("an output of another epoch", .output(OutputRecord(sequence: 1, epoch: 5, kind: .console, digest: digestA)), 0),
            ("a notice for an output never announced", .outputDone(1), 0),
            ("a notice for output 2^64-1", .outputDone(.max), 0),
            ("more values than claimed", end(0, at: 50, values: 3), 0),
            ("more outputs than announced", end(0, at: 50, outputs: 1), 0),
            ("an executed message from the primary", .executed(1), 0),
        ]
        for (name, message, progress) in hostile {
            var r = rules()
            #expect(throws: ReplicationError.self, "\(name)") { _ = try r.receive(message, progress: progress) }
        }
    }

    @Test func aFloodOfValuesIsBoundedByTheEpoch() throws {
        var r = rules(epochLength: 10_000)
        let chunk = LoggedValues((0..<1000).map { LoggedValue(read: .timestampCounter, value: UInt64($0)) })
        for _ in 0..<10 { _ = try r.receive(.environmentValues(chunk), progress: 0) }
        #expect(throws: ReplicationError.self) { _ = try r.receive(.environmentValues(chunk), progress: 0) }
    }

    @Test func connectionEndsDecideBetweenTakeoverAndStopping() {
        var a = rules()
        a.connectionEnded(.peerClosed)
        #expect(a.phase == .takingOver(.peerClosed))
        var b = rules()
        b.connectionEnded(.protocolError(.authenticationFailed(.data, sequence: 3)))
        guard case .failed = b.phase else { Issue.record("\(b.phase)"); return }
        var c = rules()
        c.connectionEnded(.timeout(milliseconds: 1000))
        #expect(c.phase == .takingOver(.timeout(milliseconds: 1000)))
    }

    @Test func executedEpochsAreReportedAQuarterOfTheLagApartAndBeforeWaiting() throws {
        var r = rules(maximumLag: 256)
        var reports: [UInt64] = []
        for e in 0..<130 as Range<UInt64> {
            _ = try r.receive(end(e, at: (e + 1) * 10), progress: e * 10)
            if let n = r.executed() { reports.append(n) }
        }
        #expect(reports == [64, 128])
        #expect(r.owesReport, "epochs 129 and 130 are not reported yet")
        let v11 = r.reportBeforeWaiting()
        #expect(v11 == 130)
        let v12 = r.reportBeforeWaiting()
        #expect(v12 == nil)
        #expect(!r.owesReport)
    }
}

@Suite struct LivenessTests {
    let ms: UInt64 = 1_000_000

    @Test func bytesOfALargeFrameKeepThePeerAlive() {
        var l = LivenessMonitor(timeout: 1000 * ms, now: 0)
        // A 16 MiB record trickling in over a slow link: every read is part of a frame, and
        // frames keep completing.
        var t: UInt64 = 0
        for _ in 0..<100 {
            t += 200 * ms
            l.bytesArrived(at: t, completedFrames: 1, partialFrame: true)
            #expect(!l.isExpired(at: t + 900 * ms))
        }
    }

    @Test func aFrameThatNeverCompletesCountsForOneTimeoutOnly() {
        var l = LivenessMonitor(timeout: 1000 * ms, now: 0)
        for step in 1...30 as ClosedRange<UInt64> { l.bytesArrived(at: step * 100 * ms, completedFrames: 0, partialFrame: true) }
        // The frame began at 100 ms: its bytes count until 1100 ms, then silence.
        #expect(l.lastSign == 1100 * ms)
        #expect(l.isExpired(at: 3000 * ms))
    }

    @Test func silenceWhileThisSideIsNotReadingIsNotThePeers() {
        var l = LivenessMonitor(timeout: 1000 * ms, now: 0)
        l.pause(at: 100 * ms)
        #expect(!l.isExpired(at: 5000 * ms))
        l.resume(at: 5000 * ms)
        #expect(!l.isExpired(at: 5900 * ms))
        #expect(l.isExpired(at: 6100 * ms))
    }
}

@Suite struct WatchdogTests {
    let ms: UInt64 = 1_000_000

    @Test func aReplicaThatHasNotStartedIsNeverStuck() {
        // Building the machine after the handshake can be slow on a loaded host.
        let watchdog = MachineWatchdog()
        var o = WatchdogObserver(now: 0)
        let first = o.isStuck(watchdog, now: 0, limit: 100 * ms)
        let later = o.isStuck(watchdog, now: 60_000 * ms, limit: 100 * ms)
        #expect(!first && !later)
    }

    @Test func onlyAStepOfHostWorkLongerThanTheLimitIsStuck() {
        let watchdog = MachineWatchdog()
        var o = WatchdogObserver(now: 0)
        watchdog.enter(.host)
        let v13 = o.isStuck(watchdog, now: 100 * ms, limit: 1000 * ms)
        #expect(!v13)
        let v14 = o.isStuck(watchdog, now: 1000 * ms, limit: 1000 * ms)
        #expect(!v14)
        let v15 = o.isStuck(watchdog, now: 1200 * ms, limit: 1000 * ms)
        #expect(v15)
        // Any change is progress.
        watchdog.enter(.host)
        let v16 = o.isStuck(watchdog, now: 1300 * ms, limit: 1000 * ms)
        #expect(!v16)
        // Waiting for the peer or for input, or running the guest, is never stuck.
        for activity in [MachineActivity.waitingForPeer, .waitingForInput, .guest] {
            watchdog.enter(activity)
            var fresh = WatchdogObserver(now: 0)
            _ = fresh.isStuck(watchdog, now: 0, limit: 1000 * ms)
            let v17 = fresh.isStuck(watchdog, now: 60_000 * ms, limit: 1000 * ms)
            #expect(!v17, "\(activity)")
        }
    }
}
