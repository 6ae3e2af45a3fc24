/// The backup's rules, as a state machine: every message from the primary is checked against
/// where the backup is before anything is executed, so no value from the network reaches
/// arithmetic or allocation unchecked (an epoch of 2^64-1, an output out of sequence, a flood of
/// values). No socket: `BackupReplica` feeds it messages and the machine's progress.
///
/// ```
///   [joining] --transfer-pages--> .writePages (a backup that joins a running primary)
///       |     --transfer-state--> .restore --> [replaying] from the transfer's epoch
///       | connection ended --> [failed] (a backup without the state never takes over)
///   [replaying] --values/output/output-done--> (checked, kept for the epoch being received)
///       |       --epoch-end(e)--> .execute --> executed() --> [replaying] (epoch e + 1)
///       |       --finished------> .finish  --> [finished]
///       | connection ended: protocol error or refusal --> [failed]; otherwise --> [takingOver]
/// ```
public struct BackupStateMachine: Sendable, Equatable {
    public enum Phase: Sendable, Equatable {
        /// Receiving a running primary's state (live state transfer).
        case joining
        case replaying
        case finished
        case takingOver(CloseReason)
        case failed(CloseReason)
    }

    /// What the backup does with a message that passed the checks.
    public enum Action: Sendable, Equatable {
        /// Keep the values for the epoch being received.
        case log(LoggedValues)
        /// The primary's record of an output of the epoch being received.
        case announce(OutputRecord)
        /// The primary performed every output up to this sequence number.
        case performed(through: UInt64)
        /// Run the epoch to the record's progress and check it.
        case execute(EpochRecord)
        /// Run to the end and compare.
        case finish(FinishedRecord)
        /// Write the transferred pages into RAM (each page number still to be checked against it).
        case writePages(TransferPages)
        /// Check the transferred RAM, restore the machine's state, and follow from its epoch.
        case restore(TransferState)
        /// Run the epoch being received to the request's boundary now and report a verdict.
        case compare(CompareRequest)
        /// Return to the checkpoint at the start of the request's epoch.
        case rollBack(RollbackRequest)
        /// The backup now belongs to this generation of the pair's membership.
        case member(generation: UInt64)
    }

    /// Where the epoch being received is.
    public enum EpochStage: Sendable, Equatable {
        /// Its messages are arriving; it has not run.
        case receiving
        /// A `compare` ran it to this boundary: its end record (or `finished`) must name the
        /// same one, and no more values or outputs may come for it.
        case compared(progress: UInt64, stop: CompareStop)
    }

    public private(set) var phase: Phase = .replaying
    public private(set) var stage: EpochStage = .receiving
    /// The epoch being received (the next one to execute).
    public private(set) var epoch: UInt64 = 0
    /// The generation of the pair's membership this backup belongs to (0: the first).
    public private(set) var membership: UInt64 = 0
    /// The last output sequence the primary announced, and the last it reported performed.
    public private(set) var announcedThrough: UInt64 = 0
    public private(set) var performedThrough: UInt64 = 0
    /// Values and outputs announced for the epoch being received.
    public private(set) var valuesInEpoch: UInt64 = 0
    public private(set) var outputsInEpoch: UInt64 = 0
    /// Epochs executed as last reported to the primary.
    public private(set) var reportedExecuted: UInt64 = 0

    public let epochLength: UInt64
    /// The most values or outputs one epoch may carry: each needs at least one unit of progress.
    let perEpochLimit: UInt64
    /// Executed epochs are reported at least this often (a quarter of the maximum lag).
    let reportInterval: UInt64

    public init(epochLength: UInt64, maximumLag: UInt64) {
        self.epochLength = epochLength
        perEpochLimit = max(epochLength, 4096)
        reportInterval = max(1, maximumLag / 4)
    }

