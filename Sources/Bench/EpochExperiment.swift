import Foundation

/// The paper's CPU-intensive experiment: the cpu guest's time replicated (primary and backup) divided by
/// its time under `lockstep run`, against the epoch length.
enum EpochExperiment {
    /// Bressoud & Schneider (SOSP 1995), CPU-intensive workload: normalized time at 4K and 32K
    /// instruction epochs (the lecture notes in seeds/003).
    static let paperPoints: [(length: UInt64, ratio: Double)] = [(4096, 6.5), (32768, 1.84)]

    /// The primary may run this far ahead of the backup in the main series (see the method).
    static let liftedLag = ["--max-lag", "100000000"]

    static func specs(_ context: BenchContext) -> (specs: [EpochSeriesSpec], skipped: [String]) {
        let plan = context.plan
        var specs: [EpochSeriesSpec] = []
        var skipped: [String] = []
        if context.driver.guests.has("parisc", "cpu") {
            specs.append(EpochSeriesSpec(name: "emulator, recovery counter", arch: "parisc", ring0: false,
                                         clock: "recovery-counter", unit: "instructions",
                                         lengths: plan.instructionEpochLengths, rounds: plan.emulatorRounds,
                                         runAtEachLength: true, pairOptions: liftedLag))
            if !plan.flowControlEpochLengths.isEmpty {
                specs.append(EpochSeriesSpec(name: "emulator, recovery counter, default --max-lag", arch: "parisc", ring0: false,
                                             clock: "recovery-counter", unit: "instructions",
                                             lengths: plan.flowControlEpochLengths, rounds: plan.emulatorRounds,
                                             runAtEachLength: false))
                specs.append(EpochSeriesSpec(name: "emulator, recovery counter, via lockstep pair", arch: "parisc", ring0: false,
                                             clock: "recovery-counter", unit: "instructions",
                                             lengths: plan.flowControlEpochLengths, rounds: plan.emulatorRounds,
                                             runAtEachLength: false, pairOptions: liftedLag, viaPairCommand: true))
            }
        } else {
            skipped.append("emulator: guests/build/parisc/cpu.elf is missing")
        }
        switch context.tools.kvm {
        case .failure(let why):
            skipped.append("KVM epoch clocks: \(why)")
        case .success(let report):
            guard context.driver.guests.has("x86", "cpu") else {
                skipped.append("KVM: guests/build/x86/cpu.elf is missing")
                break
            }
            for clock in ["exits", "pmu", "single-step"] {
                guard report.supports(clock) else {
                    skipped.append("KVM \(clock) clock: \(report.epochClocks[clock] ?? "not reported by lockstep doctor")")
                    continue
                }
                let ring0 = report.onlyRing0(clock)
                let name = "KVM, \(clock)" + (ring0 ? " (ring0 guest)" : "")
                switch clock {
                case "exits":
                    specs.append(EpochSeriesSpec(name: name, arch: "x86", ring0: ring0, clock: clock, unit: "exits",
                                                 lengths: plan.exitEpochLengths, rounds: plan.kvmRounds,
                                                 runAtEachLength: true, pairOptions: liftedLag))
                case "pmu":
                    // The pmu clock counts retired conditional branches.
                    specs.append(EpochSeriesSpec(name: name, arch: "x86", ring0: ring0, clock: clock, unit: "branches",
                                                 lengths: plan.instructionEpochLengths, rounds: ring0 ? plan.x86Ring0Rounds ?? (1, 1) : plan.kvmRounds,
                                                 runAtEachLength: false, pairOptions: liftedLag))
                default:
                    if plan.singleStepEpochLengths.isEmpty {
                        skipped.append("KVM single-step clock: not in --quick (it steps every instruction)")
                    } else {
                        specs.append(EpochSeriesSpec(name: name, arch: "x86", ring0: ring0, clock: clock, unit: "instructions",
                                                     lengths: plan.singleStepEpochLengths, rounds: plan.singleStepRounds,
                                                     runAtEachLength: false, pairOptions: liftedLag,
                                                     repetitions: plan.singleStepRepetitions))
                    }
                }
            }
        }
        return (specs, skipped)
    }

