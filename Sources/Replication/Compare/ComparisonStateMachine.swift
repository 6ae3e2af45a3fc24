import MachineCore

/// Two replicas' versions of an epoch that differ: what the primary reports when it withholds
/// an output.
public struct Disagreement: Equatable, Sendable, CustomStringConvertible {
    public enum What: Equatable, Sendable {
        /// The epoch's outputs differ; `sequence` is the first differing one when the backup named
        /// one of the primary's records, with its kind.
        case outputs(sequence: UInt64?, kind: OutputKind?)
        /// The state fingerprints at the boundary differ (`--digest-every`).
        case fingerprint
        /// The backup's execution left the primary's log before the boundary.
        case execution
        /// The backup refused the primary (its reason, sanitized): a comparing primary stops.
        case refused(String)
    }

    public var epoch: UInt64
    public var what: What
    /// Which replica differs from the others, when a vote could tell (with one backup: nil).
    public var replica: String?
    /// The checkpoint both replicas already went back to once for this disagreement.
    public var repeatedAfterRollbackTo: UInt64?

    public init(epoch: UInt64, what: What, replica: String? = nil, repeatedAfterRollbackTo: UInt64? = nil) {
        self.epoch = epoch
        self.what = what
        self.replica = replica
        self.repeatedAfterRollbackTo = repeatedAfterRollbackTo
    }

    public var description: String {
        let line = summary
        guard let start = repeatedAfterRollbackTo else { return line }
        return line + " (again after both replicas rolled back to epoch \(start) and ran it again)"
    }

    private var summary: String {
        if let replica { return outvoted(replica) }
        let who = "the primary and the backup"
        switch what {
        case .outputs(let sequence?, let kind):
            return "output mismatch at epoch \(epoch): \(who) produced different versions of output \(sequence) (\(Self.name(kind))); it was withheld"
        case .outputs(nil, _):
            return "output mismatch at epoch \(epoch): \(who) produced different outputs; they were withheld"
        case .fingerprint:
            return "state mismatch at epoch \(epoch): \(who) hold different states (fingerprint); later outputs were withheld"
        case .execution:
            return "execution mismatch at epoch \(epoch): \(who) left each other's instruction stream; outputs from then on were withheld"
        case .refused(let why):
            return "execution mismatch at epoch \(epoch): the backup refused the primary (\(why)); outputs from then on were withheld"
        }
    }

    /// A vote named the replica that differs from the majority.
    private func outvoted(_ replica: String) -> String {
        switch what {
        case .outputs(let sequence?, let kind):
            "output mismatch at epoch \(epoch): the \(replica) was outvoted: its version of output \(sequence) (\(Self.name(kind))) differed from the majority's"
        case .outputs(nil, _):
            "output mismatch at epoch \(epoch): the \(replica) was outvoted: its outputs differed from the majority's"
        case .fingerprint:
            "state mismatch at epoch \(epoch): the \(replica) was outvoted: its state fingerprint differed from the majority's"
        case .execution:
            "execution mismatch at epoch \(epoch): the \(replica) was outvoted: its execution left the primary's instruction stream"
        case .refused(let why):
            "execution mismatch at epoch \(epoch): the \(replica) refused the primary (\(why))"
        }
    }

    private static func name(_ kind: OutputKind?) -> String {
        switch kind {
        case .console?: "console line"
        case .diskWrite?: "disk write"
        case .diskFlush?: "disk flush"
        case nil: "output"
        }
    }
}

/// The primary's side of output comparison (`--compare`), as a state machine: which epochs it
/// asked its backups about, what its own outputs and fingerprint were, the verdicts that come
/// back, and the vote on them. No socket: `PrimaryReplica` asks, waits and performs.
///
/// Every replica votes on an epoch with its version of it (output count, output digest,
/// fingerprint); a backup whose execution left the primary's log (`diverged`) votes for a
/// version no other replica holds. An epoch is decided once every backup that was asked has
/// voted (or diverged, or was lost):
///
/// ```
///   expect(e) --> [awaiting e] --all versions equal------------------------> agreed through e
///                      |
///                      +--a strict majority holds the primary's version---> agreed through e,
///                      |                                       the other backups are outvoted
///                      +--a strict majority holds another version---------> [outvoted]
///                      |                (the primary steps down: a majority backup takes over)
///                      +--no strict majority (two replicas, a tie)--------> [disagreed] (DMR)
///   [disagreed] --recover()--> [rollingBack] --every voter confirmed--> comparing
///   [outvoted] --recover()--> step down (final)
/// ```
/// With one backup (DMR) no vote has a strict majority unless both replicas agree. Outputs of
/// epoch e are released only once `agreed(through:)` covers e. Each backup's verdicts must come
/// in the order of the requests; anything else (a verdict never asked for, a fingerprint not
/// asked for or missing) is that peer breaking the protocol.
public struct ComparisonStateMachine: Sendable, Equatable {
    /// A backup, as the primary numbers them.
    public typealias Voter = Int

