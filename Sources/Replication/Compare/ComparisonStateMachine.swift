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
        let who = replica.map { "the \($0)" } ?? "the primary and the backup"
        switch what {
        case .outputs(let sequence?, let kind):
            let name = switch kind {
            case .console?: "console line"
            case .diskWrite?: "disk write"
            case .diskFlush?: "disk flush"
            case nil: "output"
            }
            return "output mismatch at epoch \(epoch): \(who) produced different versions of output \(sequence) (\(name)); it was withheld"
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
}

/// The primary's side of output comparison (`--compare`), as a state machine: which epochs it
/// asked the backup about, what its own outputs and fingerprint were, and the verdicts that
/// come back. No socket: `PrimaryReplica` asks, waits and performs.
///
/// ```
///   expect(e) --> [awaiting e] --verdict(e): same digests--> agreed through e
///                      |
///                      +--verdict(e): other digests, or any verdict "diverged"--> [disagreed]
/// ```
/// Outputs of epoch e are released only once `agreed(through:)` covers e. Verdicts must come
/// in the order of the requests; anything else (a verdict never asked for, a fingerprint not
/// asked for or missing) is the peer breaking the protocol.
public struct ComparisonStateMachine: Sendable, Equatable {
    /// What this replica computed for an epoch it asked about.
    public struct Expectation: Sendable, Equatable {
        public var epoch: UInt64
        public var records: [OutputRecord]
        public var outputs: StateDigest
        public var fingerprint: StateDigest?
    }

    public enum State: Sendable, Equatable {
        case comparing
        case disagreed(Disagreement)
        /// Both replicas go back to the checkpoint; the backup's reports are stale until it
        /// confirms this attempt.
        case rollingBack(RollbackRequest)
    }

    /// What to do about a disagreement.
    public enum Recovery: Sendable, Equatable {
        /// Send this rollback, restore the checkpoint, wait for the backup to confirm it.
        case rollBack(RollbackRequest)
        /// Withhold the output and stop the pair.
        case stop(Disagreement)
    }

    public private(set) var state: State = .comparing
    /// Requests not yet answered, oldest first.
    public private(set) var awaiting: [Expectation] = []
    /// The last epoch whose verdict agreed.
    public private(set) var lastAgreed: UInt64?
    /// The epoch at whose start both replicas hold a checkpoint, and whether they already went
    /// back to it once.
    public private(set) var checkpoint: UInt64?
    public private(set) var rolledBackToCheckpoint = false
    /// Rollbacks so far (the attempt number of the last one).
    public private(set) var attempts: UInt32 = 0

    public init() {}

    /// This replica asks about epoch `epoch`, whose output records and fingerprint it computed.
    /// Returns the request to send.
    public mutating func expect(epoch: UInt64, progress: UInt64, stop: CompareStop, records: [OutputRecord],
                                fingerprint: StateDigest?, ending: (RunEnding, Int32)? = nil) -> CompareRequest
    {
        awaiting.append(Expectation(epoch: epoch, records: records, outputs: OutputDigest.of(records, ending: ending),
                                    fingerprint: fingerprint))
        return CompareRequest(epoch: epoch, progress: progress, stop: stop, wantsFingerprint: fingerprint != nil)
    }

    /// Whether the verdict on `epoch` is still to come.
    public func isAwaiting(_ epoch: UInt64) -> Bool { awaiting.contains { $0.epoch == epoch } }

    /// Both replicas checkpointed at the start of `epoch` (after agreeing on the epoch before).
    public mutating func checkpointed(at epoch: UInt64) {
        checkpoint = epoch
        rolledBackToCheckpoint = false
    }

    /// The replicas disagree: go back to the checkpoint once; a disagreement after going back to
    /// the same checkpoint (no agreement since) stops the pair.
    public mutating func recover() -> Recovery? {
        guard case .disagreed(var disagreement) = state else { return nil }
        guard let checkpoint, !rolledBackToCheckpoint, attempts < UInt32.max else {
            if rolledBackToCheckpoint { disagreement.repeatedAfterRollbackTo = checkpoint }
            return .stop(disagreement)
        }
        attempts += 1
        rolledBackToCheckpoint = true
        let request = RollbackRequest(epoch: checkpoint, attempt: attempts)
        state = .rollingBack(request)
        awaiting.removeAll()
        return .rollBack(request)
    }

    /// Whether the backup's reports are to be dropped (sent before it rolled back).
    public var discardsReports: Bool {
        if case .rollingBack = state { true } else { false }
    }

    /// The backup confirmed rollback `attempt`.
    public mutating func rolledBack(attempt: UInt32) throws(ReplicationError) {
        guard case .rollingBack(let request) = state, request.attempt == attempt else {
            throw .protocolViolation("the backup confirms rollback \(attempt), which was not asked for")
        }
        state = .comparing
        lastAgreed = request.epoch == 0 ? nil : request.epoch - 1
    }

    /// A verdict arrived. `currentEpoch` is the epoch this replica is in (a backup cannot have
    /// run further). Returns the new state; throws if the verdict breaks the protocol.
    public mutating func verdictArrived(_ verdict: Verdict, currentEpoch: UInt64) throws(ReplicationError) -> State {
        guard case .comparing = state else { return state }
        if verdict.outcome == .diverged {
            guard verdict.epoch <= currentEpoch, verdict.epoch >= (lastAgreed.map { $0 &+ 1 } ?? 0) else {
                throw .protocolViolation("a divergence verdict for epoch \(verdict.epoch) at epoch \(currentEpoch)")
            }
            state = .disagreed(Disagreement(epoch: verdict.epoch, what: .execution))
            return state
        }
        guard let expected = awaiting.first, expected.epoch == verdict.epoch else {
            throw .protocolViolation("a verdict for epoch \(verdict.epoch), which was not asked about")
        }
        guard (verdict.fingerprint == nil) == (expected.fingerprint == nil) else {
            throw .protocolViolation("the verdict for epoch \(verdict.epoch) \(verdict.fingerprint == nil ? "lacks" : "carries") a fingerprint")
        }
        guard verdict.firstDifference == 0 || expected.records.contains(where: { $0.sequence == verdict.firstDifference }) else {
            throw .protocolViolation("the verdict for epoch \(verdict.epoch) names output \(verdict.firstDifference), which is not of that epoch")
        }
        awaiting.removeFirst()
        if verdict.outputCount != UInt64(expected.records.count) || verdict.outputs != expected.outputs {
            let named = expected.records.first { $0.sequence == verdict.firstDifference }
            state = .disagreed(Disagreement(epoch: verdict.epoch, what: .outputs(sequence: named?.sequence, kind: named?.kind)))
        } else if verdict.fingerprint != expected.fingerprint {
            state = .disagreed(Disagreement(epoch: verdict.epoch, what: .fingerprint))
        } else {
            lastAgreed = verdict.epoch
        }
        return state
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
