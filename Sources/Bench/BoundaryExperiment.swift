import Foundation
import MachineCore
import NIOCore
import Replication

#if canImport(Glibc)
import Glibc
#endif

/// What an epoch boundary costs replication (issue 16), for this binary and, with `--baseline`,
/// another one in the same run: host instructions per boundary on each side (callgrind, the
/// emulator's cpu guest), pair/run CPU and wall-time ratios at several epoch lengths, and the
/// cost of sealing per epoch (in this process, sealed against not sealed).
enum BoundaryExperiment {
    static let title = "Epoch boundaries: host instructions, sealing, pair/run ratios"

    /// One binary's figures at one epoch length.
    struct Point: Codable, Sendable {
        var binary: String
        var epochLength: UInt64
        /// Host instructions per boundary beyond `lockstep run`'s, from callgrind.
        var primaryInstructionsPerBoundary: Double?
        var backupInstructionsPerBoundary: Double?
        /// `lockstep run`'s own host instructions per boundary (epoch lengths compared).
        var runInstructionsPerEpoch: Double?
        /// Replicated / unreplicated, time per round (slope over two round counts).
        var cpuRatio: Double?
        var wallRatio: Double?
        /// Two unreplicated runs at once / one run, CPU time per round: what co-locating two
        /// guests on this host costs before any replication (the floor of `cpuRatio` here).
        var twoRunsCPURatio: Double?
    }

    /// Sealing cost per epoch, measured in process.
    struct Sealing: Codable, Sendable {
        var epochs: Int
        var plainNanosecondsPerEpoch: Double
        var sealedNanosecondsPerEpoch: Double
    }

    struct Result: Codable, Sendable {
        var points: [Point]
        var sealing: Sealing?
    }

    /// A binary to measure, with the driver that runs it.
    struct Subject {
        let name: String
        let driver: LockstepDriver
    }

    static func run(_ context: BenchContext) -> (ExperimentReport, Result) {
        guard context.driver.guests.has("parisc", "cpu") else {
            return (.skipped(.boundary, title: title, reason: "guests/build/parisc/cpu.elf is missing"), Result(points: []))
        }
        var subjects = [Subject(name: "this build", driver: context.driver)]
        var skipped: [String] = []
        if let baseline = context.configuration.baseline {
            subjects.append(Subject(name: "baseline", driver: context.driver.driving(baseline)))
        }
        let plan = context.plan
        var points: [Point] = []
        var valgrind = HostTools.which("valgrind")
        if plan.boundaryCallgrindRounds == nil {
            skipped.append("host instructions per boundary: not in --quick (callgrind runs 50 to 100 times slower)")
            valgrind = nil
        } else if valgrind == nil {
            skipped.append("host instructions per boundary: valgrind is not installed (apt-get install valgrind)")
        }
        for subject in subjects {
            // Valgrind 3.19 cannot read the DWARF 5 that Swift 6 writes: callgrind runs a copy
            // without debug information (same code).
            let measured = valgrind == nil ? nil : strippedCopy(of: subject.driver, context)
            for length in plan.boundaryEpochLengths {
                var point = Point(binary: subject.name, epochLength: length)
                if let valgrind, let measured {
                    context.log.line("boundary \(subject.name) L=\(length): callgrind")
                    measureInstructions(context, measured, valgrind: valgrind, length: length, into: &point)
                }
                measureRatios(context, subject, length: length, into: &point)
                points.append(point)
            }
        }
        let sealing = measureSealing(epochs: plan.sealingEpochs)
        let result = Result(points: points, sealing: sealing)
        return (report(result, skipped: skipped), result)
    }

    // MARK: callgrind