    /// One replica's version of an epoch: what is compared.
    struct Version: Equatable, Sendable {
        var count: UInt64
        var outputs: StateDigest
        var fingerprint: StateDigest?
    }

    /// What this replica computed for an epoch it asked about, and the backups' verdicts so far.
    public struct Expectation: Sendable, Equatable {
        public var epoch: UInt64
        public var records: [OutputRecord]
        public var outputs: StateDigest
        public var fingerprint: StateDigest?
        /// The backups asked (those following when it was asked, less those lost since).
        public var voters: [Voter]
        public var verdicts: [Voter: Verdict] = [:]

        var version: Version { Version(count: UInt64(records.count), outputs: outputs, fingerprint: fingerprint) }
    }

    public enum State: Sendable, Equatable {
        case comparing
        case disagreed(Disagreement)
        /// A strict majority of backups holds another version than the primary's: the primary
        /// steps down (final).
        case outvoted(Disagreement)
        /// Every replica goes back to the checkpoint; a backup's reports are stale until it
        /// confirms this attempt (`awaiting`: those that have not yet).
        case rollingBack(RollbackRequest, awaiting: Set<Voter>)
    }

    /// What to do about a disagreement.
    public enum Recovery: Sendable, Equatable {
        /// Send this rollback, restore the checkpoint, wait for the backups to confirm it.
        case rollBack(RollbackRequest)
        /// Withhold the output and stop the pair.
        case stop(Disagreement)
        /// Withhold the output and step down: the backups, a majority, take over.
        case stepDown(Disagreement)
    }

    /// A backup that a majority (the primary and at least one other backup) outvoted: the
    /// primary drops it, and re-protection replaces it by state transfer.
    public struct Outvote: Sendable, Equatable {
        public var voter: Voter
        public var disagreement: Disagreement
    }

    public private(set) var state: State = .comparing
    /// Requests not yet decided, oldest first.
    public private(set) var awaiting: [Expectation] = []
    /// The backups that vote on the epochs asked about from now on.
    public private(set) var voters: [Voter]
    /// Backups whose execution left the log, and the epoch where: they vote against every
    /// version still awaited, and send nothing more until a rollback.
    public private(set) var diverged: [Voter: UInt64] = [:]
    /// Backups outvoted and not yet taken by the primary (`takeOutvoted`).
    public private(set) var outvoted: [Outvote] = []
    /// The last epoch whose vote the primary's version won.
    public private(set) var lastAgreed: UInt64?
    /// The epoch at whose start every replica holds a checkpoint, and whether they already went
    /// back to it once.
    public private(set) var checkpoint: UInt64?
    public private(set) var rolledBackToCheckpoint = false
    /// Rollbacks so far (the attempt number of the last one).
    public private(set) var attempts: UInt32 = 0

    /// - Parameter voters: the backups following from the start (one: DMR).
    public init(voters: [Voter] = [0]) { self.voters = voters }

    /// A backup now follows (it joined by state transfer): it votes from the next request on.
    public mutating func join(_ voter: Voter) {
        if !voters.contains(voter) { voters.append(voter) }
    }

    /// A backup is gone (lost, dropped): its votes no longer count, and epochs that waited only
    /// for it are decided.
    public mutating func leave(_ voter: Voter) {
        voters.removeAll { $0 == voter }
        diverged[voter] = nil
        for index in awaiting.indices {
            awaiting[index].voters.removeAll { $0 == voter }
            awaiting[index].verdicts[voter] = nil
        }
        if case .rollingBack(let request, var pending) = state {
            pending.remove(voter)
            state = pending.isEmpty ? .comparing : .rollingBack(request, awaiting: pending)
            if pending.isEmpty { lastAgreed = request.epoch == 0 ? nil : request.epoch - 1 }
        }
        decide()
    }

    /// The outvoted backups, once: the primary drops each.
    public mutating func takeOutvoted() -> [Outvote] {
        defer { outvoted.removeAll() }
        return outvoted
    }

