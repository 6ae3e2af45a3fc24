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

    @OptionGroup var replication: ReplicationOptions
    @OptionGroup var guest: GuestOptions

    func run() throws {
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
                                "--stats-json", primaryStats, "--no-status-line", "--key-file", keyFile]
        if let killPrimaryAtEpoch { primaryArguments += ["--kill-at-epoch", killPrimaryAtEpoch] }
        let console = PairConsole()
        let primary = try console.start(executable, primaryArguments + replication.arguments + guest.arguments)

        guard let (port, arbiterPath) = waitForPort(portFile, while: primary) else {
            primary.waitForExit()
            console.finish()
            throw CLIFailure("the primary did not start (exit status \(primary.terminationStatus))",
                             status: primary.terminationStatus == 0 ? ExitStatus.internalError : primary.terminationStatus)
        }
        defer { if let arbiterPath { try? FileManager.default.removeItem(atPath: arbiterPath) } }
        let backup = try console.start(executable, ["backup", "--connect", "127.0.0.1:\(port)",
                                                     "--stats-json", backupStats, "--no-status-line", "--key-file", keyFile]
                                       + replication.arguments + guest.arguments)
        let interruption = forwardTerminationSignals(to: [primary, backup])
        stopPrimaryIfBackupNeverJoins(primary: primary, backup: backup, primaryStats: primaryStats)
        console.startInput()
        if let seconds = killPrimaryAfter {
            let pid = primary.processIdentifier
            DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { kill(pid, SIGKILL) }
        }
        let display = PairStatusLine(primaryStats: primaryStats, backupStats: backupStats,
                                     enabled: !replication.noStatusLine)
        display.start()
        primary.waitForExit()
        let primaryExitedAt = primary.exitedAt
        backup.waitForExit()
        display.stop()
        console.finish()

        if let statsJSON = replication.statsJSON {
            writeCombinedStats(to: statsJSON, primary: primary, backup: backup, primaryExitedAt: primaryExitedAt,
                               primaryStats: primaryStats, backupStats: backupStats)
        }
        if let signal = interruption.signal { throw ExitCode(128 + signal) }
        throw ExitCode(Self.status(primary: primary, backup: backup))
    }

    /// From here on SIGINT, SIGTERM and SIGHUP stop the replicas (with SIGTERM) instead of this
    /// process, which then cleans up (its work directory, the arbiter file) and exits 128 + the
    /// signal. Handlers are installed only after the replicas started, so they keep the default
    /// dispositions.
    private func forwardTerminationSignals(to replicas: [ReplicaProcess]) -> Interruption {
        let interruption = Interruption()
        let pids = replicas.map(\.processIdentifier)
        for number in [SIGINT, SIGTERM, SIGHUP] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                interruption.record(number)
                for pid in pids { kill(pid, SIGTERM) }
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

    private func writeCombinedStats(to path: String, primary: ReplicaProcess, backup: ReplicaProcess, primaryExitedAt: Double?,
                                    primaryStats: String, backupStats: String)
    {
        func load(_ path: String) -> Any {
            guard let data = FileManager.default.contents(atPath: path),
                  let object = try? JSONSerialization.jsonObject(with: data)
            else { return NSNull() }
            return object
        }
        let killed = primary.terminationReason == .uncaughtSignal
        let document: [String: Any] = [
            "primary": load(primaryStats),
            "backup": load(backupStats),
            "primaryKilled": killed,
            "primaryExitedAt": primaryExitedAt ?? 0,
            "status": Int(Self.status(primary: primary, backup: backup)),
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

/// The shared console of a pair: standard input copied to both replicas, their standard
/// outputs copied to ours. The backup prints nothing until it is live, which is after the primary
/// died; everything the primary wrote before dying is copied first, so output keeps its order.
final class PairConsole: @unchecked Sendable {
    private let outputLock = NSLock()
    private var inputs: [FileHandle] = []
    private let relaysDone = DispatchGroup()
    /// Signalled when the first replica's (the primary's) output has ended.
    private let firstOutputEnded = DispatchSemaphore(value: 0)

    func start(_ executable: URL, _ arguments: [String]) throws -> ReplicaProcess {
        let process = ReplicaProcess()
        process.executableURL = executable
        process.arguments = arguments
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        try process.run()
        inputs.append(input.fileHandleForWriting)
        relaysDone.enter()
        let reader = output.fileHandleForReading
        let isFirst = inputs.count == 1
        let thread = Thread { [self] in
            var waited = isFirst
            while true {
                let data = HostConsole.readChunk(from: reader, what: "a replica's output")
                if data.isEmpty { break }
                if !waited {
                    firstOutputEnded.wait()
                    waited = true
                }
                outputLock.withLock { try? FileHandle.standardOutput.write(contentsOf: data) }
            }
            if isFirst { firstOutputEnded.signal() }
            relaysDone.leave()
        }
        thread.start()
        return process
    }

    /// Starts copying standard input to every replica.
    func startInput() {
        let targets = inputs
        let thread = Thread {
            while true {
                let data = HostConsole.readChunk(from: .standardInput, what: "standard input")
                if data.isEmpty { break }
                for target in targets { try? target.write(contentsOf: data) }
            }
            for target in targets { try? target.close() }
        }
        thread.start()
    }

    /// Waits until every replica's output has been copied.
    func finish() { relaysDone.wait() }
}

/// On a terminal, one status line for the pair, from the replicas' statistics files.
final class PairStatusLine: @unchecked Sendable {
    private let primaryStats: String
    private let backupStats: String
    private let enabled: Bool
    private let lock = NSLock()
    private var running = false

    init(primaryStats: String, backupStats: String, enabled: Bool) {
        self.primaryStats = primaryStats
        self.backupStats = backupStats
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
        let p = ReplicationStatus.Snapshot.load(primaryStats), b = ReplicationStatus.Snapshot.load(backupStats)
        let primaryText = p.map { "primary \($0.state) epoch \($0.epoch) lag \($0.backupLag) (\(String(format: "%.1f", $0.backupLagSeconds * 1000)) ms) tx \(String(format: "%.1f", $0.sendBytesPerSecond / 1024)) KB/s" } ?? "primary starting"
        let backupText = b.map { "backup \($0.state) epoch \($0.epoch)" } ?? "backup starting"
        FileHandle.standardError.write(Data("\r\u{1B}[K[pair] \(primaryText) | \(backupText)".utf8))
    }
}
