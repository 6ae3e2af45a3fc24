import Foundation

/// Runs the real `lockstep` executable as a user would: `run`, `pair`, `primary`, `backup`.
struct LockstepDriver: Sendable {
    let executable: String
    let guests: GuestCatalog
    /// A scratch directory for statistics files, disk images and arbiter files.
    let scratch: String
    /// The longest any single run may take (seconds).
    let timeout: Double

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
