import Foundation
import Hypervisor
import Logging
import MachineCore
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Whether the primary's environment logs what the guest sees to a backup.
enum Recording: Sendable {
    case toBackup
    case off
}

/// The primary's environment: environment instructions use the machine's values and are encoded
/// straight into the batch for the backup (P0); outputs are held as records until committed;
/// disk reads are performed at once and their completions, like console input, wait for the
/// next boundary (P1).
public final class PrimaryEnvironment: SessionEnvironment {
    public let host: HostIO
    /// The batch being built (values, records, notices), sent at the next flush.
    var writer = MessageWriter()
    var recording = Recording.toBackup
    /// Environment values the epoch has used so far.
    private(set) var valueCount: UInt64 = 0
    var outputs = OutputLog()
    /// The epoch being executed.
    var epoch: UInt64 = 0

    public init(host: HostIO) { self.host = host }

    public func environmentValue(_ read: EnvironmentRead, proposed: UInt64) throws(EnvironmentError)
        -> UInt64
    {
        if recording == .toBackup { writer.value(read, proposed) }
        valueCount += 1
        return proposed
    }

    public func consoleOutput(_ bytes: [UInt8]) { outputs.console(bytes, epoch: epoch) }

    public func submitBlockRequest(_ request: BlockRequest) {
        switch request.kind {
        case .read, .getID:
            host.perform(request)
        case .write, .flush:
            outputs.disk(request, epoch: epoch)
        }
    }

    /// Makes an output visible.
    func perform(_ output: PendingOutput) {
        switch output.action {
        case .console(let bytes):
            host.console.write(bytes, sequence: output.record.sequence)
        case .disk(let request):
            host.perform(request)
        }
    }

    /// How many values the epoch used; the count starts again for the next one.
    func takeValueCount() -> UInt64 {
        defer { valueCount = 0 }
        return valueCount
    }
}

/// One backup of a primary: its connection, the parser of its reports, and where it is in its
/// own protocol (`BackupPeerStateMachine`).
final class BackupPeer {
    /// Its number among this primary's backups (its vote in output comparison).
    let id: Int
    let connection: ReplicationConnection
    var parser = MessageParser(receiver: .primary)
    var rules: BackupPeerStateMachine
    /// While its state is transferred: the pages written since its current round began.
    var consumer: DirtyPageTracker.Consumer?
    /// When its transfer began (ns, uptime), and the bytes sent for it.
    var transferStarted: UInt64 = 0
    var transferBytes: UInt64 = 0
    /// The epoch from which it follows, if it joined by state transfer (it holds no checkpoint
    /// before that one).
    var joinedAt: UInt64?

    init(id: Int, connection: ReplicationConnection, rules: BackupPeerStateMachine) {
        self.id = id
        self.connection = connection
        self.rules = rules
    }
}

/// The primary's side of the protocol: runs the guest, logs every nondeterministic input to its
/// backups, and lets an output become visible only after every backup holds the log up to it
/// (output commit). The primary-wide rules are `PrimaryStateMachine`'s, each backup's
/// `BackupPeerStateMachine`'s; this class performs them. With a `BackupIntake` it also takes on
/// new backups at boundaries (live state transfer), up to the intake's number. Runs on the
/// calling thread, which must be a dedicated thread.
final class PrimaryReplica {
    let machine: any Machine
    let environment: PrimaryEnvironment
    private(set) var arbiter: Arbiter
    let context: ReplicaContext
    /// Copied out of the context: read several times per epoch.
    private let watchdog: MachineWatchdog
    private let status: ReplicationStatus
    private var rules: PrimaryStateMachine
    /// Every backup: following ones and joining ones, in the order they came.
    private var peers: [BackupPeer]
    private var epoch: UInt64
    /// Console input bytes given to the guest so far (a joining backup learns it).
    private var consoleBytesDelivered: UInt64
    /// The pair's session now (a replica that leads a new pair after a failover makes a new one).
    private var session: [UInt8]
    /// Where new backups join, once open.
    private var listener: ReplicationListener?
    /// When the batch in the writer was first seen non-empty at a boundary.
    private var batchStartedAt: UInt64?
    /// When a boundary last looked for backups waiting to join (ns, uptime).
    private var listenerCheckedAt: UInt64 = 0
    private let timing: BoundaryTiming
    private var transferWriter = MessageWriter(capacity: 1 << 20)
    private let logger = Logger(label: "lockstep.primary")
    /// The backup's lag in guest time, and the bound on it (`--max-lag` as a duration).
    private var lagMeter = LagMeter()
    private let lagBound: UInt64?
    private let batchTiming: BatchTiming
    /// The soft error still to inject into this replica.
    private var softError: SoftError?
    /// Output comparison (`--compare`): what was asked of the backup, and its verdicts.
    private var comparison: ComparisonStateMachine
    /// The number the next backup that joins gets.
    private var nextPeerID: Int
    /// The generation of the pair's membership: one more each time a following backup is
    /// dropped while others remain (the arbiter then accepts claims only from the others).
    private var membership: UInt64 = 0
    /// How long after its batch was sent the last comparison's verdict arrived (nanoseconds).
    private var comparedWithin: UInt64?
    /// Output comparison's checkpoint (the start of the epoch after the last agreed output),
    /// the epoch whose start is to be checkpointed next, and whether console input was
    /// delivered since the checkpoint (it could not be delivered again: no rollback then).
    private struct Checkpoint {
        let ram: RAMCheckpoint
        var state: MachineState
        var epoch: UInt64
        var outputs: OutputLog
        var consoleBytesDelivered: UInt64
    }
    private var checkpoint: Checkpoint?
    /// Whether this machine can be checkpointed at all.
    private var checkpointing = Checkpointing.available
    private var checkpointDue: UInt64?
    /// The console input delivered since the checkpoint (kept only with a checkpoint): a
    /// rollback delivers it again.
    private var inputSinceCheckpoint: [UInt8] = []