    /// The rules of a backup that joins a running primary: it receives the primary's state first.
    public static func joining(epochLength: UInt64, maximumLag: UInt64) -> BackupStateMachine {
        var rules = BackupStateMachine(epochLength: epochLength, maximumLag: maximumLag)
        rules.phase = .joining
        return rules
    }

    /// Checks `message` against the state; `progress` is the machine's progress now.
    public mutating func receive(_ message: Message, progress: UInt64) throws(ReplicationError) -> Action {
        if case .joining = phase {
            switch message {
            case .transferPages(let pages):
                return .writePages(pages)
            case .transferState(let state):
                epoch = state.epoch
                reportedExecuted = state.epoch
                announcedThrough = state.nextOutput - 1
                performedThrough = state.nextOutput - 1
                phase = .replaying
                return .restore(state)
            default:
                throw .protocolViolation("a \(message.type) message before the state transfer ended")
            }
        }
        guard case .replaying = phase else { throw .protocolViolation("a \(message.type) message after replication ended") }
        switch message {
        case .transferPages, .transferState:
            throw .protocolViolation("a \(message.type) message to a backup that already follows")
        case .environmentValues(let values):
            // An empty one is the primary's probe (output leases, protocol.md): it carries
            // nothing for the epoch, so it may come at any stage, after a comparison too.
            if values.count == 0 { return .log(values) }
            try checkReceiving(message)
            let n = UInt64(values.count)
            guard n <= perEpochLimit - valuesInEpoch else {
                throw .protocolViolation("epoch \(epoch) carries more than \(perEpochLimit) environment values")
            }
            valuesInEpoch += n
            return .log(values)
        case .output(let record):
            try checkReceiving(message)
            guard record.sequence == announcedThrough &+ 1, record.sequence != 0 else {
                throw .protocolViolation("output \(record.sequence) announced where output \(announcedThrough &+ 1) was expected")
            }
            guard record.epoch == epoch else {
                throw .protocolViolation("output \(record.sequence) belongs to epoch \(record.epoch), the epoch being received is \(epoch)")
            }
            guard outputsInEpoch < perEpochLimit else {
                throw .protocolViolation("epoch \(epoch) carries more than \(perEpochLimit) outputs")
            }
            announcedThrough = record.sequence
            outputsInEpoch += 1
            return .announce(record)
        case .outputDone(let sequence):
            guard sequence == performedThrough &+ 1, sequence <= announcedThrough else {
                throw .protocolViolation("output \(sequence) reported performed where output \(performedThrough &+ 1) (of \(announcedThrough) announced) was expected")
            }
            performedThrough = sequence
            return .performed(through: sequence)
        case .epochEnd(let record):
            if case .compared(_, let stop) = stage, stop != (record.stop == .idle ? .idle : .epochEnd) {
                throw .protocolViolation("epoch \(epoch) ends \(record.stop) after a comparison at a \(stop) boundary")
            }
            try check(epoch: record.epoch, progress: record.progress, machineProgress: progress, strictlyAhead: true)
            guard record.environmentCount == valuesInEpoch, record.outputCount == outputsInEpoch else {
                throw .protocolViolation("epoch \(epoch) claims \(record.environmentCount) values and \(record.outputCount) outputs, \(valuesInEpoch) and \(outputsInEpoch) were sent")
            }
            return .execute(record)
        case .finished(let record):
            if case .compared(_, let stop) = stage, stop == .epochEnd {
                throw .protocolViolation("the run finishes in epoch \(epoch) after a comparison at a budget boundary")
            }
            try check(epoch: record.epoch, progress: record.progress, machineProgress: progress, strictlyAhead: false)
            phase = .finished
            return .finish(record)
        case .compare(let request):
            guard case .receiving = stage else {
                throw .protocolViolation("a second comparison of epoch \(epoch)")
            }
            try check(epoch: request.epoch, progress: request.progress, machineProgress: progress, strictlyAhead: true)
            stage = .compared(progress: request.progress, stop: request.stop)
            return .compare(request)
        case .rollback(let request):
            guard request.epoch <= epoch else {
                throw .protocolViolation("a rollback to epoch \(request.epoch), beyond epoch \(epoch)")
            }
            return .rollBack(request)
        case .membership(let generation):
            // Generations only grow: an older one would let a dropped backup claim again.
            guard generation > membership else {
                throw .protocolViolation("membership generation \(generation) after generation \(membership)")
            }
            membership = generation
            return .member(generation: generation)
        case .executed, .verdict, .rolledBack:
            throw .protocolViolation("a \(message.type) message from the primary")
        }
    }

