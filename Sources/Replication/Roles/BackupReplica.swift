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
    private let timing: BoundaryTiming
    /// The primary's final state digest, once it finished.
    private(set) var primaryFinalDigest: StateDigest?
    /// Whether this replica went live.
    private(set) var tookOver = false
    /// Who claims the arbiter at a failover: this thread, or the watcher while the guest runs.
    private let claim = TakeoverClaim()
    /// The message that ends the epoch being executed (its record, or the run's end), once taken.
    private var ending: BackupStateMachine.Action?
    /// The machine's progress when the epoch being executed started.
    private var epochStart: UInt64 = 0
    /// A failure found while the guest ran (taking the log for a value), thrown once it returns.
    private var failure: (any Error)?
    /// Executed epochs are reported at least this often (ns) under a duration `--max-lag`.
    private let reportEvery: UInt64?
    private var lastReport: UInt64 = 0

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
        if case .duration(let ns) = context.settings.maximumLag { reportEvery = max(ns / 4, 1) } else { reportEvery = nil }
        timing = BoundaryTiming(mode: context.setup.options.clockMode)
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
        startWatcher()
        defer {
            claim.end()
            environment.refill = nil
        }
        let epochLength = context.setup.epochLength
        while true {
            epochStart = machine.progress
            environment.epoch = rules.epoch
            try takeReceived()
            let stop = try runEpoch(budget: epochLength)
            // The primary was found gone while the guest waited for a value: this epoch was the
            // failover epoch, its values taken from the log while it lasted.
            if environment.mode == .takingOver { return try takeOver(after: stop) }
            guard try awaitEnding() else { return try takeOver(after: stop) }
            switch ending {
            case .execute(let record)?:
                ending = nil
                try check(record, stop: stop)
            case .finish(let record)?:
                return try finish(record, stop: stop)
            case .log, .announce, .performed, .writePages, .restore, nil:
                preconditionFailure("takeReceived stops only at an epoch's end")
            }
        }
    }

    /// Takes every complete message received so far, up to the one that ends the epoch being
    /// executed (kept in `ending`).
    private func takeReceived() throws {
        while ending == nil {
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
            case .execute, .finish:
                ending = action
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
        // Caught up with the log: report how far it got (the primary may wait for that).
        if let executed = rules.reportBeforeWaiting() { report(executed) }
        watchdog.enter(.waitingForPeer)
        let received = connection.receive(holding: parser.bufferedBytes, wait: true)
        watchdog.enter(.host)
        switch received {
        case .data(let chunks):
            for chunk in chunks { parser.append(chunk) }
            return true
        case .closed(let reason):
            rules.connectionEnded(reason)
            if case .takingOver = rules.phase { return false }
            // A frame that does not authenticate, or a message out of range: the log can no
            // longer be trusted, and the primary may well be alive. Never take over on it.
            throw ReplicationError.channel(reason)
        }
    }

    /// Takes the log until the message that ends the epoch just run. False if the connection
    /// ended first.
    private func awaitEnding() throws -> Bool {
        while true {
            try takeReceived()
            if ending != nil { return true }
            guard try waitForLog() else { return false }
        }
    }

    /// Runs the guest for one epoch. While it runs with every complete message taken, the
    /// watcher may claim the arbiter the moment the connection ends.
    private func runEpoch(budget: UInt64) throws -> MachineStop {
        claim.setAtHead(ending == nil)
        defer { claim.setAtHead(false) }
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

    /// The guest needs a value not received yet (called by the environment inside the run):
    /// takes the log until one is there. If the primary is gone, claims the arbiter at once (the
    /// backup has consumed the whole log: the rest of this epoch is the failover epoch) and lets
    /// the guest go on with its own values.
    private func refill() throws(EnvironmentError) {
        claim.setAtHead(false)
        watchdog.enter(.host)
        defer { watchdog.enter(.guest) }
        do {
            while true {
                try takeReceived()
                if environment.holdsValue {
                    claim.setAtHead(ending == nil)
                    return
                }
                if ending != nil {
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
            status.message("primary failed (\(reason)) with \(rules.epoch) epochs executed here; taking over")
            status.set(state: .takingOver)
            let claimant = "backup pid \(getpid())"
            claim.decide(Result { () throws(ArbiterError) in try arbiter.acquire(claimant: claimant) })
            if case (_, .success(.won))? = claim.verdict() { status.set(state: .live) }
        }
        guard let (_, verdict) = claim.verdict() else { throw ReplicationError.channel(.closedLocally) }
        switch try verdict.get() {
        case .won: tookOver = true
        case .lost(let holder): throw ReplicationError.lostArbiter(holder: holder)
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
            status.message("primary failed (\(reason)) while the guest ran at the head of the log; taking over")
            status.set(state: .takingOver)
            let verdict = Result { () throws(ArbiterError) in try arbiter.acquire(claimant: "backup pid \(getpid())") }
            claim.decide(verdict)
            if case .success(.won) = verdict { status.set(state: .live) }
        }
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

    private func divergence(_ detail: String) -> ReplicationError {
        stop(.divergence(epoch: rules.epoch, detail: detail), refusal: "divergence at epoch \(rules.epoch): \(detail)")
    }

    /// Checks the epoch just run against the primary's record, then applies the boundary.
    private func check(_ record: EpochRecord, stop: MachineStop) throws {
        let epoch = rules.epoch
        let expected: MachineStop = record.stop == .idle ? .idle : .epochEnd
        guard stop == expected, machine.progress == record.progress else {
            throw divergence("the primary's epoch ended (\(expected)) at \(record.progress) \(machine.epochClock.unit), the backup's (\(stop)) at \(machine.progress)")
        }
        guard environment.consumed == record.environmentCount else {
            throw divergence("the primary's epoch used \(record.environmentCount) environment values, the backup's \(environment.consumed) of \(environment.loggedCount) logged")
        }
        environment.startEpoch()
        environment.outputs.endEpoch(epoch, idle: record.stop == .idle)
        let mine = environment.outputs.take()
        guard mine.count == announced.count else {
            throw divergence("the primary's epoch produced \(announced.count) outputs, the backup's \(mine.count)")
        }
        for (own, theirs) in zip(mine, announced) where own.record != theirs {
            throw divergence("output \(theirs.sequence) differs from the primary's")
        }
        announced.removeAll(keepingCapacity: true)
        for output in mine where output.record.sequence > rules.performedThrough { pending.append(output) }
        if let digest = record.stateDigest {
            let own = try machine.stateDigest()
            guard own == digest else { throw divergence("state digest \(own) differs from the primary's \(digest)") }
        }
        try machine.applyBoundary(time: record.time, events: record.events)
        for case .consoleInput(let bytes) in record.events { consoleBytesDelivered += UInt64(bytes.count) }
        if let executed = rules.executed() {
            report(executed)
        } else if let reportEvery {
            let now = NIODeadline.now().uptimeNanoseconds
            if now &- lastReport >= reportEvery, let executed = rules.reportBeforeWaiting() { report(executed) }
        }
        status.progress(epoch: rules.epoch, lag: 0)
    }

    /// Tells the primary how many epochs this replica has executed.
    private func report(_ executed: UInt64) {
        if reportEvery != nil { lastReport = NIODeadline.now().uptimeNanoseconds }
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
            let reason: CloseReason = if case .takingOver(let r) = rules.phase { r } else { .peerClosed }
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
