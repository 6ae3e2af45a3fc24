import ArgumentParser
import Foundation
import Hypervisor
import MachineCore
import Replication

struct PrimaryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "primary",
        abstract: "Run a guest as the primary of a replicated pair: wait for a backup, then run in lockstep with it.")

    @Option(help: "Where to listen for the backup (HOST:PORT; port 0 picks one).")
    var listen: String

    @Option(name: .customLong("port-file"), help: .hidden)
    var portFile: String?

    @Option(name: .customLong("kill-at-epoch"), help: .hidden)
    var killAtEpoch: String?

    @Option(help: "Backups to replicate to: the guest starts when this many have joined; one that fails is replaced by one that joins the running guest (lockstep backup --join).")
    var backups: Int = 1

    @OptionGroup var replication: ReplicationOptions
    @OptionGroup var guest: GuestOptions

    func run() throws {
        guard let endpoint = Endpoint(listen) else {
            throw CLIFailure("--listen \(listen): expected HOST:PORT", status: ExitStatus.usage)
        }
        guard (1...ReplicationOptions.maximumBackups).contains(backups) else {
            throw CLIFailure("--backups \(backups): expected 1 to \(ReplicationOptions.maximumBackups)", status: ExitStatus.usage)
        }
        if replication.compare && backups > 1 {
            throw CLIFailure("--compare with --backups \(backups): voting among several backups (TMR) is not built yet; compare with one backup", status: ExitStatus.usage)
        }
        let killPoint = try killAtEpoch.map { try ReplicationOptions.killPoint($0, option: "--kill-at-epoch") }
        let setup = try guest.setup()
        let settings = try replication.settings(for: setup)
        let status = ReplicationStatus(role: .primary, statsPath: replication.statsJSON,
                                       statusLine: !replication.noStatusLine)
        let watchdog = MachineWatchdog()
        let network = ReplicationNetwork()
        let timing = ConnectionTiming(timeoutMilliseconds: replication.timeout)
        // The session names this pair's arbiter; the backup learns it in the handshake.
        var generator = SystemRandomNumberGenerator()
        let session = (0..<IdentityMessage.sessionSize).map { _ in UInt8.random(in: 0...255, using: &generator) }
        // The image is locked now, for this pair (the backup shares it with the same token).
        let disk = DiskHandoff(try setup.openDisk(sharing: .pair(token: session)))
        let key = try replication.key { status.message($0) }
        let arbiter = Arbiter(replication.arbiter.specification(for: setup), session: session, status: status)
        try arbiter.register(claimant: "primary pid \(getpid())")
        let listener: ReplicationListener
        do {
            listener = try network.listen(
                on: endpoint, timing: timing,
                credentials: .init(key: key, identity: ReplicaIdentity(setup: setup), watchdog: watchdog),
                session: session) { status.message($0) }
        } catch {
            throw CLIFailure("cannot listen on \(endpoint): \(error)", status: ExitStatus.unavailable)
        }
        status.message("listening on \(endpoint.host):\(listener.port)")
        if let portFile {
            try Data("\(listener.port)\n\(arbiter.path)\n".utf8).write(to: URL(fileURLWithPath: portFile))
        }
        status.set(state: .waitingForBackup)
        status.startRefreshing()
        // Strangers, wrong keys and other images are refused and logged; the primary waits on.
        // The guest starts from boot with its backups; later ones join it running.
        var connections: [ReplicationConnection] = []
        while connections.count < backups {
            guard let connection = listener.accept() else {
                throw CLIFailure("stopped listening before a backup joined", status: ExitStatus.internalError)
            }
            guard connection.purpose == .replicateFromBoot else {
                connection.close(refusal: "the guest has not started: join it once it runs")
                continue
            }
            status.message("backup at \(connection.remoteAddress) joined (\(connections.count + 1) of \(backups))")
            connections.append(connection)
        }
        status.message("replicating to \(backups) backup\(backups == 1 ? "" : "s")")
        let specification = replication.arbiter.specification(for: setup)
        let intake = BackupIntake(
            maximumBackups: backups, session: session, listener: { _ in listener },
            arbiter: { next in
                let arbiter = Arbiter(specification, session: next, status: status)
                try arbiter.register(claimant: "primary pid \(getpid())")
                return arbiter
            })
        let context = ReplicaContext(
            setup: setup, settings: settings, status: status, watchdog: watchdog,
            console: HostConsole(input: .standardInput, output: .standardOutput), disk: disk, intake: intake,
            faults: killPoint.map { FaultInjection.kill(at: $0, status: status) }, softError: replication.softError)
        try runReplicaCommand(.primary, connection: connections[0], otherBackups: Array(connections.dropFirst()),
                              arbiter: arbiter, context: context, network: network)
    }
}
