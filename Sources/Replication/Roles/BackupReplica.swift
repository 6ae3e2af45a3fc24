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
    public enum Mode: Sendable, Equatable { case replaying, takingOver, live }

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
        case .takingOver, .live:
            return proposed
        }
    }

    public func consoleOutput(_ bytes: [UInt8]) {
        switch mode {
        case .replaying, .takingOver: outputs.console(bytes, epoch: epoch)
        case .live: host.console.write(bytes)
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
        rules = BackupStateMachine(epochLength: context.setup.epochLength, maximumLag: context.settings.maximumLag)
        timing = BoundaryTiming(mode: context.setup.options.clockMode)
    }


    /// Replays the primary's log to the end of the run, or takes over when the primary fails.
    func run() throws -> RunOutcome {
        watchdog.enter(.host)
        status.attach(connection)
        status.set(state: .replaying)
        while true {
            let message: Message?
            do {
                message = try parser.next()
            } catch {
                throw stop(.channel(.protocolError(error)), refusal: "\(error)")
            }
            if let message {
                if let outcome = try handle(message) { return outcome }
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
        }
        return nil
    }

    /// Ends replication for `error`, telling the primary why.
    private func stop(_ error: ReplicationError, refusal: String) -> ReplicationError {
        connection.close(refusal: refusal)
        return error
    }

    private func divergence(_ detail: String) -> ReplicationError {
        stop(.divergence(epoch: rules.epoch, detail: detail), refusal: "divergence at epoch \(rules.epoch): \(detail)")
    }

    /// Executes one epoch exactly as the primary did.
    private func execute(_ record: EpochRecord) throws {
        let epoch = rules.epoch
        let stop = try runToward(progress: record.progress)
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
        if let executed = rules.executed() { report(executed) }
        status.progress(epoch: rules.epoch, lag: 0)
    }

    /// Tells the primary how many epochs this replica has executed.
    private func report(_ executed: UInt64) {
        writer.executed(executed)
        _ = connection.send(writer.take())
    }

    /// Runs until `progress`, or until the guest stops earlier.
    private func runToward(progress target: UInt64) throws -> MachineStop {
        environment.epoch = rules.epoch
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
        let stop = machine.progress < record.progress ? try runToward(progress: record.progress) : .epochEnd
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
        let stop = try runToward(progress: overflow ? .max : end)
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
        try machine.applyBoundary(time: timing.time(for: machine),
                                  events: uncertain + environment.host.takeEvents())
        let session = LocalSession(machine: machine, environment: environment,
                                   epochLength: context.setup.epochLength, timing: timing)
        return try session.run(epochs: rules.epoch + 1)
    }
}
