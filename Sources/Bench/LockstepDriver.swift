import Foundation
import Hypervisor
import Replication

#if canImport(Glibc)
import Glibc
#endif

/// Runs the real `lockstep` executable as a user would: `run`, `pair`, `primary`, `backup`.
struct LockstepDriver: Sendable {
    let executable: String
    let guests: GuestCatalog
    /// A scratch directory for statistics files, disk images and arbiter files.
    let scratch: String
    /// The longest any single run may take (seconds).
    let timeout: Double

    /// Whether the binary authenticates its replicas (lockstep before protocol version 2 did not).
    var usesKeys = true

    /// The pair's key file, made once per bench run in the scratch directory (`prepareKey`).
    var keyFile: String { "\(scratch)/replication.key" }
    var keyArguments: [String] { usesKeys ? ["--key-file", keyFile] : [] }

    /// The same driver for another lockstep binary (`--baseline`), which may predate keys.
    func driving(_ other: String) -> LockstepDriver {
        var driver = LockstepDriver(executable: other, guests: guests, scratch: scratch, timeout: timeout)
        let probe = try? RunningProcess.run(other, ["primary", "--help"], timeout: 30)
        driver.usesKeys = probe.map { $0.stdout.contains("--key-file") || $0.stderr.contains("--key-file") } ?? false
        return driver
    }

    /// Writes the key every replicated run of this bench uses.
    func prepareKey() throws {
        do { try ReplicationKey.generate().write(to: keyFile) } catch {
            throw BenchError.output(keyFile, error.description)
        }
    }

    /// A fresh path in the scratch directory.
    func scratchPath(_ name: String) -> String {
        "\(scratch)/\(name)-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// A fresh zeroed disk image of `sectors` sectors.
    func freshDisk(sectors: Int) throws -> String {
        let path = scratchPath("disk") + ".img"
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw BenchError.output(path, "cannot create the disk image")
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: UInt64(sectors) * 512)
        try handle.close()
        return path
    }

    /// The guest options shared by every command: `--cmdline`, extra options, the guest ELF.
    func guestArguments(arch: String, guest: String, cmdline: String, options: [String]) -> [String] {
        options + ["--cmdline", cmdline, guests.path(arch, guest)]
    }

    /// `lockstep run`.
    func run(arch: String, guest: String, cmdline: String, options: [String] = [], marker: String? = nil) throws -> ProcessOutcome {
        try RunningProcess.run(executable, ["run"] + guestArguments(arch: arch, guest: guest, cmdline: cmdline, options: options),
                               marker: marker, timeout: timeout)
    }

    /// Two unreplicated runs of the same guest at once, as the two replicas of a pair run on this
    /// host: what the host's shared caches and memory cost two guests before any replication.
    /// The outcome spans both, with both runs' CPU time; it fails if either run does.
    func runTwoAtOnce(arch: String, guest: String, cmdline: String, options: [String] = []) throws -> ProcessOutcome {
        let arguments = ["run"] + guestArguments(arch: arch, guest: guest, cmdline: cmdline, options: options)
        let cpuBefore = BenchClock.childrenCPU()
        let first = try RunningProcess(executable: executable, arguments: arguments)
        let second: RunningProcess
        do { second = try RunningProcess(executable: executable, arguments: arguments) } catch {
            first.send(SIGKILL)
            _ = first.wait(timeout: timeout)
            throw error
        }
        let a = first.wait(timeout: timeout), b = second.wait(timeout: timeout)
        let failed = a.exited(with: 0) ? b : a
        var outcome = ProcessOutcome(
            command: ["("] + [executable] + arguments + [")", "&", "("] + [executable] + arguments + [")"],
            status: failed.status, signaled: failed.signaled, timedOut: a.timedOut || b.timedOut,
            seconds: max(a.seconds, b.seconds + (second.startedAt - first.startedAt)),
            firstOutputSeconds: a.firstOutputSeconds, markerSeconds: a.markerSeconds,
            stdout: a.stdout + b.stdout, stderr: a.stderr + b.stderr)
        outcome.cpuSeconds = BenchClock.childrenCPU() - cpuBefore
        return outcome
    }

