import Foundation
import Hypervisor
import Logging
import MachineCore
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// The backup's environment. While replaying, environment instructions get the primary's logged
/// values (P6), read in place from the received frames; outputs are produced but suppressed, and
/// disk requests wait for the primary's completions. While taking over, logged values are used
/// up first. Once live, it behaves like an unreplicated run.
public final class BackupEnvironment: SessionEnvironment {
    public enum Mode: Equatable {
        case replaying, takingOver, live
        /// Live and leading new backups: everything goes through a primary's environment.
        case leading(PrimaryEnvironment)

        public static func == (a: Mode, b: Mode) -> Bool {
            switch (a, b) {
            case (.replaying, .replaying), (.takingOver, .takingOver), (.live, .live): true
            case (.leading(let x), .leading(let y)): x === y
            default: false
            }
        }
    }

    public let host: HostIO
    public internal(set) var mode: Mode = .replaying
    /// The values of the epoch being received, in order.
    private var current: LoggedValues?
    private var queued = CircularBuffer<LoggedValues>()
    /// Values received for the epoch, and used by the guest so far.
    private(set) var loggedCount: UInt64 = 0
    private(set) var consumed: UInt64 = 0
    var outputs = OutputLog()
    var epoch: UInt64 = 0

    public init(host: HostIO) { self.host = host }

    /// Values for the epoch being received.
    func log(_ values: LoggedValues) {
        loggedCount += UInt64(values.count)
        queued.append(values)
    }

    /// The epoch is over: the next one's values follow.
    func startEpoch() {
        current = nil
        queued.removeAll(keepingCapacity: true)
        loggedCount = 0
        consumed = 0
    }

    private func nextLogged() -> LoggedValue? {
        while true {
            if let value = current?.next() { return value }
            guard let next = queued.popFirst() else { return nil }
            current = next
        }
    }

    public func environmentValue(_ read: EnvironmentRead, proposed: UInt64) throws(EnvironmentError)
        -> UInt64
    {
        if case .leading(let leader) = mode { return try leader.environmentValue(read, proposed: proposed) }
        if mode != .live, let value = nextLogged() {
            guard value.read == read else {
                throw EnvironmentError("the guest executed a \(read) read where the primary's executed a \(value.read) read")
            }
            consumed += 1
            return value.value
        }
        switch mode {
        case .replaying:
            throw EnvironmentError("the guest executed more environment instructions (\(read)) than the primary's in this epoch")
        case .takingOver, .live, .leading:
            return proposed
        }
    }

    public func consoleOutput(_ bytes: [UInt8]) {
        switch mode {
        case .replaying, .takingOver: outputs.console(bytes, epoch: epoch)
        case .live: host.console.write(bytes)
        case .leading(let leader): leader.consoleOutput(bytes)
        }
    }

    public func submitBlockRequest(_ request: BlockRequest) {
        switch mode {
        case .replaying, .takingOver:
            // The primary performs the request and logs its completion; a request still
            // outstanding at a takeover gets an uncertain completion (P8). Writes and flushes are
            // outputs: numbered here exactly as the primary numbers them.
            if request.kind == .write || request.kind == .flush { outputs.disk(request, epoch: epoch) }
        case .live:
            host.perform(request)
        case .leading(let leader):
            leader.submitBlockRequest(request)
        }
    }
}

/// The backup's side of the protocol: executes each epoch after the primary has logged it,
/// checks that it stays in the same state, and takes over when the primary fails. Every message
/// passes `BackupStateMachine`'s checks before anything is executed. Runs on the calling thread,
/// which must be a dedicated thread.
final class BackupReplica {
    let machine: any Machine
    let environment: BackupEnvironment
    let connection: ReplicationConnection
    let arbiter: Arbiter
    let context: ReplicaContext
    /// Copied out of the context: read several times per epoch.
    private let watchdog: MachineWatchdog
    private let status: ReplicationStatus
    private var rules: BackupStateMachine
    private var parser = MessageParser(receiver: .backup)
    private var writer = MessageWriter(capacity: 256)
    /// The primary's records of the outputs of the epoch being received.
    private var announced: [OutputRecord] = []
    /// Outputs this replica produced that the primary has not yet reported performed.
    private var pending: [PendingOutput] = []
    /// Console input bytes delivered to the guest from the primary's log.
    private var consoleBytesDelivered: UInt64 = 0
    private let timing: BoundaryTiming
    /// The primary's final state digest, once it finished.
    private(set) var primaryFinalDigest: StateDigest?
    /// Whether this replica went live.
    private(set) var tookOver = false
    /// The soft error still to inject into this replica.
    private var softError: SoftError?
    /// The epoch being received, once a `compare` ran it: how it stopped and its outputs.
    private var compared: (stop: MachineStop, outputs: [PendingOutput])?
    /// Output comparison's checkpoint: this replica's state at the start of the epoch after the
    /// last one whose outputs the primary compared and released.
    private struct Checkpoint {
        let ram: RAMCheckpoint
        var state: MachineState
        var rules: BackupStateMachine
        var outputs: OutputLog
        var pending: [PendingOutput]
        var consoleBytesDelivered: UInt64
    }
    private var checkpoint: Checkpoint?
    /// Whether this machine can be checkpointed at all.
    private var checkpointing = Checkpointing.available