    /// Pre-copy: at most this many messages of pages per boundary, sent only while the
    /// connection's queue holds less than `transferQueueBytes`, so the guest never waits for the
    /// link and heartbeats and the log go out between them.
    static let transferMessagesPerBoundary = 4
    static let transferQueueBytes = 2 << 20

    /// - Parameters:
    ///   - backups: connections of backups that replicate from boot (none: the replica leads
    ///     alone, as a backup that went live does, until a backup joins).
    ///   - start: where the run stands (a backup that went live goes on from its own).
    init(machine: any Machine, environment: PrimaryEnvironment, backups: [ReplicationConnection], arbiter: Arbiter,
         context: ReplicaContext, start: Start = Start())
    {
        self.machine = machine
        self.environment = environment
        self.arbiter = arbiter
        self.context = context
        watchdog = context.watchdog
        status = context.status
        peers = backups.enumerated().map { BackupPeer(id: $0.offset, connection: $0.element, rules: .following()) }
        nextPeerID = backups.count
        comparison = ComparisonStateMachine(voters: Array(backups.indices))
        rules = PrimaryStateMachine(timeoutMilliseconds: context.settings.timeoutMilliseconds,
                                    maximumLag: context.settings.maximumLag.epochLimit,
                                    peer: backups.isEmpty ? .alone(start.aloneReason) : .backup)
        if case .duration(let ns) = context.settings.maximumLag { lagBound = ns } else { lagBound = nil }
        batchTiming = BatchTiming(context.settings.maximumLag)
        timing = BoundaryTiming(mode: context.setup.options.clockMode)
        epoch = start.epoch
        consoleBytesDelivered = start.consoleBytesDelivered
        session = context.intake?.session ?? []
        if backups.isEmpty { environment.recording = .off }
        softError = switch start.origin {
        case .primary: context.softError.flatMap { $0.replica == .primary ? $0 : nil }
        case .successor(let pending): pending
        }
    }

    /// Where a primary's run stands when it starts.
    struct Start {
        var epoch: UInt64 = 0
        var consoleBytesDelivered: UInt64 = 0
        /// Why a replica that starts without backups is alone.
        var aloneReason: CloseReason = .closedLocally
        var origin: Origin = .primary
    }

    /// Which replica this is, for a soft error injected into one replica (`--inject-fault`).
    enum Origin {
        /// The replica started as the primary: it takes the primary's fault.
        case primary
        /// A backup that took over and leads: it keeps its own fault still to come (a fault
        /// meant for the primary stays with the primary, dead or not).
        case successor(pendingFault: SoftError?)
    }

    private var following: [BackupPeer] { peers.filter { $0.rules.isFollowing } }

    /// Runs the guest to its end. Throws `ReplicationError.lostArbiter` if a backup took over.
    ///
    /// At each boundary the epoch's outputs are committed before the primary decides the
    /// boundary's time, which may mean waiting while the guest idles: an output (a prompt, a disk
    /// write the guest waits for) never waits for later input.
    func run() throws -> RunOutcome {
        watchdog.enter(.host)
        status.attach(following.first?.connection)
        status.set(state: rules.logs ? .replicating : (status.state == .live ? .live : .alone))
        status.backups(following.count)
        if let intake = context.intake {
            // A replica that starts alone has won its pair's arbiter (a backup gone live).
            if !rules.logs { try leadNewPair() }
            listener = try intake.listener(session)
        }
        if context.settings.compare, rules.logs { try takeCheckpoint() }
        while true {
            do {
                if let outcome = try runEpoch() { return outcome }
            } catch is RollbackPerformed {
                continue
            }
        }
    }