    /// A replicated run as two processes, `lockstep primary` and `lockstep backup` on this host
    /// (what `lockstep pair` starts, without its console relay): the outcome spans from the
    /// primary's start to the last exit, with the guest's output, both replicas' CPU time and
    /// their statistics.
    func replicate(arch: String, guest: String, cmdline: String, options: [String] = [])
        throws -> (ProcessOutcome, PairStatistics?)
    {
        let directory = scratchPath("replicas")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let portFile = directory + "/port", primaryStats = directory + "/primary.json", backupStats = directory + "/backup.json"
        let common = keyArguments + ["--no-status-line", "--arbiter-dir", directory]
            + guestArguments(arch: arch, guest: guest, cmdline: cmdline, options: options)
        let cpuBefore = BenchClock.childrenCPU()
        let primary = try RunningProcess(executable: executable,
                                         arguments: ["primary", "--listen", "127.0.0.1:0", "--port-file", portFile,
                                                     "--stats-json", primaryStats] + common)
        var port: String?
        while port == nil && primary.isRunning && BenchClock.now() < primary.startedAt + 30 {
            port = (try? String(contentsOfFile: portFile, encoding: .utf8))?.split(separator: "\n").first.map(String.init)
            if port == nil { usleep(2000) }
        }
        guard let port else {
            let outcome = primary.wait(timeout: 5)
            var failed = outcome
            failed.cpuSeconds = nil
            return (failed, nil)
        }
        let backup = try RunningProcess(executable: executable,
                                        arguments: ["backup", "--connect", "127.0.0.1:\(port)",
                                                    "--stats-json", backupStats] + common)
        let p = primary.wait(timeout: timeout)
        let b = backup.wait(timeout: timeout + (backup.startedAt - primary.startedAt))
        let end = max(primary.startedAt + p.seconds, backup.startedAt + b.seconds)
        // The guest's status as `lockstep pair` reports it: the primary's if it finished the run.
        let primaryFinished = !p.signaled && !p.timedOut && p.status != ExitStatus.lostArbiter
            && (p.status != ExitStatus.replicationFailed || b.status == ExitStatus.replicationFailed)
        let deciding = primaryFinished ? p : b
        var outcome = ProcessOutcome(
            command: ["(", executable, "primary", "--listen", "127.0.0.1:0"] + common + [")", "+", "(", executable, "backup", "--connect", "127.0.0.1:PORT"] + common + [")"],
            status: deciding.status, signaled: deciding.signaled, timedOut: p.timedOut || b.timedOut,
            seconds: end - primary.startedAt,
            firstOutputSeconds: p.firstOutputSeconds, markerSeconds: p.markerSeconds,
            stdout: p.stdout + b.stdout, stderr: p.stderr + b.stderr)
        outcome.cpuSeconds = BenchClock.childrenCPU() - cpuBefore
        let stats = PairStatistics(primary: FailoverExperiment.snapshot(primaryStats),
                                   backup: FailoverExperiment.snapshot(backupStats),
                                   primaryKilled: false, primaryExitedAt: nil, status: Int(deciding.status))
        return (outcome, stats)
    }

    /// `lockstep pair --stats-json`, with the combined statistics.
    func pair(arch: String, guest: String, cmdline: String, options: [String] = [], marker: String? = nil)
        throws -> (ProcessOutcome, PairStatistics?)
    {
        let stats = scratchPath("pair") + ".json"
        defer { try? FileManager.default.removeItem(atPath: stats) }
        let outcome = try RunningProcess.run(
            executable, ["pair", "--stats-json", stats, "--no-status-line", "--arbiter-dir", scratch]
                + guestArguments(arch: arch, guest: guest, cmdline: cmdline, options: options),
            marker: marker, timeout: timeout)
        return (outcome, PairStatistics.load(stats))
    }
}
