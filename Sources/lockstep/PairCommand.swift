import ArgumentParser
import Foundation
import Hypervisor
import Replication

#if canImport(Glibc)
import Glibc
#endif

struct PairCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pair",
        abstract: "Run a guest replicated on this machine: a primary and a backup as separate processes, with this process as their shared console.",
        discussion: """
            Standard input goes to the guest, whichever replica is live; the guest's output appears \
            once. --kill-primary-after and --kill-primary-at-epoch kill the primary with SIGKILL to \
            show the backup taking over. The exit status is the guest's.
            """)

    @Option(name: .customLong("kill-primary-after"), help: "Kill the primary with SIGKILL after this many seconds.")
    var killPrimaryAfter: Double?

    @Option(name: .customLong("kill-primary-at-epoch"),
            help: "Kill the primary at this epoch's boundary; N:PHASE picks a phase (boundary, logged, acknowledged, performed).")
    var killPrimaryAtEpoch: String?

    @Option(help: "Backups to run (each a process of its own); an output is released when every live backup holds it.")
    var backups: Int = 1

    @Flag(name: .customLong("no-reprotect"),
          help: "After a failure, run on with the backups that are left instead of starting new ones that join the running guest.")
    var noReprotect = false

    @Option(name: .customLong("kill-primary-times"), help: .hidden)
    var killPrimaryTimes: Int = 1

    @Flag(name: .customLong("kill-a-backup-too"), help: .hidden)
    var killABackupToo = false

    @OptionGroup var replication: ReplicationOptions
    @OptionGroup var guest: GuestOptions

    func run() throws {
        guard (1...ReplicationOptions.maximumBackups).contains(backups) else {
            throw CLIFailure("--backups \(backups): expected 1 to \(ReplicationOptions.maximumBackups)", status: ExitStatus.usage)
        }
        if replication.compare && backups > 1 {
            throw CLIFailure("--compare with --backups \(backups): voting among several backups (TMR) is not built yet; compare with one backup", status: ExitStatus.usage)
        }
        guard killPrimaryTimes >= 1 else {
            throw CLIFailure("--kill-primary-times must be at least 1", status: ExitStatus.usage)
        }
        _ = try replication.settings(for: guest.setup())
        if killPrimaryAfter != nil && killPrimaryAtEpoch != nil {
            throw CLIFailure("--kill-primary-after and --kill-primary-at-epoch cannot be combined", status: ExitStatus.usage)
        }
        if let text = killPrimaryAtEpoch {
            _ = try ReplicationOptions.killPoint(text, option: "--kill-primary-at-epoch")
        }
        if let seconds = killPrimaryAfter, !(seconds >= 0) {
            throw CLIFailure("--kill-primary-after must be a number of seconds", status: ExitStatus.usage)
        }
        signal(SIGPIPE, SIG_IGN)
        let work = FileManager.default.temporaryDirectory
            .appendingPathComponent("lockstep-pair-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(at: work) }
        // A one-time key for this pair, readable only by this user, gone with the work directory.
        let keyFile = work.appendingPathComponent("key").path
        do { try ReplicationKey.generate().write(to: keyFile) } catch {
            throw CLIFailure(error.description, status: ExitStatus.internalError)
        }
        let portFile = work.appendingPathComponent("port").path
        let primaryStats = work.appendingPathComponent("primary.json").path
        let backupStats = work.appendingPathComponent("backup.json").path

        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var primaryArguments = ["primary", "--listen", "127.0.0.1:0", "--port-file", portFile,
                                "--stats-json", primaryStats, "--no-status-line", "--key-file", keyFile,
                                "--backups", "\(backups)"]
        if let killPrimaryAtEpoch { primaryArguments += ["--kill-at-epoch", killPrimaryAtEpoch] }
        let console = PairConsole()
        let primary = try console.start(executable, primaryArguments + replication.arguments + guest.arguments)

        guard let (port, arbiterPath) = waitForPort(portFile, while: primary) else {
            primary.waitForExit()
            console.finish()
            throw CLIFailure("the primary did not start (exit status \(primary.terminationStatus))",
                             status: primary.terminationStatus == 0 ? ExitStatus.internalError : primary.terminationStatus)
        }
        defer { if let arbiterPath { Self.removeArbiterFiles(of: arbiterPath) } }
        let fleet = PairFleet(work: work, executable: executable, console: console, backups: backups,
                              reprotect: !noReprotect,
                              common: ["--no-status-line", "--key-file", keyFile] + replication.arguments,
                              guest: guest.arguments)
        fleet.adopt(primary, stats: primaryStats, portFile: portFile)
        var firstBackup: ReplicaProcess?
        for index in 0..<backups {
            let stats = index == 0 ? backupStats : work.appendingPathComponent("backup-\(index).json").path
            let process = try fleet.startBackup(port: port, join: false, stats: stats)
            if firstBackup == nil { firstBackup = process }
        }
        let backup = firstBackup!
        let interruption = forwardTerminationSignals(to: fleet)
        stopPrimaryIfBackupNeverJoins(primary: primary, backup: backup, primaryStats: primaryStats)
        console.startInput()
        if killPrimaryTimes > 1 || killABackupToo {
            fleet.killLeaders(times: killPrimaryTimes, after: killPrimaryAfter ?? 0.5, backupToo: killABackupToo)
        } else if let seconds = killPrimaryAfter {
            let pid = primary.processIdentifier
            DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { kill(pid, SIGKILL) }
        }
        let display = PairStatusLine(fleet: fleet, enabled: !replication.noStatusLine)
        display.start()
        fleet.supervise()
        let primaryExitedAt = primary.exitedAt
        fleet.waitForAll()
        display.stop()
        console.finish()

        let status = fleet.status(primary: primary, backup: backup)
        if let statsJSON = replication.statsJSON {
            writeCombinedStats(to: statsJSON, primary: primary, primaryExitedAt: primaryExitedAt,
                               primaryStats: primaryStats, backupStats: backupStats, fleet: fleet, status: status)
        }
        if let signal = interruption.signal { throw ExitCode(128 + signal) }
        throw ExitCode(status)
    }

    /// Removes the arbiter's claim files of every session of this pair (a replica that leads a
    /// new pair after a failover makes a new session that keeps the first's first four bytes).
    static func removeArbiterFiles(of path: String) {
        let url = URL(fileURLWithPath: path)
        let name = url.lastPathComponent
        guard name.hasPrefix(".lockstep-arbiter-") else {
            try? FileManager.default.removeItem(atPath: path)
            return
        }
        let prefix = String(name.prefix(".lockstep-arbiter-".count + 8))
        let directory = url.deletingLastPathComponent()
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for other in names where other.hasPrefix(prefix) {
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(other))
        }
    }

    /// From here on SIGINT, SIGTERM and SIGHUP stop the replicas (with SIGTERM) instead of this
    /// process, which then cleans up (its work directory, the arbiter file) and exits 128 + the
    /// signal. Handlers are installed only after the replicas started, so they keep the default
    /// dispositions.
    private func forwardTerminationSignals(to fleet: PairFleet) -> Interruption {
        let interruption = Interruption()
        for number in [SIGINT, SIGTERM, SIGHUP] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                interruption.record(number)
                fleet.stopAll()
            }
            source.resume()
            interruption.keep(source)
        }
        return interruption
    }

    /// A backup that exits before it joined (it could not reach the primary, or failed to start)
    /// would leave the primary waiting for it forever: stop the primary too. A backup that exits
    /// after joining is a backup failure, and the primary carries on alone.
    private func stopPrimaryIfBackupNeverJoins(primary: ReplicaProcess, backup: ReplicaProcess, primaryStats: String) {
        DispatchQueue.global().async {
            backup.waitForExit()
            // The primary is in `waitingForBackup` until a backup joined, `replicating` after.
            let state = ReplicationStatus.Snapshot.load(primaryStats)?.state
            guard primary.isRunning, state?.awaitsBackup ?? true else { return }
            let how = backup.terminationReason == .uncaughtSignal
                ? "was killed by signal \(backup.terminationStatus)" : "exited with status \(backup.terminationStatus)"
            FileHandle.standardError.write(Data("lockstep: the backup \(how) before it joined; stopping the primary\n".utf8))
            kill(primary.processIdentifier, SIGTERM)
        }
    }

    /// The guest's status: the primary's if it finished the run, else the backup's.
    static func status(primary: ReplicaProcess, backup: ReplicaProcess) -> Int32 {
        let primaryFinished = primary.terminationReason == .exit
            && primary.terminationStatus != ExitStatus.lostArbiter
        if primaryFinished && (primary.terminationStatus != ExitStatus.replicationFailed
                               || backup.terminationStatus == ExitStatus.replicationFailed) {
            return primary.terminationStatus
        }
        return backup.terminationReason == .exit ? backup.terminationStatus : ExitStatus.internalError
    }

    private func waitForPort(_ path: String, while process: ReplicaProcess) -> (Int, String?)? {
        let deadline = Date(timeIntervalSinceNow: 60)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: path, encoding: .utf8) {
                let lines = text.split(separator: "\n")
                if lines.count >= 2, let port = Int(lines[0]) { return (port, String(lines[1])) }
            }
            guard process.isRunning else { return nil }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return nil
    }

    private func writeCombinedStats(to path: String, primary: ReplicaProcess, primaryExitedAt: Double?,
                                    primaryStats: String, backupStats: String, fleet: PairFleet, status: Int32)
    {
        func load(_ path: String) -> Any {
            guard let data = FileManager.default.contents(atPath: path),
                  let object = try? JSONSerialization.jsonObject(with: data)
            else { return NSNull() }
            return object
        }
        let killed = primary.terminationReason == .uncaughtSignal
        let members = fleet.members
        let document: [String: Any] = [
            "primary": load(primaryStats),
            "backup": load(backupStats),
            "primaryKilled": killed,
            "primaryExitedAt": primaryExitedAt ?? 0,
            "status": Int(status),
            "failovers": fleet.failovers,
            "replicas": members.map { member -> [String: Any] in
                [
                    "stats": load(member.stats),
                    "killed": member.process.terminationReason == .uncaughtSignal,
                    "exitStatus": Int(member.process.terminationStatus),
                    "joined": member.joined,
                ]
            },
            "protectedAgainAfter": members.flatMap { ReplicationStatus.Snapshot.load($0.stats)?.protectedAgainAfter ?? [] },
        ]
        if let data = try? JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys]) {
            try? data.write(to: URL(fileURLWithPath: path), options: .atomic)
        }
    }
}

