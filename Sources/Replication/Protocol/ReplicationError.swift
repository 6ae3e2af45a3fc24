import MachineCore

/// Why replication stopped a replica. Each description is one line for the user.
public enum ReplicationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The peer refused the handshake, or this side refused the peer.
    case refused(String)
    /// The channel failed before the handshake completed.
    case handshakeFailed(String)
    /// The other replica holds the arbiter: this one must stop without output.
    case lostArbiter(holder: String)
    /// The replicas are no longer in the same state.
    case divergence(epoch: UInt64, detail: String)
    /// The primary sent something that breaks the protocol's rules.
    case protocolViolation(String)
    /// The channel failed in a way that is not a peer failure (a corrupt or foreign frame).
    case channel(CloseReason)
    /// Output comparison found the replicas disagree: the output was withheld.
    case mismatch(Disagreement)
    /// A majority of backups outvoted this primary: it stepped down, its output withheld, so
    /// that one of them takes over.
    case outvoted(Disagreement)

    public var description: String {
        switch self {
        case .refused(let why): "replication refused: \(why)"
        case .handshakeFailed(let why): "replication handshake failed: \(why)"
        case .lostArbiter(let holder): "lost the arbiter to \(holder): stopping without output"
        case .divergence(let epoch, let detail): "divergence detected at epoch \(epoch): \(detail)"
        case .protocolViolation(let why): "replication protocol violation: \(why)"
        case .channel(let reason): "replication ended: \(reason)"
        case .mismatch(let disagreement): "\(disagreement); stopping the pair"
        case .outvoted(let disagreement): "\(disagreement); this primary stepped down"
        }
    }
}

/// Where a primary kills itself, for fault-injection tests: at the first boundary at or after a
/// given epoch where a phase of the output-commit protocol happens.
public struct KillPoint: Sendable, Hashable, CustomStringConvertible {
    public enum Phase: String, Sendable, CaseIterable {
        /// Right after the epoch ends, before anything about it is sent.
        case boundary
        /// After the epoch's log (values, end record) is sent, before any output is committed.
        case logged
        /// After the backup acknowledged the first output of the epoch, before it is performed.
        case acknowledged
        /// After the first output of the epoch is performed, before its completion notice.
        case performed
    }

    public var epoch: UInt64
    public var phase: Phase

    public init(epoch: UInt64, phase: Phase) {
        self.epoch = epoch
        self.phase = phase
    }

    /// Parses `N` or `N:PHASE`.
    public init?(_ text: String) {
        let parts = text.split(separator: ":", maxSplits: 1)
        guard let first = parts.first, let epoch = UInt64(first) else { return nil }
        if parts.count == 2 {
            guard let phase = Phase(rawValue: String(parts[1])) else { return nil }
            self.phase = phase
        } else {
            phase = .boundary
        }
        self.epoch = epoch
    }

    public var description: String { "\(epoch):\(phase.rawValue)" }
}

/// Settings shared by both roles.
public struct ReplicationSettings: Sendable {
    /// Failure detection: the peer is declared failed after this long without a frame.
    public var timeoutMilliseconds: Int = 1000
    /// How far behind the primary lets the backup fall before it waits (`--max-lag`).
    public var maximumLag: LagBound = .defaultBound
    /// The primary sends a full state digest every this many epochs (0: only at the end).
    public var digestInterval: UInt64 = 0
    /// Where the arbiter file lives (next to the disk image, or the guest).
    public var arbiterDirectory: String
    /// Fault injection: where the primary kills itself.
    public var killPoint: KillPoint?
    /// Output comparison (`--compare`): the primary releases an output only after the backup
    /// computed the same one.
    public var compare = false

    public init(arbiterDirectory: String) { self.arbiterDirectory = arbiterDirectory }
}
