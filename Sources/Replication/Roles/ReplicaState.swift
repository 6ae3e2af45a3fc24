/// Where a replica is. The replicas write it to their statistics (`--stats-json`); `lockstep
/// pair`, the bench and the tests read it back as this type, never as free text.
public enum ReplicaState: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// Options checked, the machine not yet running.
    case starting
    /// A primary listening for its backup.
    case waitingForBackup = "waiting for backup"
    /// A primary with a backup.
    case replicating
    /// A primary whose backup is gone; it won the arbiter.
    case alone
    /// A backup receiving a running primary's state (live state transfer).
    case joining
    /// A backup following its primary.
    case replaying
    /// A backup that lost its primary, finishing the primary's last epoch.
    case takingOver = "taking over"
    /// A backup that won the arbiter and runs on its own.
    case live
    /// The run ended normally on this replica.
    case finished
    /// A backup that went live and then finished the run.
    case finishedLive = "finished live"
    /// The replica stopped with an error (its one line says why).
    case failed

    public var description: String { rawValue }

    /// Whether the replica has stopped (successfully or not).
    public var isFinal: Bool {
        switch self {
        case .finished, .finishedLive, .failed: true
        case .starting, .waitingForBackup, .replicating, .alone, .joining, .replaying, .takingOver, .live: false
        }
    }

    /// Whether a primary in this state has not yet been joined by a backup.
    public var awaitsBackup: Bool { self == .starting || self == .waitingForBackup }
}