    init(machine: any Machine, environment: BackupEnvironment, connection: ReplicationConnection, arbiter: Arbiter,
         context: ReplicaContext)
    {
        self.machine = machine
        self.environment = environment
        self.connection = connection
        self.arbiter = arbiter
        self.context = context
        watchdog = context.watchdog
        status = context.status
        rules = connection.purpose == .joinRunning
            ? .joining(epochLength: context.setup.epochLength, maximumLag: context.settings.maximumLag)
            : BackupStateMachine(epochLength: context.setup.epochLength, maximumLag: context.settings.maximumLag)
        timing = BoundaryTiming(mode: context.setup.options.clockMode)
        softError = context.softError.flatMap { $0.replica == .backup(1) ? $0 : nil }
    }


    /// Replays the primary's log to the end of the run, or takes over when the primary fails.
    func run() throws -> RunOutcome {
        watchdog.enter(.host)
        status.attach(connection)
        if case .joining = rules.phase {
            status.set(state: .joining)
            // The transfer carries every page that is not zero: the freshly loaded image goes.
            for page in try machine.memoryDigest.nonZeroPages() { machine.memory.zeroPage(page) }
        } else {
            status.set(state: .replaying)
        }
        if context.settings.compare, case .replaying = rules.phase { try takeCheckpoint() }
        while true {
            let message: Message?
            do {
                message = try parser.next()
            } catch {
                throw stop(.channel(.protocolError(error)), refusal: "\(error)")
            }
            if let message {
                do {
                    if let outcome = try handle(message) { return outcome }
                } catch let diverged as DivergedAwaitingRollback {
                    try awaitRollback(diverged.error)
                }
                continue
            }
            // Caught up with the log: report how far it got (the primary may wait for that).
            if let executed = rules.reportBeforeWaiting() { report(executed) }
            watchdog.enter(.waitingForPeer)
            let received = connection.receive(holding: parser.bufferedBytes, wait: true)
            watchdog.enter(.host)
            switch received {
            case .data(let chunks):
                for chunk in chunks { parser.append(chunk) }
            case .closed(let reason):
                rules.connectionEnded(reason)
                if case .takingOver = rules.phase { return try takeOver(reason) }
                // A frame that does not authenticate, or a message out of range: the log can no
                // longer be trusted, and the primary may well be alive. Never take over on it.
                throw ReplicationError.channel(reason)
            }
        }
    }

    private func handle(_ message: Message) throws -> RunOutcome? {
        let action: BackupStateMachine.Action
        do {
            action = try rules.receive(message, progress: machine.progress)
        } catch {
            rules.violated()
            throw stop(error, refusal: error.description)
        }
        switch action {
        case .log(let values):
            environment.log(values)
        case .announce(let record):
            announced.append(record)
        case .performed(let through):
            pending.removeAll { $0.record.sequence <= through }
        case .execute(let record):
            try execute(record)
        case .finish(let record):
            return try finish(record)
        case .compare(let request):
            try compare(request)
        case .rollBack(let request):
            try rollBack(request)
        case .writePages(let pages):
            let pageCount = UInt64(machine.memory.pageCount)
            try pages.forEach { page, data in
                guard page < pageCount else {
                    rules.violated()
                    throw stop(.protocolViolation("page \(page) is outside the \(pageCount) pages of RAM"),
                               refusal: "page \(page) is outside RAM")
                }
                machine.memory.writePage(Int(page), from: data)
            }
        case .restore(let state):
            try restore(state)
        }
        return nil
    }

