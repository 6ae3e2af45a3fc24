import MachineCore
import Testing

@testable import Replication

let record2 = OutputRecord(sequence: 2, epoch: 0, kind: .diskWrite, digest: digestB)

/// A verdict agreeing with `records` (and `fingerprint`).
func agreeing(_ epoch: UInt64, _ records: [OutputRecord], fingerprint: StateDigest? = nil) -> Verdict {
    Verdict(epoch: epoch, outcome: .executed, outputCount: UInt64(records.count), outputs: OutputDigest.of(records),
            firstDifference: 0, fingerprint: fingerprint)
}

@Suite struct ComparisonMessageTests {
    @Test func compareAndVerdictRoundTrip() throws {
        let requests: [Message] = [
            .compare(CompareRequest(epoch: 0, progress: 1, stop: .epochEnd, wantsFingerprint: false)),
            .compare(CompareRequest(epoch: .max, progress: .max, stop: .ended, wantsFingerprint: true)),
            .compare(CompareRequest(epoch: 3, progress: 9, stop: .idle, wantsFingerprint: false)),
        ]
        #expect(try parse(stream(requests)) == requests)
        let verdicts: [Message] = [
            .verdict(agreeing(4, [record1, record2])),
            .verdict(Verdict(epoch: .max, outcome: .executed, outputCount: .max, outputs: digestA,
                             firstDifference: .max, fingerprint: digestB)),
            .verdict(.diverged(epoch: 7)),
        ]
        #expect(try parse(stream(verdicts), receiver: .primary) == verdicts)
        #expect(try parse(stream(verdicts), receiver: .primary, chunk: 5) == verdicts)
    }

    @Test func hostileComparisonMessagesAreRefused() {
        let compare: [UInt8] = [1] + [UInt8](repeating: 0, count: 16) + [0, 0]
        var verdict: [UInt8] = [1] + [UInt8](repeating: 0, count: 8) + [0] + [UInt8](repeating: 0, count: 48) + [0]
        #expect(throws: Never.self) { _ = try parse(rawMessage(type: 9, payload: compare)) }
        #expect(throws: Never.self) { _ = try parse(rawMessage(type: 10, payload: verdict), receiver: .primary) }
        verdict[0] = 2
        let cases: [(String, [UInt8], ReplicaRole)] = [
            ("a compare of format version 2", rawMessage(type: 9, payload: [2] + compare.dropFirst()), .backup),
            ("a compare of format version 0", rawMessage(type: 9, payload: [0] + compare.dropFirst()), .backup),
            ("a stop kind of 3", rawMessage(type: 9, payload: [1] + [UInt8](repeating: 0, count: 16) + [3, 0]), .backup),
            ("a fingerprint flag of 2", rawMessage(type: 9, payload: [1] + [UInt8](repeating: 0, count: 16) + [0, 2]), .backup),
            ("a truncated compare", rawMessage(type: 9, payload: Array(compare.prefix(10))), .backup),
            ("a compare with trailing bytes", rawMessage(type: 9, payload: compare + [0]), .backup),
            ("a compare at the primary", rawMessage(type: 9, payload: compare), .primary),
            ("a verdict at the backup", rawMessage(type: 10, payload: verdict), .backup),
            ("a verdict of format version 2", rawMessage(type: 10, payload: verdict), .primary),
            ("an outcome of 2", rawMessage(type: 10, payload: [1] + [UInt8](repeating: 0, count: 8) + [2] + [UInt8](repeating: 0, count: 49)), .primary),
            ("a verdict claiming a fingerprint it lacks",
             rawMessage(type: 10, payload: [1] + [UInt8](repeating: 0, count: 8) + [0] + [UInt8](repeating: 0, count: 48) + [1]), .primary),
            ("a truncated verdict", rawMessage(type: 10, payload: [1, 0, 0]), .primary),
            ("a verdict past the backup's limit", rawMessage(type: 10, payload: [], length: UInt32(MessageLimits.fromBackup + 1)), .primary),
        ]
        for (name, bytes, receiver) in cases {
            #expect(throws: WireError.self, "\(name)") { _ = try parse(bytes, receiver: receiver) }
        }
    }
}