    static func run(_ context: BenchContext) -> (ExperimentReport, [EpochSeriesResult]) {
        let (specs, skipped) = specs(context)
        var measured: [(EpochSeriesSpec, [Measurement])] = []
        for spec in specs {
            var ms: [Measurement] = []
            for rep in 0..<min(context.plan.repetitions, spec.repetitions ?? .max) {
                for rounds in spec.roundCounts {
                    let cmdline = spec.cmdlinePrefix + "rounds=\(rounds)"
                    if let outcome = attempt(context, { try context.driver.run(arch: spec.arch, guest: "cpu", cmdline: cmdline) }) {
                        ms.append(context.record(.epochs, series: spec.name, mode: "run (default clock)", work: rounds,
                                                 repetition: rep, outcome: outcome, expectedOutput: context.cpuLine(rounds: rounds)))
                    }
                }
                for length in spec.lengths {
                    let options = ["--epoch-clock", spec.clock, "--epoch-length", "\(length)"]
                    for rounds in spec.roundCounts {
                        let cmdline = spec.cmdlinePrefix + "rounds=\(rounds)"
                        if case let (outcome, stats)? = attempt(context, {
                            spec.viaPairCommand
                                ? try context.driver.pair(arch: spec.arch, guest: "cpu", cmdline: cmdline, options: spec.pairOptions + options)
                                : try context.driver.replicate(arch: spec.arch, guest: "cpu", cmdline: cmdline, options: spec.pairOptions + options)
                        }) {
                            ms.append(context.record(.epochs, series: spec.name, mode: "pair", epochLength: length, work: rounds,
                                                     repetition: rep, outcome: outcome, expectedOutput: context.cpuLine(rounds: rounds),
                                                     channel: stats.flatMap(ChannelFigures.init)))
                        }
                        if spec.runAtEachLength,
                           let outcome = attempt(context, { try context.driver.run(arch: spec.arch, guest: "cpu", cmdline: cmdline, options: options) })
                        {
                            ms.append(context.record(.epochs, series: spec.name, mode: "run", epochLength: length, work: rounds,
                                                     repetition: rep, outcome: outcome, expectedOutput: context.cpuLine(rounds: rounds)))
                        }
                    }
                }
            }
            measured.append((spec, ms))
        }
        let results = measured.map { analyse($0.0, $0.1) }
        return (report(results, measured: measured.flatMap(\.1), skipped: skipped), results)
    }

    /// Runs a child, turning a failure to start into a problem.
    static func attempt<T>(_ context: BenchContext, _ body: () throws -> T) -> T? {
        do { return try body() } catch {
            context.problem("\(error)")
            return nil
        }
    }