    /// Saves this replica's state at the start of the epoch being received.
    private func takeCheckpoint() throws {
        if case .unavailable = checkpointing { return }
        let state: MachineState
        do {
            state = try machine.captureState()
        } catch let error as SnapshotError {
            // The pmu clock's counter cannot be captured: compare without rollback.
            checkpointing = .unavailable("\(error)")
            status.message("rollback unavailable (\(error)): a mismatch will stop the pair")
            return
        }
        if let ram = checkpoint?.ram { try ram.save() }
        checkpoint = Checkpoint(ram: try checkpoint?.ram ?? RAMCheckpoint(memory: machine.memory, tracker: machine.dirtyPages),
                                state: state, rules: rules, outputs: environment.outputs, pending: pending,
                                consoleBytesDelivered: consoleBytesDelivered)
    }

    /// This replica diverged from the primary's log: drop the rest of the log until the
    /// primary's rollback (then run again from the checkpoint); if the connection ends first,
    /// stop with the divergence (never take over from a diverged state).
    private func awaitRollback(_ diverged: ReplicationError) throws {
        while true {
            let message: Message?
            do { message = try parser.next() } catch { throw stop(diverged, refusal: diverged.description) }
            if let message {
                guard case .rollback(let request) = message else { continue }
                try rollBack(request)
                return
            }
            watchdog.enter(.waitingForPeer)
            let received = connection.receive(holding: parser.bufferedBytes, wait: true)
            watchdog.enter(.host)
            switch received {
            case .data(let chunks):
                for chunk in chunks { parser.append(chunk) }
            case .closed:
                rules.violated()
                throw stop(diverged, refusal: diverged.description)
            }
        }
    }

    /// The primary found the replicas disagree: back to the checkpoint, and tell it so.
    private func rollBack(_ request: RollbackRequest) throws {
        guard let checkpoint, checkpoint.rules.epoch == request.epoch else {
            rules.violated()
            throw stop(.protocolViolation("a rollback to epoch \(request.epoch), where this replica holds no checkpoint"),
                       refusal: "no checkpoint at epoch \(request.epoch) (give --compare to the backup too)")
        }
        status.message("the primary found the replicas disagree: rolling back to epoch \(request.epoch) and running again")
        try checkpoint.ram.restore()
        try machine.restoreState(checkpoint.state)
        do { try rules.rolledBack(to: checkpoint.rules) } catch { throw stop(error, refusal: error.description) }
        environment.outputs = checkpoint.outputs
        environment.startEpoch()
        announced.removeAll()
        pending = checkpoint.pending
        compared = nil
        consoleBytesDelivered = checkpoint.consoleBytesDelivered
        writer.rolledBack(attempt: request.attempt)
        _ = connection.send(writer.take())
    }

    /// The end of the state transfer: the RAM must add up to the primary's digest, then the
    /// machine takes the primary's state (which checks the state digest) and follows from there.
    private func restore(_ transfer: TransferState) throws {
        let ram = try machine.memoryDigest.digest()
        guard ram == transfer.ramDigest else {
            throw stop(.protocolViolation("the transferred RAM's digest \(ram) is not the primary's \(transfer.ramDigest)"),
                       refusal: "the transferred RAM does not add up")
        }
        do {
            try machine.restoreState(MachineState(encoded: transfer.machine))
        } catch {
            throw stop(.protocolViolation("the transferred machine state: \(error)"), refusal: "the transferred state is unusable")
        }
        environment.outputs = OutputLog(nextSequence: transfer.nextOutput, partialLine: transfer.partialLine)
        consoleBytesDelivered = transfer.consoleBytesDelivered
        environment.epoch = transfer.epoch
        status.progress(epoch: transfer.epoch, lag: 0)
        status.set(state: .replaying)
        status.message("joined the running primary at epoch \(transfer.epoch); following it")
    }

    /// Ends replication for `error`, telling the primary why.
    private func stop(_ error: ReplicationError, refusal: String) -> ReplicationError {
        connection.close(refusal: refusal)
        return error
    }

    /// A divergence with a checkpoint to return to: the primary decides (it rolls both back).
    private struct DivergedAwaitingRollback: Error {
        let error: ReplicationError
    }

    private func divergence(_ detail: String) -> any Error {
        // A primary that compares outputs learns it first as a verdict: the replicas disagree.
        writer.verdict(.diverged(epoch: rules.epoch))
        _ = connection.send(writer.take())
        if context.settings.compare, checkpoint != nil {
            status.message("divergence at epoch \(rules.epoch): \(detail); waiting for the primary's rollback")
            return DivergedAwaitingRollback(error: .divergence(epoch: rules.epoch, detail: detail))
        }
        return stop(.divergence(epoch: rules.epoch, detail: detail), refusal: "divergence at epoch \(rules.epoch): \(detail)")
    }