    /// Returns to `checkpoint`, a copy of these rules taken at the start of the rollback's epoch.
    public mutating func rolledBack(to checkpoint: BackupStateMachine) throws(ReplicationError) {
        guard case .replaying = phase, checkpoint.epoch <= epoch else {
            throw .protocolViolation("a rollback after replication ended")
        }
        // The membership is not rolled back: a generation, once learnt, stays.
        let generation = membership
        self = checkpoint
        membership = generation
    }

    /// Values and outputs belong to an epoch that has not been run for a comparison yet.
    private func checkReceiving(_ message: Message) throws(ReplicationError) {
        guard case .receiving = stage else {
            throw .protocolViolation("a \(message.type) message for epoch \(epoch) after its comparison")
        }
    }

    private func check(epoch claimed: UInt64, progress target: UInt64, machineProgress: UInt64, strictlyAhead: Bool) throws(ReplicationError) {
        guard claimed == epoch else {
            throw .protocolViolation("epoch \(claimed) ended where epoch \(epoch) was expected")
        }
        if case .compared(let compared, _) = stage {
            // The backup already ran to the compared boundary.
            guard target == compared else {
                throw .protocolViolation("epoch \(epoch) ends at \(target), its comparison ran it to \(compared)")
            }
            return
        }
        guard target >= machineProgress, !(strictlyAhead && target == machineProgress),
              target - machineProgress <= epochLength
        else {
            throw .protocolViolation("epoch \(epoch) ends at \(target), not within one epoch length (\(epochLength)) ahead of the backup at \(machineProgress)")
        }
    }

    /// The epoch was executed and checked. Returns the executed count to report now, if one is due.
    public mutating func executed() -> UInt64? {
        epoch += 1
        stage = .receiving
        valuesInEpoch = 0
        outputsInEpoch = 0
        guard epoch - reportedExecuted >= reportInterval else { return nil }
        reportedExecuted = epoch
        return epoch
    }

    /// Whether epochs were executed since the last report (while replaying).
    public var owesReport: Bool {
        guard case .replaying = phase else { return false }
        return epoch > reportedExecuted
    }

    /// The backup has caught up with the log and is about to wait: the executed count to report,
    /// if the primary has not heard it yet (it may be waiting for it).
    public mutating func reportBeforeWaiting() -> UInt64? {
        guard case .replaying = phase, epoch > reportedExecuted else { return nil }
        reportedExecuted = epoch
        return epoch
    }

    /// The connection ended. A protocol error (a frame that does not authenticate, a message out
    /// of range) means the log cannot be trusted and the primary may be alive; a refusal means
    /// the primary is alive and does not want this backup (another one joined first, or it found
    /// this one's reports wrong): no takeover either way.
    public mutating func connectionEnded(_ reason: CloseReason) {
        if case .joining = phase {
            // Without the primary's whole state there is nothing to take over with.
            phase = .failed(reason)
            return
        }
        guard case .replaying = phase else { return }
        switch reason {
        case .protocolError, .refusedByPeer: phase = .failed(reason)
        case .peerClosed, .timeout, .ioError, .closedLocally: phase = .takingOver(reason)
        }
    }

    /// A message broke the rules: replication ends without a takeover.
    public mutating func violated() {
        switch phase {
        case .replaying, .joining: phase = .failed(.closedLocally)
        case .finished, .takingOver, .failed: break
        }
    }
}