/// The termination signal `lockstep pair` received, if any, and the sources that watch for one.
final class Interruption: @unchecked Sendable {
    private let lock = NSLock()
    private var received: Int32?
    private var sources: [any DispatchSourceSignal] = []

    func record(_ signal: Int32) { lock.withLock { if received == nil { received = signal } } }
    func keep(_ source: any DispatchSourceSignal) { lock.withLock { sources.append(source) } }
    var signal: Int32? { lock.withLock { received } }
}

/// A replica's process, whose exit is waited for without polling (Foundation's
/// `waitUntilExit` spins a run loop) and time-stamped when it happens.
final class ReplicaProcess: Process, @unchecked Sendable {
    private let exited = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var exitTime: Double?

    override init() {
        super.init()
        terminationHandler = { [unowned self] _ in
            lock.withLock { exitTime = Date().timeIntervalSince1970 }
            exited.signal()
        }
    }

    /// Blocks until the process has exited.
    func waitForExit() {
        exited.wait()
        exited.signal()
    }

    /// When the process was seen to exit (seconds since 1970).
    var exitedAt: Double? { lock.withLock { exitTime } }
}

/// The shared console of a pair: standard input copied to every replica (one that starts
/// later first gets everything read so far, so every replica sees the same input stream), their
/// standard outputs copied to ours. A replica prints nothing until it is live, which is after
/// every replica started before it has died or stopped; so each replica's output is copied only
/// once the output of every replica started before it has ended, and output keeps its order.
final class PairConsole: @unchecked Sendable {
    private let outputLock = NSLock()
    private let lock = NSLock()
    // Guarded by `lock`.
    private var inputs: [FileHandle] = []
    private var backlog: [UInt8] = []
    private var inputEnded = false
    private var ended: [DispatchSemaphore] = []
    private let relaysDone = DispatchGroup()