    /// Runs one epoch and its boundary; the outcome once the guest stopped.
    private func runEpoch() throws -> RunOutcome? {
        let epochLength = context.setup.epochLength
        do {
            environment.epoch = epoch
            softError = try context.injectSoftError(softError, into: machine, epoch: epoch)
            watchdog.enter(.guest)
            let started = NIODeadline.now().uptimeNanoseconds
            let stop = try machine.run(budget: epochLength)
            let ended = NIODeadline.now().uptimeNanoseconds
            watchdog.enter(.host)
            lagMeter.ended(count: epoch + 1, ran: ended &- started)
            fault(.boundary)
            switch stop {
            case .exited, .crashed:
                return try finish(stop)
            case .epochEnd, .idle:
                break
            }
            let environmentCount = environment.takeValueCount()
            environment.outputs.endEpoch(epoch, idle: stop == .idle)
            let outputs = environment.outputs.take()
            try commit(outputs, stop: stop == .idle ? .idle : .epochEnd)
            if stop == .idle && (timing.mode == .host || machine.nextTimerDeadline == nil) {
                // The decision may wait for input: the backup gets the log first.
                try flush()
                watchdog.enter(.waitingForInput)
            }
            let decision = stop == .idle ? idleDecision() : timing.decide(after: stop, machine: machine, environment: environment)
            watchdog.enter(.host)
            let time: VirtualTime
            switch decision {
            case .at(let t):
                time = t
            case .waitsForever:
                logger.notice("the guest waits for console input, and input is closed: stopping")
                return try finish(.idle, inputClosed: true)
            }
            let events = environment.host.takeEvents(consoleRoom: machine.consoleInputRoom, byteLimit: MessageLimits.eventBytes)
            if rules.logs {
                // With --compare the backup reports its fingerprint instead (in its verdict).
                let digest = fingerprintDue && !context.settings.compare ? try machine.stateDigest() : nil
                environment.writer.epochEnd(EpochRecord(
                    epoch: epoch, progress: machine.progress, stop: stop == .idle ? .idle : .epochEnd, time: time,
                    events: events, environmentCount: environmentCount, outputCount: UInt64(outputs.count),
                    stateDigest: digest))
                // With fault injection, "logged" means sent.
                if context.faults != nil { try flush() }
            }
            fault(.logged)
            try machine.applyBoundary(time: time, events: events)
            for case .consoleInput(let bytes) in events {
                consoleBytesDelivered += UInt64(bytes.count)
                if checkpoint != nil { inputSinceCheckpoint += bytes }
            }
            epoch += 1
            // Both replicas checkpoint at the start of the epoch after one whose outputs they
            // agreed on (the backup: after applying that epoch's end record).
            if checkpointDue == epoch, rules.logs { try takeCheckpoint() }
            status.progress(epoch: epoch, lag: rules.logs ? epoch.saturatingSubtract(rules.backupExecuted) : 0,
                            lagNanoseconds: rules.logs ? lagMeter.lag(count: epoch, executed: rules.backupExecuted) : 0)
            try flushIfDue(now: ended)
            if lagging { try throttle() }
            // An idle boundary may have waited for input since `ended`.
            try serveBackups(now: stop == .idle ? NIODeadline.now().uptimeNanoseconds : ended)
            return nil
        }
    }

    /// Whether the epoch being ended carries a state fingerprint (`--digest-every`).
    private var fingerprintDue: Bool {
        let interval = context.settings.digestInterval
        return interval > 0 && (epoch + 1) % interval == 0
    }

    // MARK: Rollback (output comparison with one backup)

    /// Thrown once both replicas are back at the checkpoint: the run loop starts over from it.
    private struct RollbackPerformed: Error {}

    /// Whether `peer`'s reports are compared (`--compare`: every following backup votes).
    private func compares(_ peer: BackupPeer) -> Bool {
        context.settings.compare && peer.rules.isFollowing
    }

    /// The following backup with id `voter`.
    private func peer(_ voter: ComparisonStateMachine.Voter) -> BackupPeer? {
        following.first { $0.id == voter }
    }

    /// Saves this replica's state at the start of `epoch`: the machine, its RAM (incrementally)
    /// and the output numbering.
    private func takeCheckpoint() throws {
        guard let state = try checkpointing.capture(machine, status: status) else { return }
        if let ram = checkpoint?.ram { try ram.save() }
        checkpoint = Checkpoint(ram: try checkpoint?.ram ?? RAMCheckpoint(memory: machine.memory, tracker: machine.dirtyPages),
                                state: state, epoch: epoch, outputs: environment.outputs,
                                consoleBytesDelivered: consoleBytesDelivered)
        inputSinceCheckpoint.removeAll()
        checkpointDue = nil
        comparison.checkpointed(at: epoch)
    }

    /// The comparison found the replicas disagree: go back to the checkpoint once (both
    /// replicas), or stop the pair, withholding the output; outvoted by a majority of backups,
    /// step down.
    private func checkComparison() throws {
        for outvote in comparison.takeOutvoted() {
            guard let peer = peer(outvote.voter) else { continue }
            var disagreement = outvote.disagreement
            disagreement.replica = "backup at \(peer.connection.remoteAddress)"
            try drop(peer, refusal: "outvoted: \(disagreement)",
                     message: "\(disagreement); the other replicas agree: dropped it, a replacement joins by state transfer")
        }
        let disagreement: Disagreement
        switch comparison.state {
        case .outvoted(let d), .disagreed(let d): disagreement = d
        case .comparing, .rollingBack: return
        }
        let recovery: ComparisonStateMachine.Recovery? = if case .disagreed = comparison.state, checkpoint == nil {
            .stop(disagreement)
        } else {
            comparison.recover()
        }
        switch recovery {
        case .stepDown(let outvoted)?:
            // The backups hold the majority's version of the withheld outputs and the state
            // that produced them: they see their primary gone (no refusal: a failure, as a
            // crash), one wins the arbiter, performs them and leads; re-protection replaces
            // this replica by state transfer. Nothing this primary computed since the last
            // agreement left the pair.
            status.message("\(outvoted): stepping down; a backup of the majority takes over", level: .warning)
            for peer in peers { peer.connection.close() }
            throw ReplicationError.outvoted(outvoted)
        case .stop(let final)?:
            for peer in peers { peer.connection.close(refusal: final.description) }
            throw ReplicationError.mismatch(final)
        case .rollBack(let request)?:
            try rollBack(request, because: disagreement)
        case nil:
            return
        }
    }

