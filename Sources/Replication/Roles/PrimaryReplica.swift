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
            host.console.write(bytes)
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

/// The primary's side of the protocol: runs the guest, logs every nondeterministic input to the
/// backup, and lets an output become visible only after the backup holds the log up to it
/// (output commit). The rules are `PrimaryStateMachine`'s; this class performs them. Runs on the
/// calling thread, which must be a dedicated thread.
final class PrimaryReplica {
    let machine: any Machine
    let environment: PrimaryEnvironment
    let connection: ReplicationConnection
    let arbiter: Arbiter
    let context: ReplicaContext
    /// Copied out of the context: read several times per epoch.
    private let watchdog: MachineWatchdog
    private let status: ReplicationStatus
    private var rules: PrimaryStateMachine
    private var parser = MessageParser(receiver: .primary)
    private var epoch: UInt64 = 0
    /// When the batch in the writer was first seen non-empty at a boundary.
    private var batchStartedAt: UInt64?
    private let timing: BoundaryTiming
    private let logger = Logger(label: "lockstep.primary")
    /// The backup's lag in guest time, and the bound on it (`--max-lag` as a duration).
    private var lagMeter = LagMeter()
    private let lagBound: UInt64?

    /// A batch is flushed at a boundary once it holds this much ...
    static let batchBytes = 64 << 10
    /// ... or is this old (nanoseconds), so the backup stays a few milliseconds behind at most.
    static let batchAge: UInt64 = 5_000_000

    init(machine: any Machine, environment: PrimaryEnvironment, connection: ReplicationConnection, arbiter: Arbiter,
         context: ReplicaContext)
    {
        self.machine = machine
        self.environment = environment
        self.connection = connection
        self.arbiter = arbiter
        self.context = context
        watchdog = context.watchdog
        status = context.status
        rules = PrimaryStateMachine(timeoutMilliseconds: context.settings.timeoutMilliseconds,
                                    maximumLag: context.settings.maximumLag.epochLimit)
        if case .duration(let ns) = context.settings.maximumLag { lagBound = ns } else { lagBound = nil }
        timing = BoundaryTiming(mode: context.setup.options.clockMode)
    }


    /// Runs the guest to its end. Throws `ReplicationError.lostArbiter` if the backup took over.
    ///
    /// At each boundary the epoch's outputs are committed before the primary decides the
    /// boundary's time, which may mean waiting while the guest idles: an output (a prompt, a disk
    /// write the guest waits for) never waits for later input.
    func run() throws -> RunOutcome {
        watchdog.enter(.host)
        status.attach(connection)
        status.set(state: .replicating)
        let epochLength = context.setup.epochLength
        while true {
            environment.epoch = epoch
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
            try commit(outputs)
            if stop == .idle && (timing.mode == .host || machine.nextTimerDeadline == nil) {
                // The decision may wait for input: the backup gets the log first.
                try flush()
                watchdog.enter(.waitingForInput)
            }
            let decision = timing.decide(after: stop, machine: machine, environment: environment)
            watchdog.enter(.host)
            let time: VirtualTime
            switch decision {
            case .at(let t):
                time = t
            case .waitsForever:
                logger.notice("the guest waits for console input, and input is closed: stopping")
                return try finish(.idle, inputClosed: true)
            }
            let events = environment.host.takeEvents(byteLimit: MessageLimits.eventBytes)
            if rules.logs {
                let interval = context.settings.digestInterval
                let digest = interval > 0 && (epoch + 1) % interval == 0 ? try machine.stateDigest() : nil
                environment.writer.epochEnd(EpochRecord(
                    epoch: epoch, progress: machine.progress, stop: stop == .idle ? .idle : .epochEnd, time: time,
                    events: events, environmentCount: environmentCount, outputCount: UInt64(outputs.count),
                    stateDigest: digest))
                // With fault injection, "logged" means sent.
                if context.faults != nil { try flush() }
            }
            fault(.logged)
            try machine.applyBoundary(time: time, events: events)
            epoch += 1
            status.progress(epoch: epoch, lag: rules.logs ? epoch.saturatingSubtract(rules.backupExecuted) : 0,
                            lagNanoseconds: rules.logs ? lagMeter.lag(count: epoch, executed: rules.backupExecuted) : 0)
            try flushIfDue(now: ended)
            if lagging { try throttle() }
        }
    }

    // MARK: Batches

    /// Sends the batch if it is large or old enough.
    private func flushIfDue(now: UInt64) throws {
        guard rules.logs, !environment.writer.isEmpty else { return }
        let started = batchStartedAt ?? now
        batchStartedAt = started
        if environment.writer.count >= Self.batchBytes || now &- started >= Self.batchAge { try flush() }
    }

    /// Sends the batch now. Returns the offset just past it in the message stream, nil if the
    /// backup is gone (the loss has then been settled: alone, or `lostArbiter` thrown).
    @discardableResult
    private func flush() throws -> UInt64? {
        guard rules.logs else { return nil }
        batchStartedAt = nil
        let batch = environment.writer.take()
        watchdog.enter(.waitingForPeer)
        let result = connection.send(batch)
        watchdog.enter(.host)
        switch result {
        case .success(let end):
            return end
        case .failure(let reason):
            try settle(rules.backupLost(reason))
            return nil
        }
    }

