import Foundation
import Testing

/// Runs the built `lockstep` executable as a real process, as a user would.
enum Lockstep {
    /// The package root (Tests/CLITests/ is two levels down).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The executable built by `swift build` (debug or release, whichever is newer).
    static let executable: URL? = {
        let candidates = ["debug", "release"].map { root.appendingPathComponent(".build/\($0)/lockstep") }
        return candidates
            .filter { FileManager.default.isExecutableFile(atPath: $0.path) }
            .max { modified($0) < modified($1) }
    }()

    static func modified(_ url: URL) -> Date {
        (try? FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date) ?? .distantPast
    }

    /// A guest built by scripts/build-guests.
    static func guest(_ arch: String, _ name: String) -> String {
        root.appendingPathComponent("guests/build/\(arch)/\(name).elf").path
    }

    static func hasGuest(_ arch: String, _ name: String) -> Bool {
        FileManager.default.fileExists(atPath: guest(arch, name))
    }

    /// Whether KVM is usable here, probed once by `lockstep doctor`; when it is not, says why.
    static let hasKVM: Bool = {
        guard executable != nil, let doctor = try? run(["doctor"], timeout: 120) else { return false }
        if doctor.status != 0 {
            print("CLITests: skipping the tests that need KVM: \(doctor.stderr)")
            return false
        }
        return true
    }()

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
        let timedOut: Bool
        let killedBySignal: Bool
    }

    /// Runs `lockstep ARGS`, feeding `input` on standard input; kills it after `timeout` seconds.
    static func run(_ arguments: [String], input: String = "", environment: [String: String] = [:],
                    timeout: TimeInterval = 60) throws -> Result
    {
        let executable = try #require(executable, "lockstep is not built: run swift build first")
        return try runProcess(executable, arguments, input: input, environment: environment, timeout: timeout)
    }

    /// A started program: its process and what it writes.
    struct Started {
        let process: Process
        let stdout: DataCollector
        let stderr: DataCollector
        /// Standard input, when it was kept open.
        var input: FileHandle?
    }

    /// Starts `executable ARGS` from the package root, types `input` on its standard input and
    /// closes it (unless `keepInputOpen`); its output is collected as it comes.
    static func start(_ executable: URL, _ arguments: [String], input: String = "",
                      environment: [String: String] = [:], keepInputOpen: Bool = false) throws -> Started
    {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = root
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        let started = Started(process: process, stdout: DataCollector(stdout.fileHandleForReading),
                              stderr: DataCollector(stderr.fileHandleForReading))
        try process.run()
        try? stdin.fileHandleForWriting.write(contentsOf: Data(input.utf8))
        if keepInputOpen {
            var kept = started
            kept.input = stdin.fileHandleForWriting
            return kept
        }
        try? stdin.fileHandleForWriting.close()
        return started
    }

    /// Runs any program as `run` runs lockstep, but types `input` only once `prompt` has
    /// appeared on its standard output, as a user at a terminal would.
    static func runTyping(_ input: String, after prompt: String, _ executable: URL, _ arguments: [String],
                          timeout: TimeInterval = 60) throws -> Result
    {
        let started = try start(executable, arguments, keepInputOpen: true)
        let deadline = Date(timeIntervalSinceNow: timeout)
        while started.process.isRunning && Date() < deadline && !started.stdout.snapshot().contains(prompt) {
            Thread.sleep(forTimeInterval: 0.01)
        }
        try? started.input?.write(contentsOf: Data(input.utf8))
        try? started.input?.close()
        return finish(started, deadline: deadline)
    }

    /// Waits for `started` until `deadline` (then terminates it) and collects what it did.
    private static func finish(_ started: Started, deadline: Date) -> Result {
        let (process, out, err) = (started.process, started.stdout, started.stderr)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        let timedOut = process.isRunning
        if timedOut { process.terminate() }
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: out.text(), stderr: err.text(),
                      timedOut: timedOut, killedBySignal: process.terminationReason == .uncaughtSignal)
    }

    /// Runs any program as `run` runs lockstep (from the package root).
    static func runProcess(_ executable: URL, _ arguments: [String], input: String = "",
                           environment: [String: String] = [:], timeout: TimeInterval = 60) throws -> Result
    {
        let started = try start(executable, arguments, input: input, environment: environment)
        return finish(started, deadline: Date(timeIntervalSinceNow: timeout))
    }
}

/// Reads a pipe to its end on a thread of its own, so a chatty child never blocks.
final class DataCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                lock.withLock { data.append(chunk) }
            }
            done.signal()
        }
    }

    /// What has arrived so far, without waiting for the end.
    func snapshot() -> String { lock.withLock { String(decoding: data, as: UTF8.self) } }

    func text() -> String {
        done.wait()
        done.signal()
        return lock.withLock { String(decoding: data, as: UTF8.self) }
    }
}
