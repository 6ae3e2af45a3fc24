import Foundation

/// Engines and peers on the same guest ELF in the same run: Lockstep's emulator against
/// qemu-system-hppa, Lockstep on KVM against qemu-system-x86_64 with KVM.
enum PeerExperiment {
    struct Workload {
        var name: String
        var guest: String
        var cmdline: (Int) -> String
        var rounds: (Int, Int)?
        var marker: String
    }

    /// What a comparison hands back: its report, the results per engine, and the probes of its
    /// QEMU peers (which CPU model each used, or why it was skipped).
    typealias Outcome = (report: ExperimentReport, results: [PeerResult], probes: [PeerProbe])

    /// Probes one QEMU configuration (once per run: the experiment keeps the answer) and logs it.
    static func probe(_ context: BenchContext, arch: String, kvm: Bool = false, microvm: Bool = false,
                      qemu: String) -> PeerProbe
    {
        let script = HostTools.probeScript(guests: context.driver.guests, executable: context.driver.executable)
        let probe = PeerProbe.run(script: script, arch: arch, kvm: kvm, microvm: microvm, qemu: qemu)
        context.log.line("QEMU probe: \(probe.summary)")
        return probe
    }

    static func pariscQEMU(_ context: BenchContext) -> Outcome {
        let title = "Lockstep's PA-RISC emulator against qemu-system-hppa"
        guard context.driver.guests.has("parisc", "cpu"), context.driver.guests.has("parisc", "hello") else {
            return (.skipped(.pariscQEMU, title: title, reason: "guests/build/parisc/cpu.elf or hello.elf is missing"), [], [])
        }
        let qemu: String
        switch context.tools.qemuHPPA {
        case .success(let path): qemu = path
        case .failure(let why):
            return (.skipped(.pariscQEMU, title: title, reason: "\(why)"), [], [])
        }
        let peerProbe = probe(context, arch: "parisc", qemu: qemu)
        if case .cannotRun(let why) = peerProbe.verdict {
            return (.skipped(.pariscQEMU, title: title, reason: "\(peerProbe.peer) cannot run here: \(why)"), [], [peerProbe])
        }
        let plan = context.plan
        // Instructions per round from the recovery counter: epochs of exactly 1024 instructions.
        var instructionsPerRound: Double?
        let (c1, c2) = plan.instructionCountRounds
        var counts: [Int: UInt64] = [:]
        for rounds in [c1, c2] {
            do {
                let (outcome, stats) = try context.driver.replicate(arch: "parisc", guest: "cpu", cmdline: "rounds=\(rounds)",
                                                               options: ["--epoch-length", "1024"])
                let m = context.record(.pariscQEMU, series: "instruction count", mode: "pair", epochLength: 1024, work: rounds,
                                       repetition: 0, outcome: outcome, expectedOutput: context.cpuLine(rounds: rounds),
                                       channel: stats.flatMap(ChannelFigures.init))
                if m.ok, let epochs = m.channel?.epochs { counts[rounds] = epochs }
            } catch {
                context.problem("parisc-qemu: \(error)")
            }
        }
        if let e1 = counts[c1], let e2 = counts[c2], e2 > e1 {
            instructionsPerRound = Double(e2 - e1) * 1024 / Double(c2 - c1)
        }
        // Lockstep's engines (`--emulator`): the first, the JIT where the host runs it, is the
        // ratios' base (PARISCEngines.swift).
        let engines: [(PeerCommand, (Int, Int))] = PARISCEngines.lockstepCommands(context).map { ($0, plan.pariscLockstepRounds) } + [
            (.qemuHPPA(qemu, icount: false), plan.qemuHPPARounds),
            (.qemuHPPA(qemu, icount: true), plan.qemuHPPARounds),
        ]
        var results = compare(context, experiment: .pariscQEMU, comparison: "parisc", arch: "parisc", engines: engines,
                              cpuWorkloads: [Workload(name: "cpu", guest: "cpu", cmdline: { "rounds=\($0)" }, rounds: nil, marker: "cpu rounds=")],
                              hello: "Hello from parisc")
        for i in results.indices where results[i].workload == "cpu" {
            if let ipr = instructionsPerRound, let spr = results[i].secondsPerRound, spr > 0 {
                results[i].instructionsPerSecond = ipr / spr
            }
        }
        var note = instructionsPerRound.map {
            "The cpu guest executes about \(NumberFormat.compact($0)) PA-RISC instructions per round (counted by Lockstep's recovery counter: epochs of exactly 1024 non-nullified instructions, between rounds=\(c1) and rounds=\(c2)); instruction rates below use that count for every engine (QEMU's -icount also counts nullified instructions, a small difference)."
        } ?? "The instruction count per round could not be measured (see problems)."
        note += PARISCEngines.speedNote(results)
        return (report(.pariscQEMU, title: title, chartName: "parisc-qemu.svg", results, note: note, context: context),
                results, [peerProbe])
    }