    private func rollBack(_ request: RollbackRequest, because disagreement: Disagreement) throws {
        guard let checkpoint, checkpoint.epoch == request.epoch else {
            throw ReplicationError.mismatch(disagreement)
        }
        status.message("\(disagreement); rolling \(following.count == 1 ? "both replicas" : "every replica") back to epoch \(request.epoch) and running again", level: .warning)
        // What the batch holds belongs to the epochs being undone.
        _ = environment.writer.take()
        // A backup that joined after the checkpoint holds none to go back to: re-protection
        // replaces it.
        for peer in following where (peer.joinedAt ?? 0) > request.epoch {
            try drop(peer, refusal: "a rollback to epoch \(request.epoch), before this backup joined",
                     message: "dropped the backup at \(peer.connection.remoteAddress): it joined at epoch \(peer.joinedAt ?? 0), after the checkpoint")
        }
        environment.writer.rollback(request)
        let pages = try checkpoint.ram.restore()
        try machine.restoreState(checkpoint.state)
        logger.debug("rollback \(request.attempt): \(pages) pages written back")
        environment.outputs = checkpoint.outputs
        _ = environment.takeValueCount()
        // The guest takes the input it was given since the checkpoint again, at the boundaries
        // its re-execution reaches (the backup follows the new log).
        environment.host.rollBack(redelivering: inputSinceCheckpoint)
        inputSinceCheckpoint.removeAll()
        epoch = checkpoint.epoch
        environment.epoch = epoch
        consoleBytesDelivered = checkpoint.consoleBytesDelivered
        checkpointDue = nil
        rules.rolledBack(to: epoch)
        guard try flush() != nil else { throw RollbackPerformed() }
        while case .rollingBack(_, let pending) = comparison.state, rules.logs,
              let peer = following.first(where: { pending.contains($0.id) }) {
            try readReports(from: peer, wait: true)
        }
        throw RollbackPerformed()
    }

    /// Output comparison: announces the epoch's outputs and asks the backup to run the epoch and
    /// report its own digest of them (and its fingerprint, when one is due); with outputs to
    /// release, waits for the verdict. Returns whether the outputs were compared and agreed (they
    /// are then logged already); rolls back or throws `mismatch` if the replicas disagree.
    private func compare(_ outputs: [PendingOutput], stop: CompareStop, ending: MachineStop?) throws -> Bool {
        guard rules.logs, context.settings.compare, !following.isEmpty else { return false }
        // Outputs are released only with the state fingerprints equal too: a checkpoint is
        // taken only of a state both replicas verified, so a rollback never returns to a state
        // a fault had already corrupted.
        let fingerprint = (fingerprintDue || !outputs.isEmpty) && stop != .ended
        // The run's last epoch is always compared: how the guest ended is an output too.
        guard !outputs.isEmpty || fingerprint || stop == .ended else { return false }
        for output in outputs { environment.writer.output(output.record) }
        environment.writer.compare(comparison.expect(
            epoch: epoch, progress: machine.progress, stop: stop, records: outputs.map(\.record),
            fingerprint: fingerprint ? try machine.stateDigest() : nil,
            ending: stop == .ended ? ending.flatMap(OutputDigest.ending) : nil))
        guard !outputs.isEmpty || stop == .ended else { return false }
        let sentAt = ContinuousClock.now
        comparedWithin = nil
        guard try flush() != nil else { return false }
        while comparison.isAwaiting(epoch), rules.logs, let voter = comparison.voteDue, let peer = peer(voter) {
            try readReports(from: peer, wait: true)
        }
        try checkComparison()
        // The verdict is the backup's answer to this batch, sent after it ran the epoch: it
        // renews the output lease as a receipt does, measured from the send.
        comparedWithin = Self.nanoseconds(ContinuousClock.now - sentAt)
        if stop != .ended { checkpointDue = epoch + 1 }
        return rules.logs
    }

    /// The boundary after an idle epoch. While a backup's state is being transferred, or one is
    /// waiting to join, the wait is cut short, so the transfer goes on while the guest waits for
    /// input: an idle boundary with no events is as good as any (its time is logged).
    private func idleDecision() -> BoundaryDecision {
        guard context.intake != nil else { return timing.decide(after: .idle, machine: machine, environment: environment) }
        let host = environment.host
        while !host.hasPendingEvents, !host.console.hasInput, !host.console.isExhausted {
            if peers.contains(where: { !$0.rules.isFollowing }) || (listener?.hasPending ?? false) {
                return .at(timing.time(for: machine))
            }
            var until = Date(timeIntervalSinceNow: 0.02)
            if let deadline = machine.nextTimerDeadline {
                if timing.mode == .deterministic { break }
                guard timing.host.now < deadline else { break }
                until = min(until, timing.host.date(at: deadline))
            }
            _ = host.console.waitForInput(until: until)
        }
        return timing.decide(after: .idle, machine: machine, environment: environment)
    }

    // MARK: Batches

    /// Sends the batch if it is large or old enough.
    private func flushIfDue(now: UInt64) throws {
        guard rules.logs, !environment.writer.isEmpty else { return }
        let started = batchStartedAt ?? now
        batchStartedAt = started
        if environment.writer.count >= BatchTiming.bytes || now &- started >= batchTiming.age { try flush() }
    }

    /// Sends the batch to every following backup now. Returns, for each backup still there, the
    /// offset just past the batch in its message stream; nil if no backup is left (the loss has
    /// then been settled: alone, or `lostArbiter` thrown).
    @discardableResult
    private func flush() throws -> [(BackupPeer, UInt64)]? {
        guard rules.logs else { return nil }
        batchStartedAt = nil
        let batch = environment.writer.take()
        var ends: [(BackupPeer, UInt64)] = []
        var failed: [(BackupPeer, CloseReason)] = []
        watchdog.enter(.waitingForPeer)
        for peer in following {
            switch peer.connection.send(batch) {
            case .success(let end): ends.append((peer, end))
            case .failure(let reason): failed.append((peer, reason))
            }
        }
        watchdog.enter(.host)
        for (peer, reason) in failed { try lose(peer, reason) }
        guard rules.logs else { return nil }
        return ends.filter { $0.0.rules.isFollowing }
    }