    /// Executes one epoch exactly as the primary did.
    private func execute(_ record: EpochRecord) throws {
        let mine: [PendingOutput]
        if let compared {
            // A comparison ran the epoch and reported its outputs; the primary judged them.
            mine = compared.outputs
            self.compared = nil
        } else {
            mine = try runEpoch(to: record.progress, stop: record.stop == .idle ? .idle : .epochEnd).1
            for (own, theirs) in zip(mine, announced) where own.record != theirs {
                throw divergence("output \(theirs.sequence) differs from the primary's")
            }
        }
        guard environment.consumed == record.environmentCount else {
            throw divergence("the primary's epoch used \(record.environmentCount) environment values, the backup's \(environment.consumed) of \(environment.loggedCount) logged")
        }
        environment.startEpoch()
        announced.removeAll(keepingCapacity: true)
        for output in mine where output.record.sequence > rules.performedThrough { pending.append(output) }
        if let digest = record.stateDigest {
            let own = try machine.stateDigest()
            guard own == digest else { throw divergence("state digest \(own) differs from the primary's \(digest)") }
        }
        try machine.applyBoundary(time: record.time, events: record.events)
        for case .consoleInput(let bytes) in record.events { consoleBytesDelivered += UInt64(bytes.count) }
        let checkpointDue = context.settings.compare && !mine.isEmpty && rules.stage != .receiving
        if let executed = rules.executed() { report(executed) }
        // The primary released this compared epoch's outputs: they agreed. Checkpoint here, as
        // the primary does.
        if checkpointDue { try takeCheckpoint() }
        status.progress(epoch: rules.epoch, lag: 0)
    }

    /// Runs the epoch being received to the primary's boundary and checks it stopped there alike
    /// with as many outputs; returns its output records.
    private func runEpoch(to progress: UInt64, stop expectedStop: CompareStop) throws -> (MachineStop, [PendingOutput]) {
        let epoch = rules.epoch
        let stop = try runToward(progress: progress)
        let stoppedAlike = switch (stop, expectedStop) {
        case (.epochEnd, .epochEnd), (.idle, .idle), (.exited, .ended), (.crashed, .ended): true
        default: false
        }
        guard stoppedAlike, machine.progress == progress else {
            throw divergence("the primary's epoch ended (\(expectedStop)) at \(progress) \(machine.epochClock.unit), the backup's (\(stop)) at \(machine.progress)")
        }
        if expectedStop == .ended {
            environment.outputs.finish(epoch)
        } else {
            environment.outputs.endEpoch(epoch, idle: expectedStop == .idle)
        }
        let mine = environment.outputs.take()
        guard mine.count == announced.count else {
            throw divergence("the primary's epoch produced \(announced.count) outputs, the backup's \(mine.count)")
        }
        return (stop, mine)
    }

    /// Output comparison: runs the epoch to the requested boundary and tells the primary what
    /// this replica's outputs (and state) came to. A difference is the primary's to judge.
    private func compare(_ request: CompareRequest) throws {
        let (stop, mine) = try runEpoch(to: request.progress, stop: request.stop)
        guard environment.consumed == environment.loggedCount else {
            throw divergence("the primary's epoch used \(environment.loggedCount) environment values, the backup's \(environment.consumed)")
        }
        compared = (stop, mine)
        let first = zip(mine, announced).first { $0.record != $1 }?.1.sequence ?? 0
        let verdict = Verdict(epoch: rules.epoch, outcome: .executed, outputCount: UInt64(mine.count),
                              outputs: OutputDigest.of(mine.map(\.record),
                                                       ending: request.stop == .ended ? OutputDigest.ending(stop) : nil),
                              firstDifference: first,
                              fingerprint: request.wantsFingerprint ? try machine.stateDigest() : nil)
        writer.verdict(verdict)
        _ = connection.send(writer.take())
    }

    /// Tells the primary how many epochs this replica has executed.
    private func report(_ executed: UInt64) {
        writer.executed(executed)
        _ = connection.send(writer.take())
    }

    /// Runs until `progress`, or until the guest stops earlier.
    private func runToward(progress target: UInt64) throws -> MachineStop {
        environment.epoch = rules.epoch
        softError = try context.injectSoftError(softError, into: machine, epoch: rules.epoch)
        guard target > machine.progress else { return .epochEnd }
        do {
            watchdog.enter(.guest)
            defer { watchdog.enter(.host) }
            return try machine.run(budget: target - machine.progress)
        } catch let error as EnvironmentError {
            throw divergence(error.message)
        }
    }

