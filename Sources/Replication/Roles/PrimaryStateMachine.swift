/// The primary's rules, as a state machine: events in (an output to commit, the backup's receipt,
/// its executed epochs, its loss, the arbiter's verdict), what to do out. No socket, no clock, no
/// file: `PrimaryReplica` performs the actions and feeds back what happened.
///
/// ```
///                 last backup lost             arbiter won
///   [backup] ----------------------> [claiming] -----------> [alone]
///       ^                                |                      |
///       +------------------------------- | ---- backup joined --+
///       |                                |
///       |                                | arbiter lost
///       |                                v
///       +--- arbiter claimed ------> [deposed]: nothing more is performed
/// ```
/// An output is performed only when the backup holds its record and the primary is still
/// entitled, or when the primary has won the arbiter. Entitled means the output lease holds:
/// the backup's receipt arrived within `outputLease` of when the record (or a later probe) was
/// SENT, by the primary's own monotonic clock, and the arbiter is not claimed by another. A
/// receipt that came later (the primary was frozen, or the link is slow) is not trusted: with
/// etcd the primary's own lease on the arbiter still entitles it; otherwise it sends a probe and
/// performs only once a receipt of the probe comes within the lease (see "Output leases" in
/// docs/protocol.md).
public struct PrimaryStateMachine: Sendable, Equatable {
    /// Who the primary replicates to.
    public enum Peer: Sendable, Equatable {
        /// A connected backup: everything is logged to it.
        case backup
        /// The backup is gone (why); the arbiter must be won before anything becomes visible.
        case claiming(CloseReason)
        /// The backup is gone and this replica won the arbiter: it runs alone.
        case alone(CloseReason)
        /// The arbiter belongs to another replica (the backup went live): stop without output.
        case deposed(holder: String)
    }

    /// What the primary does next about the output it is committing.
    public enum CommitStep: Sendable, Equatable {
        /// Log the record to the backup, flush, and wait for the receipt covering it.
        case log(OutputRecord)
        /// Make the output visible.
        case perform
        /// Test-and-set the arbiter, then report the verdict.
        case claimArbiter
        /// Stop without output: the arbiter belongs to `holder`.
        case stop(holder: String)
        /// The receipt came outside the output lease: send a probe, wait for its receipt, and
        /// report it with `receiptArrived` again (measured from the probe's sending).
        case probe
    }

    /// What the arbiter says now, without waiting for anyone.
    public enum ArbiterView: Sendable, Equatable {
        /// A lease on the arbiter holds by this replica's clock (etcd): the backup cannot go
        /// live before it expires.
        case leased
        /// Nobody holds the arbiter, as far as a look shows (a file's stat): no lease.
        case unclaimed
        /// This replica's arbiter lease lapsed by its own clock (etcd slow or unreachable).
        case lapsed
        /// Another replica holds it.
        case claimed(holder: String)
    }

    public private(set) var peer: Peer = .backup
    /// Epochs the backup has reported executed.
    public private(set) var backupExecuted: UInt64 = 0
    /// The output lease (ns): a receipt counts only if it arrived within this long of when what
    /// it covers was sent. Half the backup's failure timeout: the backup, which held the record
    /// at or after it was sent, cannot declare the primary failed for a whole timeout after
    /// that, so the other half is the margin for the moment between the check and the write
    /// and for the two clocks' rates.
    public let outputLease: UInt64
    let maximumLag: UInt64

    /// - Parameter peer: `.backup` for a primary that starts with its backups; `.alone` for a
    ///   replica that leads without one (a backup that went live and takes on new backups).
    public init(timeoutMilliseconds: Int, maximumLag: UInt64, peer: Peer = .backup) {
        outputLease = UInt64(timeoutMilliseconds) * 1_000_000 / 2
        self.maximumLag = max(1, maximumLag)
        self.peer = peer
    }

    /// A backup finished joining (live state transfer) at epoch `epoch`: a primary that ran alone
    /// logs again. Only an `.alone` primary changes; one that lost the arbiter never does.
    public mutating func backupJoined(at epoch: UInt64) {
        if case .alone = peer {
            peer = .backup
            backupExecuted = epoch
        }
    }

    /// Whether environment values, records and outputs are logged to a backup.
    public var logs: Bool { peer == .backup }

    /// An output is ready to be committed.
    public func commit(_ record: OutputRecord) -> CommitStep {
        switch peer {
        case .backup: .log(record)
        case .claiming: .claimArbiter
        case .alone: .perform
        case .deposed(let holder): .stop(holder: holder)
        }
    }

    /// The backup holds what was sent `sinceSent` ns ago (the output's record, or a probe
    /// sent for it); `arbiter` is what the arbiter says now.
    public mutating func receiptArrived(sinceSent: UInt64, arbiter: ArbiterView) -> CommitStep {
        if case .claimed(let holder) = arbiter {
            peer = .deposed(holder: holder)
            return .stop(holder: holder)
        }
        guard case .backup = peer else { return commitAgain() }
        if sinceSent <= outputLease || arbiter == .leased { return .perform }
        return .probe
    }

    /// The connection to the backup ended (noticed while waiting, or at a flush).
    public mutating func backupLost(_ reason: CloseReason) -> CommitStep {
        if case .backup = peer { peer = .claiming(reason) }
        return commitAgain()
    }

    /// The arbiter's verdict after `.claimArbiter`.
    public mutating func arbiterDecided(won: Bool, holder: String) -> CommitStep {
        guard case .claiming(let reason) = peer else { return commitAgain() }
        peer = won ? .alone(reason) : .deposed(holder: holder)
        return commitAgain()
    }

    /// What an output waiting in the current state must do.
    private func commitAgain() -> CommitStep {
        switch peer {
        case .backup, .alone: .perform
        case .claiming: .claimArbiter
        case .deposed(let holder): .stop(holder: holder)
        }
    }

    /// The slowest backup's executed epochs (reports only ever move forward, and dropping the
    /// slowest backup only raises the minimum).
    public mutating func backupExecuted(_ epochs: UInt64) {
        backupExecuted = max(backupExecuted, epochs)
    }

    /// Both replicas went back to the start of `epoch` (output comparison's rollback).
    public mutating func rolledBack(to epoch: UInt64) {
        backupExecuted = min(backupExecuted, epoch)
    }

    /// After epoch `epoch - 1` ended: the number of epochs the backup must have executed before
    /// the primary goes on, if it lags too far behind.
    public func lagTarget(epoch: UInt64) -> UInt64? {
        guard case .backup = peer, epoch > maximumLag, epoch - maximumLag > backupExecuted else { return nil }
        return epoch - maximumLag
    }
}