    // MARK: Losing backups

    /// A backup is gone. A joining one leaves the primary as it was; a following one among
    /// others is dropped with a warning; the last following one is a failover decision for the
    /// arbiter (claim it, or stop).
    private func lose(_ peer: BackupPeer, _ reason: CloseReason) throws {
        // A comparing primary whose backup refused it (the backup's execution left the log, or
        // it found the primary's messages wrong) never carries on alone: which replica is faulty
        // cannot be known, and the primary may be.
        // With other backups voting, the refusing one is outvoted and dropped.
        if compares(peer), case .refusedByPeer(let why) = reason, following.count == 1 {
            let disagreement = Disagreement(epoch: epoch, what: .refused(PeerText.sanitized(why)))
            for peer in peers { peer.connection.close() }
            throw ReplicationError.mismatch(disagreement)
        }
        guard let index = peers.firstIndex(where: { $0 === peer }) else { return }
        peers.remove(at: index)
        let wasFollowing = peer.rules.isFollowing
        if wasFollowing { comparison.leave(peer.id) }
        peer.rules.lost(reason)
        if let consumer = peer.consumer {
            machine.dirtyPages.unregister(consumer)
            peer.consumer = nil
        }
        let remaining = following.count
        guard wasFollowing else {
            peer.connection.close(refusal: "the state transfer ended: \(reason)")
            status.message("the backup joining from \(peer.connection.remoteAddress) left during the state transfer (\(reason)); the guest runs on", level: .warning)
            return
        }
        if remaining > 0 {
            // A refusal tells a backup that is still alive that this primary is, too.
            peer.connection.close(refusal: "the primary dropped this backup: \(reason)")
            status.message("dropped the backup at \(peer.connection.remoteAddress) (\(reason)); \(remaining) backup\(remaining == 1 ? "" : "s") remain", level: .warning)
            status.attach(following.first?.connection)
            status.backups(remaining)
            updateSlowest()
            try newMembership()
        } else {
            peer.connection.close()
            try settle(rules.backupLost(reason))
        }
    }

    /// Drops a following backup while the primary runs on: it is told why (a refusal: it does
    /// not take over), and re-protection replaces it. The last one's loss is settled as any.
    private func drop(_ peer: BackupPeer, refusal: String, message: String) throws {
        guard let index = peers.firstIndex(where: { $0 === peer }) else { return }
        peers.remove(at: index)
        comparison.leave(peer.id)
        peer.rules.lost(.closedLocally)
        peer.connection.close(refusal: refusal)
        status.message(message, level: .warning)
        let remaining = following.count
        status.attach(following.first?.connection)
        status.backups(remaining)
        updateSlowest()
        if remaining == 0 { try settle(rules.backupLost(.closedLocally)) } else { try newMembership() }
    }

    /// A following backup was dropped while others remain, alive or not (behind a partition it
    /// may still claim the arbiter later): the membership moves to a new generation. The
    /// remaining backups learn it first, in their stream; then the arbiter records it, before
    /// any output is released without the dropped backup. From then on the arbiter accepts a
    /// claim only from a backup that learnt it. (If the primary fails between the two, the
    /// dropped backup may still win: no output was released without it.)
    private func newMembership() throws {
        guard rules.logs else { return }
        membership += 1
        let generation = membership
        environment.writer.membership(generation: generation)
        try flush()
        try arbiter.recordMembership(generation)
        logger.debug("membership generation \(generation) recorded: \(following.count) backups")
    }

    // MARK: Output commit

    /// Output commit (thesis protocol): log the output to the backups, wait until each holds it,
    /// check the primary is still entitled, perform it, log the completion notice.
    private func commit(_ outputs: [PendingOutput], stop: CompareStop, ending: MachineStop? = nil) throws {
        // Most epochs have no output; without comparison there is nothing to do then.
        guard !outputs.isEmpty || context.settings.compare else { return }
        let compared = try compare(outputs, stop: stop, ending: ending)
        for (index, output) in outputs.enumerated() {
            var step = rules.commit(output.record)
            committing: while true {
                switch step {
                case .log where compared:
                    // The backup computed the same output: it holds the log up to it.
                    if index == 0 { fault(.acknowledged) }
                    // The verdict came within `comparedWithin` of the send; if that is past the
                    // lease, an arbiter lease or a probe's timely receipt must do.
                    step = rules.receiptArrived(sinceSent: comparedWithin ?? .max, arbiter: arbiter.view)
                case .log(let record):
                    environment.writer.output(record)
                    step = try sendAndAwaitReceipt(acknowledged: index == 0) ?? rules.commit(record)
                case .probe:
                    environment.writer.probe()
                    step = try sendAndAwaitReceipt(acknowledged: false) ?? rules.commit(output.record)
                case .claimArbiter:
                    step = try claimArbiter()
                case .stop(let holder):
                    throw ReplicationError.lostArbiter(holder: holder)
                case .perform:
                    environment.perform(output)
                    if index == 0 { fault(.performed) }
                    if rules.logs { environment.writer.outputDone(output.record.sequence) }
                    break committing
                }
            }
        }
    }