@Suite struct ComparisonStateMachineTests {
    @Test func agreeingVerdictsReleaseTheirEpochsInOrder() throws {
        var c = ComparisonStateMachine()
        let request = c.expect(epoch: 3, progress: 300, stop: .idle, records: [record1, record2], fingerprint: nil)
        #expect(request == CompareRequest(epoch: 3, progress: 300, stop: .idle, wantsFingerprint: false))
        _ = c.expect(epoch: 5, progress: 500, stop: .epochEnd, records: [], fingerprint: digestA)
        #expect(c.isAwaiting(3) && c.isAwaiting(5))
        #expect(try c.verdictArrived(agreeing(3, [record1, record2]), currentEpoch: 6) == .comparing)
        #expect(!c.isAwaiting(3) && c.lastAgreed == 3)
        #expect(try c.verdictArrived(agreeing(5, [], fingerprint: digestA), currentEpoch: 6) == .comparing)
        #expect(c.lastAgreed == 5 && c.awaiting.isEmpty)
    }

    @Test func anOutputOfAnotherContentIsAMismatchNamingTheOutput() throws {
        var c = ComparisonStateMachine()
        _ = c.expect(epoch: 2, progress: 20, stop: .ended, records: [record1, record2], fingerprint: nil)
        var corrupt = record2
        corrupt.digest = digestA
        var verdict = agreeing(2, [record1, corrupt])
        verdict.firstDifference = 2
        let state = try c.verdictArrived(verdict, currentEpoch: 2)
        #expect(state == .disagreed(Disagreement(epoch: 2, what: .outputs(sequence: 2, kind: .diskWrite))))
        #expect("\(Disagreement(epoch: 2, what: .outputs(sequence: 2, kind: .diskWrite)))".contains("epoch 2"))
        // A backup that says nothing differs but whose digest does not match: still a mismatch.
        var quiet = ComparisonStateMachine()
        _ = quiet.expect(epoch: 2, progress: 20, stop: .ended, records: [record1], fingerprint: nil)
        #expect(try quiet.verdictArrived(agreeing(2, [record2]), currentEpoch: 2)
                == .disagreed(Disagreement(epoch: 2, what: .outputs(sequence: nil, kind: nil))))
        // So is another number of outputs.
        var fewer = ComparisonStateMachine()
        _ = fewer.expect(epoch: 0, progress: 20, stop: .epochEnd, records: [record1], fingerprint: nil)
        var none = agreeing(0, [record1])
        none.outputCount = 0
        #expect(try fewer.verdictArrived(none, currentEpoch: 0) != .comparing)
    }

    @Test func fingerprintsAndDivergenceAreMismatchesToo() throws {
        var c = ComparisonStateMachine()
        _ = c.expect(epoch: 1, progress: 10, stop: .epochEnd, records: [], fingerprint: digestA)
        #expect(try c.verdictArrived(agreeing(1, [], fingerprint: digestB), currentEpoch: 1)
                == .disagreed(Disagreement(epoch: 1, what: .fingerprint)))
        var d = ComparisonStateMachine()
        _ = d.expect(epoch: 4, progress: 40, stop: .epochEnd, records: [record1], fingerprint: nil)
        #expect(try d.verdictArrived(.diverged(epoch: 2), currentEpoch: 4)
                == .disagreed(Disagreement(epoch: 2, what: .execution)))
        // Once disagreed, it stays so.
        #expect(try d.verdictArrived(agreeing(4, [record1]), currentEpoch: 4) != .comparing)
    }

    @Test func verdictsOutsideTheProtocolAreRefused() {
        var c = ComparisonStateMachine()
        _ = c.expect(epoch: 1, progress: 10, stop: .epochEnd, records: [record1], fingerprint: nil)
        let hostile: [(String, Verdict)] = [
            ("an epoch never asked about", agreeing(2, [record1])),
            ("an epoch before the one awaited", agreeing(0, [record1])),
            ("a fingerprint not asked for", agreeing(1, [record1], fingerprint: digestA)),
            ("a difference naming another epoch's output", {
                var v = agreeing(1, [record1]); v.firstDifference = 9; return v
            }()),
            ("a divergence in an epoch the primary has not reached", .diverged(epoch: 6)),
            ("a divergence at epoch 2^64-1", .diverged(epoch: .max)),
        ]
        for (name, verdict) in hostile {
            var copy = c
            #expect(throws: ReplicationError.self, "\(name)") { _ = try copy.verdictArrived(verdict, currentEpoch: 5) }
        }
        var fingerprinted = ComparisonStateMachine()
        _ = fingerprinted.expect(epoch: 0, progress: 10, stop: .epochEnd, records: [], fingerprint: digestA)
        #expect(throws: ReplicationError.self, "a missing fingerprint") {
            _ = try fingerprinted.verdictArrived(agreeing(0, []), currentEpoch: 0)
        }
    }
}

