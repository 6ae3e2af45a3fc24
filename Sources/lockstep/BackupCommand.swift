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
        let identity = replication.identity(for: setup)
        let status = ReplicationStatus(role: "backup", statsPath: replication.statsJSON,
                                       statusLine: !replication.noStatusLine)
        let network = ReplicationNetwork()
        let timing = ConnectionTiming(timeoutMilliseconds: replication.timeout)
        let connection: PeerConnection
        do {
            connection = try network.connect(to: endpoint, timing: timing,
                                             until: Date(timeIntervalSinceNow: connectTimeout))
        } catch {
            throw CLIFailure("cannot reach the primary at \(endpoint): \(error)", status: ExitStatus.unavailable)
        }
        let session = try Handshake.joinPrimary(connection, identity: identity,
                                                timeout: Double(replication.timeout) / 1000 + 5)
        let disk = try setup.openDisk(sharing: .pair(token: session))
        let arbiter = Arbiter(replication.arbiter.specification(for: setup), session: session, status: status)
        status.message("following the primary at \(endpoint)")
        try runReplica(status: status, connection: connection, network: network) {
            let console = HostConsole(input: .standardInput, output: .standardOutput)
            let environment = BackupEnvironment(host: HostIO(console: console, disk: disk))
            let machine = try MachineFactory.make(setup, environment: environment)
            let backup = BackupReplica(
                machine: machine, environment: environment, connection: connection, arbiter: arbiter,
                settings: settings, epochLength: setup.epochLength,
                timing: BoundaryTiming(mode: setup.options.clockMode), status: status)
            let outcome = try backup.run()
            return ReplicaRun(outcome: outcome, finalState: backup.tookOver ? "finished live" : "finished",
                              digest: try machine.stateDigest().description,
                              primaryDigest: backup.primaryFinalDigest?.description)
        }
    }
}
