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
    /// Called while replaying when the guest needs a value the log does not hold yet: takes more
    /// of the log (waiting for it) until it does, or switches `mode` to `.takingOver` when the
    /// primary is gone. Nil: the values of the epoch were all received before it ran.
    var refill: (() throws(EnvironmentError) -> Void)?

    public init(host: HostIO) { self.host = host }

    /// Whether a logged value is waiting to be used.
    var holdsValue: Bool { consumed < loggedCount }

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
        while mode != .live {
            if let value = nextLogged() {
                guard value.read == read else {
                    throw EnvironmentError("the guest executed a \(read) read where the primary's executed a \(value.read) read")
                }
                consumed += 1
                return value.value
            }
            guard mode == .replaying, let refill else { break }
            try refill()
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

/// The backup's side of the protocol: runs each epoch as soon as the previous boundary is
/// applied, as the primary does, taking the primary's logged values as the guest needs them
/// (waiting for those not yet received), then checks the epoch against the primary's record;
/// takes over when the primary fails. Running alongside the primary rather than after it keeps
/// the backup's lag to the log's delivery delay even in an epoch that lasts seconds (the exits
/// clock on a guest that does not exit), so a failover replays little (docs/architecture.md,
/// "Lag bound"). Every message passes `BackupStateMachine`'s checks before it is used. Runs on
/// the calling thread, which must be a dedicated thread.
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
    /// How many of those this replica's own console has dropped (it reads the same input).
    private var consoleBytesDiscarded: UInt64 = 0
    private let timing: BoundaryTiming
    /// The primary's final state digest, once it finished.
    private(set) var primaryFinalDigest: StateDigest?
    /// Whether this replica went live.
    private(set) var tookOver = false
    /// Who claims the arbiter at a failover: this thread, or the watcher while the guest runs.
    private let claim = TakeoverClaim()
    /// What this thread last told `claim` (`setAtHead`): an unchanged value is not told again,
    /// which spares two locks per epoch while the backup trails the log.
    private var toldAtHead = false
    /// The message that ends the epoch being executed (its record, or the run's end), once taken.
    private var ending: BackupStateMachine.Action?
    /// Whether the message that ends the epoch being executed is taken: a look at the case, where
    /// `ending == nil` copied the record out (an outlined copy and destroy of a large enum payload,
    /// several times per epoch).
    private var hasEnding: Bool {
        switch ending {
        case .none: false
        case .some: true
        }
    }
    /// The machine's progress when the epoch being executed started.
    private var epochStart: UInt64 = 0
    /// A failure found while the guest ran (taking the log for a value), thrown once it returns.
    private var failure: (any Error)?
    /// When executed epochs are reported (the periodic reports, and how long to wait for more
    /// log, once caught up, before reporting).
    private let batchTiming: BatchTiming
    private var lastReport: UInt64 = 0
    /// The soft error still to inject into this replica.
    private var softError: SoftError?
    /// The epoch being executed, once a `compare` checked it: how it stopped and its outputs.
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
        let lag = context.settings.maximumLag.epochLimit
        rules = connection.purpose == .joinRunning
            ? .joining(epochLength: context.setup.epochLength, maximumLag: lag)
            : BackupStateMachine(epochLength: context.setup.epochLength, maximumLag: lag)
        batchTiming = BatchTiming(context.settings.maximumLag)
        timing = BoundaryTiming(mode: context.setup.options.clockMode)
        softError = context.softError.flatMap { $0.replica == .backup(context.backupNumber) ? $0 : nil }
        // A backup that lost the arbiter and re-joins the winner keeps its console, which has
        // dropped this much input already.
        consoleBytesDiscarded = environment.host.console.inputDiscarded
        environment.refill = { [unowned self] () throws(EnvironmentError) in try self.refill() }
    }


    /// Replays the primary's log to the end of the run, or takes over when the primary fails.
    func run() throws -> RunOutcome {
        watchdog.enter(.host)
        status.attach(connection)
        if case .joining = rules.phase {
            status.set(state: .joining)
            // The transfer carries every page that is not zero: the freshly loaded image goes.
            for page in try machine.memoryDigest.nonZeroPages() { machine.memory.zeroPage(page) }
            // The primary's state first; then the guest runs.
            while case .joining = rules.phase {
                try takeReceived()
                if case .joining = rules.phase, try !waitForLog() { throw ReplicationError.channel(connection.closed ?? .closedLocally) }
            }
        } else {
            status.set(state: .replaying)
        }
        if context.settings.compare, case .replaying = rules.phase { try takeCheckpoint() }
        startWatcher()
        defer {
            claim.end()
            environment.refill = nil
        }
        let epochLength = context.setup.epochLength
        while true {
            epochStart = machine.progress
            environment.epoch = rules.epoch
            do {
                if let outcome = try runAndCheckEpoch(budget: epochLength) { return outcome }
            } catch let diverged as DivergedAwaitingRollback {
                ending = nil
                try awaitRollback(diverged.error)
            }
        }
    }

    /// Runs one epoch and checks it against the primary's log (with `--compare`, first tells the
    /// primary what its outputs came to); nil when the next epoch is to run.
    private func runAndCheckEpoch(budget: UInt64) throws -> RunOutcome? {
        try takeReceived()
        // The primary is already gone and its whole log is consumed: the epoch about to run is
        // the failover epoch. Claim before running it, as the watcher does when the end comes
        // while it runs: under the exits clock an epoch may last seconds, and the watcher, which
        // saw unconsumed log when the connection ended, has left the claim to this thread.
        while !hasEnding, connection.closed != nil {
            guard try waitForLog() else {
                environment.mode = .takingOver
                try claimArbiter()
                break
            }
            try takeReceived()
        }
        let stop = try runEpoch(budget: budget)
        // The primary was found gone while the guest waited for a value: this epoch was the
        // failover epoch, its values taken from the log while it lasted.
        if environment.mode == .takingOver { return try takeOver(after: stop) }
        while true {
            guard try awaitEnding() else { return try takeOver(after: stop) }
            // Moved out, not copied: an epoch-end record is a large enum payload.
            switch ending.take() {
            case .execute(let record)?:
                try check(record, stop: stop)
                return nil
            case .finish(let record)?:
                return try finish(record, stop: stop)
            case .compare(let request)?:
                try compare(request, stop: stop)
            case .rollBack(let request)?:
                // The primary found the replicas disagree on this epoch's outputs.
                try rollBack(request)
                return nil
            case .log, .announce, .performed, .writePages, .restore, .member, nil:
                preconditionFailure("takeReceived stops only at an epoch's end")
            }
        }
    }

    /// Takes every complete message received so far, up to the one that ends the epoch being
    /// executed (kept in `ending`).
    private func takeReceived() throws {
        while !hasEnding {
            let message: Message?
            do {
                message = try parser.next()
            } catch {
                throw stop(.channel(.protocolError(error)), refusal: "\(error)")
            }
            guard let message else { return }
            let action: BackupStateMachine.Action
            do {
                action = try rules.receive(message, progress: epochStart)
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
            case .execute, .finish, .compare, .rollBack:
                ending = consume action
            case .member(let generation):
                claim.membership = generation
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
                epochStart = machine.progress
                // The rest of the batch belongs to the first epoch the guest runs here.
                return
            }
        }
    }

    /// Waits for more of the log. Returns false if the connection ended in a way that calls
    /// for a takeover; throws if it ended in a way that forbids one.
    private func waitForLog() throws -> Bool {
        // Caught up with the log. The primary may be waiting for this replica's executed count
        // (its lag bound): report it if no more log comes within `BatchTiming.reportDelay`. A
        // primary that runs sends more before then, and the periodic reports keep its lag figure
        // within its bound; a report and its receipt per batch would wake both event loops.
        if rules.owesReport {
            switch receiveMore(waitingAtMost: .nanoseconds(Int64(batchTiming.reportDelay))) {
            case .data(let chunks) where !chunks.isEmpty: return true
            case .data: break
            case .closed(let reason): return try connectionEnded(reason)
            }
            if let executed = rules.reportBeforeWaiting() { report(executed) }
        }
        switch receiveMore(waitingAtMost: nil) {
        case .data: return true
        case .closed(let reason): return try connectionEnded(reason)
        }
    }

    /// The connection ended while waiting for the log: false if that calls for a takeover.
    private func connectionEnded(_ reason: CloseReason) throws -> Bool {
        rules.connectionEnded(reason)
        if case .takingOver = rules.phase { return false }
        // A frame that does not authenticate, or a message out of range: the log can no
        // longer be trusted, and the primary may well be alive. Never take over on it.
        throw ReplicationError.channel(reason)
    }

    /// Takes the log until the message that ends the epoch just run. False if the connection
    /// ended first.
    private func awaitEnding() throws -> Bool {
        while true {
            try takeReceived()
            if hasEnding { return true }
            guard try waitForLog() else { return false }
        }
    }

    /// Runs the guest for one epoch. While it runs with every complete message taken, the
    /// watcher may claim the arbiter the moment the connection ends.
    private func runEpoch(budget: UInt64) throws -> MachineStop {
        setAtHead(!hasEnding)
        defer { setAtHead(false) }
        softError = try context.injectSoftError(softError, into: machine, epoch: rules.epoch)
        do {
            watchdog.enter(.guest)
            defer { watchdog.enter(.host) }
            return try machine.run(budget: budget)
        } catch let error as EnvironmentError {
            if let failure {
                self.failure = nil
                throw failure
            }
            throw divergence(error.message)
        }
    }

    private func setAtHead(_ atHead: Bool) {
        guard atHead != toldAtHead else { return }
        toldAtHead = atHead
        claim.setAtHead(atHead)
    }

    /// The guest needs a value not received yet (called by the environment inside the run):
    /// takes the log until one is there. If the primary is gone, claims the arbiter at once (the
    /// backup has consumed the whole log: the rest of this epoch is the failover epoch) and lets
    /// the guest go on with its own values.
    private func refill() throws(EnvironmentError) {
        setAtHead(false)
        watchdog.enter(.host)
        defer { watchdog.enter(.guest) }
        do {
            while true {
                try takeReceived()
                if environment.holdsValue {
                    setAtHead(!hasEnding)
                    return
                }
                if hasEnding {
                    throw divergence("the guest executed more environment instructions than the primary's in this epoch")
                }
                if try !waitForLog() {
                    environment.mode = .takingOver
                    try claimArbiter()
                    return
                }
            }
        } catch {
            failure = error
            throw EnvironmentError("\(error)")
        }
    }

    /// Claims the arbiter, or takes the verdict of the watcher's claim; marks the replica live
    /// if it won.
    private func claimArbiter() throws {
        if claim.begin(.machineThread) {
            let reason: String = if case .takingOver(let r) = rules.phase { "\(r)" } else { "connection ended" }
            status.message("primary failed (\(reason)) with \(rules.epoch) epochs executed here; taking over", level: .warning)
            status.set(state: .takingOver)
            let claimant = "backup pid \(getpid())"
            let generation = claim.membership
            claim.decide(Result { () throws(ArbiterError) in try arbiter.acquire(claimant: claimant, membership: generation) })
            if case (_, .success(.won))? = claim.verdict() { status.set(state: .live) }
        }
        guard let (_, verdict) = claim.verdict() else { throw ReplicationError.channel(.closedLocally) }
        switch try verdict.get() {
        case .won: tookOver = true
        case .lost(let holder):
            // With re-protection on, `lockstep backup` then joins the winner by state transfer
            // with this process's console (docs/protocol.md, "Losing backups re-join").
            if context.intake != nil {
                status.message("another replica holds the arbiter (\(holder)): this backup re-joins the winner by state transfer", level: .notice)
                throw BackupLostArbiter(holder: holder)
            }
            throw ReplicationError.lostArbiter(holder: holder)
        }
    }

    /// Waits on another thread for the connection to end while the guest runs: with the whole
    /// log consumed, the backup can claim at once rather than when a long epoch returns.
    private func startWatcher() {
        let connection = connection, claim = claim, arbiter = arbiter, status = status
        Thread.detachNewThread {
            let (reason, unreceived) = connection.waitForEnd()
            switch reason {
            case .peerClosed, .timeout, .ioError: break
            case .protocolError, .refusedByPeer, .closedLocally: return
            }
            guard !unreceived, claim.begin(.watcher) else { return }
            status.message("primary failed (\(reason)) while the guest ran at the head of the log; taking over", level: .warning)
            status.set(state: .takingOver)
            let generation = claim.membership
            let verdict = Result { () throws(ArbiterError) in
                try arbiter.acquire(claimant: "backup pid \(getpid())", membership: generation)
            }
            claim.decide(verdict)
            if case .success(.won) = verdict { status.set(state: .live) }
        }
    }

    /// Saves this replica's state at the start of the epoch being received.
    private func takeCheckpoint() throws {
        guard let state = try checkpointing.capture(machine, status: status) else { return }
        if let ram = checkpoint?.ram { try ram.save() }
        checkpoint = Checkpoint(ram: try checkpoint?.ram ?? RAMCheckpoint(memory: machine.memory, tracker: machine.dirtyPages),
                                state: state, rules: rules, outputs: environment.outputs, pending: pending,
                                consoleBytesDelivered: consoleBytesDelivered)
        discardDeliveredInput()
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
            if case .closed = receiveMore(waitingAtMost: nil) {
                rules.violated()
                throw stop(diverged, refusal: diverged.description)
            }
        }
    }

    /// Waits for more of the primary's stream (at most `limit`, if given) and hands it to the
    /// parser. Returns what came: data (none if the limit passed first), or the connection's end.
    private func receiveMore(waitingAtMost limit: Duration?) -> Received {
        watchdog.enter(.waitingForPeer)
        let received = if let limit {
            connection.receive(holding: parser.bufferedBytes, waitingAtMost: limit)
        } else {
            connection.receive(holding: parser.bufferedBytes, wait: true)
        }
        watchdog.enter(.host)
        if case .data(let chunks) = received {
            for chunk in chunks { parser.append(chunk) }
        }
        return received
    }

    /// The primary found the replicas disagree: back to the checkpoint, and tell it so.
    private func rollBack(_ request: RollbackRequest) throws {
        guard let checkpoint, checkpoint.rules.epoch == request.epoch else {
            rules.violated()
            throw stop(.protocolViolation("a rollback to epoch \(request.epoch), where this replica holds no checkpoint"),
                       refusal: "no checkpoint at epoch \(request.epoch) (give --compare to the backup too)")
        }
        status.message("the primary found the replicas disagree: rolling back to epoch \(request.epoch) and running again", level: .warning)
        try checkpoint.ram.restore()
        try machine.restoreState(checkpoint.state)
        do { try rules.rolledBack(to: checkpoint.rules) } catch { throw stop(error, refusal: error.description) }
        environment.outputs = checkpoint.outputs
        environment.startEpoch()
        announced.removeAll()
        pending = checkpoint.pending
        compared = nil
        ending = nil
        consoleBytesDelivered = checkpoint.consoleBytesDelivered
        writer.rolledBack(attempt: request.attempt)
        _ = connection.send(writer.take())
    }

    /// Drops from this replica's console the input the primary's log delivered to the guest, as
    /// it is delivered: what the console holds stays bounded by what the guest has not taken.
    /// With output comparison a rollback takes the count back to the checkpoint's (the primary
    /// delivers those bytes again), so input is dropped only as far as the checkpoint until this
    /// replica takes over (`all`).
    private func discardDeliveredInput(all: Bool = false) {
        let through = context.settings.compare && !all ? (checkpoint?.consoleBytesDelivered ?? 0) : consoleBytesDelivered
        guard through > consoleBytesDiscarded else { return }
        environment.host.console.discardInput(count: through - consoleBytesDiscarded)
        consoleBytesDiscarded = through
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
        // This console dropped input the transferred guest has not taken yet (a re-joining
        // backup was further than the winner): it cannot be given to the guest again.
        guard transfer.consoleBytesDelivered >= consoleBytesDiscarded else {
            let behind = RejoinBehind(delivered: transfer.consoleBytesDelivered, discarded: consoleBytesDiscarded)
            connection.close(refusal: behind.description)
            throw behind
        }
        environment.outputs = OutputLog(nextSequence: transfer.nextOutput, partialLine: transfer.partialLine)
        consoleBytesDelivered = transfer.consoleBytesDelivered
        discardDeliveredInput()
        environment.epoch = transfer.epoch
        status.progress(epoch: transfer.epoch, lag: 0)
        status.set(state: .replaying)
        status.message("joined the running primary at epoch \(transfer.epoch); following it", level: .notice)
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
            status.message("divergence at epoch \(rules.epoch): \(detail); waiting for the primary's rollback", level: .warning)
            return DivergedAwaitingRollback(error: .divergence(epoch: rules.epoch, detail: detail))
        }
        return stop(.divergence(epoch: rules.epoch, detail: detail), refusal: "divergence at epoch \(rules.epoch): \(detail)")
    }

    /// Checks the epoch just run against the primary's record, then applies the boundary.
    private func check(_ record: EpochRecord, stop: MachineStop) throws {
        let mine: [PendingOutput]
        if let compared {
            // A comparison checked the epoch and reported its outputs; the primary judged them.
            mine = compared.outputs
            self.compared = nil
        } else {
            mine = try endEpoch(stop: stop, at: record.progress, expected: record.stop == .idle ? .idle : .epochEnd)
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
        for case .consoleInput(let bytes) in record.events {
            consoleBytesDelivered += UInt64(bytes.count)
            discardDeliveredInput()
        }
        let checkpointDue = context.settings.compare && !mine.isEmpty && rules.stage != .receiving
        if let executed = rules.executed() {
            report(executed)
        } else if let reportEvery = batchTiming.reportEvery {
            let now = NIODeadline.now().uptimeNanoseconds
            if now &- lastReport >= reportEvery, let executed = rules.reportBeforeWaiting() { report(executed) }
        }
        // The primary released this compared epoch's outputs: they agreed. Checkpoint here, as
        // the primary does.
        if checkpointDue { try takeCheckpoint() }
        status.progress(epoch: rules.epoch, lag: 0)
    }

    /// Checks that the epoch just run stopped where and as the primary's did, with as many
    /// outputs; returns its output records.
    private func endEpoch(stop: MachineStop, at progress: UInt64, expected expectedStop: CompareStop) throws -> [PendingOutput] {
        let epoch = rules.epoch
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
        return mine
    }

    /// Output comparison: the epoch just run is to end at the requested boundary; tells the
    /// primary what this replica's outputs (and state) came to. A difference is the primary's to
    /// judge.
    private func compare(_ request: CompareRequest, stop: MachineStop) throws {
        let mine = try endEpoch(stop: stop, at: request.progress, expected: request.stop)
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
        if batchTiming.reportEvery != nil { lastReport = NIODeadline.now().uptimeNanoseconds }
        writer.executed(executed)
        _ = connection.send(writer.take())
    }

    /// The primary's guest stopped: compare how the last epoch ended, and the final states.
    private func finish(_ record: FinishedRecord, stop: MachineStop) throws -> RunOutcome {
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

    /// The primary failed after the backup ran the epoch that ended with `stop` (the failover
    /// epoch: the primary's last, from its log while that lasted, then with the backup's own
    /// values): win the arbiter (unless that was done already), deliver uncertain completions for
    /// outstanding disk requests (P8), perform the outputs whose completion notice never came,
    /// and go on live.
    private func takeOver(after stop: MachineStop) throws -> RunOutcome {
        environment.mode = .takingOver
        try claimArbiter()
        connection.close()
        status.attach(nil)
        environment.mode = .live
        environment.outputs.finish(rules.epoch)
        if let compared { pending += compared.outputs }
        pending += environment.outputs.take()
        for output in pending where output.record.sequence > rules.performedThrough {
            if case .console(let bytes) = output.action {
                environment.host.console.write(bytes, sequence: output.record.sequence)
            }
        }
        pending.removeAll()
        discardDeliveredInput(all: true)
        switch stop {
        case .exited, .crashed:
            return RunOutcome(stop: stop, epochs: rules.epoch + 1, progress: machine.progress)
        case .epochEnd, .idle:
            break
        }
        let uncertain = machine.outstandingBlockRequests.map {
            BoundaryEvent.blockCompletion(BlockCompletion(id: $0, status: .ioError))
        }
        let events = environment.host.takeEvents(consoleRoom: machine.consoleInputRoom)
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
            let reason: CloseReason = if case .takingOver(let r) = rules.phase { r } else { .peerClosed }
            let primary = PrimaryReplica(machine: machine, environment: leader, backups: [], arbiter: arbiter,
                                         context: leading,
                                         start: .init(epoch: rules.epoch + 1, consoleBytesDelivered: consoleBytesDelivered,
                                                      aloneReason: reason, origin: .successor(pendingFault: softError)))
            return try primary.run()
        }
        let session = LocalSession(machine: machine, environment: environment,
                                   epochLength: context.setup.epochLength, timing: timing)
        // Live, the epochs go on counting in the status (`lockstep pair` shows them advance).
        session.boundaryObserver = { [status] epochs in
            status.progress(epoch: epochs, lag: 0)
            return .proceed
        }
        return try session.run(epochs: rules.epoch + 1)
    }
}

/// A backup that lost the arbiter cannot re-join the winner exactly: its console already dropped
/// input (as delivered by the failed primary's log) that the winner's guest has not taken.
public struct RejoinBehind: Error, Equatable, Sendable, CustomStringConvertible {
    /// Console bytes the winner's guest had taken at the transfer.
    public let delivered: UInt64
    /// Console bytes this replica's console had dropped.
    public let discarded: UInt64

    public var description: String {
        "cannot re-join the winner: its guest took \(delivered) bytes of console input, this console already dropped \(discarded); stopping (the input would be lost)"
    }
}

/// A backup with re-protection on (`--lead-on`) lost its pair's arbiter while following (not
/// while leading a pair of its own): `lockstep backup` re-joins the winner. Otherwise it is
/// `ReplicationError.lostArbiter`.
public struct BackupLostArbiter: Error, Equatable, Sendable, CustomStringConvertible {
    public let holder: String

    public var description: String { ReplicationError.lostArbiter(holder: holder).description }
}
