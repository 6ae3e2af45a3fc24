import Foundation
import Hypervisor
import MachineCore

#if canImport(Glibc)
import Glibc
#endif

/// The test seam for fault injection: called by the primary at each phase of each epoch. The
/// CLI's hidden `--kill-at-epoch` installs one that kills the process; tests install ones that
/// stall the machine thread.
public struct FaultInjection: Sendable {
    public let hook: @Sendable (_ phase: KillPoint.Phase, _ epoch: UInt64) -> Void

    public init(_ hook: @escaping @Sendable (_ phase: KillPoint.Phase, _ epoch: UInt64) -> Void) { self.hook = hook }

    /// Kills this process with SIGKILL at the first opportunity for the point's phase at or after
    /// its epoch (an epoch without outputs has no acknowledged or performed phase).
    public static func kill(at point: KillPoint, status: ReplicationStatus) -> FaultInjection {
        FaultInjection { phase, epoch in
            guard epoch >= point.epoch, phase == point.phase else { return }
            status.message("fault injection: killing the primary at epoch \(epoch), phase \(phase.rawValue)", level: .notice)
            Glibc.kill(getpid(), SIGKILL)
        }
    }
}

/// A disk image opened (and locked for the pair) by the command before the replica's thread
/// starts, and handed to that thread once; nothing else touches it afterwards.
public final class DiskHandoff: @unchecked Sendable {
    private let disk: HostDisk?

    public init(_ disk: HostDisk?) { self.disk = disk }

    /// The disk, for the machine thread.
    var value: HostDisk? { disk }
}

/// How a replica takes on new backups (`lockstep backup --join`): a primary while it runs, a
/// backup once it went live (re-protection).
public struct BackupIntake: Sendable {
    /// Backups kept at once (following and joining).
    public var maximumBackups: Int
    /// The pair's session when the replica starts leading (a backup that goes live learned it in
    /// its handshake; the intake it is given may leave it empty).
    public var session: [UInt8]
    /// The listener new backups connect to, opened (once) for `session`.
    public var listener: @Sendable (_ session: [UInt8]) throws -> ReplicationListener
    /// The arbiter of a new session, registered: a replica that won its pair's arbiter leads a
    /// new pair with its next backups.
    public var arbiter: @Sendable (_ session: [UInt8]) throws -> Arbiter

    public init(maximumBackups: Int, session: [UInt8],
                listener: @escaping @Sendable (_ session: [UInt8]) throws -> ReplicationListener,
                arbiter: @escaping @Sendable (_ session: [UInt8]) throws -> Arbiter)
    {
        self.maximumBackups = maximumBackups
        self.session = session
        self.listener = listener
        self.arbiter = arbiter
    }
}

/// Everything a replica needs besides its connection, built once by its caller: `lockstep
/// primary`, `lockstep backup` and the in-process tests all go through `runReplica`.
public struct ReplicaContext: Sendable {
    public var setup: GuestSetup
    public var settings: ReplicationSettings
    public var status: ReplicationStatus
    /// The machine thread's pulse, observed by the connection.
    public var watchdog: MachineWatchdog
    /// The guest's console on this host.
    public var console: HostConsole
    /// The disk image, already opened; nil: `runReplica` opens it (exclusively) itself.
    public var disk: DiskHandoff?
    /// Creates the engine's machine (the CLI passes `MachineFactory.make`).
    public var makeMachine: @Sendable (GuestSetup, any SessionEnvironment) throws -> any Machine
    public var faults: FaultInjection?
    /// A soft error to inject into this replica (`--inject-fault`), if it names this replica.
    public var softError: SoftError?
    /// Which backup this replica is (`--inject-fault backupN` names it): 1 unless a pair of
    /// several backups numbers them.
    public var backupNumber = 1
    /// New backups: nil, a primary keeps the backups it started with and a backup that goes live
    /// runs alone.
    public var intake: BackupIntake?

    public init(setup: GuestSetup, settings: ReplicationSettings, status: ReplicationStatus, watchdog: MachineWatchdog,
                console: HostConsole, disk: DiskHandoff? = nil, intake: BackupIntake? = nil,
                makeMachine: @escaping @Sendable (GuestSetup, any SessionEnvironment) throws -> any Machine = { setup, environment in
                    try MachineFactory.make(setup, environment: environment)
                },
                faults: FaultInjection? = nil, softError: SoftError? = nil)
    {
        self.setup = setup
        self.settings = settings
        self.status = status
        self.watchdog = watchdog
        self.console = console
        self.disk = disk
        self.makeMachine = makeMachine
        self.faults = faults
        self.intake = intake
        self.softError = softError
    }