@Suite struct BackupComparisonTests {
    func rules() -> BackupStateMachine { BackupStateMachine(epochLength: 100, maximumLag: 4) }
    func end(_ epoch: UInt64, at progress: UInt64, stop: EpochStop = .epochEnd, outputs: UInt64 = 0) -> Message {
        .epochEnd(EpochRecord(epoch: epoch, progress: progress, stop: stop, time: .zero, events: [],
                              environmentCount: 0, outputCount: outputs, stateDigest: nil))
    }

    @Test func aComparedEpochEndsAtTheComparedBoundary() throws {
        var r = rules()
        _ = try r.receive(.output(record1), progress: 0)
        let request = CompareRequest(epoch: 0, progress: 80, stop: .idle, wantsFingerprint: false)
        #expect(try r.receive(.compare(request), progress: 0) == .compare(request))
        #expect(r.stage == .compared(progress: 80, stop: .idle))
        guard case .execute = try r.receive(end(0, at: 80, stop: .idle, outputs: 1), progress: 80) else {
            Issue.record("not executed"); return
        }
        _ = r.executed()
        #expect(r.stage == .receiving && r.epoch == 1)
        let last = CompareRequest(epoch: 1, progress: 90, stop: .ended, wantsFingerprint: true)
        #expect(try r.receive(.compare(last), progress: 80) == .compare(last))
        guard case .finish = try r.receive(.finished(FinishedRecord(epoch: 1, progress: 90, status: 0, ending: .exited,
                                                                    stateDigest: digestA)), progress: 90) else {
            Issue.record("not finished"); return
        }
    }

    @Test func theLeaseProbeIsTakenAfterAComparison() throws {
        // The primary probes (an empty values message) when a verdict came after its output
        // lease: it carries nothing for the epoch, and the compared epoch still ends as compared.
        var r = rules()
        let request = CompareRequest(epoch: 0, progress: 50, stop: .epochEnd, wantsFingerprint: false)
        _ = try r.receive(.compare(request), progress: 0)
        #expect(try r.receive(.environmentValues(LoggedValues([])), progress: 50) == .log(LoggedValues([])))
        #expect(r.stage == .compared(progress: 50, stop: .epochEnd))
        guard case .execute = try r.receive(end(0, at: 50), progress: 50) else {
            Issue.record("not executed"); return
        }
    }