    static func analyse(_ spec: EpochSeriesSpec, _ ms: [Measurement]) -> EpochSeriesResult {
        let (r1, r2) = spec.rounds
        let baseline = ms.filter { $0.mode == "run (default clock)" }
        let baseBest = Measurement.bestSlope(baseline, low: r1, high: r2)
        let baseCPU = Measurement.bestSlope(baseline, low: r1, high: r2, cpu: true)
        let baseWhole = baseline.filter { $0.ok && $0.work == r2 }.map(\.seconds).min()
        var points: [EpochPoint] = []
        for length in spec.lengths {
            let pairs = ms.filter { $0.mode == "pair" && $0.epochLength == length }
            guard let pairBest = Measurement.bestSlope(pairs, low: r1, high: r2), let baseBest, baseBest > 0 else { continue }
            let byRepetition = Summary(Measurement.slopes(pairs, low: r1, high: r2))
            let ratio = pairBest / baseBest
            let pairWhole = pairs.filter { $0.ok && $0.work == r2 }.map(\.seconds).min()
            let pairCPU = Measurement.bestSlope(pairs, low: r1, high: r2, cpu: true)
            // Epochs per round from the epoch counts at the two round numbers.
            let epochs1 = Summary(pairs.filter { $0.ok && $0.work == r1 }.compactMap { $0.channel.map { Double($0.epochs) } })
            let epochs2 = Summary(pairs.filter { $0.ok && $0.work == r2 }.compactMap { $0.channel.map { Double($0.epochs) } })
            let epochsPerRound = r1 == r2 ? epochs1.map { $0.median / Double(r1) }
                : epochs1.flatMap { e1 in epochs2.map { ($0.median - e1.median) / Double(r2 - r1) } }
            let cost = epochsPerRound.flatMap { $0 >= 1 ? (pairBest - baseBest) / $0 * 1e6 : nil }
            let runs = ms.filter { $0.mode == "run" && $0.epochLength == length }
            let sameLength = Measurement.bestSlope(runs, low: r1, high: r2).map { $0 / baseBest }
            let channels = pairs.filter { $0.ok && $0.work == r2 }.compactMap(\.channel)
            points.append(EpochPoint(
                epochLength: length, pairSecondsPerRound: pairBest, pairSecondsPerRoundByRepetition: byRepetition,
                ratio: ratio,
                ratioLow: min(ratio, (byRepetition?.minimum ?? pairBest) / baseBest),
                ratioHigh: max(ratio, (byRepetition?.maximum ?? pairBest) / baseBest),
                cpuRatio: pairCPU.flatMap { p in baseCPU.flatMap { $0 > 0 ? p / $0 : nil } },
                wholeRunRatio: pairWhole.flatMap { p in baseWhole.map { p / $0 } },
                epochsPerRound: epochsPerRound, costPerEpochMicroseconds: cost,
                unreplicatedSameLengthRatio: sameLength,
                bytesPerEpoch: Summary(channels.map(\.bytesPerEpoch))?.median,
                bytesPerSecond: Summary(channels.map(\.bytesPerSecond))?.median))
        }
        let shortest = points.min { $0.epochLength < $1.epochLength }
        let unitsPerRound = shortest.flatMap { p in p.epochsPerRound.map { $0 * Double(p.epochLength) } }
        return EpochSeriesResult(name: spec.name, arch: spec.arch, clock: spec.clock, unit: spec.unit, ring0: spec.ring0,
                                 rounds: spec.roundCounts, method: spec.method, baselineSecondsPerRound: baseBest,
                                 unitsPerRound: spec.unit == "instructions" ? unitsPerRound : nil, points: points)
    }

    static func chart(_ results: [EpochSeriesResult], unit: String, paper: Bool) -> String {
        var series: [LineChart.Series] = []
        for r in results where r.unit == unit && !r.points.isEmpty {
            series.append(LineChart.Series(
                name: "\(r.name): replicated / lockstep run",
                points: r.points.map {
                    LineChart.Point(x: Double($0.epochLength), y: $0.ratio, low: $0.ratioLow, high: $0.ratioHigh,
                                    note: "\(r.name) at \(NumberFormat.binary(Double($0.epochLength))) \(unit): \(NumberFormat.ratio($0.ratio))")
                }))
            let same = r.points.compactMap { p in p.unreplicatedSameLengthRatio.map { LineChart.Point(x: Double(p.epochLength), y: $0) } }
            if !same.isEmpty {
                series.append(LineChart.Series(name: "\(r.name): lockstep run at that epoch length (no replication)",
                                               points: same, dashed: true, marker: .square))
            }
        }
        if paper {
            series.append(LineChart.Series(name: "Bressoud & Schneider 1995 (paper)",
                                           points: paperPoints.map { LineChart.Point(x: Double($0.length), y: $0.ratio) },
                                           markersOnly: true, marker: .star, color: "#000000"))
        }
        let ys = series.flatMap { $0.points.map { $0.high ?? $0.y } }
        let logY = (ys.max() ?? 1) > 20
        return LineChart(
            title: "CPU-intensive workload: replicated / unreplicated time",
            subtitle: "cpu guest (SHA-256 rounds), time per round from two round counts; bars: fastest and slowest repetition",
            xAxis: ChartAxis(label: "epoch length (\(unit), log scale)", scale: .log2, format: NumberFormat.binary),
            yAxis: ChartAxis(label: "normalized time (1 = lockstep run)", scale: logY ? .log10 : .linear, includesZero: true),
            series: series, references: [(1, "unreplicated")]).svg()
    }

