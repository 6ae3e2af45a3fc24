import ArgumentParser
import Foundation
import Hypervisor
import MachineCore
import Replication

struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Run a guest as the backup of a replicated pair: follow the primary one epoch behind, take over when it fails.")

    @Option(help: "The primary to follow (HOST:PORT).")
    var connect: String

    @Option(name: .customLong("connect-timeout"), help: "Seconds to keep trying to reach the primary.")
    var connectTimeout: Double = 30

    @Flag(help: "Join a primary whose guest already runs: receive its state while it runs, then follow it.")
    var join = false

    @Option(name: .customLong("lead-on"),
            help: "After taking over, take new backups (lockstep backup --join) on this HOST:PORT (port 0 picks one).")
    var leadOn: String?

    @Option(help: "With --lead-on: the backups to keep after taking over.")
    var backups: Int = 1

    @Option(name: .customLong("port-file"), help: .hidden)
    var portFile: String?

    @OptionGroup var replication: ReplicationOptions
    @OptionGroup var guest: GuestOptions

    func run() throws {
        guard let endpoint = Endpoint(connect) else {
            throw CLIFailure("--connect \(connect): expected HOST:PORT", status: ExitStatus.usage)
        }
        let leadEndpoint = try leadOn.map { text in
            guard let endpoint = Endpoint(text) else {
                throw CLIFailure("--lead-on \(text): expected HOST:PORT", status: ExitStatus.usage)
            }
            return endpoint
        }
        guard (1...ReplicationOptions.maximumBackups).contains(backups) else {
            throw CLIFailure("--backups \(backups): expected 1 to \(ReplicationOptions.maximumBackups)", status: ExitStatus.usage)
        }
        let setup = try guest.setup()
        let settings = try replication.settings(for: setup)
        let status = ReplicationStatus(role: .backup, statsPath: replication.statsJSON,
                                       statusLine: !replication.noStatusLine)
        let key = try replication.key { status.message($0) }
        let watchdog = MachineWatchdog()
        let network = ReplicationNetwork()
        let timing = ConnectionTiming(timeoutMilliseconds: replication.timeout)
        let connection: ReplicationConnection
        do {
            connection = try network.connect(
                to: endpoint, timing: timing,
                credentials: .init(key: key, identity: ReplicaIdentity(setup: setup), watchdog: watchdog),
                purpose: join ? .joinRunning : .replicateFromBoot, until: Date(timeIntervalSinceNow: connectTimeout))
        } catch let failure as HandshakeFailure {
            network.shutdown()
            throw CLIFailure("replication with the primary at \(endpoint) failed: \(failure)",
                             status: failure.isTransient ? ExitStatus.unavailable : ExitStatus.replicationFailed)
        } catch {
            network.shutdown()
            throw CLIFailure("cannot reach the primary at \(endpoint): \(error)", status: ExitStatus.unavailable)
        }
        let disk = DiskHandoff(try setup.openDisk(sharing: .pair(token: connection.session)))
        let arbiter = Arbiter(replication.arbiter.specification(for: setup), session: connection.session, status: status)
        status.message(join ? "joining the running primary at \(endpoint)" : "following the primary at \(endpoint)")
        status.startRefreshing()
        let specification = replication.arbiter.specification(for: setup)
        let portFile = portFile
        let intake = leadEndpoint.map { endpoint in
            BackupIntake(
                maximumBackups: backups, session: connection.session,
                listener: { session in
                    let listener = try network.listen(
                        on: endpoint, timing: timing,
                        credentials: .init(key: key, identity: ReplicaIdentity(setup: setup), watchdog: watchdog),
                        session: session) { status.message($0) }
                    status.message("taking new backups on \(endpoint.host):\(listener.port)")
                    if let portFile {
                        try Data("\(listener.port)\n".utf8).write(to: URL(fileURLWithPath: portFile), options: .atomic)
                    }
                    return listener
                },
                arbiter: { next in
                    let arbiter = Arbiter(specification, session: next, status: status)
                    try arbiter.register(claimant: "backup pid \(getpid())")
                    return arbiter
                })
        }
        let context = ReplicaContext(setup: setup, settings: settings, status: status, watchdog: watchdog,
                                     console: HostConsole(input: .standardInput, output: .standardOutput), disk: disk,
                                     intake: intake, softError: replication.softError)
        try runReplicaCommand(.backup, connection: connection, arbiter: arbiter, context: context, network: network)
    }
}
