import Foundation
import Hypervisor
import Logging
import MachineCore

#if canImport(Glibc)
import Glibc
#endif

/// The primary's environment: environment instructions use the machine's values and are logged
/// for the backup (P0); outputs are held as records until committed; disk reads are performed at
/// once and their completions, like console input, wait for the next boundary (P1).
public final class PrimaryEnvironment: SessionEnvironment {
    public let host: HostIO
    private(set) var values: [LoggedValue] = []
    private(set) var valueCount: UInt64 = 0
    var outputs = OutputLog()
    /// The epoch being executed.
    var epoch: UInt64 = 0
    /// Values are shipped in batches of this many even within an epoch.
    static let batchSize = 4096
    /// Called with a full batch of values.
    var shipValues: (([LoggedValue]) -> Void)?

    public init(host: HostIO) { self.host = host }

    public func environmentValue(_ read: EnvironmentRead, proposed: UInt64) throws(EnvironmentError)
        -> UInt64
    {
        values.append(LoggedValue(read: read, value: proposed))
        valueCount += 1
        if values.count >= Self.batchSize, let ship = shipValues {
            ship(values)
            values.removeAll(keepingCapacity: true)
        }
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

    /// Takes the values logged since the last call, and how many the epoch has used in all.
    func takeValues() -> (values: [LoggedValue], epochCount: UInt64) {
        defer {
            values.removeAll(keepingCapacity: true)
            valueCount = 0
        }
        return (values, valueCount)
    }
}

/// The primary's side of the protocol: runs the guest, logs every nondeterministic input to the
/// backup, and lets an output become visible only after the backup has acknowledged the log up
/// to it (output commit). Runs on the calling thread, which must be a dedicated thread.
public final class PrimaryReplica {
    public let machine: any Machine
    public let environment: PrimaryEnvironment
    public let connection: PeerConnection
    public let arbiter: Arbiter
    public let settings: ReplicationSettings
    public let epochLength: UInt64
    public let timing: BoundaryTiming
    public let status: ReplicationStatus
    private let logger = Logger(label: "lockstep.primary")
    /// Set once the backup is gone and this replica won the arbiter.
    public private(set) var alone = false
    private var epoch: UInt64 = 0

    public init(machine: any Machine, environment: PrimaryEnvironment, connection: PeerConnection,
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
        environment.shipValues = { [connection] values in
            connection.send(.environmentValues(values))
        }
    }

    /// Runs the guest to its end. Throws `ReplicationError.lostArbiter` if the backup took over.
    ///
    /// At each boundary the epoch's log goes to the backup and its outputs are committed before
    /// the primary decides the boundary's time, which may mean waiting while the guest idles:
    /// an output (a prompt, a disk write the guest waits for) never waits for later input.
    public func run() throws -> RunOutcome {
        while true {
            environment.epoch = epoch
            let stop = try machine.run(budget: epochLength)
            kill(at: .boundary)
            switch stop {
            case .exited, .crashed:
                return try finish(stop)
            case .epochEnd, .idle:
                break
            }
            let environmentCount = shipLog()
            environment.outputs.endEpoch(epoch, idle: stop == .idle)
            let outputs = environment.outputs.take()
            try commit(outputs)
            let time: VirtualTime
            switch timing.decide(after: stop, machine: machine, environment: environment) {
            case .at(let t):
                time = t
            case .waitsForever:
                logger.notice("the guest waits for console input, and input is closed: stopping")
                return try finish(.idle, inputClosed: true)
            }
            let events = environment.host.takeEvents(consoleRoom: machine.consoleInputRoom, byteLimit: Self.eventByteLimit)
            if !alone {
                let digest = settings.digestInterval > 0 && (epoch + 1) % settings.digestInterval == 0
                    ? try machine.stateDigest() : nil
                connection.send(.epochEnd(EpochRecord(
                    epoch: epoch, progress: machine.progress, stop: stop == .idle ? .idle : .epochEnd,
                    time: time, events: events, environmentCount: environmentCount,
                    outputCount: UInt64(outputs.count), stateDigest: digest)))
                connection.flush()
            }
            kill(at: .logged)
            try machine.applyBoundary(time: time, events: events)
            epoch += 1
            status.update(epoch: epoch, connection: alone ? nil : connection)
            try throttle()
        }
    }