    /// Sends the batch (ending with an output record or a probe) and waits for every following
    /// backup's receipt of it; the lease is measured from just before the batch was handed to
    /// the connections, by this replica's monotonic clock, to when the last receipt was seen.
    /// Nil when no backup follows any more (the loss is then settled: `rules.commit` says what
    /// to do).
    private func sendAndAwaitReceipt(acknowledged: Bool) throws -> PrimaryStateMachine.CommitStep? {
        let sentAt = ContinuousClock.now
        guard let ends = try flush() else { return nil }
        for (peer, end) in ends where peer.rules.isFollowing {
            if let failure = try awaitReceipt(from: peer, covering: end) { try lose(peer, failure) }
        }
        if acknowledged { fault(.acknowledged) }
        guard rules.logs else { return nil }
        // Among several backups, one silent for too long is dropped; the last one's silence is
        // the output lease's business.
        for peer in following where following.count > 1 && peer.connection.silence() > rules.outputLease {
            try lose(peer, .timeout(milliseconds: Int(rules.outputLease * 2 / 1_000_000)))
        }
        guard rules.logs else { return nil }
        return rules.receiptArrived(sinceSent: Self.nanoseconds(ContinuousClock.now - sentAt), arbiter: arbiter.view)
    }

    private static func nanoseconds(_ elapsed: Duration) -> UInt64 {
        UInt64(elapsed.components.seconds) &* 1_000_000_000 &+ UInt64(elapsed.components.attoseconds / 1_000_000_000)
    }

    /// Waits until `peer` holds its stream up to `end`, taking its reports meanwhile (so a
    /// backup that floods them cannot fill the inbox and stall the wait). Returns why the backup
    /// is gone, if it is.
    private func awaitReceipt(from peer: BackupPeer, covering end: UInt64) throws -> CloseReason? {
        while true {
            watchdog.enter(.waitingForPeer)
            let wait = peer.connection.waitForReceipt(covering: end, orData: true)
            watchdog.enter(.host)
            switch wait {
            case .held:
                return nil
            case .closed(let reason):
                return reason
            case .dataArrived:
                try readReports(from: peer, wait: false)
                guard peer.rules.isFollowing else { return peer.connection.closed ?? .closedLocally }
            }
        }
    }

    /// Tests and sets the arbiter, and tells the rules the verdict.
    private func claimArbiter() throws -> PrimaryStateMachine.CommitStep {
        for peer in peers {
            if peer.rules.isFollowing { comparison.leave(peer.id) }
            peer.rules.lost(.closedLocally)
            if let consumer = peer.consumer { machine.dirtyPages.unregister(consumer) }
            peer.connection.close()
        }
        peers.removeAll()
        let reason: CloseReason = if case .claiming(let r) = rules.peer { r } else { .closedLocally }
        switch try arbiter.acquire(claimant: "primary pid \(getpid())") {
        case .won:
            environment.recording = .off
            _ = environment.writer.take()
            status.attach(nil)
            status.set(state: .alone)
            status.message("lost the backup (\(reason)); carrying on alone", level: .warning)
            status.backups(0)
            try leadNewPair()
            return rules.arbiterDecided(won: true, holder: "")
        case .lost(let holder):
            return rules.arbiterDecided(won: false, holder: holder)
        }
    }

    /// Settles a loss noticed outside an output: claim the arbiter; stop if it is lost.
    private func settle(_ first: PrimaryStateMachine.CommitStep) throws {
        var step = first
        while true {
            switch step {
            case .claimArbiter: step = try claimArbiter()
            case .stop(let holder): throw ReplicationError.lostArbiter(holder: holder)
            case .perform, .log, .probe: return
            }
        }
    }