    static func x86QEMU(_ context: BenchContext) -> Outcome {
        let title = "Lockstep on KVM against qemu-system-x86_64 with KVM"
        guard context.driver.guests.has("x86", "cpu"), context.driver.guests.has("x86", "hello") else {
            return (.skipped(.x86QEMU, title: title, reason: "guests/build/x86/cpu.elf or hello.elf is missing"), [], [])
        }
        switch context.tools.kvm {
        case .failure(let why):
            return (.skipped(.x86QEMU, title: title, reason: "Lockstep's KVM engine cannot run here: \(why)"), [], [])
        case .success: break
        }
        let qemu: String
        switch context.tools.qemuX86 {
        case .success(let path): qemu = path
        case .failure(let why):
            return (.skipped(.x86QEMU, title: title, reason: "\(why)"), [], [])
        }
        let plan = context.plan
        var engines: [(PeerCommand, (Int, Int))] = [(.lockstep(context, name: "lockstep run (KVM)"), plan.x86Rounds)]
        var bootOnly: Set<String> = []
        // Each QEMU machine with the CPU model its probe found; one that cannot run is skipped.
        var probes: [PeerProbe] = []
        var skipped: [String] = []
        for microvm in plan.qemuPC ? [false, true] : [true] {
            let peerProbe = probe(context, arch: "x86", kvm: true, microvm: microvm, qemu: qemu)
            probes.append(peerProbe)
            switch peerProbe.verdict {
            case .cannotRun(let why):
                skipped.append("\(peerProbe.peer) cannot run here: \(why)")
            case .runs(let model, let argument):
                let engine = PeerCommand.qemuX86(qemu, microvm: microvm, cpu: argument ?? model)
                engines.append((engine, plan.x86Rounds))
                // The pc machine's SeaBIOS boot takes seconds here and varies by more than the
                // workload: boot only.
                if !microvm { bootOnly.insert(engine.name) }
            }
        }
        guard engines.count > 1 else {
            var nothing = ExperimentReport.skipped(.x86QEMU, title: title, reason: skipped.joined(separator: "; "))
            nothing.skipped = skipped
            return (nothing, [], probes)
        }
        var workloads = [Workload(name: "cpu", guest: "cpu", cmdline: { "rounds=\($0)" }, rounds: nil, marker: "cpu rounds=")]
        if let rounds = plan.x86Ring0Rounds {
            workloads.append(Workload(name: "cpu (ring0)", guest: "cpu", cmdline: { "ring0 rounds=\($0)" },
                                      rounds: rounds, marker: "cpu rounds="))
        }
        let results = compare(context, experiment: .x86QEMU, comparison: "x86", arch: "x86", engines: engines,
                              cpuWorkloads: workloads, hello: "Hello from x86", bootOnly: bootOnly)
        let note = "The cpu guest runs at CPL3 (native speed under KVM) unless `ring0` is given; at CPL0 this host's KVM interprets every instruction, for QEMU as for Lockstep." + (plan.qemuPC ? " The pc machine boots through SeaBIOS, which runs at CPL0 and so is interpreted too: its boot takes seconds and varies by more than the cpu workload, so it is measured for boot only." : "")
            + " QEMU's CPU model, probed on this host (`scripts/qemu-run-guest --probe`: the first of host, max, qemu64 that boots): "
            + probes.map(\.summary).joined(separator: "; ") + "."
        var comparison = report(.x86QEMU, title: title, chartName: "x86-qemu.svg", results, note: note, context: context)
        comparison.skipped = skipped
        return (comparison, results, probes)
    }