    /// A subject whose binary is a copy of `driver`'s without debug information (`strip -g`).
    static func strippedCopy(of driver: LockstepDriver, _ context: BenchContext) -> Subject? {
        let copy = driver.scratchPath("lockstep-stripped")
        guard let strip = HostTools.which("strip"),
              let outcome = try? RunningProcess.run(strip, ["-g", "-o", copy, driver.executable], timeout: 120),
              outcome.exited(with: 0)
        else {
            context.problem("boundary: cannot make a copy of \(driver.executable) without debug information for callgrind (strip -g)")
            return nil
        }
        var stripped = LockstepDriver(executable: copy, guests: driver.guests, scratch: driver.scratch, timeout: driver.timeout)
        stripped.usesKeys = driver.usesKeys
        return Subject(name: "stripped", driver: stripped)
    }

    /// Host instructions per boundary on each side: callgrind counts every instruction of the
    /// process (all threads); the difference between two round counts cancels start-up, the
    /// handshake and the final digest, and `lockstep run`'s difference is subtracted.
    static func measureInstructions(_ context: BenchContext, _ subject: Subject, valgrind: String, length: UInt64,
                                    into point: inout Point)
    {
        guard let (r1, r2) = context.plan.boundaryCallgrindRounds else { return }
        var run: [Int: UInt64] = [:], primary: [Int: UInt64] = [:], backup: [Int: UInt64] = [:], epochs: [Int: UInt64] = [:]
        let options = ["--epoch-length", "\(length)"]
        for rounds in [r1, r2] {
            let cmdline = "rounds=\(rounds)"
            run[rounds] = callgrind(context, valgrind: valgrind, subject.driver.executable,
                                    ["run"] + subject.driver.guestArguments(arch: "parisc", guest: "cpu", cmdline: cmdline, options: options))
            for side in [ReplicaRole.primary, .backup] {
                guard let (count, n) = replicateUnderCallgrind(context, subject, valgrind: valgrind, side: side, cmdline: cmdline,
                                                               options: options)
                else { continue }
                if side == .primary { primary[rounds] = count } else { backup[rounds] = count }
                epochs[rounds] = n
            }
        }
        guard let run1 = run[r1], let run2 = run[r2], let e1 = epochs[r1], let e2 = epochs[r2], e2 > e1 else { return }
        let boundaries = Double(e2 - e1)
        let runDelta = Double(run2) - Double(run1)
        point.runInstructionsPerEpoch = runDelta / boundaries
        if let p1 = primary[r1], let p2 = primary[r2] {
            point.primaryInstructionsPerBoundary = (Double(p2) - Double(p1) - runDelta) / boundaries
        }
        if let b1 = backup[r1], let b2 = backup[r2] {
            point.backupInstructionsPerBoundary = (Double(b2) - Double(b1) - runDelta) / boundaries
        }
    }

    /// Runs `arguments` under callgrind; its total instruction count.
    static func callgrind(_ context: BenchContext, valgrind: String, _ executable: String, _ arguments: [String]) -> UInt64? {
        let out = context.driver.scratchPath("callgrind") + ".out"
        defer { try? FileManager.default.removeItem(atPath: out) }
        guard let outcome = try? RunningProcess.run(valgrind, ["--tool=callgrind", "--callgrind-out-file=\(out)", executable] + arguments,
                                                    timeout: context.plan.runTimeout * 4)
        else { return nil }
        guard outcome.exited(with: 0) else {
            context.problem("boundary: `\(outcome.command.map(BenchContext.shellQuoted).joined(separator: " "))` \(outcome.ending); stderr: \(outcome.lastErrorLine)")
            return nil
        }
        return totalInstructions(out)
    }