    static func report(_ results: [EpochSeriesResult], measured: [Measurement], skipped: [String]) -> ExperimentReport {
        var charts: [String: String] = [:]
        let units = Set(results.filter { !$0.points.isEmpty }.map(\.unit))
        if units.contains("instructions") { charts["epochs.svg"] = chart(results, unit: "instructions", paper: true) }
        if units.contains("exits") { charts["epochs-exits.svg"] = chart(results, unit: "exits", paper: false) }

        var summaryTable = Table(["Series", "Epoch length", "Replicated / unreplicated", "Range", "CPU time ratio", "Whole process", "Epochs per round", "Cost per epoch (µs)", "Unreplicated at this length", "Channel bytes per epoch"],
                                 numericColumns: Set(1...9))
        var csv = Table(["series", "clock", "unit", "epoch_length", "ratio", "ratio_low", "ratio_high", "cpu_ratio", "whole_run_ratio",
                         "pair_seconds_per_round", "baseline_seconds_per_round", "epochs_per_round",
                         "cost_per_epoch_us", "unreplicated_same_length_ratio", "bytes_per_epoch", "bytes_per_second"])
        var summary: [[String]] = []
        for r in results {
            for p in r.points {
                summaryTable.append([r.name, "\(NumberFormat.binary(Double(p.epochLength))) \(r.unit)", NumberFormat.ratio(p.ratio),
                                     "\(NumberFormat.ratio(p.ratioLow))–\(NumberFormat.ratio(p.ratioHigh))",
                                     p.cpuRatio.map(NumberFormat.ratio) ?? "-",
                                     p.wholeRunRatio.map(NumberFormat.ratio) ?? "-",
                                     p.epochsPerRound.map(NumberFormat.compact) ?? "-",
                                     p.costPerEpochMicroseconds.map(NumberFormat.compact) ?? "-",
                                     p.unreplicatedSameLengthRatio.map(NumberFormat.ratio) ?? "-",
                                     p.bytesPerEpoch.map(NumberFormat.compact) ?? "-"])
                csv.append([r.name, r.clock, r.unit, "\(p.epochLength)", "\(p.ratio)", "\(p.ratioLow)", "\(p.ratioHigh)",
                            p.cpuRatio.map { "\($0)" } ?? "",
                            p.wholeRunRatio.map { "\($0)" } ?? "", "\(p.pairSecondsPerRound)",
                            r.baselineSecondsPerRound.map { "\($0)" } ?? "", p.epochsPerRound.map { "\($0)" } ?? "",
                            p.costPerEpochMicroseconds.map { "\($0)" } ?? "", p.unreplicatedSameLengthRatio.map { "\($0)" } ?? "",
                            p.bytesPerEpoch.map { "\($0)" } ?? "", p.bytesPerSecond.map { "\($0)" } ?? ""])
            }
        }
        // The paper's points beside ours.
        var paperTable = Table(["Epoch length (instructions)", "Paper (HP PA-RISC, 1995)"] + results.filter { $0.unit == "instructions" }.map(\.name),
                               numericColumns: Set(0...(1 + results.count)))
        for (length, ratio) in paperPoints {
            let ours = results.filter { $0.unit == "instructions" }.map { r in
                r.points.first { $0.epochLength == length }.map { NumberFormat.ratio($0.ratio) } ?? "not measured"
            }
            paperTable.append([NumberFormat.binary(Double(length)), NumberFormat.ratio(ratio)] + ours)
            for r in results where r.unit == "instructions" {
                if let p = r.points.first(where: { $0.epochLength == length }) {
                    summary.append(["epochs", "cpu guest, \(r.name), \(NumberFormat.binary(Double(length))) instructions: replicated / unreplicated",
                                    NumberFormat.ratio(p.ratio), "paper \(NumberFormat.ratio(ratio))", "-"])
                }
            }
        }
        // The shortest and longest epochs of every series (besides the paper's lengths above).
        for r in results {
            let ends = [r.points.min { $0.epochLength < $1.epochLength }, r.points.max { $0.epochLength < $1.epochLength }]
            for p in Set(ends.compactMap { $0?.epochLength }).sorted() {
                guard let point = r.points.first(where: { $0.epochLength == p }),
                      r.unit != "instructions" || !paperPoints.contains(where: { $0.length == p })
                else { continue }
                summary.append(["epochs", "cpu guest, \(r.name), \(NumberFormat.binary(Double(p))) \(r.unit): replicated / unreplicated",
                                NumberFormat.ratio(point.ratio), "-", "-"])
            }
        }
        let baselines = results.map { r in
            "\(r.name) (\(r.ring0 ? "ring0 " : "")cpu guest; time per round by \(r.method)): `lockstep run` takes \(r.baselineSecondsPerRound.map { NumberFormat.milliseconds($0) } ?? "-") ms per round"
                + (r.unitsPerRound.map { ", about \(NumberFormat.compact($0)) \(r.unit) per round (from the epoch count at the shortest length)" } ?? "")
        }
        let chartNames = charts.keys.sorted()
        let markdown: (String) -> String = { prefix in
            var text = """
                Method: the `cpu` guest hashes a 16 KiB buffer `rounds` times. Each configuration runs at two round \
                counts, several times; the fastest run at each count is kept (other work on this shared host only ever \
                adds time), and the difference in wall time divided by the difference in rounds is the time per round, \
                so process start-up, boot, the handshake and the final digest comparison cancel out. The ratio is \
                the replicated run (`lockstep primary` and `lockstep backup` as two processes on this host, from the \
                primary's start to the last exit; epoch clock and length as shown) over `lockstep run` (unreplicated, \
                the engine's default clock); the range is that of the per-repetition \
                slopes of the replicated run (the noise). "CPU time ratio" is the same for the CPU time of the \
                processes (both replicas for a pair): the work, whatever the contention. "Whole process" divides \
                total times at the larger round count. "Cost per epoch" is the extra time per round divided by the \
                epochs per round. \
                Every run's output is checked against the digest computed independently by the bench. The \
                replicated runs pass `--max-lag 100000000`, so the primary never waits for the backup's progress (the \
                paper's protocol has no such limit); the series "default --max-lag" runs the same replicas with the \
                default limit, and "via lockstep pair" replicates through the `lockstep pair` command (a third process \
                relaying the console) with the limit lifted.


                """
            text += baselines.map { "- \($0)\n" }.joined() + "\n"
            text += chartNames.map { "![\($0)](\(prefix)\($0))\n" }.joined() + "\n"
            if results.contains(where: { $0.unit == "instructions" }) { text += paperTable.markdown() + "\n" }
            text += summaryTable.markdown()
            if !skipped.isEmpty { text += "\n" + skipped.map { "- Skipped: \($0)\n" }.joined() }
            return text
        }
        return ExperimentReport(experiment: .epochs, title: "CPU-intensive workload against epoch length",
                                markdown: markdown, charts: charts,
                                csv: ["epochs.csv": csv, "epochs-runs.csv": Measurement.table(measured)],
                                summary: summary, skipped: skipped)
    }
}