    func start(_ executable: URL, _ arguments: [String]) throws -> ReplicaProcess {
        let process = ReplicaProcess()
        process.executableURL = executable
        process.arguments = arguments
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        let mine = DispatchSemaphore(value: 0)
        let earlier: [DispatchSemaphore] = try lock.withLock {
            try process.run()
            let writer = input.fileHandleForWriting
            if !backlog.isEmpty { try? writer.write(contentsOf: Data(backlog)) }
            if inputEnded { try? writer.close() } else { inputs.append(writer) }
            defer { ended.append(mine) }
            return ended
        }
        relaysDone.enter()
        let reader = output.fileHandleForReading
        let thread = Thread { [self] in
            var waited = earlier.isEmpty
            while true {
                let data = HostConsole.readChunk(from: reader, what: "a replica's output")
                if data.isEmpty { break }
                if !waited {
                    for other in earlier {
                        other.wait()
                        other.signal()
                    }
                    waited = true
                }
                outputLock.withLock { try? FileHandle.standardOutput.write(contentsOf: data) }
            }
            mine.signal()
            relaysDone.leave()
        }
        thread.start()
        return process
    }

    /// Starts copying standard input to every replica.
    func startInput() {
        let thread = Thread { [self] in
            while true {
                let data = HostConsole.readChunk(from: .standardInput, what: "standard input")
                if data.isEmpty { break }
                lock.withLock {
                    backlog += data
                    for target in inputs { try? target.write(contentsOf: data) }
                }
            }
            lock.withLock {
                inputEnded = true
                for target in inputs { try? target.close() }
                inputs.removeAll()
            }
        }
        thread.start()
    }

