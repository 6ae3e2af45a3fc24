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

    @OptionGroup var replication: ReplicationOptions
    @OptionGroup var guest: GuestOptions

    func run() throws {
        guard let endpoint = Endpoint(listen) else {
            throw CLIFailure("--listen \(listen): expected HOST:PORT", status: ExitStatus.usage)
        }
        let setup = try guest.setup()
        var settings = try replication.settings(for: setup)
        if let killAtEpoch {
            settings.killPoint = try ReplicationOptions.killPoint(killAtEpoch, option: "--kill-at-epoch")
        }
        let identity = replication.identity(for: setup)
        let status = ReplicationStatus(role: "primary", statsPath: replication.statsJSON,
                                       statusLine: !replication.noStatusLine)
        let network = ReplicationNetwork()
        let timing = ConnectionTiming(timeoutMilliseconds: replication.timeout)
        let listener: ReplicationListener
        do { listener = try network.listen(on: endpoint, timing: timing) } catch {
            throw CLIFailure("cannot listen on \(endpoint): \(error)", status: ExitStatus.unavailable)
        }
        let session = (0..<16).map { _ in UInt8.random(in: 0...255) }
        let disk = try setup.openDisk(sharing: .pair(token: session))
        let arbiter = Arbiter(replication.arbiter.specification(for: setup), session: session, status: status)
        try arbiter.register(claimant: "primary pid \(getpid())")
        status.message("listening on \(endpoint.host):\(listener.port)")
        if let portFile {
            try Data("\(listener.port)\n\(arbiter.path)\n".utf8).write(to: URL(fileURLWithPath: portFile))
        }
        status.set(state: "waiting for backup")
        let connection = try Handshake.acceptBackup(
            on: listener, identity: identity, session: session,
            timeout: Double(replication.timeout) / 1000 + 5) { status.message($0) }
        status.message("backup connected; replicating")
        status.set(state: "replicating")
        let finalSettings = settings
        try runReplica(status: status, connection: connection, network: network) {
            let console = HostConsole(input: .standardInput, output: .standardOutput)
            let environment = PrimaryEnvironment(host: HostIO(console: console, disk: disk))
            let machine = try MachineFactory.make(setup, environment: environment)
            let primary = PrimaryReplica(
                machine: machine, environment: environment, connection: connection, arbiter: arbiter,
                settings: finalSettings, epochLength: setup.epochLength,
                timing: BoundaryTiming(mode: setup.options.clockMode), status: status)
            let outcome = try primary.run()
            return ReplicaRun(outcome: outcome, finalState: "finished",
                              digest: try machine.stateDigest().description, primaryDigest: nil)
        }
    }
}
