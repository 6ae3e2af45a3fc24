import MachineCore

/// How the epoch a comparison covers ended at the primary.
public enum CompareStop: UInt8, Equatable, Sendable {
    /// The epoch's budget was spent.
    case epochEnd = 0
    /// The guest idles.
    case idle = 1
    /// The guest stopped (exited, crashed): the run's last epoch, a `finished` record follows.
    case ended = 2
}

/// `compare` (P→B): run the epoch being received to `progress` now, and report what its outputs
/// (announced before this message) and, if asked, its state came to. Format version 1:
/// `u8` version, `u64` epoch, `u64` progress, `u8` stop, `bool` fingerprint wanted.
public struct CompareRequest: Equatable, Sendable {
    public static let formatVersion: UInt8 = 1
    public static let payloadSize = 1 + 8 + 8 + 1 + 1

    public var epoch: UInt64
    public var progress: UInt64
    public var stop: CompareStop
    /// Whether the verdict must carry the backup's state fingerprint (`--digest-every`).
    public var wantsFingerprint: Bool

    public init(epoch: UInt64, progress: UInt64, stop: CompareStop, wantsFingerprint: Bool) {
        self.epoch = epoch
        self.progress = progress
        self.stop = stop
        self.wantsFingerprint = wantsFingerprint
    }
}

/// What the backup found when it ran the epoch a `compare` asked about.
public enum VerdictOutcome: UInt8, Equatable, Sendable {
    /// It ran the epoch to the same boundary; its own output digest (and fingerprint) follow.
    case executed = 0
    /// Its execution departed from the primary's log before the boundary (another stop, more or
    /// fewer environment instructions or outputs): nothing to compare, the replicas disagree.
    case diverged = 1
}

/// `verdict` (B→P): the backup's own digest of the outputs of an epoch, computed from what its
/// guest produced, never copied from the primary's records. Format version 1: `u8` version,
/// `u64` epoch, `u8` outcome, `u64` output count, `digest` outputs, `u64` first differing output
/// sequence (0: none), `bool` + `digest` fingerprint. 91 bytes at most.
public struct Verdict: Equatable, Sendable {
    public static let formatVersion: UInt8 = 1

    public var epoch: UInt64
    public var outcome: VerdictOutcome
    /// How many output records the backup's epoch produced.
    public var outputCount: UInt64
    /// `OutputDigest` of the backup's own records of the epoch.
    public var outputs: StateDigest
    /// The first of its records that differs from the primary's announcement (a diagnostic: the
    /// primary decides from the digests); 0 if none does.
    public var firstDifference: UInt64
    /// The backup's state digest at the boundary, when asked for.
    public var fingerprint: StateDigest?

    public init(epoch: UInt64, outcome: VerdictOutcome, outputCount: UInt64, outputs: StateDigest,
                firstDifference: UInt64, fingerprint: StateDigest?)
    {
        self.epoch = epoch
        self.outcome = outcome
        self.outputCount = outputCount
        self.outputs = outputs
        self.firstDifference = firstDifference
        self.fingerprint = fingerprint
    }

    /// The verdict of a backup whose execution left the log during `epoch`.
    public static func diverged(epoch: UInt64) -> Verdict {
        Verdict(epoch: epoch, outcome: .diverged, outputCount: 0, outputs: StateDigest(bytes: Array(repeating: 0, count: 32)),
                firstDifference: 0, fingerprint: nil)
    }
}

/// The digest both sides compute over an epoch's output records: SHA-256 of each record's
/// sequence (`u64`), kind (`u8`) and content digest, in order; for the run's last epoch, then
/// how the guest ended (`u8` ending, `i32` status): the exit status is an output too.
public enum OutputDigest {
    public static func of(_ records: [OutputRecord], ending: (RunEnding, Int32)? = nil) -> StateDigest {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(records.count * 41 + 5)
        for record in records {
            withUnsafeBytes(of: record.sequence.littleEndian) { bytes += $0 }
            bytes.append(record.kind.rawValue)
            bytes += record.digest.bytes
        }
        if let (how, status) = ending {
            bytes.append(how.rawValue)
            withUnsafeBytes(of: status.littleEndian) { bytes += $0 }
        }
        return StateDigest.of(bytes)
    }

    /// How a stopped machine ended, as the digest counts it (nil: it did not stop).
    public static func ending(_ stop: MachineStop) -> (RunEnding, Int32)? {
        switch stop {
        case .exited(let status): (.exited, status)
        case .crashed: (.crashed, 0)
        case .epochEnd, .idle: nil
        }
    }
}

/// `rollback` (P→B): the replicas disagreed; both return to the checkpoint at the start of
/// `epoch` (the boundary after the last epoch whose outputs they agreed on) and run again.
/// Format version 1: `u8` version, `u64` epoch, `u32` attempt (from 1, one more per rollback).
public struct RollbackRequest: Equatable, Sendable {
    public static let formatVersion: UInt8 = 1
    public static let payloadSize = 1 + 8 + 4

    public var epoch: UInt64
    public var attempt: UInt32

    public init(epoch: UInt64, attempt: UInt32) {
        self.epoch = epoch
        self.attempt = attempt
    }
}