    /// Injects the soft error meant for `replica` if `epoch` is its epoch; returns the fault
    /// still to come (nil once injected).
    func injectSoftError(_ pending: SoftError?, into machine: any Machine, epoch: UInt64) throws -> SoftError? {
        guard let pending, pending.epoch == epoch else { return pending }
        status.message(try pending.inject(into: machine, image: setup.image), level: .notice)
        return nil
    }

    /// What the handshake compares for this setup.
    public var identity: ReplicaIdentity { ReplicaIdentity(setup: setup) }
}

/// How a replica's run ended.
public struct ReplicaOutcome: Sendable {
    public let run: RunOutcome
    public let finalState: ReplicaState
    public let digest: StateDigest
    /// The primary's final digest, as a backup that finished with it received it.
    public let primaryDigest: StateDigest?
}

/// Runs a replica to its end on the calling thread, which must be a dedicated thread: builds its
/// environment and machine, runs the role's protocol over `connection`, and returns how it
/// ended. The one place a replica is wired, for `primary`, `backup` and the tests. A primary
/// replicates from boot to `connection` and `otherBackups` (`--backups N`); a backup whose
/// connection's purpose is `.joinRunning` first receives the running primary's state.
public func runReplica(_ role: ReplicaRole, connection: ReplicationConnection, otherBackups: [ReplicationConnection] = [],
                       arbiter: Arbiter, context: ReplicaContext) throws -> ReplicaOutcome
{
    let disk = try context.disk.map(\.value) ?? context.setup.openDisk()
    let host = HostIO(console: context.console, disk: disk)
    switch role {
    case .primary:
        let environment = PrimaryEnvironment(host: host)
        let machine = try context.makeMachine(context.setup, environment)
        try context.softError?.check(machine: machine, image: context.setup.image)
        let primary = PrimaryReplica(machine: machine, environment: environment, backups: [connection] + otherBackups,
                                     arbiter: arbiter, context: context)
        let outcome = try primary.run()
        return ReplicaOutcome(run: outcome, finalState: .finished, digest: try machine.stateDigest(), primaryDigest: nil)
    case .backup:
        let environment = BackupEnvironment(host: host)
        let machine = try context.makeMachine(context.setup, environment)
        try context.softError?.check(machine: machine, image: context.setup.image)
        let backup = BackupReplica(machine: machine, environment: environment, connection: connection,
                                   arbiter: arbiter, context: context)
        let outcome = try backup.run()
        return ReplicaOutcome(run: outcome, finalState: backup.tookOver ? .finishedLive : .finished,
                              digest: try machine.stateDigest(), primaryDigest: backup.primaryFinalDigest)
    }
}

/// Runs the guest from boot, live, on the calling thread (a dedicated thread): the backup whose
/// primary died before it joined, once it won the arbiter. Nothing of this run was output: a
/// primary runs its guest only once a backup joined (and checks the arbiter before it does).
public func runAlone(context: ReplicaContext) throws -> ReplicaOutcome {
    let disk = try context.disk.map(\.value) ?? context.setup.openDisk()
    let environment = BackupEnvironment(host: HostIO(console: context.console, disk: disk))
    environment.mode = .live
    let machine = try context.makeMachine(context.setup, environment)
    context.status.set(state: .live)
    let session = LocalSession(machine: machine, environment: environment, epochLength: context.setup.epochLength,
                               timing: BoundaryTiming(mode: context.setup.options.clockMode))
    let outcome = try session.run()
    return ReplicaOutcome(run: outcome, finalState: .finishedLive, digest: try machine.stateDigest(), primaryDigest: nil)
}

extension ReplicaIdentity {
    /// The identity of a replica of `setup`.
    public init(setup: GuestSetup) {
        self.init(imageBytes: setup.image.fileBytes, options: setup.options, engine: setup.engine,
                  epochClock: setup.epochClock, epochLength: setup.epochLength, diskSectors: setup.diskSectors)
    }
}
