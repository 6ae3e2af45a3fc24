import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process the bench started: its output is collected as it arrives, its exit time is
/// taken when the kernel reports it (Foundation's termination handler, not a polling wait).
final class RunningProcess: @unchecked Sendable {
    let command: [String]
    private let process = Process()
    private let stdout: OutputCollector
    private let stderr: OutputCollector
    /// Monotonic and wall-clock time just before the spawn.
    let startedAt: Double
    let startedAtWall: Double
    private let record = ExitRecord()

    /// Standard input while it is kept open (`keepsInputOpen`): `type(_:)` writes to it.
    private let inputWriter: FileHandle?

    /// Starts `executable` with `arguments`; standard input is `input` (then closed) or empty,
    /// or, with `keepsInputOpen`, a pipe the bench writes to with `type(_:)` until
    /// `closeInput()`.
    /// - Parameter marker: a string whose first appearance on standard output is timed.
    init(executable: String, arguments: [String], input: Data? = nil, keepsInputOpen: Bool = false,
                environment: [String: String]? = nil, directory: String? = nil, marker: String? = nil) throws
    {
        command = [executable] + arguments
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let outPipe = Pipe(), errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        let inPipe: Pipe? = input == nil && !keepsInputOpen ? nil : Pipe()
        inputWriter = keepsInputOpen ? inPipe?.fileHandleForWriting : nil
        process.standardInput = inPipe ?? FileHandle.nullDevice
        stdout = OutputCollector(outPipe.fileHandleForReading, marker: marker)
        stderr = OutputCollector(errPipe.fileHandleForReading, marker: nil)
        process.terminationHandler = { [record] _ in record.markExited(at: BenchClock.now()) }
        startedAtWall = BenchClock.wall()
        startedAt = BenchClock.now()
        do {
            try process.run()
        } catch {
            throw BenchError.cannotStart(executable, "\(error)")
        }
        // The child has its copies of the pipe ends now.
        try? outPipe.fileHandleForWriting.close()
        try? errPipe.fileHandleForWriting.close()
        if let inPipe, let input, !keepsInputOpen {
            let writer = inPipe.fileHandleForWriting
            Thread.detachNewThread {
                try? writer.write(contentsOf: input)
                try? writer.close()
            }
        }
    }

    /// Writes `text` to the process's standard input (kept open); a process that stopped
    /// reading is not an error here (its outcome tells).
    func type(_ text: String) {
        try? inputWriter?.write(contentsOf: Data(text.utf8))
    }

    /// Closes a standard input kept open.
    func closeInput() {
        try? inputWriter?.close()
    }

    /// The process ID (for signals).
    var pid: Int32 { process.processIdentifier }

    var isRunning: Bool { record.exitedAt == nil }

    /// Sends `signal` (e.g. SIGKILL, SIGSTOP, SIGCONT) unless it has exited.
    func send(_ signal: Int32) {
        guard isRunning else { return }
        kill(process.processIdentifier, signal)
    }

    /// Output so far.
    func outputSnapshot() -> String { stdout.snapshot() }

    /// Waits for the exit, killing the process (SIGKILL) if it outlives `timeout` seconds from
    /// its start.
    func wait(timeout: Double) -> ProcessOutcome {
        let remaining = max(0, startedAt + timeout - BenchClock.now())
        if !record.waitForExit(seconds: remaining) {
            record.markKilledAtDeadline()
            kill(process.processIdentifier, SIGCONT)
            kill(process.processIdentifier, SIGKILL)
            _ = record.waitForExit(seconds: .infinity)
        }
        process.waitUntilExit()
        let out = stdout.finish(waiting: 5)
        let err = stderr.finish(waiting: 5)
        let end = record.exitedAt ?? BenchClock.now()
        return ProcessOutcome(
            command: command, status: process.terminationStatus,
            signaled: process.terminationReason == .uncaughtSignal,
            timedOut: record.killedAtDeadline,
            seconds: end - startedAt,
            firstOutputSeconds: out.firstByteAt.map { $0 - startedAt },
            markerSeconds: out.markerAt.map { $0 - startedAt },
            stdout: out.text, stderr: err.text)
    }

    /// Runs a command to its end (at most `timeout` seconds), with its CPU time. The bench runs
    /// these one at a time, so the children's CPU time before and after is this command's.
    static func run(_ executable: String, _ arguments: [String], input: Data? = nil,
                           environment: [String: String]? = nil, directory: String? = nil,
                           marker: String? = nil, timeout: Double) throws -> ProcessOutcome
    {
        let cpuBefore = BenchClock.childrenCPU()
        var outcome = try RunningProcess(executable: executable, arguments: arguments, input: input,
                                         environment: environment, directory: directory, marker: marker)
            .wait(timeout: timeout)
        outcome.cpuSeconds = BenchClock.childrenCPU() - cpuBefore
        return outcome
    }
}

/// When a child exited, shared with Foundation's termination handler.
private final class ExitRecord: @unchecked Sendable {
    private let lock = NSLock()
    private let exited = DispatchSemaphore(value: 0)
    private var time: Double?
    private var killed = false

    var exitedAt: Double? { lock.withLock { time } }
    var killedAtDeadline: Bool { lock.withLock { killed } }

    func markExited(at now: Double) {
        lock.withLock { if time == nil { time = now } }
        exited.signal()
    }

    func markKilledAtDeadline() { lock.withLock { killed = true } }

    /// Whether the exit happened within `seconds`; the record stays signalled for later waits.
    func waitForExit(seconds: Double) -> Bool {
        let result = seconds.isFinite ? exited.wait(timeout: .now() + seconds) : { exited.wait(); return .success }()
        guard result == .success else { return false }
        exited.signal()
        return true
    }
}
