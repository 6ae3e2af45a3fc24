import Foundation
import Hypervisor
import MachineCore

/// One measured configuration of the snapshot experiment (the fastest repetition).
struct SnapshotPoint: Codable, Sendable {
    /// "KVM" or "emulator".
    var engine: String
    var memoryBytes: UInt64
    /// "booted" (the ticks guest after a few epochs) or "all pages written" (every page of RAM
    /// made non-zero before the snapshot: the largest snapshot of that size).
    var contents: String
    /// Pages carried (the pages that are not all zero).
    var pages: Int
    var bytes: UInt64
    /// Capturing the machine and encoding it into memory (what a live transfer's final pause
    /// will build on).
    var captureSeconds: Double
    /// Writing the snapshot file (flushed to disk).
    var saveSeconds: Double
    /// Reading the file into a freshly built machine, with the RAM and state digest checks.
    var restoreSeconds: Double
    /// The incremental state digest right after the snapshot (nothing written since).
    var digestSeconds: Double
    /// The state digest with every page hashed again (the cost without dirty tracking).
    var fullDigestSeconds: Double
}

/// Snapshot save and restore time and size against guest memory size (in this process, with the
/// engines this `lockstep` was built with), the base for the live-transfer pause of issue 13.
enum SnapshotExperiment {
    static let title = "Machine snapshots: save and restore time and size against guest memory size"

    static func run(_ context: BenchContext) -> (ExperimentReport, [SnapshotPoint]) {
        let (engines, skipped) = context.engines(running: "ticks")
        let sizes: [UInt64] = context.configuration.quick ? [64 << 20] : [64 << 20, 128 << 20, 256 << 20, 512 << 20]
        var points: [SnapshotPoint] = []
        for engine in engines {
            for size in sizes {
                for contents in ["booted", "all pages written"] {
                    var best: SnapshotPoint?
                    let guest = context.driver.guests.path(engine.arch, "ticks")
                    let scratch = context.driver.scratch
                    for rep in 0..<context.plan.repetitions {
                        let result = DedicatedThread.run(name: "lockstep-bench-snapshot") { () -> Result<SnapshotPoint, BenchFailure> in
                            do {
                                return .success(try measure(arch: engine.arch, engine: engine.name, size: size,
                                                            contents: contents, guest: guest, scratch: scratch))
                            } catch {
                                return .failure(BenchFailure(description: "\(error)"))
                            }
                        }
                        switch result {
                        case .success(let point):
                            context.log.line("snapshot \(engine.name) \(Self.size(Double(size))) \(contents) rep \(rep + 1): capture \(NumberFormat.milliseconds(point.captureSeconds)) ms, save \(NumberFormat.milliseconds(point.saveSeconds)) ms, restore \(NumberFormat.milliseconds(point.restoreSeconds)) ms, \(point.pages) pages")
                            if best.map({ point.captureSeconds + point.restoreSeconds < $0.captureSeconds + $0.restoreSeconds }) ?? true {
                                best = point
                            }
                        case .failure(let failure):
                            context.problem("snapshot \(engine.name) \(size) bytes \(contents): \(failure.description)")
                        }
                    }
                    if let best { points.append(best) }
                }
            }
        }
        var table = Table(["Engine", "Guest RAM", "Contents", "Pages", "Size", "Capture (ms)", "Save to file (ms)",
                           "Restore (ms)", "Digest, incremental (ms)", "Digest, every page (ms)"],
                          numericColumns: Set(3...9))
        for p in points {
            table.append([p.engine, size(Double(p.memoryBytes)), p.contents, "\(p.pages)",
                          size(Double(p.bytes)), NumberFormat.milliseconds(p.captureSeconds),
                          NumberFormat.milliseconds(p.saveSeconds), NumberFormat.milliseconds(p.restoreSeconds),
                          NumberFormat.milliseconds(p.digestSeconds), NumberFormat.milliseconds(p.fullDigestSeconds)])
        }
        var csv = Table(["engine", "memory_bytes", "contents", "pages", "bytes", "capture_seconds", "save_seconds",
                         "restore_seconds", "digest_seconds", "full_digest_seconds"])
        for p in points {
            csv.append([p.engine, "\(p.memoryBytes)", p.contents, "\(p.pages)", "\(p.bytes)", "\(p.captureSeconds)",
                        "\(p.saveSeconds)", "\(p.restoreSeconds)", "\(p.digestSeconds)", "\(p.fullDigestSeconds)"])
        }
        var summary: [[String]] = []
        for engine in engines.map(\.name) {
            let booted = points.filter { $0.engine == engine && $0.contents == "booted" }
            if let small = booted.min(by: { $0.memoryBytes < $1.memoryBytes }),
               let large = booted.max(by: { $0.memoryBytes < $1.memoryBytes }), large.memoryBytes > small.memoryBytes
            {
                summary.append(["snapshot", "\(engine): capture of a booted guest, \(size(Double(large.memoryBytes))) vs \(size(Double(small.memoryBytes))) of RAM",
                                "\(NumberFormat.milliseconds(large.captureSeconds)) ms", "\(NumberFormat.milliseconds(small.captureSeconds)) ms",
                                NumberFormat.fixed(large.captureSeconds / small.captureSeconds, 2)])
                summary.append(["snapshot", "\(engine): state digest at \(size(Double(large.memoryBytes))), incremental vs every page",
                                "\(NumberFormat.milliseconds(large.digestSeconds)) ms", "\(NumberFormat.milliseconds(large.fullDigestSeconds)) ms",
                                NumberFormat.fixed(large.digestSeconds / large.fullDigestSeconds, 4)])
            }
        }
        let report = ExperimentReport(
            experiment: .snapshot, title: title,
            markdown: { _ in
                """
                Each configuration builds the machine in this process, runs the ticks guest for 3 epochs, \
                then (for "all pages written") makes every zero page of RAM non-zero, and measures: \
                capturing the machine into a snapshot in memory; saving it to a file (flushed); \
                restoring the file into a freshly built machine (RAM and state digest checks \
                included); the incremental state digest right after (no page written since) and the \
                digest with every page hashed again. Only pages that are not all zero are carried, so \
                a booted guest's snapshot does not grow with its RAM. Fastest of \
                \(context.plan.repetitions) repetitions.

                """ + table.markdown()
            },
            csv: ["snapshot.csv": csv], summary: summary, skipped: skipped)
        return (report, points)
    }

