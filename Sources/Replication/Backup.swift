import Foundation
import Hypervisor
import Logging
import MachineCore

#if canImport(Glibc)
import Glibc
#endif

/// The backup's environment. While replaying, environment instructions get the primary's logged
/// values (P6), outputs are produced but suppressed, and disk requests wait for the primary's
/// completions. While taking over, logged values are used up first. Once live, it behaves like an
/// unreplicated run.
public final class BackupEnvironment: SessionEnvironment {
    public enum Mode: Sendable, Equatable { case replaying, takingOver, live }

    public let host: HostIO
    public internal(set) var mode: Mode = .replaying
    var logged: [LoggedValue] = []
    var consumed = 0
    var outputs = OutputLog()
    var epoch: UInt64 = 0

    public init(host: HostIO) { self.host = host }

    public func environmentValue(_ read: EnvironmentRead, proposed: UInt64) throws(EnvironmentError)
        -> UInt64
    {
        if mode != .live && consumed < logged.count {
            let value = logged[consumed]
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

/// The backup's side of the protocol: executes each epoch after the primary has logged it, one
/// epoch behind, checks that it stays in the same state, and takes over when the primary fails.
/// Runs on the calling thread, which must be a dedicated thread.
public final class BackupReplica {
    public let machine: any Machine
    public let environment: BackupEnvironment
    public let connection: PeerConnection
    public let arbiter: Arbiter
    public let settings: ReplicationSettings
    public let epochLength: UInt64
    public let timing: BoundaryTiming
    public let status: ReplicationStatus

    private var epoch: UInt64 = 0
    /// Every output with a sequence number up to this one has been performed by the primary.
    private var performedThrough: UInt64 = 0
    /// Outputs this replica produced that the primary has not yet reported performed.
    private var pending: [PendingOutput] = []
    /// Digests of records not yet checked against the other side's.
    private var ownDigests: [UInt64: StateDigest] = [:]
    private var loggedDigests: [UInt64: StateDigest] = [:]
    /// Console input bytes delivered to the guest from the primary's log.
    private var consoleBytesDelivered: UInt64 = 0
    private var primaryEpochs: UInt64 = 0
    /// The primary's final state digest, once it finished.
    public private(set) var primaryFinalDigest: StateDigest?
    /// Whether this replica went live.
    public private(set) var tookOver = false

    public init(machine: any Machine, environment: BackupEnvironment, connection: PeerConnection,
                arbiter: Arbiter, settings: ReplicationSettings, epochLength: UInt64,
                timing: BoundaryTiming, status: ReplicationStatus)
    {
        self.machine = machine
        self.environment = environment
        self.connection = connection
        self.arbiter = arbiter
        self.settings = settings
        self.epochLength = epochLength
        self.timing = timing
        self.status = status
    }

    /// Replays the primary's log to the end of the run, or takes over when the primary fails.
    public func run() throws -> RunOutcome {
        status.set(state: "replaying")
        while true {
            guard let received = connection.receive() else { continue }
            switch received {
            case .success(let message):
                if let outcome = try handle(message) { return outcome }
            case .failure(let reason):
                switch reason {
                case .protocolError:
                    // A corrupt or foreign frame: the log can no longer be trusted, and the
                    // primary may well be alive. End replication; never take over on it.
                    throw ReplicationError.channel(reason)
                case .peerClosed, .timeout, .ioError, .closedLocally:
                    return try takeOver(reason)
                }
            }
        }
    }

    private func handle(_ message: Message) throws -> RunOutcome? {
        switch message {
        case .environmentValues(let values):
            environment.logged += values
        case .epochEnd(let record):
            try execute(record)
        case .output(let record):
            try check(sequence: record.sequence, logged: record.digest, epoch: record.epoch)
        case .outputDone(let sequence):
            performedThrough = max(performedThrough, sequence)
            pending.removeAll { $0.record.sequence <= sequence }
        case .finished(let record):
            return try finish(record)
        case .refuse(let reason):
            throw ReplicationError.refused(reason)
        case .hello, .ack, .heartbeat:
            throw ReplicationError.protocolViolation("unexpected \(message.type) message after the handshake")
        }
        return nil
    }

    /// Executes one epoch exactly as the primary did.
    private func execute(_ record: EpochRecord) throws {
        guard record.epoch == epoch else {
            throw ReplicationError.protocolViolation("epoch \(record.epoch) ended where epoch \(epoch) was expected")
        }
        primaryEpochs = record.epoch + 1
        let stop = try runToward(progress: record.progress)
        let expected: MachineStop = record.stop == .idle ? .idle : .epochEnd
        guard stop == expected, machine.progress == record.progress else {
            throw ReplicationError.divergence(epoch: epoch, detail: "the primary's epoch ended (\(expected)) at \(record.progress) \(machine.epochClock.unit), the backup's (\(stop)) at \(machine.progress)")
        }
        guard UInt64(environment.consumed) == record.environmentCount,
              environment.consumed == environment.logged.count
        else {
            throw ReplicationError.divergence(epoch: epoch, detail: "the primary's epoch used \(record.environmentCount) environment values, the backup's \(environment.consumed) of \(environment.logged.count) logged")
        }
        environment.logged.removeAll(keepingCapacity: true)
        environment.consumed = 0
        environment.outputs.endEpoch(epoch, idle: record.stop == .idle)
        let mine = environment.outputs.take()
        guard UInt64(mine.count) == record.outputCount else {
            throw ReplicationError.divergence(epoch: epoch, detail: "the primary's epoch produced \(record.outputCount) outputs, the backup's \(mine.count)")
        }
        for output in mine {
            try check(sequence: output.record.sequence, own: output.record.digest, epoch: epoch)
            if output.record.sequence > performedThrough { pending.append(output) }
        }
        if let digest = record.stateDigest {
            let own = try machine.stateDigest()
            guard own == digest else {
                throw ReplicationError.divergence(epoch: epoch, detail: "state digest \(own) differs from the primary's \(digest)")
            }
        }
        try machine.applyBoundary(time: record.time, events: record.events)
        for case .consoleInput(let bytes) in record.events { consoleBytesDelivered += UInt64(bytes.count) }
        epoch += 1
        connection.setExecutedEpochs(epoch, maximumLag: settings.maximumLag)
        status.update(epoch: epoch, lag: primaryEpochs.saturatingSubtract(epoch), connection: connection)
    }

    /// Runs until `progress`, or until the guest stops earlier.
    private func runToward(progress target: UInt64) throws -> MachineStop {
        environment.epoch = epoch
        guard target > machine.progress else {
            throw ReplicationError.protocolViolation("an epoch ending at \(target) \(machine.epochClock.unit) is not ahead of the backup at \(machine.progress)")
        }
        do {
            return try machine.run(budget: target - machine.progress)
        } catch let error as EnvironmentError {
            throw ReplicationError.divergence(epoch: epoch, detail: error.message)
        }
    }

    /// Compares an output record's digest from one side with the other side's, once both exist.
    private func check(sequence: UInt64, own: StateDigest? = nil, logged: StateDigest? = nil, epoch: UInt64) throws {
        if let own { ownDigests[sequence] = own }
        if let logged { loggedDigests[sequence] = logged }
        guard let a = ownDigests[sequence], let b = loggedDigests[sequence] else { return }
        ownDigests[sequence] = nil
        loggedDigests[sequence] = nil
        guard a == b else {
            throw ReplicationError.divergence(epoch: epoch, detail: "output \(sequence) differs from the primary's")
        }
    }

    /// The primary's guest stopped: finish the last epoch and compare final states.
    private func finish(_ record: FinishedRecord) throws -> RunOutcome {
        primaryEpochs = record.epoch + 1
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
            throw ReplicationError.divergence(epoch: epoch, detail: "the primary's guest stopped (\(expected)) at \(record.progress) \(machine.epochClock.unit), the backup's (\(stop)) at \(machine.progress)")
        }
        primaryFinalDigest = record.stateDigest
        let own = try machine.stateDigest()
        guard own == record.stateDigest else {
            throw ReplicationError.divergence(epoch: epoch, detail: "final state digest \(own) differs from the primary's \(record.stateDigest)")
        }
        connection.setExecutedEpochs(epoch + 1)
        connection.close()
        // Like an unreplicated run, a guest that waits for input that can never come ends with 0.
        return RunOutcome(stop: record.ending == .inputClosed ? .exited(status: 0) : stop,
                          epochs: epoch + 1, progress: machine.progress)
    }

    /// The primary failed: finish its last epoch from the log, win the arbiter, deliver
    /// uncertain completions for outstanding disk requests (P8), perform the outputs whose
    /// completion notice never came, and go on live.
    private func takeOver(_ reason: CloseReason) throws -> RunOutcome {
        status.message("primary failed (\(reason)) with \(epoch) epochs executed here; taking over")
        status.set(state: "taking over")
        environment.mode = .takingOver
        let (end, overflow) = machine.progress.addingReportingOverflow(epochLength)
        let stop = try runToward(progress: overflow ? .max : end)
        switch try arbiter.acquire(claimant: "backup pid \(getpid())") {
        case .won: break
        case .lost(let holder): throw ReplicationError.lostArbiter(holder: holder)
        }
        tookOver = true
        connection.close()
        environment.mode = .live
        status.set(state: "live")
        environment.outputs.finish(epoch)
        pending += environment.outputs.take()
        for output in pending where output.record.sequence > performedThrough {
            if case .console(let bytes) = output.action { environment.host.console.write(bytes) }
        }
        pending.removeAll()
        environment.host.console.discardInput(count: consoleBytesDelivered)
        switch stop {
        case .exited, .crashed:
            return RunOutcome(stop: stop, epochs: epoch + 1, progress: machine.progress)
        case .epochEnd, .idle:
            break
        }
        let uncertain = machine.outstandingBlockRequests.map {
            BoundaryEvent.blockCompletion(BlockCompletion(id: $0, status: .ioError))
        }
        try machine.applyBoundary(time: timing.time(for: machine),
                                  events: uncertain + environment.host.takeEvents(consoleRoom: machine.consoleInputRoom))
        let session = LocalSession(machine: machine, environment: environment,
                                   epochLength: epochLength, timing: timing)
        return try session.run(epochs: epoch + 1)
    }
}