    @Test func aComparedEpochTakesNothingMoreAndEndsWhereItWasCompared() throws {
        let request = CompareRequest(epoch: 0, progress: 50, stop: .epochEnd, wantsFingerprint: false)
        let hostile: [(String, Message)] = [
            ("a second comparison", .compare(request)),
            ("an output after the comparison", .output(record1)),
            ("values after the comparison", .environmentValues(LoggedValues([LoggedValue(read: .intervalTimer, value: 1)]))),
            ("an end elsewhere", end(0, at: 60)),
            ("an end of another kind", end(0, at: 50, stop: .idle)),
            ("a finish after a budget boundary", .finished(FinishedRecord(epoch: 0, progress: 50, status: 0, ending: .exited, stateDigest: digestA))),
        ]
        for (name, message) in hostile {
            var r = rules()
            _ = try r.receive(.compare(request), progress: 0)
            #expect(throws: ReplicationError.self, "\(name)") { _ = try r.receive(message, progress: 50) }
        }
        let outOfRange: [(String, CompareRequest)] = [
            ("another epoch", CompareRequest(epoch: 1, progress: 50, stop: .epochEnd, wantsFingerprint: false)),
            ("no progress", CompareRequest(epoch: 0, progress: 0, stop: .epochEnd, wantsFingerprint: false)),
            ("beyond one epoch length", CompareRequest(epoch: 0, progress: 101, stop: .epochEnd, wantsFingerprint: false)),
            ("progress 2^64-1", CompareRequest(epoch: 0, progress: .max, stop: .ended, wantsFingerprint: false)),
        ]
        for (name, request) in outOfRange {
            var r = rules()
            #expect(throws: ReplicationError.self, "\(name)") { _ = try r.receive(.compare(request), progress: 0) }
        }
    }
}

@Suite struct RollbackTests {
    @Test func rollbackMessagesRoundTripAndHostileOnesAreRefused() throws {
        let requests: [Message] = [.rollback(RollbackRequest(epoch: 0, attempt: 1)),
                                   .rollback(RollbackRequest(epoch: .max, attempt: .max))]
        #expect(try parse(stream(requests)) == requests)
        #expect(try parse(stream([.rolledBack(attempt: 7)]), receiver: .primary) == [.rolledBack(attempt: 7)])
        let cases: [(String, [UInt8], ReplicaRole)] = [
            ("a rollback of format version 2", rawMessage(type: 11, payload: [2] + [UInt8](repeating: 0, count: 12)), .backup),
            ("a truncated rollback", rawMessage(type: 11, payload: [1, 0, 0]), .backup),
            ("a rollback with trailing bytes", rawMessage(type: 11, payload: [1] + [UInt8](repeating: 0, count: 13)), .backup),
            ("a rollback at the primary", rawMessage(type: 11, payload: [1] + [UInt8](repeating: 0, count: 12)), .primary),
            ("a confirmation at the backup", rawMessage(type: 12, payload: [1, 0, 0, 0, 0]), .backup),
            ("a confirmation of format version 0", rawMessage(type: 12, payload: [0, 0, 0, 0, 0]), .primary),
        ]
        for (name, bytes, receiver) in cases {
            #expect(throws: WireError.self, "\(name)") { _ = try parse(bytes, receiver: receiver) }
        }
    }

    @Test func aDisagreementRollsBackOnceThenStops() throws {
        var c = ComparisonStateMachine()
        #expect(c.recover() == nil, "nothing to recover from")
        c.checkpointed(at: 4)
        _ = c.expect(epoch: 6, progress: 60, stop: .epochEnd, records: [record1], fingerprint: nil)
        _ = try c.verdictArrived(agreeing(6, [record2]), currentEpoch: 6)
        #expect(c.recover() == .rollBack(RollbackRequest(epoch: 4, attempt: 1)))
        #expect(c.discardsReports(from: 0) && c.awaiting.isEmpty)
        // Reports the backup sent before it rolled back are dropped; its confirmation ends that.
        #expect(try c.verdictArrived(agreeing(6, [record1]), currentEpoch: 6) == .rollingBack(RollbackRequest(epoch: 4, attempt: 1), awaiting: [0]))
        #expect(throws: ReplicationError.self) { try c.rolledBack(attempt: 2) }
        try c.rolledBack(attempt: 1)
        #expect(c.state == .comparing && c.lastAgreed == 3)
        // The same disagreement again, with no agreement since: stop, saying it repeated.
        _ = c.expect(epoch: 6, progress: 60, stop: .epochEnd, records: [record1], fingerprint: nil)
        _ = try c.verdictArrived(agreeing(6, [record2]), currentEpoch: 6)
        guard case .stop(let final)? = c.recover() else { Issue.record("not stopped"); return }
        #expect(final.repeatedAfterRollbackTo == 4)
        #expect(final.description.contains("again after both replicas rolled back to epoch 4"))
    }