    /// Runs every engine on the hello guest (boot to first output) and on the cpu workloads
    /// (time per round), repetitions interleaved so that drift hits all engines alike.
    static func compare(_ context: BenchContext, experiment: Experiment, comparison: String, arch: String,
                        engines: [(PeerCommand, (Int, Int))], cpuWorkloads: [Workload], hello: String,
                        bootOnly: Set<String> = []) -> [PeerResult]
    {
        let timeout = context.plan.runTimeout
        func measure(_ engine: PeerCommand, guest: String, cmdline: String, work: Int, mode: String, rep: Int,
                     marker: String, expected: String)
        {
            do {
                let outcome = try RunningProcess.run(engine.executable, engine.arguments(context.driver.guests.path(arch, guest), cmdline),
                                                     marker: marker, timeout: timeout)
                context.record(experiment, series: engine.name, mode: mode, work: work, repetition: rep,
                               outcome: outcome, expectedStatus: engine.successStatus, expectedOutput: expected)
            } catch {
                context.problem("\(experiment): \(error)")
            }
        }
        // The same line from every engine at a common round count.
        let common = engines.map(\.1.0).min() ?? 1
        for (engine, _) in engines where !bootOnly.contains(engine.name) {
            measure(engine, guest: "cpu", cmdline: "rounds=\(common)", work: common, mode: "digest check", rep: 0,
                    marker: "cpu rounds=", expected: context.cpuLine(rounds: common))
        }
        for rep in 0..<context.plan.repetitions {
            for (engine, rounds) in engines {
                measure(engine, guest: "hello", cmdline: "", work: 0, mode: "boot (hello)", rep: rep, marker: hello, expected: hello)
                if bootOnly.contains(engine.name) { continue }
                for workload in cpuWorkloads {
                    let (r1, r2) = workload.rounds ?? rounds
                    for r in [r1, r2] {
                        measure(engine, guest: workload.guest, cmdline: workload.cmdline(r), work: r, mode: workload.name, rep: rep,
                                marker: workload.marker, expected: context.cpuLine(rounds: r))
                    }
                }
            }
        }
        var results: [PeerResult] = []
        for (engine, rounds) in engines {
            let mine = context.measurements.filter { $0.experiment == experiment.rawValue && $0.series == engine.name }
            let allOK = mine.allSatisfy(\.ok)
            let boot = mine.filter { $0.mode == "boot (hello)" && $0.ok }
            results.append(PeerResult(comparison: comparison, workload: "boot (hello)", engine: engine.name,
                                      bootToOutput: Summary(boot.compactMap(\.markerSeconds)),
                                      wholeSeconds: Summary(boot.map(\.seconds)), outputsCorrect: allOK))
            for workload in cpuWorkloads where !bootOnly.contains(engine.name) {
                let (r1, r2) = workload.rounds ?? rounds
                let runs = mine.filter { $0.mode == workload.name }
                results.append(PeerResult(comparison: comparison, workload: workload.name, engine: engine.name,
                                          secondsPerRound: Measurement.bestSlope(runs, low: r1, high: r2),
                                          secondsPerRoundByRepetition: Summary(Measurement.slopes(runs, low: r1, high: r2)),
                                          outputsCorrect: allOK))
            }
        }
        // Ratios against Lockstep (the first engine).
        let lockstepName = engines.first?.0.name ?? ""
        for i in results.indices {
            guard let base = results.first(where: { $0.engine == lockstepName && $0.workload == results[i].workload }) else { continue }
            if let a = base.secondsPerRound, let b = results[i].secondsPerRound, b > 0 {
                results[i].lockstepOverPeer = a / b
            } else if let a = base.bootToOutput?.median, let b = results[i].bootToOutput?.median, b > 0 {
                results[i].lockstepOverPeer = a / b
            }
        }
        return results
    }

