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

    @OptionGroup var replication: ReplicationOptions
    @OptionGroup var guest: GuestOptions

    func run() throws {
        guard let endpoint = Endpoint(connect) else {
            throw CLIFailure("--connect \(connect): expected HOST:PORT", status: ExitStatus.usage)
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
                until: Date(timeIntervalSinceNow: connectTimeout))
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
        status.message("following the primary at \(endpoint)")
        status.startRefreshing()
        let context = ReplicaContext(setup: setup, settings: settings, status: status, watchdog: watchdog,
                                     console: HostConsole(input: .standardInput, output: .standardOutput), disk: disk)
        try runReplicaCommand(.backup, connection: connection, arbiter: arbiter, context: context, network: network)
    }
}