    /// This replica asks about epoch `epoch`, whose output records and fingerprint it computed.
    /// Returns the request to send.
    public mutating func expect(epoch: UInt64, progress: UInt64, stop: CompareStop, records: [OutputRecord],
                                fingerprint: StateDigest?, ending: (RunEnding, Int32)? = nil) -> CompareRequest
    {
        awaiting.append(Expectation(epoch: epoch, records: records, outputs: OutputDigest.of(records, ending: ending),
                                    fingerprint: fingerprint, voters: voters))
        decide()
        return CompareRequest(epoch: epoch, progress: progress, stop: stop, wantsFingerprint: fingerprint != nil)
    }

    /// The backup whose verdict the oldest undecided vote waits for (verdicts come in order).
    public var voteDue: Voter? {
        for expectation in awaiting {
            if let voter = expectation.voters.first(where: { expectation.verdicts[$0] == nil && diverged[$0] == nil }) {
                return voter
            }
        }
        return nil
    }

    /// Whether the vote on `epoch` is still to come.
    public func isAwaiting(_ epoch: UInt64) -> Bool { awaiting.contains { $0.epoch == epoch } }

    /// Every replica checkpointed at the start of `epoch` (after agreeing on the epoch before).
    public mutating func checkpointed(at epoch: UInt64) {
        checkpoint = epoch
        rolledBackToCheckpoint = false
    }

    /// The replicas disagree: go back to the checkpoint once; a disagreement after going back to
    /// the same checkpoint (no agreement since) stops the pair.
    public mutating func recover() -> Recovery? {
        if case .outvoted(let disagreement) = state { return .stepDown(disagreement) }
        guard case .disagreed(var disagreement) = state else { return nil }
        guard let checkpoint, !rolledBackToCheckpoint, attempts < UInt32.max else {
            if rolledBackToCheckpoint { disagreement.repeatedAfterRollbackTo = checkpoint }
            return .stop(disagreement)
        }
        attempts += 1
        rolledBackToCheckpoint = true
        let request = RollbackRequest(epoch: checkpoint, attempt: attempts)
        awaiting.removeAll()
        diverged.removeAll()
        outvoted.removeAll()
        state = voters.isEmpty ? .comparing : .rollingBack(request, awaiting: Set(voters))
        if voters.isEmpty { lastAgreed = request.epoch == 0 ? nil : request.epoch - 1 }
        return .rollBack(request)
    }

    /// Whether `voter`'s reports are to be dropped (sent before it rolled back).
    public func discardsReports(from voter: Voter) -> Bool {
        if case .rollingBack(_, let pending) = state { pending.contains(voter) } else { false }
    }

    /// `voter` confirmed rollback `attempt`.
    public mutating func rolledBack(attempt: UInt32, from voter: Voter = 0) throws(ReplicationError) {
        guard case .rollingBack(let request, var pending) = state, request.attempt == attempt, pending.contains(voter) else {
            throw .protocolViolation("the backup confirms rollback \(attempt), which was not asked for")
        }
        pending.remove(voter)
        guard pending.isEmpty else {
            state = .rollingBack(request, awaiting: pending)
            return
        }
        state = .comparing
        lastAgreed = request.epoch == 0 ? nil : request.epoch - 1
    }

    /// A verdict arrived from `voter`. `currentEpoch` is the epoch this replica is in (a backup
    /// cannot have run further). Returns the new state; throws if the verdict breaks the protocol.
    @discardableResult
    public mutating func verdictArrived(_ verdict: Verdict, from voter: Voter = 0,
                                        currentEpoch: UInt64) throws(ReplicationError) -> State
    {
        guard case .comparing = state else { return state }
        guard voters.contains(voter) || awaiting.contains(where: { $0.voters.contains(voter) }) else {
            throw .protocolViolation("a verdict from a backup that does not vote")
        }
        guard diverged[voter] == nil else {
            throw .protocolViolation("a verdict for epoch \(verdict.epoch) after the backup's execution diverged")
        }
        if verdict.outcome == .diverged {
            guard verdict.epoch <= currentEpoch, verdict.epoch >= (lastAgreed.map { $0 &+ 1 } ?? 0) else {
                throw .protocolViolation("a divergence verdict for epoch \(verdict.epoch) at epoch \(currentEpoch)")
            }
            diverged[voter] = verdict.epoch
            // Unless the primary and the backups still following it can be a strict majority,
            // nothing can outvote this backup: the replicas disagree now (always so with one).
            let total = 1 + voters.count
            let following = 1 + voters.count { diverged[$0] == nil }
            if following * 2 <= total {
                state = .disagreed(Disagreement(epoch: verdict.epoch, what: .execution))
            } else {
                decide()
            }
            return state
        }
        guard let index = awaiting.firstIndex(where: { $0.voters.contains(voter) && $0.verdicts[voter] == nil }),
              awaiting[index].epoch == verdict.epoch
        else {
            throw .protocolViolation("a verdict for epoch \(verdict.epoch), which was not asked about")
        }
        let expected = awaiting[index]
        guard (verdict.fingerprint == nil) == (expected.fingerprint == nil) else {
            throw .protocolViolation("the verdict for epoch \(verdict.epoch) \(verdict.fingerprint == nil ? "lacks" : "carries") a fingerprint")
        }
        guard verdict.firstDifference == 0 || expected.records.contains(where: { $0.sequence == verdict.firstDifference }) else {
            throw .protocolViolation("the verdict for epoch \(verdict.epoch) names output \(verdict.firstDifference), which is not of that epoch")
        }
        awaiting[index].verdicts[voter] = verdict
        decide()
        return state
    }