    /// The primary's guest stopped: finish the last epoch and compare final states.
    private func finish(_ record: FinishedRecord) throws -> RunOutcome {
        let stop = if let compared { compared.stop } else {
            machine.progress < record.progress ? try runToward(progress: record.progress) : .epochEnd
        }
        let stoppedAlike: Bool = switch stop {
        case .crashed: record.ending == .crashed
        case .exited(let status): record.ending == .exited && status == record.status
        case .idle: record.ending == .inputClosed
        case .epochEnd: false
        }
        guard stoppedAlike, machine.progress == record.progress else {
            let expected = switch record.ending {
            case .exited: "exited with status \(record.status)"
            case .crashed: "crashed"
            case .inputClosed: "idle with console input closed"
            }
            throw divergence("the primary's guest stopped (\(expected)) at \(record.progress) \(machine.epochClock.unit), the backup's (\(stop)) at \(machine.progress)")
        }
        primaryFinalDigest = record.stateDigest
        let own = try machine.stateDigest()
        guard own == record.stateDigest else {
            throw divergence("final state digest \(own) differs from the primary's \(record.stateDigest)")
        }
        report(rules.epoch + 1)
        connection.close()
        // Like an unreplicated run, a guest that waits for input that can never come ends with 0.
        return RunOutcome(stop: record.ending == .inputClosed ? .exited(status: 0) : stop,
                          epochs: rules.epoch + 1, progress: machine.progress)
    }

    /// The primary failed: finish its last epoch from the log, win the arbiter, deliver
    /// uncertain completions for outstanding disk requests (P8), perform the outputs whose
    /// completion notice never came, and go on live.
    private func takeOver(_ reason: CloseReason) throws -> RunOutcome {
        status.message("primary failed (\(reason)) with \(rules.epoch) epochs executed here; taking over")
        status.set(state: .takingOver)
        environment.mode = .takingOver
        let (end, overflow) = machine.progress.addingReportingOverflow(context.setup.epochLength)
        let stop: MachineStop = switch compared?.stop {
        case .exited(let status): .exited(status: status)
        case .crashed(let reason): .crashed(reason: reason)
        case .epochEnd, .idle, nil: try runToward(progress: overflow ? .max : end)
        }
        switch try arbiter.acquire(claimant: "backup pid \(getpid())") {
        case .won: break
        case .lost(let holder): throw ReplicationError.lostArbiter(holder: holder)
        }
        tookOver = true
        connection.close()
        status.attach(nil)
        environment.mode = .live
        status.set(state: .live)
        environment.outputs.finish(rules.epoch)
        if let compared { pending += compared.outputs }
        pending += environment.outputs.take()
        for output in pending where output.record.sequence > rules.performedThrough {
            if case .console(let bytes) = output.action { environment.host.console.write(bytes) }
        }
        pending.removeAll()
        environment.host.console.discardInput(count: consoleBytesDelivered)
        switch stop {
        case .exited, .crashed:
            return RunOutcome(stop: stop, epochs: rules.epoch + 1, progress: machine.progress)
        case .epochEnd, .idle:
            break
        }
        let uncertain = machine.outstandingBlockRequests.map {
            BoundaryEvent.blockCompletion(BlockCompletion(id: $0, status: .ioError))
        }
        let events = environment.host.takeEvents()
        try machine.applyBoundary(time: timing.time(for: machine), events: uncertain + events)
        status.backups(0)
        if var intake = context.intake {
            // Re-protection: lead new backups, which join this replica's running guest.
            for case .consoleInput(let bytes) in events { consoleBytesDelivered += UInt64(bytes.count) }
            intake.session = connection.session
            var leading = context
            leading.intake = intake
            let leader = PrimaryEnvironment(host: environment.host)
            leader.outputs = OutputLog(nextSequence: environment.outputs.nextSequence, partialLine: [])
            environment.mode = .leading(leader)
            let primary = PrimaryReplica(machine: machine, environment: leader, backups: [], arbiter: arbiter,
                                         context: leading,
                                         start: .init(epoch: rules.epoch + 1, consoleBytesDelivered: consoleBytesDelivered,
                                                      aloneReason: reason))
            return try primary.run()
        }
        let session = LocalSession(machine: machine, environment: environment,
                                   epochLength: context.setup.epochLength, timing: timing)
        return try session.run(epochs: rules.epoch + 1)
    }
}
