import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process the bench started: its output is collected as it arrives, its exit time is
/// taken when the kernel reports it (Foundation's termination handler, not a polling wait).
public final class RunningProcess: @unchecked Sendable {
    public let command: [String]
    private let process = Process()
    private let stdout: OutputCollector
    private let stderr: OutputCollector
    /// Monotonic and wall-clock time just before the spawn.
    public let startedAt: Double
    public let startedAtWall: Double
    private let record = ExitRecord()

    /// Starts `executable` with `arguments`; standard input is `input` (then closed) or empty.
    /// - Parameter marker: a string whose first appearance on standard output is timed.
    public init(executable: String, arguments: [String], input: Data? = nil,
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
        let inPipe: Pipe? = input == nil ? nil : Pipe()
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
        if let inPipe, let input {
            let writer = inPipe.fileHandleForWriting
            Thread.detachNewThread {
                try? writer.write(contentsOf: input)
                try? writer.close()
            }
        }
    }

    /// The process ID (for signals).
    public var pid: Int32 { process.processIdentifier }

    public var isRunning: Bool { record.exitedAt == nil }

    /// Sends `signal` (e.g. SIGKILL, SIGSTOP, SIGCONT) unless it has exited.
    public func send(_ signal: Int32) {
        guard isRunning else { return }
        kill(process.processIdentifier, signal)
    }

    /// Output so far.
    public func outputSnapshot() -> String { stdout.snapshot() }

    /// Waits for the exit, killing the process (SIGKILL) if it outlives `timeout` seconds from
    /// its start.
    public func wait(timeout: Double) -> ProcessOutcome {
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

    /// Runs a command to its end (at most `timeout` seconds).
    public static func run(_ executable: String, _ arguments: [String], input: Data? = nil,
                           environment: [String: String]? = nil, directory: String? = nil,
                           marker: String? = nil, timeout: Double) throws -> ProcessOutcome
    {
        try RunningProcess(executable: executable, arguments: arguments, input: input,
                           environment: environment, directory: directory, marker: marker)
            .wait(timeout: timeout)
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