    /// The most console input and disk-read data one boundary delivers (more waits for the next
    /// boundary), so that an epoch-end record always fits in a frame: a quarter of the frame
    /// limit, plus at most one disk request's data (the device's 32 MiB limit) beyond it.
    static let eventByteLimit = Frame.maximumPayload / 4

    /// Ships the environment values logged since the last call (they must reach the backup
    /// before any output that depends on them), and returns how many the epoch used in all.
    private func shipLog() -> UInt64 {
        let (values, count) = environment.takeValues()
        if !alone && !values.isEmpty { connection.send(.environmentValues(values)) }
        return count
    }

    /// Output commit (thesis protocol): log the output to the backup, wait for its
    /// acknowledgement, perform it, send the completion notice.
    private func commit(_ outputs: [PendingOutput]) throws {
        for (index, output) in outputs.enumerated() {
            if !alone {
                let sequence = connection.send(.output(output.record))
                connection.flush()
                if let reason = connection.waitForAcknowledgement(through: sequence) {
                    try backupLost(reason)
                }
                if index == 0 { kill(at: .acknowledged) }
                if !alone { try checkEntitled() }
            }
            environment.perform(output)
            if index == 0 { kill(at: .performed) }
            if !alone { connection.send(.outputDone(output.record.sequence)) }
        }
        if !alone { connection.flush() }
    }

    /// Just before an output becomes visible: a primary that was frozen past the failure
    /// timeout, or whose backup has claimed the arbiter, must not emit anything.
    private func checkEntitled() throws {
        if arbiter.isClaimed {
            throw ReplicationError.lostArbiter(holder: arbiter.holder ?? "the backup")
        }
        let limit = UInt64(settings.timeoutMilliseconds) * 1_000_000 / 2
        if connection.silence > limit {
            try backupLost(connection.closed ?? .timeout(milliseconds: settings.timeoutMilliseconds / 2))
        }
    }

    /// The backup is gone (or unreachable): win the arbiter and carry on alone, or stop.
    private func backupLost(_ reason: CloseReason) throws {
        guard !alone else { return }
        connection.close()
        switch try arbiter.acquire(claimant: "primary pid \(getpid())") {
        case .won:
            alone = true
            status.message("lost the backup (\(reason)); carrying on alone")
        case .lost(let holder):
            throw ReplicationError.lostArbiter(holder: holder)
        }
    }

    /// Keeps the backup within `maximumLag` epochs, and notices a lost backup between outputs.
    private func throttle() throws {
        guard !alone else { return }
        if let reason = connection.closed {
            try backupLost(reason)
            return
        }
        if epoch > settings.maximumLag, let reason = connection.waitForExecution(of: epoch - settings.maximumLag) {
            try backupLost(reason)
        }
    }

    /// The guest stopped (or, `inputClosed`, idles with nothing that could wake it): commit the
    /// last outputs, then tell the backup.
    private func finish(_ stop: MachineStop, inputClosed: Bool = false) throws -> RunOutcome {
        _ = shipLog()
        environment.outputs.finish(epoch)
        try commit(environment.outputs.take())
        let outcome = RunOutcome(stop: inputClosed ? .exited(status: 0) : stop,
                                 epochs: epoch + 1, progress: machine.progress)
        guard !alone else { return outcome }
        let (status, ending): (Int32, RunEnding) = switch stop {
        case .exited(let s): (s, .exited)
        case .crashed: (0, .crashed)
        case .epochEnd, .idle: (0, .inputClosed)
        }
        let sequence = connection.send(.finished(FinishedRecord(
            epoch: epoch, progress: machine.progress, status: status, ending: ending,
            stateDigest: try machine.stateDigest())))
        connection.flush()
        // Wait until the backup has the whole log, so it can finish the run identically. If it
        // never acknowledges, it may have gone live: the arbiter decides which replica ran the end.
        if let reason = connection.waitForAcknowledgement(through: sequence) {
            try backupLost(reason)
        }
        connection.close()
        return outcome
    }

    /// Fault injection: dies at the first opportunity for `phase` at or after the kill point's
    /// epoch (an epoch without outputs has no acknowledged or performed phase).
    private func kill(at phase: KillPoint.Phase) {
        guard let point = settings.killPoint, epoch >= point.epoch, point.phase == phase else { return }
        status.message("fault injection: killing the primary at epoch \(epoch), phase \(phase.rawValue)")
        Glibc.kill(getpid(), SIGKILL)
    }
}