    /// Waits until every replica's output has been copied.
    func finish() { relaysDone.wait() }
}

/// On a terminal, one status line for the pair, from the replicas' statistics files.
final class PairStatusLine: @unchecked Sendable {
    private let fleet: PairFleet
    private let enabled: Bool
    private let lock = NSLock()
    private var running = false

    init(fleet: PairFleet, enabled: Bool) {
        self.fleet = fleet
        self.enabled = enabled && isatty(STDERR_FILENO) != 0
    }

    func start() {
        guard enabled else { return }
        lock.withLock { running = true }
        Thread.detachNewThread { [self] in
            while lock.withLock({ running }) {
                draw()
                Thread.sleep(forTimeInterval: 0.25)
            }
        }
    }

    func stop() {
        guard enabled else { return }
        lock.withLock { running = false }
        draw()
        FileHandle.standardError.write(Data("\n".utf8))
    }

    private func draw() {
        let leaderText = fleet.leaderStats.map {
            "\($0.role) \($0.state) epoch \($0.epoch) lag \($0.backupLag) (\(String(format: "%.1f", $0.backupLagSeconds * 1000)) ms) backups \($0.backups) tx \(String(format: "%.1f", $0.sendBytesPerSecond / 1024)) KB/s\($0.protectionText)"
        } ?? "primary starting"
        let others = max(fleet.members.filter { $0.process.isRunning }.count - 1, 0)
        FileHandle.standardError.write(Data("\r\u{1B}[K[pair] \(leaderText) | \(others) other replica(s)".utf8))
    }
}