    @Test func anAgreementSinceMakesANewCheckpointToGoBackTo() throws {
        var c = ComparisonStateMachine()
        c.checkpointed(at: 0)
        _ = c.expect(epoch: 2, progress: 20, stop: .epochEnd, records: [record1], fingerprint: nil)
        _ = try c.verdictArrived(agreeing(2, [record2]), currentEpoch: 2)
        guard case .rollBack? = c.recover() else { Issue.record("no rollback"); return }
        try c.rolledBack(attempt: 1)
        _ = c.expect(epoch: 2, progress: 20, stop: .epochEnd, records: [record1], fingerprint: nil)
        _ = try c.verdictArrived(agreeing(2, [record1]), currentEpoch: 2)
        c.checkpointed(at: 3)
        _ = c.expect(epoch: 5, progress: 50, stop: .ended, records: [record2], fingerprint: nil)
        _ = try c.verdictArrived(agreeing(5, [record1]), currentEpoch: 5)
        #expect(c.recover() == .rollBack(RollbackRequest(epoch: 3, attempt: 2)))
    }

    @Test func theBackupTakesARollbackOnlyToAnEpochItHasReached() throws {
        var r = BackupStateMachine(epochLength: 100, maximumLag: 4)
        let checkpoint = r
        _ = try r.receive(.epochEnd(EpochRecord(epoch: 0, progress: 50, stop: .epochEnd, time: .zero, events: [],
                                                environmentCount: 0, outputCount: 0, stateDigest: nil)), progress: 0)
        _ = r.executed()
        #expect(try r.receive(.rollback(RollbackRequest(epoch: 0, attempt: 1)), progress: 50)
                == .rollBack(RollbackRequest(epoch: 0, attempt: 1)))
        try r.rolledBack(to: checkpoint)
        #expect(r.epoch == 0 && r.stage == .receiving)
        var ahead = BackupStateMachine(epochLength: 100, maximumLag: 4)
        #expect(throws: ReplicationError.self) { _ = try ahead.receive(.rollback(RollbackRequest(epoch: 1, attempt: 1)), progress: 0) }
        #expect(throws: ReplicationError.self) { _ = try ahead.receive(.rollback(RollbackRequest(epoch: .max, attempt: 1)), progress: 0) }
    }
}

/// TMR: the vote among the primary and several backups (`ComparisonStateMachine` with more than
/// one voter).
@Suite struct VoteTests {
    let digestC = StateDigest.of(Array("c".utf8))

    /// A verdict whose outputs differ from `records` in output `sequence` (a flipped bit).
    func differing(_ epoch: UInt64, _ records: [OutputRecord], at sequence: UInt64) -> Verdict {
        var corrupt = records
        if let index = corrupt.firstIndex(where: { $0.sequence == sequence }) { corrupt[index].digest = digestC }
        var verdict = agreeing(epoch, corrupt)
        verdict.firstDifference = sequence
        return verdict
    }

    func tmr(_ voters: [Int] = [0, 1]) -> ComparisonStateMachine {
        var c = ComparisonStateMachine(voters: voters)
        c.checkpointed(at: 0)
        return c
    }