    /// After this replica won the arbiter of its session, backups that join it form a new pair
    /// with a new session (the old one's claim is taken): registered with the arbiter before any
    /// backup can learn it. Its first four bytes stay the same: they name the disk image's lock.
    private func leadNewPair() throws {
        guard let intake = context.intake else { return }
        var generator = SystemRandomNumberGenerator()
        let fresh = Array(session.prefix(4))
            + (0..<(IdentityMessage.sessionSize - 4)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        arbiter = try intake.arbiter(fresh)
        session = fresh
        listener?.session = fresh
    }

    // MARK: New backups

    /// At a boundary: takes the backups waiting to join, and sends each joining one the next
    /// part of the primary's state.
    private func serveBackups(now: UInt64) throws {
        guard let listener else { return }
        // The listener is looked at once a millisecond (its lock, and the intake's copy, were a
        // tenth of a boundary's cost); a joining backup's transfer goes on at every boundary.
        if now &- listenerCheckedAt >= Self.listenerCheckInterval {
            listenerCheckedAt = now
            if listener.hasPending, let intake = context.intake { try admit(from: listener, intake) }
        }
        for peer in peers where !peer.rules.isFollowing {
            try transfer(to: peer)
        }
    }

    /// How often (ns) a boundary looks for backups waiting to join.
    static let listenerCheckInterval: UInt64 = 1_000_000

    /// Takes the backups waiting to join, up to the intake's number.
    private func admit(from listener: ReplicationListener, _ intake: BackupIntake) throws {
        while listener.hasPending, let connection = listener.accept(until: .distantPast) {
            guard connection.purpose == .joinRunning else {
                connection.close(refusal: ReplicationListener.alreadyReplicating)
                continue
            }
            guard peers.count < intake.maximumBackups else {
                connection.close(refusal: "this primary already has its \(intake.maximumBackups) backup\(intake.maximumBackups == 1 ? "" : "s")")
                continue
            }
            switch rules.peer {
            case .backup, .alone: break
            case .claiming, .deposed:
                connection.close(refusal: "this primary is not entitled to run")
                continue
            }
            let consumer = try machine.dirtyPages.register()
            let pages = try machine.memoryDigest.nonZeroPages()
            let peer = BackupPeer(id: nextPeerID, connection: connection, rules: .joining(pages: pages))
            nextPeerID += 1
            peer.consumer = consumer
            peer.transferStarted = NIODeadline.now().uptimeNanoseconds
            peers.append(peer)
            status.message("a backup joins from \(connection.remoteAddress): sending \(pages.count) pages while the guest runs")
        }
    }

    /// Pre-copy: sends `peer` the next pages of its round; at the end of a round, starts the
    /// next with the pages written meanwhile, or makes the final copy.
    private func transfer(to peer: BackupPeer) throws {
        guard let consumer = peer.consumer else { return }
        var messages = 0
        while messages < Self.transferMessagesPerBoundary, peer.connection.queuedBytes < Self.transferQueueBytes {
            if let reason = peer.connection.closed { return try lose(peer, reason) }
            let pages = peer.rules.nextPages(limit: TransferPages.maximumCount)
            if pages.isEmpty {
                // If this round is the last, the guest's pause starts here.
                let roundEnd = NIODeadline.now().uptimeNanoseconds
                let dirty = try machine.dirtyPages.take(for: consumer).pages
                // Keeps the RAM digest current while the guest runs: the final copy rehashes little.
                _ = try machine.memoryDigest.digest()
                switch peer.rules.roundEnded(dirty: dirty) {
                case .nextRound: continue
                case .finalCopy: return try finalCopy(to: peer, dirty: dirty, pauseStart: roundEnd)
                }
            }
            transferWriter.transferPages(pages, of: machine.memory)
            guard try send(transferWriter.take(), to: peer) else { return }
            messages += 1
        }
        if let reason = peer.connection.closed { try lose(peer, reason) }
    }

    /// Sends a batch of transfer messages to a joining backup; false if it is gone.
    private func send(_ batch: ByteBuffer, to peer: BackupPeer) throws -> Bool {
        peer.transferBytes += UInt64(batch.readableBytes)
        watchdog.enter(.waitingForPeer)
        let result = peer.connection.send(batch)
        watchdog.enter(.host)
        if case .failure(let reason) = result {
            try lose(peer, reason)
            return false
        }
        return true
    }

    /// The stop-and-copy at this boundary: the guest waits while the machine's state is captured
    /// and the last dirty pages and the state are handed to the connection; the new backup
    /// follows from the next epoch. The pause counts from `pauseStart`, when the last round's
    /// dirty pages were harvested (and their digests brought up to date).
    private func finalCopy(to peer: BackupPeer, dirty: [Int], pauseStart: UInt64) throws {
        // What the following backups are owed goes first: the new one's stream starts here.
        try flush()
        guard peers.contains(where: { $0 === peer }), let consumer = peer.consumer else { return }
        switch rules.peer {
        case .backup, .alone: break
        case .claiming, .deposed: return try lose(peer, .closedLocally)
        }
        let capturing = NIODeadline.now().uptimeNanoseconds
        // The state first: on KVM capturing completes the last exit, which may write RAM.
        let state = try machine.captureState()
        let captured = NIODeadline.now().uptimeNanoseconds
        var pages = Set(dirty)
        pages.formUnion(try machine.dirtyPages.take(for: consumer).pages)
        let sorted = pages.sorted()
        var start = 0
        while start < sorted.count {
            transferWriter.transferPages(sorted[start..<min(start + TransferPages.maximumCount, sorted.count)],
                                         of: machine.memory)
            start += TransferPages.maximumCount
        }
        let copied = NIODeadline.now().uptimeNanoseconds
        transferWriter.transferState(TransferState(
            epoch: epoch, nextOutput: environment.outputs.nextSequence, consoleBytesDelivered: consoleBytesDelivered,
            partialLine: environment.outputs.heldLine, ramDigest: try machine.memoryDigest.digest(),
            machine: state.encoded))
        // A joiner belongs to the current membership generation.
        if membership > 0 { transferWriter.membership(generation: membership) }
        let encoded = NIODeadline.now().uptimeNanoseconds
        let rounds = peer.rules.rounds
        guard try send(transferWriter.take(), to: peer) else { return }
        let pauseEnd = NIODeadline.now().uptimeNanoseconds
        machine.dirtyPages.unregister(consumer)
        peer.consumer = nil
        peer.rules.transferred(finalPages: sorted.count, epoch: epoch)
        peer.joinedAt = epoch
        comparison.join(peer.id)
        let wasAlone = !rules.logs
        rules.backupJoined(at: epoch)
        if wasAlone {
            environment.recording = .toBackup
            if status.state != .live { status.set(state: .replicating) }
        }
        status.attach(following.first?.connection)
        status.backups(following.count)
        let figures = ReplicationStatus.TransferFigures(
            epoch: epoch, rounds: rounds, pages: peer.rules.pagesSent, finalPages: sorted.count,
            bytes: peer.transferBytes, memoryBytes: UInt64(machine.memory.pageCount) * GuestMemory.pageSize,
            pauseMilliseconds: Double(pauseEnd - pauseStart) / 1e6,
            seconds: Double(pauseEnd - peer.transferStarted) / 1e9,
            pauseSteps: .init(lastRound: Double(capturing - pauseStart) / 1e6,
                              capture: Double(captured - capturing) / 1e6, pages: Double(copied - captured) / 1e6,
                              state: Double(encoded - copied) / 1e6, send: Double(pauseEnd - encoded) / 1e6))
        status.transferred(figures)
        status.message(String(format: "the backup at %@ follows from epoch %llu: %d pages in %d rounds, %.1f MiB, final pause %.2f ms (capture %.2f)",
                              peer.connection.remoteAddress, epoch, figures.pages, rounds,
                              Double(figures.bytes) / 1048576, figures.pauseMilliseconds, Double(captured - capturing) / 1e6),
                       level: .notice)
    }

    // MARK: Flow control

    /// The slowest following backup's executed epochs, for the lag limit.
    private func updateSlowest() {
        // A backup whose execution diverged reports nothing until the vote drops it.
        let counted = following.filter { comparison.diverged[$0.id] == nil }
        if let slowest = counted.compactMap(\.rules.executedEpochs).min() { rules.backupExecuted(slowest) }
    }

    /// Whether the slowest backup is further behind than `--max-lag` allows: in epochs, or in the
    /// guest time of the epochs it has not executed.
    private var lagging: Bool {
        if rules.lagTarget(epoch: epoch) != nil { return true }
        guard let lagBound, rules.logs else { return false }
        return lagMeter.lag(count: epoch, executed: rules.backupExecuted) > lagBound
    }

    /// Keeps the backups within `--max-lag`: reads their executed reports, and waits for them.
    private func throttle() throws {
        for peer in following { try readReports(from: peer, wait: false) }
        while lagging {
            guard try flush() != nil else { return }
            guard let slowest = following.filter({ comparison.diverged[$0.id] == nil }).min(by: { ($0.rules.executedEpochs ?? 0) < ($1.rules.executedEpochs ?? 0) })
            else { return }
            try readReports(from: slowest, wait: true)
        }
    }

    /// Takes a backup's messages (executed reports) from its connection.
    private func readReports(from peer: BackupPeer, wait: Bool) throws {
        guard rules.logs, peer.rules.isFollowing else { return }
        if wait { watchdog.enter(.waitingForPeer) }
        let received = peer.connection.receive(holding: peer.parser.bufferedBytes, wait: wait)
        if wait { watchdog.enter(.host) }
        switch received {
        case .closed(let reason):
            try lose(peer, reason)
        case .data(let chunks):
            for chunk in chunks { peer.parser.append(chunk) }
            do {
                while let message = try peer.parser.next() {
                    let comparing = compares(peer)
                    let stale = comparing && comparison.discardsReports(from: peer.id)
                    switch message {
                    case .rolledBack(let attempt) where comparing:
                        try comparison.rolledBack(attempt: attempt, from: peer.id)
                        _ = peer.rules.rolledBack(to: epoch)
                    case .executed where stale, .verdict where stale:
                        continue // sent before the backup rolled back
                    // A backup cannot have executed more than it was sent (the final epoch included).
                    case .executed(let executed) where executed <= epoch &+ 1:
                        _ = peer.rules.executed(executed)
                    case .verdict(let verdict) where comparing:
                        try comparison.verdictArrived(verdict, from: peer.id, currentEpoch: epoch)
                    default:
                        throw ReplicationError.protocolViolation("the backup reports \(message) at epoch \(epoch)")
                    }
                }
                updateSlowest()
            } catch {
                let reason: CloseReason = switch error {
                case let wire as WireError: .protocolError(wire)
                default: .refusedByPeer("\(error)")
                }
                peer.connection.close(refusal: "\(error)")
                try lose(peer, reason)
            }
            if context.settings.compare { try checkComparison() }
        }
    }

    // MARK: The end

    /// The guest stopped (or, `inputClosed`, idles with nothing that could wake it): commit the
    /// last outputs, then tell the backups and wait until they hold the whole log.
    private func finish(_ stop: MachineStop, inputClosed: Bool = false) throws -> RunOutcome {
        environment.outputs.finish(epoch)
        try commit(environment.outputs.take(), stop: inputClosed ? .idle : .ended, ending: stop)
        let outcome = RunOutcome(stop: inputClosed ? .exited(status: 0) : stop,
                                 epochs: epoch + 1, progress: machine.progress)
        for peer in peers where !peer.rules.isFollowing {
            try lose(peer, .refusedByPeer("the guest finished before the transfer"))
        }
        listener?.close()
        guard rules.logs else { return outcome }
        let (status, ending): (Int32, RunEnding) = switch stop {
        case .exited(let s): (s, .exited)
        case .crashed: (0, .crashed)
        case .epochEnd, .idle: (0, .inputClosed)
        }
        environment.writer.finished(FinishedRecord(epoch: epoch, progress: machine.progress, status: status,
                                                   ending: ending, stateDigest: try machine.stateDigest()))
        // Wait until the backups have the whole log, so they can finish the run identically. If
        // one never gets it, it may have gone live: the arbiter decides which replica ran the end.
        if let ends = try flush() {
            for (peer, end) in ends where peer.rules.isFollowing {
                if let failure = try awaitReceipt(from: peer, covering: end) { try lose(peer, failure) }
            }
        }
        for peer in peers { peer.connection.close() }
        return outcome
    }

    private func fault(_ phase: KillPoint.Phase) {
        context.faults?.hook(phase, epoch)
    }
}

extension Arbiter {
    /// What the arbiter says now, for the primary's output rule, without waiting: a lease that
    /// holds by this replica's clock (etcd), nothing seen (a file's stat), a lapsed lease, or
    /// another replica's claim.
    var view: PrimaryStateMachine.ArbiterView {
        switch entitlement {
        case .entitled(_, let until): until == nil ? .unclaimed : .leased
        case .lapsed: .lapsed
        case .lost(let holder): .claimed(holder: holder)
        case .unclaimed: holder.map { .claimed(holder: $0) } ?? .unclaimed
        }
    }
}
