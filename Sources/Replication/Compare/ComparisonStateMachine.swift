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
    }

    public var epoch: UInt64
    public var what: What
    /// Which replica differs from the others, when a vote could tell (with one backup: nil).
    public var replica: String?

    public init(epoch: UInt64, what: What, replica: String? = nil) {
        self.epoch = epoch
        self.what = what
        self.replica = replica
    }

    public var description: String {
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
    }

    public private(set) var state: State = .comparing
    /// Requests not yet answered, oldest first.
    public private(set) var awaiting: [Expectation] = []
    /// The last epoch whose verdict agreed.
    public private(set) var lastAgreed: UInt64?

    public init() {}

    /// This replica asks about epoch `epoch`, whose output records and fingerprint it computed.
    /// Returns the request to send.
    public mutating func expect(epoch: UInt64, progress: UInt64, stop: CompareStop, records: [OutputRecord],
                                fingerprint: StateDigest?) -> CompareRequest
    {
        awaiting.append(Expectation(epoch: epoch, records: records, outputs: OutputDigest.of(records),
                                    fingerprint: fingerprint))
        return CompareRequest(epoch: epoch, progress: progress, stop: stop, wantsFingerprint: fingerprint != nil)
    }

    /// Whether the verdict on `epoch` is still to come.
    public func isAwaiting(_ epoch: UInt64) -> Bool { awaiting.contains { $0.epoch == epoch } }

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