    @Test func threeAgreeingReplicasReleaseTheEpoch() throws {
        var c = tmr()
        _ = c.expect(epoch: 2, progress: 20, stop: .epochEnd, records: [record1], fingerprint: digestA)
        #expect(try c.verdictArrived(agreeing(2, [record1], fingerprint: digestA), from: 1, currentEpoch: 2) == .comparing)
        #expect(c.isAwaiting(2) && c.voteDue == 0, "one vote is still missing")
        #expect(try c.verdictArrived(agreeing(2, [record1], fingerprint: digestA), from: 0, currentEpoch: 2) == .comparing)
        #expect(!c.isAwaiting(2) && c.lastAgreed == 2 && c.takeOutvoted().isEmpty && c.voters == [0, 1])
    }

    @Test(arguments: [0, 1]) func eachBackupCanBeOutvoted(_ faulty: Int) throws {
        var c = tmr()
        _ = c.expect(epoch: 3, progress: 30, stop: .epochEnd, records: [record1, record2], fingerprint: nil)
        try c.verdictArrived(differing(3, [record1, record2], at: 2), from: faulty, currentEpoch: 3)
        try c.verdictArrived(agreeing(3, [record1, record2]), from: 1 - faulty, currentEpoch: 3)
        #expect(c.state == .comparing && c.lastAgreed == 3, "the majority's (the primary's) outputs are released")
        let outvoted = c.takeOutvoted()
        #expect(outvoted == [ComparisonStateMachine.Outvote(
            voter: faulty, disagreement: Disagreement(epoch: 3, what: .outputs(sequence: 2, kind: .diskWrite), replica: "backup"))])
        #expect(c.takeOutvoted().isEmpty, "taken once")
        #expect(c.voters == [1 - faulty], "the outvoted backup votes no more")
        // Its late verdicts are refused; the remaining pair compares as DMR.
        _ = c.expect(epoch: 4, progress: 40, stop: .epochEnd, records: [record1], fingerprint: nil)
        var copy = c
        #expect(throws: ReplicationError.self) { try copy.verdictArrived(agreeing(4, [record1]), from: faulty, currentEpoch: 4) }
        try c.verdictArrived(differing(4, [record1], at: 1), from: 1 - faulty, currentEpoch: 4)
        guard case .disagreed(let d) = c.state else { Issue.record("two replicas that differ: no majority"); return }
        #expect(d.replica == nil)
        // The line names the epoch, the replica and what differed.
        var named = outvoted[0].disagreement
        named.replica = "backup at 127.0.0.1:5000"
        #expect("\(named)" == "output mismatch at epoch 3: the backup at 127.0.0.1:5000 was outvoted: its version of output 2 (disk write) differed from the majority's")
    }

    @Test func theOutvotedPrimaryStepsDown() throws {
        var c = tmr()
        c.checkpointed(at: 5)
        _ = c.expect(epoch: 6, progress: 60, stop: .epochEnd, records: [record1], fingerprint: digestA)
        try c.verdictArrived(agreeing(6, [record1], fingerprint: digestB), from: 0, currentEpoch: 6)
        try c.verdictArrived(agreeing(6, [record1], fingerprint: digestB), from: 1, currentEpoch: 6)
        let outvoted = Disagreement(epoch: 6, what: .fingerprint, replica: "primary")
        #expect(c.state == .outvoted(outvoted))
        #expect("\(outvoted)".contains("the primary was outvoted"))
        #expect(c.takeOutvoted().isEmpty, "no backup is dropped")
        #expect(c.lastAgreed == nil, "the epoch is not released")
        #expect(c.recover() == .stepDown(outvoted))
        #expect(c.recover() == .stepDown(outvoted), "stepping down is final")
        #expect(throws: ReplicationError.self) { var copy = c; try copy.rolledBack(attempt: 1, from: 0) }
    }

    @Test func noMajorityFallsBackToDMR() throws {
        // All three differ.
        var c = tmr()
        _ = c.expect(epoch: 1, progress: 10, stop: .epochEnd, records: [record1], fingerprint: nil)
        try c.verdictArrived(agreeing(1, [record2]), from: 0, currentEpoch: 1)
        try c.verdictArrived(differing(1, [record1], at: 1), from: 1, currentEpoch: 1)
        guard case .disagreed(let d) = c.state else { Issue.record("no majority, no decision"); return }
        #expect(d.replica == nil && c.takeOutvoted().isEmpty)
        #expect(c.recover() == .rollBack(RollbackRequest(epoch: 0, attempt: 1)))
        // A tie of four: the primary and one backup against two.
        var t = tmr([0, 1, 2])
        _ = t.expect(epoch: 1, progress: 10, stop: .epochEnd, records: [record1], fingerprint: nil)
        try t.verdictArrived(agreeing(1, [record1]), from: 0, currentEpoch: 1)
        try t.verdictArrived(agreeing(1, [record2]), from: 1, currentEpoch: 1)
        try t.verdictArrived(agreeing(1, [record2]), from: 2, currentEpoch: 1)
        guard case .disagreed(let tie) = t.state else { Issue.record("a tie decided"); return }
        #expect(tie.replica == nil, "a tie outvotes nobody")
        // Three against one: the odd backup is outvoted.
        var q = tmr([0, 1, 2])
        _ = q.expect(epoch: 1, progress: 10, stop: .epochEnd, records: [record1], fingerprint: nil)
        for voter in [0, 2] { try q.verdictArrived(agreeing(1, [record1]), from: voter, currentEpoch: 1) }
        try q.verdictArrived(agreeing(1, [record2]), from: 1, currentEpoch: 1)
        #expect(q.state == .comparing && q.takeOutvoted().map(\.voter) == [1])
    }

    @Test func votesArriveLateAndOutOfStepAcrossBackups() throws {
        var c = tmr()
        _ = c.expect(epoch: 1, progress: 10, stop: .epochEnd, records: [record1], fingerprint: nil)
        _ = c.expect(epoch: 3, progress: 30, stop: .epochEnd, records: [record2], fingerprint: nil)
        // Backup 0 is ahead: both its votes arrive before backup 1's first.
        try c.verdictArrived(agreeing(1, [record1]), from: 0, currentEpoch: 3)
        try c.verdictArrived(agreeing(3, [record2]), from: 0, currentEpoch: 3)
        #expect(c.isAwaiting(1) && c.isAwaiting(3) && c.voteDue == 1)
        // Backup 1 must answer in order.
        var copy = c
        #expect(throws: ReplicationError.self) { try copy.verdictArrived(agreeing(3, [record2]), from: 1, currentEpoch: 3) }
        try c.verdictArrived(agreeing(1, [record1]), from: 1, currentEpoch: 3)
        #expect(!c.isAwaiting(1) && c.isAwaiting(3) && c.lastAgreed == 1)
        try c.verdictArrived(agreeing(3, [record2]), from: 1, currentEpoch: 3)
        #expect(c.awaiting.isEmpty && c.lastAgreed == 3)
        // A verdict from a backup that never voted.
        #expect(throws: ReplicationError.self) { try c.verdictArrived(agreeing(3, [record2]), from: 7, currentEpoch: 3) }
    }

    @Test func aBackupDyingMidVoteLeavesTheOthersToDecide() throws {
        // Its vote was the last missing: the two left agree, the epoch is released.
        var c = tmr()
        _ = c.expect(epoch: 2, progress: 20, stop: .epochEnd, records: [record1], fingerprint: nil)
        try c.verdictArrived(agreeing(2, [record1]), from: 0, currentEpoch: 2)
        c.leave(1)
        #expect(c.state == .comparing && c.lastAgreed == 2 && c.voters == [0])
        // The two left differ: DMR, no replica named.
        var d = tmr()
        _ = d.expect(epoch: 2, progress: 20, stop: .epochEnd, records: [record1], fingerprint: nil)
        try d.verdictArrived(agreeing(2, [record2]), from: 0, currentEpoch: 2)
        #expect(d.state == .comparing, "the vote waits for backup 1")
        d.leave(1)
        #expect(d.state == .disagreed(Disagreement(epoch: 2, what: .outputs(sequence: nil, kind: nil))))
        // Dying during a rollback: the others' confirmations suffice.
        #expect(d.recover() == .rollBack(RollbackRequest(epoch: 0, attempt: 1)))
        #expect(d.state == .rollingBack(RollbackRequest(epoch: 0, attempt: 1), awaiting: [0]))
        d.leave(0)
        #expect(d.state == .comparing)
        // Every backup gone with a vote pending: the primary alone decides nothing against itself.
        var e = tmr()
        _ = e.expect(epoch: 2, progress: 20, stop: .epochEnd, records: [record1], fingerprint: nil)
        e.leave(0)
        e.leave(1)
        #expect(e.state == .comparing && e.awaiting.isEmpty)
    }

    @Test func aDivergedBackupIsOutvotedOnceAnotherFollowsThePrimary() throws {
        var c = tmr()
        _ = c.expect(epoch: 4, progress: 40, stop: .epochEnd, records: [record1], fingerprint: nil)
        try c.verdictArrived(.diverged(epoch: 3), from: 1, currentEpoch: 4)
        #expect(c.state == .comparing && c.diverged == [1: 3] && c.voteDue == 0, "waits for the other backup")
        #expect(throws: ReplicationError.self, "nothing after a divergence") {
            var copy = c; try copy.verdictArrived(agreeing(4, [record1]), from: 1, currentEpoch: 4)
        }
        try c.verdictArrived(agreeing(4, [record1]), from: 0, currentEpoch: 4)
        #expect(c.state == .comparing && c.lastAgreed == 4)
        #expect(c.takeOutvoted() == [ComparisonStateMachine.Outvote(
            voter: 1, disagreement: Disagreement(epoch: 4, what: .execution, replica: "backup"))])
        // Both backups leave the primary's log: the primary is the odd one, or nobody knows.
        var d = tmr()
        _ = d.expect(epoch: 4, progress: 40, stop: .epochEnd, records: [record1], fingerprint: nil)
        try d.verdictArrived(.diverged(epoch: 4), from: 0, currentEpoch: 4)
        try d.verdictArrived(.diverged(epoch: 4), from: 1, currentEpoch: 4)
        #expect(d.state == .disagreed(Disagreement(epoch: 4, what: .execution)))
    }

    @Test func aJoinedBackupVotesFromTheNextRequestOn() throws {
        var c = ComparisonStateMachine(voters: [0])
        _ = c.expect(epoch: 3, progress: 30, stop: .epochEnd, records: [record1], fingerprint: nil)
        c.join(1)
        _ = c.expect(epoch: 5, progress: 50, stop: .epochEnd, records: [record2], fingerprint: nil)
        var copy = c
        #expect(throws: ReplicationError.self, "not asked about epoch 3") {
            try copy.verdictArrived(agreeing(3, [record1]), from: 1, currentEpoch: 5)
        }
        try c.verdictArrived(agreeing(3, [record1]), from: 0, currentEpoch: 5)
        try c.verdictArrived(agreeing(5, [record2]), from: 0, currentEpoch: 5)
        #expect(c.isAwaiting(5) && c.voteDue == 1)
        try c.verdictArrived(differing(5, [record2], at: 2), from: 1, currentEpoch: 5)
        #expect(c.state == .comparing && c.takeOutvoted().map(\.voter) == [1], "three replicas now: the joiner is outvoted")
    }
}
