import ArgumentParser
import Foundation
import Hypervisor
import MachineCore
import Replication

struct PrimaryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "primary",
        abstract: "Run a guest as the primary of a replicated pair: wait for a backup, then run in lockstep with it.")

    @Option(help: "Where to listen for the backup: HOST:PORT, [IPV6]:PORT or :PORT (all addresses); port 0 picks a free one.")
    var listen: String

    @Option(name: .customLong("port-file"),
            help: "Once listening, write the port (and the arbiter file's path) to this file, one per line: for scripts, with port 0.")
    var portFile: String?

    @Option(name: .customLong("kill-at-epoch"),
            help: "Fault injection: kill this process with SIGKILL at this epoch's boundary; N:PHASE picks a phase (boundary, logged, acknowledged, performed).")
    var killAtEpoch: String?

    @Option(help: "Backups to replicate to: the guest starts when this many have joined; one that fails is replaced by one that joins the running guest (lockstep backup --join).")
    var backups: Int = 1

    @OptionGroup var replication: ReplicationOptions
    @OptionGroup var consoleFraming: ConsoleFramingOption
    @OptionGroup var guest: GuestOptions

    func run() throws {
        let endpoint = try Self.endpoint(listen, option: "--listen", defaultHost: "0.0.0.0")
        guard (1...ReplicationOptions.maximumBackups).contains(backups) else {
            throw CLIFailure("--backups \(backups): expected 1 to \(ReplicationOptions.maximumBackups)", status: ExitStatus.usage)
        }
        let killPoint = try killAtEpoch.map { try ReplicationOptions.killPoint($0, option: "--kill-at-epoch") }
        let setup = try guest.setup()
        let settings = try replication.settings(for: setup)
        let status = ReplicationStatus(role: .primary, statsPath: replication.statsJSON,
                                       statusLine: !replication.noStatusLine && !guest.log.quiet,
                                       messageLevel: guest.log.level)
        let watchdog = MachineWatchdog()
        let network = ReplicationNetwork()
        let timing = ConnectionTiming(timeoutMilliseconds: replication.timeoutMilliseconds)
        // The session names this pair's arbiter; the backup learns it in the handshake.
        var generator = SystemRandomNumberGenerator()
        let session = (0..<IdentityMessage.sessionSize).map { _ in UInt8.random(in: 0...255, using: &generator) }
        // The image is locked now, for this pair (the backup shares it with the same token).
        let disk = DiskHandoff(try setup.openDisk(sharing: .pair(token: session)))
        let key = try replication.key { status.message($0, level: .warning) }
        let arbiter = Arbiter(replication.arbiter.specification(for: setup), session: session, status: status)
        try arbiter.register(claimant: "primary pid \(getpid())")
        // The session must be new to the arbiter: a claim already there is someone else's run.
        if arbiter.isClaimed {
            throw CLIFailure(ReplicationError.lostArbiter(holder: arbiter.holder ?? "another replica"))
        }
        // The proof that the backup uses this arbiter: it must read this back (SharingProof).
        try arbiter.publish(nonce: SharingProof.arbiterNonce(key: key, session: session))
        defer { arbiter.withdrawNonce() }
        let listener: ReplicationListener
        do {
            listener = try network.listen(
                on: endpoint, timing: timing,
                credentials: .init(key: key, identity: ReplicaIdentity(setup: setup), watchdog: watchdog),
                session: session) { status.message($0, level: .warning) }
        } catch {
            throw CLIFailure("cannot listen on \(endpoint): \(NetworkErrorText.describe(error))", status: ExitStatus.unavailable)
        }
        status.message("listening on \(Endpoint(host: endpoint.host, port: listener.port)), session \(session.map { String(format: "%02x", $0) }.joined())")
        if let portFile {
            let sessionText = session.map { String(format: "%02x", $0) }.joined()
            try Data("\(listener.port)\n\(arbiter.path)\n\(sessionText)\n".utf8).write(to: URL(fileURLWithPath: portFile))
        }
        status.set(state: .waitingForBackup)
        status.startRefreshing()
        // Strangers, wrong keys and other images are refused and logged; the primary waits on,
        // watching the arbiter: a backup that took this primary for dead before it joined may
        // have gone live (it then runs the guest itself), and this one must never start.
        // The guest starts from boot with its backups; later ones join it running.
        var connections: [ReplicationConnection] = []
        while connections.count < backups {
            let accepted = listener.accept(until: Date(timeIntervalSinceNow: 0.2))
            if arbiter.isClaimed {
                listener.close()
                for connection in connections + [accepted].compactMap({ $0 }) {
                    connection.close(refusal: "this primary lost the arbiter before replication began")
                }
                throw CLIFailure(ReplicationError.lostArbiter(holder: arbiter.holder ?? "the backup"))
            }
            guard let connection = accepted else { continue }
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
                // New backups prove they share this arbiter, as at the start.
                try arbiter.publish(nonce: SharingProof.arbiterNonce(key: key, session: next))
                return arbiter
            })
        let context = ReplicaContext(
            setup: setup, settings: settings, status: status, watchdog: watchdog,
            console: consoleFraming.console, disk: disk, intake: intake,
            faults: killPoint.map { FaultInjection.kill(at: $0, status: status) }, softError: replication.softError)
        try runReplicaCommand(.primary, connection: connections[0], otherBackups: Array(connections.dropFirst()),
                              arbiter: arbiter, context: context, network: network)
    }
}

extension PrimaryCommand {
    /// An address option in QEMU's spellings (`HOST:PORT`, `[IPV6]:PORT`, `:PORT` for
    /// `defaultHost`), or its one-line refusal.
    static func endpoint(_ text: String, option: String, defaultHost: String) throws -> Endpoint {
        switch HostPort.parse(text) {
        case .success(let address): return Endpoint(host: address.host ?? defaultHost, port: address.port)
        case .failure(let error): throw CLIFailure("\(option) \(text): \(error)", status: ExitStatus.usage)
        }
    }
}