    static func report(_ experiment: Experiment, title: String, chartName: String, _ results: [PeerResult], note: String,
                       context: BenchContext) -> ExperimentReport
    {
        var table = Table(["Workload", "Engine", "Time per round (ms)", "Range (ms)", "Guest MIPS", "Boot to first output (ms)",
                           "Whole run (ms)", "Lockstep ÷ engine", "Output correct"],
                          numericColumns: Set(2...7))
        var csv = Table(["comparison", "workload", "engine", "seconds_per_round", "seconds_per_round_min", "seconds_per_round_max",
                         "instructions_per_second", "boot_to_output_s", "whole_s", "lockstep_over_peer", "outputs_correct"])
        var summary: [[String]] = []
        let lockstepName = results.first?.engine ?? ""
        for r in results {
            table.append([r.workload, r.engine,
                          r.secondsPerRound.map { NumberFormat.milliseconds($0) } ?? "-",
                          r.secondsPerRoundByRepetition.map { "\(NumberFormat.milliseconds($0.minimum))–\(NumberFormat.milliseconds($0.maximum))" } ?? "-",
                          r.instructionsPerSecond.map { NumberFormat.compact($0 / 1e6) } ?? "-",
                          r.bootToOutput.map { NumberFormat.milliseconds($0.median) } ?? "-",
                          r.wholeSeconds.map { NumberFormat.milliseconds($0.median) } ?? "-",
                          r.lockstepOverPeer.map(NumberFormat.ratio) ?? "-", r.outputsCorrect ? "yes" : "NO"])
            csv.append([r.comparison, r.workload, r.engine, r.secondsPerRound.map { "\($0)" } ?? "",
                        r.secondsPerRoundByRepetition.map { "\($0.minimum)" } ?? "", r.secondsPerRoundByRepetition.map { "\($0.maximum)" } ?? "",
                        r.instructionsPerSecond.map { "\($0)" } ?? "", r.bootToOutput.map { "\($0.median)" } ?? "",
                        r.wholeSeconds.map { "\($0.median)" } ?? "", r.lockstepOverPeer.map { "\($0)" } ?? "",
                        r.outputsCorrect ? "1" : "0"])
            if r.engine != lockstepName, let ratio = r.lockstepOverPeer {
                let base = results.first { $0.engine == lockstepName && $0.workload == r.workload }
                let value: (PeerResult?) -> String = { p in
                    guard let p else { return "-" }
                    if let s = p.secondsPerRound { return "\(NumberFormat.milliseconds(s)) ms/round" }
                    return p.bootToOutput.map { "\(NumberFormat.milliseconds($0.median)) ms" } ?? "-"
                }
                summary.append([experiment.rawValue, "\(r.workload): \(lockstepName) vs \(r.engine) (Lockstep ÷ peer)",
                                value(base), value(r), NumberFormat.ratio(ratio)])
            }
        }
        let workloads = { () -> [String] in
            var seen: [String] = []
            for r in results where !seen.contains(r.workload) { seen.append(r.workload) }
            return seen
        }()
        let engines = { () -> [String] in
            var seen: [String] = []
            for r in results where !seen.contains(r.engine) { seen.append(r.engine) }
            return seen
        }()
        let bars = BarChart(
            title: title,
            subtitle: "cpu: ms per SHA-256 round (slope of the fastest runs); boot: median ms from process start to the first line",
            yAxis: ChartAxis(label: "milliseconds"),
            categories: workloads.map { $0 == "boot (hello)" ? "hello guest" : "\($0) guest" },
            series: engines.map { e in
                BarChart.Series(name: e, values: workloads.map { w in
                    results.first { $0.engine == e && $0.workload == w }.flatMap { r in
                        (r.secondsPerRound ?? r.bootToOutput?.median).map { $0 * 1000 }
                    }
                }, ranges: workloads.map { w in
                    results.first { $0.engine == e && $0.workload == w }.flatMap { r in
                        (r.secondsPerRound != nil ? r.secondsPerRoundByRepetition : r.bootToOutput).map { (low: $0.minimum * 1000, high: $0.maximum * 1000) }
                    }
                })
            },
            // Boot time and time per round are unlike quantities, and the rounds of a CPL3 and
            // a CPL0 guest differ a thousandfold here: each gets an axis of its own.
            panels: workloads.indices.map { i in
                BarChart.Panel(heading: workloads[i] == "boot (hello)" ? "boot to first output" : "\(workloads[i]): time per round",
                               categories: i..<i + 1)
            })
        let charts = results.isEmpty ? [:] : [chartName: bars.svg()]
        let markdown: (String) -> String = { prefix in
            var text = """
                Method: every engine runs the same guest ELF in this run, repetitions interleaved. Time per round is the \
                wall-time difference between the fastest runs at two round counts over the difference in rounds (boot \
                and exit cancel out; the range is that of the per-repetition slopes); boot is the median time from \
                starting the process to the guest's first line on its console. Every \
                engine must print exactly the line the bench computes itself (xorshift32 buffer, SHA-256 chain), and at \
                a common round count all engines print the same line. "Lockstep ÷ engine" above 1 means the peer is faster.


                """
            text += note + "\n\n"
            text += charts.keys.sorted().map { "![\($0)](\(prefix)\($0))\n" }.joined() + "\n"
            text += table.markdown()
            return text
        }
        return ExperimentReport(experiment: experiment, title: title, markdown: markdown, charts: charts,
                                csv: ["\(experiment.rawValue).csv": csv,
                                      "\(experiment.rawValue)-runs.csv": Measurement.table(context.measurements.filter { $0.experiment == experiment.rawValue })],
                                summary: summary)
    }
}
