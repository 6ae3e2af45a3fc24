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

    func validate() throws {
        _ = try killDelay()
    }

    /// `--kill-primary-after` as a duration.
    private func killDelay() throws -> Duration? {
        try killPrimaryAfter.map { try OptionValues.duration($0, option: "--kill-primary-after", range: .zero ... .seconds(86_400)) }
    }

    func run() throws {
        guard (1...ReplicationOptions.maximumBackups).contains(backups) else {
            throw CLIFailure("--backups \(backups): expected 1 to \(ReplicationOptions.maximumBackups)", status: ExitStatus.usage)
        }
        if case .backup(let number)? = replication.softError?.replica, number > backups {
            throw CLIFailure("--inject-fault names backup\(number), and the pair has \(backups) backup\(backups == 1 ? "" : "s")", status: ExitStatus.usage)
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
                                "--stats-json", primaryStats, "--no-status-line", "--console-frames", "--key-file", keyFile,
                                "--backups", "\(backups)"]
        if let killPrimaryAtEpoch { primaryArguments += ["--kill-at-epoch", killPrimaryAtEpoch] }
        let console = try PairConsole(terminal: TerminalStatus(wanted: !replication.noStatusLine && !guest.log.quiet))
        let primary = try console.start(executable, primaryArguments + replication.arguments + guest.arguments)

        guard let (port, session) = waitForPort(portFile, while: primary) else {
            primary.waitForExit()
            console.finish()
            throw CLIFailure("the primary did not start (exit status \(primary.terminationStatus))",
                             status: primary.terminationStatus == 0 ? ExitStatus.internalError : primary.terminationStatus)
        }
        // Once every replica exited, the arbiter state of the pair's sessions goes: claim and
        // nonce files, or etcd keys (`Arbiter.releaseSessions`).
        let specification = try replication.arbiter.specification(for: guest.setup())
        defer { Arbiter.releaseSessions(specification, sharingSlotWith: session) }
        let fleet = PairFleet(work: work, executable: executable, console: console, backups: backups,
                              reprotect: !noReprotect,
                              common: ["--no-status-line", "--console-frames", "--key-file", keyFile] + replication.arguments,
                              guest: guest.arguments)
        fleet.adopt(primary, stats: primaryStats, portFile: portFile)
        // Given the session, a backup whose primary dies before it joined starts the guest itself
        // (the primary starts the guest only once all of these joined).
        let sessionText = session.map { String(format: "%02x", $0) }.joined()
        var firstBackup: ReplicaProcess?
        for index in 0..<backups {
            let stats = index == 0 ? backupStats : work.appendingPathComponent("backup-\(index).json").path
            let process = try fleet.startBackup(port: port, join: false, stats: stats, session: sessionText)
            if firstBackup == nil { firstBackup = process }
        }
        let backup = firstBackup!
        let interruption = forwardTerminationSignals(to: fleet)
        stopPrimaryIfBackupNeverJoins(primary: primary, backup: backup, primaryStats: primaryStats, console: console)
        console.startInput()
        if killPrimaryTimes > 1 || killABackupToo {
            let seconds = killDelay.map { Double(DurationParser.nanoseconds($0)) / 1e9 } ?? 0.5
            fleet.killLeaders(times: killPrimaryTimes, after: seconds, backupToo: killABackupToo)
        } else if let killDelay {
            killPrimary(primary, after: killDelay, from: primaryStats)
        }
        let display = PairStatusDisplay(fleet: fleet, console: console, events: guest.log.level <= .notice)
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
        if (killDelay != nil || killPrimaryAtEpoch != nil) && primary.terminationReason == .exit {
            let epoch = ReplicationStatus.Snapshot.load(primaryStats).map { " at epoch \($0.epoch)" } ?? ""
            let option = killPrimaryAtEpoch.map { "--kill-primary-at-epoch \($0)" } ?? "--kill-primary-after \(killPrimaryAfter ?? "")"
            console.message("lockstep pair: \(option): the guest finished\(epoch) before the kill; the primary was not killed")
        }
        throw ExitCode(status)
    }

    /// Kills the primary with SIGKILL `delay` after its backups joined (the primary replicating),
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
            && !ExitStatus.gaveWay(primary.terminationStatus)
        if primaryFinished && (primary.terminationStatus != ExitStatus.replicationFailed
                               || backup.terminationStatus == ExitStatus.replicationFailed) {
            return primary.terminationStatus
        }
        return backup.terminationReason == .exit ? backup.terminationStatus : ExitStatus.internalError
    }

    /// The port the primary listens on and its session, from its port file (port, arbiter
    /// location, session in hexadecimal).
    private func waitForPort(_ path: String, while process: ReplicaProcess) -> (Int, [UInt8])? {
        let deadline = Date(timeIntervalSinceNow: 60)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: path, encoding: .utf8) {
                let lines = text.split(separator: "\n")
                if lines.count >= 3, let port = Int(lines[0]), let session = BackupCommand.parseSession(String(lines[2])) {
                    return (port, session)
                }
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
/// later first gets everything read so far, kept in a file, so every replica sees the same
/// input stream), their standard outputs copied to ours. A replica prints nothing until it is
/// live, which is after every replica live before it has died or stopped; so each replica's
/// output is copied only once the output of every replica that printed before it has ended,
/// and output keeps its order. Replicas write numbered frames (`--console-frames`), and a record
/// that a failover performs again (docs/protocol.md, "Guarantees and their limits") is copied
/// once. The replicas' messages (their standard error) and the pair's own come through here
/// too, each on a line of its own: never glued to a line the guest has not finished.
final class PairConsole: @unchecked Sendable {
    /// The status row, whose `message` puts lines above the cursor's while it is shown.
    let terminal: TerminalStatus
    private let outputLock = NSLock()
    // Guarded by `outputLock`.
    /// Where the terminal's cursor is after what was copied.
    private var line = LinePosition.start
    private var records = SequencedConsole()
    private let lock = NSLock()
    // Guarded by `lock`.
    private var inputs: [FileHandle] = []
    /// Every byte of input read so far (an unlinked temporary file: memory stays bounded).
    private let backlog: FileHandle
    private var backlogSize: UInt64 = 0
    private var inputEnded = false
    /// Each replica's end of output, its process, and whether it has printed (been live) yet.
    private var ended: [(semaphore: DispatchSemaphore, process: ReplicaProcess, printed: Bool)] = []
    private let relaysDone = DispatchGroup()

    private enum LinePosition {
        /// At the start of a line: a message can be written as it is.
        case start
        /// After part of a guest's line (a prompt, a line being written): a message first ends it.
        case guestLine
        /// After part of a replica's message.
        case messageLine
    }

    init(terminal: TerminalStatus) throws {
        self.terminal = terminal
        var template = Array((FileManager.default.temporaryDirectory.path + "/lockstep-pair-input.XXXXXX").utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else {
            throw CLIFailure("cannot create a file for the console input in \(FileManager.default.temporaryDirectory.path): \(String(cString: strerror(errno)))",
                             status: ExitStatus.hostIO)
        }
        // The corresponding C call is unlink(2) of the name mkstemp(3) wrote into the array.
        _ = template.withUnsafeBufferPointer { unlink($0.baseAddress!) }
        backlog = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    /// Writes the input read so far to `writer` (a new replica's standard input); under `lock`.
    private func replayBacklog(to writer: FileHandle) throws {
        var offset: UInt64 = 0
        var chunk = [UInt8](repeating: 0, count: 65536)
        while offset < backlogSize {
            // The corresponding C call is pread(2) into the array's storage.
            let count = pread(backlog.fileDescriptor, &chunk, min(chunk.count, Int(backlogSize - offset)), off_t(offset))
            guard count > 0 else {
                throw CLIFailure("the pair's console input file cannot be read: \(String(cString: strerror(errno)))", status: ExitStatus.hostIO)
            }
            try writer.write(contentsOf: chunk[0..<count])
            offset += UInt64(count)
        }
    }

    func start(_ executable: URL, _ arguments: [String]) throws -> ReplicaProcess {
        let process = ReplicaProcess()
        process.executableURL = executable
        process.arguments = arguments
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        let mine = DispatchSemaphore(value: 0)
        let index: Int = try lock.withLock {
            try process.run()
            let writer = input.fileHandleForWriting
            // A replica that exits at once closes its input: what it missed does not matter.
            do { try replayBacklog(to: writer) } catch let failure as CLIFailure { throw failure } catch {}
            if inputEnded { try? writer.close() } else { inputs.append(writer) }
            defer { ended.append((mine, process, false)) }
            return ended.count
        }
        relaysDone.enter()
        relaysDone.enter()
        let reader = output.fileHandleForReading
        let thread = Thread { [self] in
            var waited = false
            var frames = ConsoleFrameReader()
            var malformed = false
            while true {
                let data = HostConsole.readChunk(from: reader, what: "a replica's output")
                if data.isEmpty { break }
                if !waited {
                    // Copied once every other replica that printed (was live) before this one,
                    // or has exited (it may have printed what is not read yet), has ended its
                    // output. Not by start order: a backup that lost the arbiter and re-joined
                    // the winner runs on, started before it, and prints only if it goes live
                    // later, after this one.
                    let before: [DispatchSemaphore] = lock.withLock {
                        ended[index].printed = true
                        return ended.indices.filter { $0 != index && (ended[$0].printed || !ended[$0].process.isRunning) }
                            .map { ended[$0].semaphore }
                    }
                    for other in before {
                        other.wait()
                        other.signal()
                    }
                    waited = true
                }
                // A stream that is not frames is drained (the replica must not block on it).
                guard !malformed else { continue }
                let complete: [ConsoleFrame]
                do { complete = try frames.append(data) } catch {
                    malformed = true
                    message("lockstep pair: \(error); the rest of it is not shown")
                    continue
                }
                outputLock.withLock {
                    for frame in complete {
                        guard let bytes = records.accept(frame), !bytes.isEmpty else { continue }
                        if line == .messageLine { FileHandle.standardError.write(Data("\n".utf8)) }
                        try? FileHandle.standardOutput.write(contentsOf: bytes)
                        line = bytes.last == UInt8(ascii: "\n") ? .start : .guestLine
                    }
                }
            }
            // A frame cut short (a replica killed while writing it) is not shown: it was not
            // performed, and the replica that takes over performs it.
            mine.signal()
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
        let thread = Thread { [self] in
            while true {
                let data = HostConsole.readChunk(from: .standardInput, what: "standard input")
                if data.isEmpty { break }
                lock.withLock {
                    // A replica started later would miss these bytes: say so.
                    do {
                        try backlog.seekToEnd()
                        try backlog.write(contentsOf: data)
                        backlogSize += UInt64(data.count)
                    } catch {
                        relayMessage(Data("lockstep pair: the console input cannot be kept (\(error.localizedDescription)); new replicas would miss it\n".utf8))
                    }
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
