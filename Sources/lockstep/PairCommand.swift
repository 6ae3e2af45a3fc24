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

    @Option(name: .customLong("kill-primary-after"),
            help: ArgumentHelp("Kill the primary with SIGKILL this long after the backup joined: a duration (500ms, 2s; a bare number is in seconds).",
                               valueName: "duration"))
    var killPrimaryAfter: String?

    @Option(name: .customLong("kill-primary-at-epoch"),
            help: "Kill the primary at this epoch's boundary; N:PHASE picks a phase (boundary, logged, acknowledged, performed).")
    var killPrimaryAtEpoch: String?

    @OptionGroup var replication: ReplicationOptions
    @OptionGroup var guest: GuestOptions

    func validate() throws {
        _ = try killDelay()
    }

    /// `--kill-primary-after` as a duration.
    private func killDelay() throws -> Duration? {
        try killPrimaryAfter.map { try OptionValues.duration($0, option: "--kill-primary-after", range: .zero ... .seconds(86_400)) }
    }

    func run() throws {
        _ = try replication.settings(for: guest.setup())
        if killPrimaryAfter != nil && killPrimaryAtEpoch != nil {
            throw CLIFailure("--kill-primary-after and --kill-primary-at-epoch cannot be combined", status: ExitStatus.usage)
        }
        if let text = killPrimaryAtEpoch {
            _ = try ReplicationOptions.killPoint(text, option: "--kill-primary-at-epoch")
        }
        let killDelay = try killDelay()
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
        let console = PairConsole(terminal: TerminalStatus(wanted: !replication.noStatusLine && !guest.log.quiet))
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
        stopPrimaryIfBackupNeverJoins(primary: primary, backup: backup, primaryStats: primaryStats, console: console)
        console.startInput()
        if let killDelay { killPrimary(primary, after: killDelay, from: primaryStats) }
        let display = PairStatusDisplay(primary: primary, backup: backup, primaryStats: primaryStats, backupStats: backupStats,
                                        console: console, events: guest.log.level <= .notice)
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
        if (killDelay != nil || killPrimaryAtEpoch != nil) && primary.terminationReason == .exit {
            let epoch = ReplicationStatus.Snapshot.load(primaryStats).map { " at epoch \($0.epoch)" } ?? ""
            let option = killPrimaryAtEpoch.map { "--kill-primary-at-epoch \($0)" } ?? "--kill-primary-after \(killPrimaryAfter ?? "")"
            console.message("lockstep pair: \(option): the guest finished\(epoch) before the kill; the primary was not killed")
        }
        throw ExitCode(Self.status(primary: primary, backup: backup))
    }

    /// Kills the primary with SIGKILL `delay` after the backup joined (the primary replicating),
    /// so that a kill shows a takeover however long the start took; never if it stopped first.
    private func killPrimary(_ primary: ReplicaProcess, after delay: Duration, from primaryStats: String) {
        let pid = primary.processIdentifier
        Thread.detachNewThread {
            while primary.isRunning {
                if let state = ReplicationStatus.Snapshot.load(primaryStats)?.state, !state.awaitsBackup {
                    guard state == .replicating else { return }
                    Thread.sleep(forTimeInterval: Double(DurationParser.nanoseconds(delay)) / 1e9)
                    if primary.isRunning { kill(pid, SIGKILL) }
                    return
                }
                Thread.sleep(forTimeInterval: 0.005)
            }
        }
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
    private func stopPrimaryIfBackupNeverJoins(primary: ReplicaProcess, backup: ReplicaProcess, primaryStats: String,
                                               console: PairConsole)
    {
        DispatchQueue.global().async {
            backup.waitForExit()
            // The primary is in `waitingForBackup` until a backup joined, `replicating` after.
            let state = ReplicationStatus.Snapshot.load(primaryStats)?.state
            guard primary.isRunning, state?.awaitsBackup ?? true else { return }
            let how = backup.terminationReason == .uncaughtSignal
                ? "was killed by signal \(backup.terminationStatus)" : "exited with status \(backup.terminationStatus)"
            console.message("lockstep: the backup \(how) before it joined; stopping the primary")
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
/// The replicas' messages (their standard error) and the pair's own come through here too, each
/// on a line of its own: never glued to a line the guest has not finished.
final class PairConsole: @unchecked Sendable {
    /// The status row, whose `message` puts lines above the cursor's while it is shown.
    let terminal: TerminalStatus
    private let outputLock = NSLock()
    private var inputs: [FileHandle] = []
    private let relaysDone = DispatchGroup()
    /// Signalled when the first replica's (the primary's) output has ended.
    private let firstOutputEnded = DispatchSemaphore(value: 0)
    /// Where the terminal's cursor is after what was copied; guarded by `outputLock`.
    private var line = LinePosition.start

    private enum LinePosition {
        /// At the start of a line: a message can be written as it is.
        case start
        /// After part of a guest's line (a prompt, a line being written): a message first ends it.
        case guestLine
        /// After part of a replica's message.
        case messageLine
    }

    init(terminal: TerminalStatus) {
        self.terminal = terminal
    }

    func start(_ executable: URL, _ arguments: [String]) throws -> ReplicaProcess {
        let process = ReplicaProcess()
        process.executableURL = executable
        process.arguments = arguments
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        inputs.append(input.fileHandleForWriting)
        relaysDone.enter()
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
                outputLock.withLock {
                    if line == .messageLine { FileHandle.standardError.write(Data("\n".utf8)) }
                    try? FileHandle.standardOutput.write(contentsOf: data)
                    line = data.last == UInt8(ascii: "\n") ? .start : .guestLine
                }
            }
            if isFirst { firstOutputEnded.signal() }
            relaysDone.leave()
        }
        thread.start()
        let errorReader = errors.fileHandleForReading
        let errorThread = Thread { [self] in
            var pending = Data()
            while true {
                let data = HostConsole.readChunk(from: errorReader, what: "a replica's messages")
                pending += data
                // Whole lines, as messages; the rest of a line waits for its end (or the end).
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    relayMessage(pending[pending.startIndex...newline])
                    pending = Data(pending[(newline + 1)...])
                }
                if data.isEmpty { break }
            }
            if !pending.isEmpty { relayMessage(pending) }
            relaysDone.leave()
        }
        errorThread.start()
        return process
    }

    /// One line of the pair's own on standard error, on a line of its own.
    func message(_ text: String) {
        relayMessage(Data((text + "\n").utf8))
    }

    /// A message line (ending in a newline, except perhaps a replica's last): above the cursor's
    /// row while the status row is shown, else after a newline ending a guest's unfinished line.
    private func relayMessage(_ data: Data) {
        outputLock.withLock {
            let text = String(decoding: data, as: UTF8.self)
            if terminal.message(text.hasSuffix("\n") ? String(text.dropLast()) : text) { return }
            if line == .guestLine { FileHandle.standardError.write(Data("\n".utf8)) }
            FileHandle.standardError.write(data)
            line = data.last == UInt8(ascii: "\n") ? .start : .messageLine
        }
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