    /// Decides the oldest epochs whose votes are all in.
    private mutating func decide() {
        while case .comparing = state, let head = awaiting.first,
              head.voters.allSatisfy({ head.verdicts[$0] != nil || diverged[$0] != nil })
        {
            awaiting.removeFirst()
            vote(on: head)
        }
    }

    /// The vote on one epoch: every replica's version, the primary's first.
    private mutating func vote(on expectation: Expectation) {
        let mine = expectation.version
        // nil: a backup that diverged, whose version nobody shares.
        let theirs: [(Voter, Version?)] = expectation.voters.map { voter in
            (voter, expectation.verdicts[voter].map { Version(count: $0.outputCount, outputs: $0.outputs, fingerprint: $0.fingerprint) })
        }
        let total = 1 + theirs.count
        let dissenters = theirs.filter { $0.1 != mine }
        guard !dissenters.isEmpty else {
            lastAgreed = expectation.epoch
            return
        }
        let minePolls = total - dissenters.count
        if minePolls * 2 > total {
            // The primary's version won: the backups that differ are outvoted.
            for (voter, _) in dissenters {
                var what = difference(expectation, expectation.verdicts[voter])
                what.replica = "backup"
                outvoted.append(Outvote(voter: voter, disagreement: what))
                voters.removeAll { $0 == voter }
                diverged[voter] = nil
                for index in awaiting.indices {
                    awaiting[index].voters.removeAll { $0 == voter }
                    awaiting[index].verdicts[voter] = nil
                }
            }
            lastAgreed = expectation.epoch
            return
        }
        // Another version may hold a strict majority: then the primary is the one outvoted.
        let versions = theirs.compactMap(\.1)
        let majority = versions.first { version in versions.count { $0 == version } * 2 > total }
        let witness = majority.flatMap { version in theirs.first { $0.1 == version }?.0 } ?? dissenters[0].0
        var disagreement = difference(expectation, expectation.verdicts[witness])
        if majority != nil {
            disagreement.replica = "primary"
            state = .outvoted(disagreement)
        } else {
            state = .disagreed(disagreement)
        }
    }

    /// How `verdict` (nil: a divergence) differs from this replica's version of the epoch.
    private func difference(_ expected: Expectation, _ verdict: Verdict?) -> Disagreement {
        guard let verdict else {
            return Disagreement(epoch: expected.epoch, what: .execution)
        }
        if verdict.outputCount != UInt64(expected.records.count) || verdict.outputs != expected.outputs {
            let named = expected.records.first { $0.sequence == verdict.firstDifference }
            return Disagreement(epoch: expected.epoch, what: .outputs(sequence: named?.sequence, kind: named?.kind))
        }
        return Disagreement(epoch: expected.epoch, what: .fingerprint)
    }
}

/// Whether a replica can keep checkpoints for a rollback (not with the pmu epoch clock, whose
/// counter cannot be captured).
enum Checkpointing {
    case available
    case unavailable(String)

    /// The machine's state for a checkpoint; nil once checkpoints are unavailable (the first
    /// capture that cannot be made says so on `status` and turns them off for the run).
    mutating func capture(_ machine: any Machine, status: ReplicationStatus) throws -> MachineState? {
        if case .unavailable = self { return nil }
        do {
            return try machine.captureState()
        } catch let error as SnapshotError {
            // The pmu clock's counter cannot be captured: compare without rollback.
            self = .unavailable("\(error)")
            status.message("rollback unavailable (\(error)): a mismatch will stop the pair", level: .warning)
            return nil
        }
    }
}