    struct BenchFailure: Error, Sendable { let description: String }

    /// A byte count in binary units: 64 MiB, 212 KiB.
    static func size(_ bytes: Double) -> String {
        let gib = Double(1 << 30), mib = Double(1 << 20), kib = 1024.0
        if bytes >= gib { return "\(NumberFormat.compact(bytes / gib)) GiB" }
        if bytes >= mib { return "\(NumberFormat.compact(bytes / mib)) MiB" }
        if bytes >= kib { return "\(NumberFormat.compact(bytes / kib)) KiB" }
        return "\(Int(bytes)) B"
    }

    /// One measurement, on the calling (dedicated) thread.
    static func measure(arch: String, engine: String, size: UInt64, contents: String, guest: String,
                        scratch: String) throws -> SnapshotPoint
    {
        let options = RunOptions(guestPath: guest, memorySize: size, commandLine: "ticks=1000000")
        let setup = try GuestSetup(options)
        func build() throws -> (any Machine, LocalEnvironment) {
            let environment = LocalEnvironment(host: HostIO(console: HostConsole(input: nil, output: nil), disk: nil))
            return (try MachineFactory.make(setup, environment: environment), environment)
        }
        let (machine, environment) = try build()
        let session = LocalSession(machine: machine, environment: environment, epochLength: setup.epochLength,
                                   timing: BoundaryTiming(mode: .deterministic))
        session.boundaryObserver = { $0 == 3 ? .pause : .proceed }
        _ = try session.run()
        if contents != "booted" {
            let nonZero = Set(try machine.memoryDigest.nonZeroPages())
            for page in 0..<machine.memory.pageCount where !nonZero.contains(page) {
                try machine.memory.fill(UInt8(truncatingIfNeeded: page | 1), at: GuestAddress(UInt64(page) << 12), count: 64)
            }
            _ = try machine.memoryDigest.digest()
        }
        let identity = setup.snapshotIdentity
        let host = SnapshotHostState(epoch: 3)
        var last = BenchClock.now()
        func lap() -> Double {
            let now = BenchClock.now()
            defer { last = now }
            return now - last
        }
        let buffer = SnapshotBuffer()
        let summary = try MachineSnapshot.write(machine, identity: identity, host: host, to: buffer)
        let capture = lap()
        let file = "\(scratch)/snapshot-\(arch)-\(size).snap"
        defer { try? FileManager.default.removeItem(atPath: file) }
        _ = try SnapshotFile.save(machine, identity: identity, host: host, to: file)
        let save = lap()
        _ = try machine.stateDigest()
        let digest = lap()
        _ = try machine.fullStateDigest()
        let fullDigest = lap()
        let (target, _) = try build()
        _ = lap()
        try SnapshotFile.open(file).restore(into: target)
        let restore = lap()
        return SnapshotPoint(engine: engine, memoryBytes: size, contents: contents, pages: summary.pages,
                             bytes: summary.bytes, captureSeconds: capture, saveSeconds: save,
                             restoreSeconds: restore, digestSeconds: digest, fullDigestSeconds: fullDigest)
    }
}