    // MARK: Output commit

    /// Output commit (thesis protocol): log the output to the backup, wait until it holds it,
    /// check the primary is still entitled, perform it, log the completion notice.
    private func commit(_ outputs: [PendingOutput]) throws {
        for (index, output) in outputs.enumerated() {
            var step = rules.commit(output.record)
            committing: while true {
                switch step {
                case .log(let record):
                    environment.writer.output(record)
                    guard let end = try flush() else {
                        step = rules.commit(record)
                        continue
                    }
                    let failure = try awaitReceipt(covering: end)
                    if index == 0 { fault(.acknowledged) }
                    if let failure {
                        step = rules.backupLost(failure)
                    } else {
                        step = rules.receiptArrived(silence: connection.silence(),
                                                    claimedBy: arbiter.isClaimed ? (arbiter.holder ?? "the backup") : nil)
                    }
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

    /// Waits until the backup holds the stream up to `end`, taking its reports meanwhile (so a
    /// backup that floods them cannot fill the inbox and stall the wait). Returns why the backup
    /// is gone, if it is.
    private func awaitReceipt(covering end: UInt64) throws -> CloseReason? {
        while true {
            watchdog.enter(.waitingForPeer)
            let wait = connection.waitForReceipt(covering: end, orData: true)
            watchdog.enter(.host)
            switch wait {
            case .held:
                return nil
            case .closed(let reason):
                return reason
            case .dataArrived:
                try readReports(wait: false)
                guard rules.logs else { return connection.closed ?? .closedLocally }
            }
        }
    }

    /// Tests and sets the arbiter, and tells the rules the verdict.
    private func claimArbiter() throws -> PrimaryStateMachine.CommitStep {
        connection.close()
        let reason: CloseReason = if case .claiming(let r) = rules.peer { r } else { .closedLocally }
        switch try arbiter.acquire(claimant: "primary pid \(getpid())") {
        case .won:
            environment.recording = .off
            _ = environment.writer.take()
            status.attach(nil)
            status.set(state: .alone)
            status.message("lost the backup (\(reason)); carrying on alone")
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
            case .perform, .log: return
            }
        }
    }

    // MARK: Flow control

    /// Whether the backup is further behind than `--max-lag` allows: in epochs, or in the guest
    /// time of the epochs it has not executed.
    private var lagging: Bool {
        if rules.lagTarget(epoch: epoch) != nil { return true }
        guard let lagBound, rules.logs else { return false }
        return lagMeter.lag(count: epoch, executed: rules.backupExecuted) > lagBound
    }

    /// Keeps the backup within `--max-lag`: reads its executed reports, and waits for them.
    private func throttle() throws {
        try readReports(wait: false)
        while lagging {
            guard try flush() != nil else { return }
            try readReports(wait: true)
        }
    }

    /// Takes the backup's messages (executed reports) from the connection.
    private func readReports(wait: Bool) throws {
        guard rules.logs else { return }
        if wait { watchdog.enter(.waitingForPeer) }
        let received = connection.receive(holding: parser.bufferedBytes, wait: wait)
        if wait { watchdog.enter(.host) }
        switch received {
        case .closed(let reason):
            try settle(rules.backupLost(reason))
        case .data(let chunks):
            for chunk in chunks { parser.append(chunk) }
            do {
                while let message = try parser.next() {
                    // A backup cannot have executed more than it was sent (the final epoch included).
                    guard case .executed(let executed) = message, executed <= epoch &+ 1 else {
                        throw ReplicationError.protocolViolation("the backup reports \(message) at epoch \(epoch)")
                    }
                    rules.backupExecuted(executed)
                }
            } catch {
                let reason: CloseReason = switch error {
                case let wire as WireError: .protocolError(wire)
                default: .refusedByPeer("\(error)")
                }
                connection.close(refusal: "\(error)")
                try settle(rules.backupLost(reason))
            }
        }
    }

    // MARK: The end

    /// The guest stopped (or, `inputClosed`, idles with nothing that could wake it): commit the
    /// last outputs, then tell the backup and wait until it holds the whole log.
    private func finish(_ stop: MachineStop, inputClosed: Bool = false) throws -> RunOutcome {
        environment.outputs.finish(epoch)
        try commit(environment.outputs.take())
        let outcome = RunOutcome(stop: inputClosed ? .exited(status: 0) : stop,
                                 epochs: epoch + 1, progress: machine.progress)
        guard rules.logs else { return outcome }
        let (status, ending): (Int32, RunEnding) = switch stop {
        case .exited(let s): (s, .exited)
        case .crashed: (0, .crashed)
        case .epochEnd, .idle: (0, .inputClosed)
        }
        environment.writer.finished(FinishedRecord(epoch: epoch, progress: machine.progress, status: status,
                                                   ending: ending, stateDigest: try machine.stateDigest()))
        // Wait until the backup has the whole log, so it can finish the run identically. If it
        // never gets it, it may have gone live: the arbiter decides which replica ran the end.
        if let end = try flush(), let failure = try awaitReceipt(covering: end) {
            try settle(rules.backupLost(failure))
        }
        connection.close()
        return outcome
    }

    private func fault(_ phase: KillPoint.Phase) {
        context.faults?.hook(phase, epoch)
    }
}
