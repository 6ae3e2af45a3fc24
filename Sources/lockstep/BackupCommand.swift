import ArgumentParser
import Foundation
import Hypervisor
import MachineCore
import Replication
import Synchronization

struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Run a guest as the backup of a replicated pair: follow the primary one epoch behind, take over when it fails.")

    @Option(help: "The primary to follow: HOST:PORT, [IPV6]:PORT or :PORT (this host).")
    var connect: String

    @Option(name: .customLong("connect-timeout"),
            help: ArgumentHelp("How long to keep trying to reach the primary: a duration (500ms, 30s, 2m; a bare number is in seconds).",
                               valueName: "duration"))
    var connectTimeout: String = "30s"

    private func connectTimeoutDuration() throws -> Duration {
        try OptionValues.duration(connectTimeout, option: "--connect-timeout", range: .zero ... .seconds(86_400))
    }

    @Option(help: "The primary's session (32 hexadecimal digits, printed by the primary when it starts): if the primary dies before this backup joined, the backup then starts the guest itself once it holds the arbiter.")
    var session: String?

    @Flag(help: "Join a primary whose guest already runs: receive its state while it runs, then follow it.")
    var join = false

    @Option(name: .customLong("lead-on"),
            help: "After taking over, take new backups (lockstep backup --join) on this HOST:PORT (port 0 picks one).")
    var leadOn: String?

    @Option(name: .customLong("backup-number"),
            help: ArgumentHelp("Which backup of a pair of several this is (from 1): `--inject-fault backupN` names it, and its messages say backupN.",
                               visibility: .hidden))
    var backupNumber: Int?

    @Option(help: "With --lead-on: the backups to keep after taking over.")
    var backups: Int = 1

    @Option(name: .customLong("port-file"),
            help: "With --lead-on: once listening, write the port (and the arbiter file's path) to this file, one per line.")
    var portFile: String?

    @OptionGroup var replication: ReplicationOptions
    @OptionGroup var consoleFraming: ConsoleFramingOption
    @OptionGroup var guest: GuestOptions

    func validate() throws {
        _ = try connectTimeoutDuration()
        if let session, Self.parseSession(session) == nil {
            throw ValidationError("--session \(session): expected \(2 * IdentityMessage.sessionSize) hexadecimal digits")
        }
        if let backupNumber, !(1...9999).contains(backupNumber) {
            throw ValidationError("--backup-number \(backupNumber): expected 1 to 9999")
        }
        if session != nil && join {
            // A running primary has output already: a joiner must never start the guest from boot.
            throw ValidationError("--session and --join cannot be combined")
        }
    }

    static func parseSession(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count == 2 * IdentityMessage.sessionSize else { return nil }
        var bytes: [UInt8] = []
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }

    func run() throws {
        let endpoint = try PrimaryCommand.endpoint(connect, option: "--connect", defaultHost: "127.0.0.1")
        let leadEndpoint = try leadOn.map { try PrimaryCommand.endpoint($0, option: "--lead-on", defaultHost: "0.0.0.0") }
        guard (1...ReplicationOptions.maximumBackups).contains(backups) else {
            throw CLIFailure("--backups \(backups): expected 1 to \(ReplicationOptions.maximumBackups)", status: ExitStatus.usage)
        }
        let setup = try guest.setup()
        let settings = try replication.settings(for: setup)
        let status = ReplicationStatus(role: .backup, statsPath: replication.statsJSON,
                                       statusLine: !replication.noStatusLine && !guest.log.quiet,
                                       messageLevel: guest.log.level, name: backupNumber.map { "backup\($0)" })
        let key = try replication.key { status.message($0, level: .warning) }
        let watchdog = MachineWatchdog()
        let network = ReplicationNetwork()
        let timing = ConnectionTiming(timeoutMilliseconds: replication.timeoutMilliseconds)
        let specification = replication.arbiter.specification(for: setup)
        let knownSession = session.flatMap(Self.parseSession)
        // The proof of sharing, in the handshake (off the event loop): the arbiter holds the
        // primary's nonce, and the primary has this very disk image open. The disk opened for
        // the proof is the one the replica uses.
        let proven = Mutex<(session: [UInt8], disk: DiskHandoff)?>(nil)
        // `expected`: the session this backup was told to follow (a re-join follows another).
        let verify: @Sendable ([UInt8]?) -> @Sendable ([UInt8]) -> String? = { expected in
            { session in
                if let expected, expected != session {
                    return "the primary runs another session than this backup's --session"
                }
                let arbiter = Arbiter(specification, session: session, status: status)
                if let refusal = SharingProof.checkArbiter(arbiter, key: key, session: session) { return refusal }
                let disk: HostDisk?
                do { disk = try setup.openDisk(sharing: .pair(token: session)) } catch { return CLIFailure(error).message }
                if let disk, let refusal = SharingProof.checkDisk(disk, session: session, warn: { status.message($0, level: .warning) }) {
                    return refusal
                }
                proven.withLock { $0 = (session, DiskHandoff(disk)) }
                return nil
            }
        }
        let credentials = ReplicationNetwork.Credentials(key: key, identity: ReplicaIdentity(setup: setup),
                                                         watchdog: watchdog, verifySharing: verify(knownSession))
        let connectLimit = try connectTimeoutDuration()
        let deadline = Date(timeIntervalSinceNow: Double(DurationParser.nanoseconds(connectLimit)) / 1e9)
        let connection: ReplicationConnection
        while true {
            do {
                connection = try network.connect(
                    to: endpoint, timing: timing, credentials: credentials,
                    purpose: join ? .joinRunning : .replicateFromBoot, until: deadline,
                    giveUpAfter: knownSession == nil ? nil : Double(replication.timeoutMilliseconds) / 1000,
                    waiting: { error in
                        status.message("waiting for the primary at \(endpoint) (\(NetworkErrorText.describe(error))); trying for up to \(DurationParser.describe(connectLimit))")
                    })
                break
            } catch let unreachable as PrimaryUnreachable {
                guard let knownSession else { throw CLIFailure("\(unreachable)", status: ExitStatus.unavailable) }
                // Did the primary start (its nonce is in the arbiter)? Then it died before this
                // backup joined: whoever holds the arbiter runs the guest.
                let arbiter = Arbiter(specification, session: knownSession, status: status)
                guard SharingProof.checkArbiter(arbiter, key: key, session: knownSession) == nil else {
                    if Date() >= deadline {
                        network.shutdown()
                        throw CLIFailure("cannot reach the primary at \(endpoint): \(unreachable.lastFailure)",
                                         status: ExitStatus.unavailable)
                    }
                    continue
                }
                try takeOverBeforeJoining(unreachable, session: knownSession, arbiter: arbiter, setup: setup,
                                          settings: settings, status: status, watchdog: watchdog, network: network)
                return
            } catch let failure as HandshakeFailure {
                network.shutdown()
                throw CLIFailure("replication with the primary at \(endpoint) failed: \(failure)",
                                 status: failure.isTransient ? ExitStatus.unavailable : ExitStatus.replicationFailed)
            } catch {
                network.shutdown()
                throw CLIFailure("cannot reach the primary at \(endpoint): \(NetworkErrorText.describe(error))", status: ExitStatus.unavailable)
            }
        }
        /// The disk this process proved it shares with the replica of `session`.
        let provenDisk: @Sendable ([UInt8]) throws -> DiskHandoff = { session in
            try proven.withLock { $0 }.flatMap { $0.session == session ? $0.disk : nil }
                ?? DiskHandoff(setup.openDisk(sharing: .pair(token: session)))
        }
        let arbiter = Arbiter(specification, session: connection.session, status: status)
        status.message(join ? "joining the running primary at \(endpoint)" : "following the primary at \(endpoint)")
        status.startRefreshing()
        let portFile = portFile, maximumBackups = backups
        // With re-protection on: the intake of a backup that follows the pair of `session`. If it
        // wins that pair's arbiter, it announces there where it takes new backups, for the
        // backups that lost (they re-join it).
        let intake: @Sendable ([UInt8]) -> BackupIntake? = { session in
            leadEndpoint.map { endpoint in
                BackupIntake(
                    maximumBackups: maximumBackups, session: session,
                    listener: { next in
                        let listener = try network.listen(
                            on: endpoint, timing: timing,
                            credentials: .init(key: key, identity: ReplicaIdentity(setup: setup), watchdog: watchdog),
                            session: next) { status.message($0, level: .warning) }
                        status.message("taking new backups on \(endpoint.host):\(listener.port)")
                        if let portFile {
                            try Data("\(listener.port)\n".utf8).write(to: URL(fileURLWithPath: portFile), options: .atomic)
                        }
                        // Without it the losers stop (78) and re-protection replaces them: worth a
                        // warning, not the run.
                        do {
                            try Arbiter(specification, session: session, status: status)
                                .announceLeader(HostPort(host: endpoint.host, port: listener.port))
                        } catch {
                            status.message("cannot announce this replica's address in the arbiter (backups that lost it stop): \(error)",
                                           level: .warning)
                        }
                        return listener
                    },
                    arbiter: { next in
                        let arbiter = Arbiter(specification, session: next, status: status)
                        try arbiter.register(claimant: "backup pid \(getpid())")
                        // New backups prove they share this arbiter, as with any primary.
                        try arbiter.publish(nonce: SharingProof.arbiterNonce(key: key, session: next))
                        return arbiter
                    })
            }
        }
        var context = ReplicaContext(setup: setup, settings: settings, status: status, watchdog: watchdog,
                                     console: consoleFraming.console, disk: nil,
                                     intake: intake(connection.session), softError: replication.softError)
        context.backupNumber = backupNumber ?? 1
        guard leadEndpoint != nil else {
            context.disk = try provenDisk(connection.session)
            try runReplicaCommand(.backup, connection: connection, arbiter: arbiter, context: context, network: network)
            return
        }
        // Re-protection is on: a backup that loses the arbiter to another backup re-joins the
        // winner in this process, keeping its console and the input it read.
        let first = connection
        let rejoinCredentials = ReplicationNetwork.Credentials(key: key, identity: ReplicaIdentity(setup: setup),
                                                               watchdog: watchdog, verifySharing: verify(nil))
        // Held here only until the first run takes it: a re-join closes the old pair's disk first.
        let firstDisk = Mutex<DiskHandoff?>(try provenDisk(connection.session))
        let base = context
        try runReplicaCommand(context: base, network: network, connections: [first]) {
            var connection = first, arbiter = arbiter, context = base
            context.disk = firstDisk.withLock { disk in
                defer { disk = nil }
                return disk
            }
            defer { connection.close() }
            while true {
                do {
                    return try runReplica(.backup, connection: connection, arbiter: arbiter, context: context)
                } catch let lost as BackupLostArbiter {
                    connection.close()
                    // The old pair's disk handle goes before the winner's pair opens the image.
                    context.disk = nil
                    proven.withLock { $0 = nil }
                    connection = try Self.rejoinWinner(lostTo: lost.holder, arbiter: arbiter, wait: connectLimit, network: network,
                                                       timing: timing, credentials: rejoinCredentials, status: status)
                    arbiter = Arbiter(specification, session: connection.session, status: status)
                    context.disk = try provenDisk(connection.session)
                    context.intake = intake(connection.session)
                }
            }
        }
    }

    /// A backup that lost its pair's arbiter to another backup: waits (at most `wait`) for the
    /// winner's announcement of where it takes new backups, in the arbiter both share, then
    /// joins it there by state transfer (the handshake and proof of sharing of any joiner).
    static func rejoinWinner(lostTo holder: String, arbiter: Arbiter, wait: Duration, network: ReplicationNetwork,
                             timing: ConnectionTiming, credentials: ReplicationNetwork.Credentials,
                             status: ReplicationStatus) throws -> ReplicationConnection
    {
        let deadline = Date(timeIntervalSinceNow: Double(DurationParser.nanoseconds(wait)) / 1e9)
        // Nobody holds it (this backup was dropped by a primary that runs on): no winner to join.
        guard arbiter.holder != nil else { throw CLIFailure(ReplicationError.lostArbiter(holder: holder)) }
        var announced = try arbiter.readLeader()
        while announced == nil {
            guard Date() < deadline else {
                throw CLIFailure("\(ReplicationError.lostArbiter(holder: holder)): the winner announced no address for new backups within \(DurationParser.describe(wait))",
                                 status: ExitStatus.lostArbiter)
            }
            Thread.sleep(forTimeInterval: 0.05)
            announced = try arbiter.readLeader()
        }
        // `parseAnnouncement` accepts only addresses with a host.
        guard let announced, let host = announced.host else { preconditionFailure("an announcement has a host") }
        let winner = Endpoint(host: host, port: announced.port)
        // The state stays "taking over" until the join starts (`lockstep pair` stops joiners that
        // do not follow once their leader is gone).
        status.rejoining()
        status.message("re-joining the winner at \(winner)", level: .notice)
        do {
            return try network.connect(
                to: winner, timing: timing, credentials: credentials, purpose: .joinRunning, until: deadline,
                waiting: { error in status.message("waiting for the winner at \(winner) (\(NetworkErrorText.describe(error)))") })
        } catch let unreachable as PrimaryUnreachable {
            throw CLIFailure("cannot re-join the winner at \(winner): \(unreachable.lastFailure)", status: ExitStatus.lostArbiter)
        } catch let failure as HandshakeFailure {
            throw CLIFailure("re-joining the winner at \(winner) failed: \(failure)", status: ExitStatus.lostArbiter)
        } catch {
            throw CLIFailure("cannot re-join the winner at \(winner): \(NetworkErrorText.describe(error))", status: ExitStatus.lostArbiter)
        }
    }

    /// The primary started (its nonce is in the arbiter) and died before this backup joined: it
    /// never ran the guest, so nothing was output. Once this replica holds the arbiter it runs
    /// the guest from boot, live; if the primary holds it (it is alive after all), it stops.
    private func takeOverBeforeJoining(_ unreachable: PrimaryUnreachable, session: [UInt8], arbiter: Arbiter,
                                       setup: GuestSetup, settings: ReplicationSettings, status: ReplicationStatus,
                                       watchdog: MachineWatchdog, network: ReplicationNetwork) throws
    {
        status.message("\(unreachable) before this backup joined; asking the arbiter", level: .warning)
        status.set(state: .takingOver)
        switch try arbiter.acquire(claimant: "backup pid \(getpid())") {
        case .won: break
        case .lost(let holder):
            network.shutdown()
            throw CLIFailure(ReplicationError.lostArbiter(holder: holder))
        }
        status.message("holding the arbiter: starting the guest here, without a primary", level: .notice)
        let disk = DiskHandoff(try setup.openDisk(sharing: .pair(token: session)))
        status.startRefreshing()
        let context = ReplicaContext(setup: setup, settings: settings, status: status, watchdog: watchdog,
                                     console: consoleFraming.console, disk: disk)
        try runReplicaCommand(context: context, network: network, connections: []) { try runAlone(context: context) }
    }
}
