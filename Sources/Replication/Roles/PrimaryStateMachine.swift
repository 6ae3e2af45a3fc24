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
/// An output is performed only when the backup holds its record (receipt) and the primary is
/// still entitled (arbiter unclaimed, backup heard from within half the timeout), or when the
/// primary has won the arbiter.
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
    }

    public private(set) var peer: Peer = .backup
    /// Epochs the backup has reported executed.
    public private(set) var backupExecuted: UInt64 = 0
    /// The backup must be heard from within this many nanoseconds before an output is performed.
    let entitlementSilence: UInt64
    let maximumLag: UInt64

    /// - Parameter peer: `.backup` for a primary that starts with its backups; `.alone` for a
    ///   replica that leads without one (a backup that went live and takes on new backups).
    public init(timeoutMilliseconds: Int, maximumLag: UInt64, peer: Peer = .backup) {
        entitlementSilence = UInt64(timeoutMilliseconds) * 1_000_000 / 2
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

    /// The backup holds the record. `silence` is how long (ns) since the backup was last heard
    /// from; `claimedBy` who holds the arbiter, if anyone does.
    public mutating func receiptArrived(silence: UInt64, claimedBy holder: String?) -> CommitStep {
        if let holder {
            peer = .deposed(holder: holder)
            return .stop(holder: holder)
        }
        guard case .backup = peer else { return commitAgain() }
        if silence > entitlementSilence {
            peer = .claiming(.timeout(milliseconds: Int(entitlementSilence * 2 / 1_000_000)))
            return .claimArbiter
        }
        return .perform
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