    /// The "totals:" (or "summary:") line of a callgrind output file.
    static func totalInstructions(_ path: String) -> UInt64? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("totals:") || line.hasPrefix("summary:") {
            if let value = line.split(separator: " ").dropFirst().first.flatMap({ UInt64($0) }) { return value }
        }
        return nil
    }

    /// A replicated run with one side under callgrind (the other native): that side's
    /// instruction count and the number of epochs the primary ran.
    static func replicateUnderCallgrind(_ context: BenchContext, _ subject: Subject, valgrind: String, side: ReplicaRole,
                                        cmdline: String, options: [String]) -> (UInt64, UInt64)?
    {
        let driver = subject.driver
        let directory = driver.scratchPath("boundary")
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let out = directory + "/callgrind.out", portFile = directory + "/port", stats = directory + "/primary.json"
        // Under callgrind a process runs 50 to 100 times slower: no failure detection.
        let common = driver.keyArguments + ["--no-status-line", "--arbiter-dir", directory, "--timeout", "600000"]
            + driver.guestArguments(arch: "parisc", guest: "cpu", cmdline: cmdline, options: options)
        func command(_ role: ReplicaRole, _ arguments: [String]) -> (String, [String]) {
            role == side ? (valgrind, ["--tool=callgrind", "--callgrind-out-file=\(out)", driver.executable] + arguments)
                : (driver.executable, arguments)
        }
        let (pExe, pArgs) = command(.primary, ["primary", "--listen", "127.0.0.1:0", "--port-file", portFile, "--stats-json", stats] + common)
        guard let primary = try? RunningProcess(executable: pExe, arguments: pArgs) else { return nil }
        var port: String?
        while port == nil && primary.isRunning && BenchClock.now() < primary.startedAt + 120 {
            port = (try? String(contentsOfFile: portFile, encoding: .utf8))?.split(separator: "\n").first.map(String.init)
            if port == nil { usleep(5000) }
        }
        guard let port else {
            primary.send(SIGKILL)
            context.problem("boundary: the primary (\(side == .primary ? "under callgrind" : "native")) did not start listening")
            return nil
        }
        let (bExe, bArgs) = command(.backup, ["backup", "--connect", "127.0.0.1:\(port)", "--connect-timeout", "120"] + common)
        guard let backup = try? RunningProcess(executable: bExe, arguments: bArgs) else {
            primary.send(SIGKILL)
            return nil
        }
        let timeout = context.plan.runTimeout * 4
        let p = primary.wait(timeout: timeout), b = backup.wait(timeout: timeout)
        guard p.exited(with: 0), b.exited(with: 0) else {
            context.problem("boundary: replicated run with the \(side) under callgrind: primary \(p.ending) (\(p.lastErrorLine)), backup \(b.ending) (\(b.lastErrorLine))")
            return nil
        }
        guard let count = totalInstructions(out), let epochs = epochCount(stats) else { return nil }
        return (count, epochs)
    }

    /// The primary's epoch count from its statistics (any version's: read as plain JSON).
    static func epochCount(_ path: String) -> UInt64? {
        guard let data = FileManager.default.contents(atPath: path),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return (object["epoch"] as? NSNumber)?.uint64Value
    }

    // MARK: pair/run ratios

    /// Replicated against unreplicated time per round, CPU and wall, at one epoch length.
    static func measureRatios(_ context: BenchContext, _ subject: Subject, length: UInt64, into point: inout Point) {
        let (r1, r2) = context.plan.boundaryTimingRounds
        let options = ["--epoch-length", "\(length)"]
        var measured: [Measurement] = []
        for repetition in 0..<context.plan.repetitions {
            for rounds in [r1, r2] {
                let cmdline = "rounds=\(rounds)"
                let expected = context.cpuLine(rounds: rounds)
                let series = "boundary, \(subject.name)"
                if let outcome = try? subject.driver.run(arch: "parisc", guest: "cpu", cmdline: cmdline, options: options) {
                    measured.append(context.record(.boundary, series: series, mode: "run", epochLength: length, work: rounds,
                                                   repetition: repetition, outcome: outcome, expectedOutput: expected))
                }
                if let (outcome, _) = try? subject.driver.replicate(arch: "parisc", guest: "cpu", cmdline: cmdline,
                                                                      options: options + EpochExperiment.liftedLag)
                {
                    measured.append(context.record(.boundary, series: series, mode: "pair", epochLength: length, work: rounds,
                                                   repetition: repetition, outcome: outcome, expectedOutput: expected))
                }
                if let outcome = try? subject.driver.runTwoAtOnce(arch: "parisc", guest: "cpu", cmdline: cmdline, options: options) {
                    measured.append(context.record(.boundary, series: series, mode: "two runs", epochLength: length, work: rounds,
                                                   repetition: repetition, outcome: outcome, expectedOutput: expected))
                }
            }
        }
        let runs = measured.filter { $0.mode == "run" }, pairs = measured.filter { $0.mode == "pair" }
        let twoRuns = measured.filter { $0.mode == "two runs" }
        if let r = Measurement.bestSlope(runs, low: r1, high: r2, cpu: true), r > 0 {
            point.cpuRatio = Measurement.bestSlope(pairs, low: r1, high: r2, cpu: true).map { $0 / r }
            point.twoRunsCPURatio = Measurement.bestSlope(twoRuns, low: r1, high: r2, cpu: true).map { $0 / r }
        }
        if let p = Measurement.bestSlope(pairs, low: r1, high: r2), let r = Measurement.bestSlope(runs, low: r1, high: r2), r > 0 {
            point.wallRatio = p / r
        }
    }

    // MARK: sealing

    /// The cost per epoch of sealing: epoch records encoded into batches (as the primary does)
    /// and parsed (as the backup does), once as plain bytes and once sealed and opened with a
    /// session's keys in 64 KiB frames. The difference is what sealing adds per epoch.
    static func measureSealing(epochs: Int) -> Sealing? {
        guard var session = establishSession() else { return nil }
        let perBatch = 1000
        func records(_ body: (ByteBuffer) -> Void) {
            var writer = MessageWriter()
            var epoch: UInt64 = 0
            while epoch < UInt64(epochs) {
                for _ in 0..<perBatch {
                    writer.epochEnd(EpochRecord(epoch: epoch, progress: (epoch + 1) * 32768, stop: .epochEnd,
                                                time: VirtualTime(nanoseconds: (epoch + 1) * 32768), events: [],
                                                environmentCount: 0, outputCount: 0, stateDigest: nil))
                    epoch += 1
                }
                body(writer.take())
            }
        }
        func parse(_ chunks: [ByteBuffer]) -> Int {
            var parser = MessageParser(receiver: .backup)
            for c in chunks { parser.append(c) }
            var n = 0
            while let m = try? parser.next() { if case .epochEnd = m { n += 1 } }
            return n
        }
        var parsed = 0
        let plainStart = BenchClock.now()
        records { parsed += parse([$0]) }
        let plain = BenchClock.now() - plainStart
        var opened = 0
        let sealedStart = BenchClock.now()
        records { batch in
            var frames = ByteBuffer()
            var rest = batch
            while rest.readableBytes > 0 {
                let chunk = rest.readSlice(length: min(Frame.maximumPlaintext, rest.readableBytes))!
                try? session.primary.sealer.seal(.data, chunk.readableBytesView, into: &frames)
            }
            var reader = FrameReader()
            reader.append(&frames)
            var chunks: [ByteBuffer] = []
            while let frame = try? reader.next(), let plaintext = try? session.backup.opener.open(frame) { chunks.append(plaintext) }
            opened += parse(chunks)
        }
        let sealed = BenchClock.now() - sealedStart
        guard parsed == epochs, opened == epochs else { return nil }
        return Sealing(epochs: epochs, plainNanosecondsPerEpoch: plain / Double(epochs) * 1e9,
                       sealedNanosecondsPerEpoch: sealed / Double(epochs) * 1e9)
    }

    /// A session between two in-memory handshakes (the real key schedule).
    static func establishSession() -> (primary: EstablishedSession, backup: EstablishedSession)? {
        let identity = ReplicaIdentity(imageBytes: [1], options: .init(guestPath: "/bench"), engine: .emulator,
                                       epochClock: .recoveryCounter, epochLength: 32768, diskSectors: nil)
        let key = ReplicationKey.generate()
        var primary = HandshakeStateMachine(role: .primary, key: key, identity: identity,
                                            session: Array(repeating: 1, count: IdentityMessage.sessionSize))
        var backup = HandshakeStateMachine(role: .backup, key: key, identity: identity)
        var toPrimary = backup.start().send
        var primaryDone: EstablishedSession?, backupDone: EstablishedSession?
        for _ in 0..<4 where !toPrimary.isEmpty {
            var toBackup: [UInt8] = []
            var reader = FrameReader()
            reader.append(contentsOf: toPrimary)
            while let frame = try? reader.next() {
                let step = primary.receive(frame)
                toBackup += step.send
                if case .success(let s)? = step.outcome { primaryDone = s }
            }
            toPrimary = []
            var backReader = FrameReader()
            backReader.append(contentsOf: toBackup)
            while let frame = try? backReader.next() {
                let step = backup.receive(frame)
                toPrimary += step.send
                if case .success(let s)? = step.outcome { backupDone = s }
            }
        }
        if primaryDone == nil, !toPrimary.isEmpty {
            var reader = FrameReader()
            reader.append(contentsOf: toPrimary)
            while let frame = try? reader.next() {
                if case .success(let s)? = primary.receive(frame).outcome { primaryDone = s }
            }
        }
        guard let primaryDone, let backupDone else { return nil }
        return (primaryDone, backupDone)
    }

    // MARK: Report

    static func report(_ result: Result, skipped: [String]) -> ExperimentReport {
        var table = Table(["Binary", "Epoch length", "run: host instr. per epoch", "primary: extra host instr. per boundary",
                           "backup: extra host instr. per boundary", "pair/run CPU", "two runs at once/run CPU", "pair/run wall"],
                          numericColumns: Set(1...7))
        var csv = Table(["binary", "epoch_length", "run_instructions_per_epoch", "primary_instructions_per_boundary",
                         "backup_instructions_per_boundary", "cpu_ratio", "two_runs_cpu_ratio", "wall_ratio"])
        func text(_ v: Double?) -> String { v.map { NumberFormat.compact($0) } ?? "-" }
        func ratio(_ v: Double?) -> String { v.map { NumberFormat.ratio($0) } ?? "-" }
        for p in result.points {
            table.append([p.binary, NumberFormat.binary(Double(p.epochLength)), text(p.runInstructionsPerEpoch),
                          text(p.primaryInstructionsPerBoundary), text(p.backupInstructionsPerBoundary), ratio(p.cpuRatio),
                          ratio(p.twoRunsCPURatio), ratio(p.wallRatio)])
            csv.append([p.binary, "\(p.epochLength)", p.runInstructionsPerEpoch.map { "\($0)" } ?? "",
                        p.primaryInstructionsPerBoundary.map { "\($0)" } ?? "", p.backupInstructionsPerBoundary.map { "\($0)" } ?? "",
                        p.cpuRatio.map { "\($0)" } ?? "", p.twoRunsCPURatio.map { "\($0)" } ?? "", p.wallRatio.map { "\($0)" } ?? ""])
        }
        var summary: [[String]] = []
        let mine = result.points.filter { $0.binary == "this build" }
        let base = result.points.filter { $0.binary == "baseline" }
        for p in mine {
            let b = base.first { $0.epochLength == p.epochLength }
            let length = NumberFormat.binary(Double(p.epochLength))
            for (name, mineValue, baseValue) in [("primary", p.primaryInstructionsPerBoundary, b?.primaryInstructionsPerBoundary),
                                                 ("backup", p.backupInstructionsPerBoundary, b?.backupInstructionsPerBoundary)]
            {
                guard let mineValue else { continue }
                summary.append(["boundary", "host instructions per epoch boundary beyond lockstep run, \(name), emulator at \(length) (callgrind)",
                                NumberFormat.compact(mineValue), baseValue.map { "\(NumberFormat.compact($0)) (baseline)" } ?? "-",
                                baseValue.map { $0 > 0 ? NumberFormat.ratio(mineValue / $0) : "-" } ?? "-"])
            }
            if let cpu = p.cpuRatio {
                summary.append(["boundary", "pair / run CPU time per round, emulator at \(length) (target at 32K: 2.1x or less)",
                                NumberFormat.ratio(cpu), b?.cpuRatio.map { "\(NumberFormat.ratio($0)) (baseline)" } ?? "-",
                                b?.cpuRatio.map { $0 > 0 ? NumberFormat.ratio(cpu / $0) : "-" } ?? "-"])
            }
            if let two = p.twoRunsCPURatio, let cpu = p.cpuRatio {
                summary.append(["boundary", "pair CPU time per round against two unreplicated runs at once (the host's floor: \(NumberFormat.ratio(two)) of one run), emulator at \(length)",
                                NumberFormat.ratio(cpu), "\(NumberFormat.ratio(two)) (two runs)", two > 0 ? NumberFormat.ratio(cpu / two) : "-"])
            }
            if let wall = p.wallRatio {
                summary.append(["boundary", "pair / run wall time per round, emulator at \(length)",
                                NumberFormat.ratio(wall), b?.wallRatio.map { "\(NumberFormat.ratio($0)) (baseline)" } ?? "-",
                                b?.wallRatio.map { $0 > 0 ? NumberFormat.ratio(wall / $0) : "-" } ?? "-"])
            }
        }
        if let s = result.sealing {
            summary.append(["boundary", "encoding + parsing one epoch record, sealed (AES-256-GCM, 64 KiB frames) vs plain, in process",
                            "\(NumberFormat.compact(s.sealedNanosecondsPerEpoch)) ns", "\(NumberFormat.compact(s.plainNanosecondsPerEpoch)) ns (plain)",
                            s.plainNanosecondsPerEpoch > 0 ? NumberFormat.ratio(s.sealedNanosecondsPerEpoch / s.plainNanosecondsPerEpoch) : "-"])
        }
        let markdown: (String) -> String = { _ in
            var text = """
                Method: host instructions are counted with callgrind (every instruction of the process, all threads) for \
                `lockstep run` and for each replica of a replicated run (the other replica runs natively), at two round counts of \
                the emulator's cpu guest; the difference between the round counts cancels start-up, the handshake and the final \
                digest, `lockstep run`'s difference is subtracted, and the rest is divided by the number of epochs between the two \
                runs: what replication adds per epoch boundary on each side. The pair/run ratios are time per round (a slope over \
                two round counts, fastest repetition) with `--max-lag 100000000`, CPU time of both replicas against `lockstep run`'s; \
                an ideal pair on two cores is 2.0x CPU and 1.0x wall. "Two runs at once" starts two unreplicated runs together, \
                as the pair's two replicas run on this host: its CPU time against one run's is what co-locating two guests costs \
                here before any replication (shared caches, memory, the host's other tenants), the floor under the pair's \
                ratio. "baseline" is the binary given with `--baseline`, measured the same way in the same run. The sealing figure encodes epoch records into 64 KiB batches and parses them, once \
                plain and once sealed and opened with a session's keys, in this process.


                """
            text += table.markdown()
            if let s = result.sealing {
                text += "\nSealing: \(s.epochs) epoch records, \(NumberFormat.compact(s.plainNanosecondsPerEpoch)) ns per epoch plain, "
                    + "\(NumberFormat.compact(s.sealedNanosecondsPerEpoch)) ns sealed: sealing adds "
                    + "\(NumberFormat.compact(s.sealedNanosecondsPerEpoch - s.plainNanosecondsPerEpoch)) ns per epoch.\n"
            }
            if !skipped.isEmpty { text += "\nSkipped: " + skipped.joined(separator: "; ") + "\n" }
            return text
        }
        return ExperimentReport(experiment: .boundary, title: title, markdown: markdown, csv: ["boundary.csv": csv],
                                summary: summary, skipped: skipped)
    }
}
