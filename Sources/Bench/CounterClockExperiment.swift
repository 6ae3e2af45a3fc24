import Foundation
import X86

/// The x86 counter-driven epoch clock against single-step, the clock it must equal: the same
/// ring0 guest under `lockstep run` with each clock at the same epoch lengths, their time ratio,
/// replication with the counter clock (`lockstep primary` and `backup`), and the skid of its
/// overflow as `lockstep doctor` measured it.
enum CounterClockExperiment {
    static let title = "x86 counter-driven epochs against single-step"

    /// The emulation counter's clock name and the reference's.
    static let counter = "emulation-counter"
    static let reference = "single-step"

    static func run(_ context: BenchContext) -> (ExperimentReport, CounterClockResult?) {
        guard case .success(let kvm) = context.tools.kvm else {
            let why = if case .failure(let error) = context.tools.kvm { error.reason } else { "no KVM" }
            return (.skipped(.counterClock, title: title, reason: "KVM: \(why)"), nil)
        }
        for clock in [counter, reference] where !kvm.supports(clock) {
            return (.skipped(.counterClock, title: title, reason: "the \(clock) clock: \(kvm.epochClocks[clock] ?? "not reported by lockstep doctor")"), nil)
        }
        // The cpu guest (1.4 M instructions per round at CPL0) takes a minute of single-steps;
        // --quick uses hello, which only shows that the runs work.
        let (guest, rounds) = context.configuration.quick ? ("hello", 0) : ("cpu", 1)
        guard context.driver.guests.has("x86", guest) else {
            return (.skipped(.counterClock, title: title, reason: "guests/build/x86/\(guest).elf is missing"), nil)
        }
        let cmdline = guest == "cpu" ? "ring0 rounds=\(rounds)" : "ring0"
        let expected = guest == "cpu" ? context.cpuLine(rounds: rounds) : "Hello from x86"
        let lengths: [UInt64] = context.configuration.quick ? [1024] : [4096, 32768]
        var points: [CounterClockResult.Point] = []
        for length in lengths {
            var best: [String: Double] = [:]
            let options = ["--epoch-length", "\(length)"]
            for clock in [counter, reference, "exits"] {
                // Single-step is slow and steady: one repetition.
                let repetitions = clock == reference ? 1 : context.plan.repetitions
                for repetition in 0..<repetitions {
                    let clockOptions = ["--epoch-clock", clock] + (clock == "exits" ? [] : options)
                    guard let outcome = EpochExperiment.attempt(context, {
                        try context.driver.run(arch: "x86", guest: guest, cmdline: cmdline, options: clockOptions)
                    }) else { continue }
                    let m = context.record(.counterClock, series: "\(guest) ring0, \(clock)", mode: "run",
                                           epochLength: clock == "exits" ? nil : length, work: rounds,
                                           repetition: repetition, outcome: outcome, expectedOutput: expected)
                    if m.ok { best[clock] = min(best[clock] ?? .infinity, m.seconds) }
                }
            }
            var replicated: Double?
            if let (outcome, stats) = EpochExperiment.attempt(context, {
                try context.driver.replicate(arch: "x86", guest: guest, cmdline: cmdline,
                                             options: ["--epoch-clock", counter] + options)
            }) {
                let m = context.record(.counterClock, series: "\(guest) ring0, \(counter)", mode: "pair", epochLength: length,
                                       work: rounds, repetition: 0, outcome: outcome, expectedOutput: expected,
                                       channel: stats.flatMap(ChannelFigures.init))
                if m.ok { replicated = m.seconds }
            }
            points.append(CounterClockResult.Point(
                epochLength: length, counterSeconds: best[counter], singleStepSeconds: best[reference],
                exitsSeconds: best["exits"], replicatedCounterSeconds: replicated))
        }
        let result = CounterClockResult(guest: "\(guest) \(cmdline)", points: points,
                                        kickArmedAhead: kvm.doctor.counters.kickArmedAhead,
                                        kickMargin: kvm.doctor.counters.clockKickMargin,
                                        kickSkid: kvm.doctor.counters.kickSkid, boundedRun: kvm.doctor.counters.boundedRun)
        return (report(result), result)
    }

    static func report(_ result: CounterClockResult) -> ExperimentReport {
        var table = Table(["Epoch length", "emulation-counter", "single-step", "single-step / counter",
                           "exits (unreplicated default)", "counter / exits", "counter, primary + backup"],
                          numericColumns: Set(0...6))
        var csv = Table(["epoch_length", "counter_seconds", "single_step_seconds", "ratio", "exits_seconds", "replicated_counter_seconds"])
        var summary: [[String]] = []
        func seconds(_ s: Double?) -> String { s.map { NumberFormat.fixed($0, 2) + " s" } ?? "-" }
        for p in result.points {
            let ratio = p.ratio
            table.append(["\(NumberFormat.binary(Double(p.epochLength))) instructions", seconds(p.counterSeconds),
                          seconds(p.singleStepSeconds), ratio.map(NumberFormat.ratio) ?? "-", seconds(p.exitsSeconds),
                          p.counterSeconds.flatMap { c in p.exitsSeconds.map { NumberFormat.ratio(c / $0) } } ?? "-",
                          seconds(p.replicatedCounterSeconds)])
            csv.append(["\(p.epochLength)", p.counterSeconds.map { "\($0)" } ?? "", p.singleStepSeconds.map { "\($0)" } ?? "",
                        ratio.map { "\($0)" } ?? "", p.exitsSeconds.map { "\($0)" } ?? "",
                        p.replicatedCounterSeconds.map { "\($0)" } ?? ""])
            if let ratio, let c = p.counterSeconds, let s = p.singleStepSeconds {
                summary.append(["counter-clock",
                                "\(result.guest), \(NumberFormat.binary(Double(p.epochLength)))-instruction epochs: single-step time / emulation-counter time",
                                seconds(c), seconds(s) + " (single-step)", NumberFormat.ratio(ratio)])
            }
        }
        var skid = "`lockstep doctor` reported no skid measurement.\n"
        if let d = result.kickSkid {
            let range = "\(d.samples.first ?? 0)–\(d.largest)"
            skid = "The emulation counter's overflow is a kick timer. `lockstep doctor` armed it "
                + "\(result.kickArmedAhead ?? 0) instructions ahead \(d.samples.count) times on a CPL0 loop; the kick stopped "
                + "the vCPU \(range) instructions past that point (median \(d.median), 95th percentile \(d.percentile95)). "
            skid += "The clock arms it \(result.kickMargin ?? 0) instructions early, and only where interrupts are disabled; "
                + "elsewhere it runs in interrupt-window runs, which KVM ends within one emulation batch"
            if let runs = result.boundedRun {
                skid += " (at most \(runs.largest) instructions in \(runs.samples.count) runs)"
            }
            let samples = d.samples.map(String.init).joined(separator: ", ")
            skid += ".\n\nSkid samples (instructions): \(samples).\n"
        }
        let markdown: (String) -> String = { _ in
            "The same ring0 guest (`\(result.guest)`) under `lockstep run --epoch-clock emulation-counter` and `--epoch-clock single-step` at the same epoch lengths (both end every epoch on the same instruction, which the test suite checks), under the default `exits` clock for scale, and replicated with the counter clock. Fastest run of each; single-step ran once.\n\n"
                + table.markdown() + "\n" + skid
        }
        return ExperimentReport(experiment: .counterClock, title: title, markdown: markdown,
                                csv: ["counter-clock.csv": csv], summary: summary)
    }
}

/// What the counter-clock experiment measured.
struct CounterClockResult: Codable, Sendable {
    struct Point: Codable, Sendable {
        var epochLength: UInt64
        var counterSeconds: Double?
        var singleStepSeconds: Double?
        var exitsSeconds: Double?
        var replicatedCounterSeconds: Double?

        /// Single-step time over counter time.
        var ratio: Double? {
            guard let c = counterSeconds, let s = singleStepSeconds, c > 0 else { return nil }
            return s / c
        }
    }

    var guest: String
    var points: [Point]
    var kickArmedAhead: UInt64?
    /// How early the clock arms its kick timer.
    var kickMargin: UInt64?
    var kickSkid: HostReport.Distribution?
    var boundedRun: HostReport.Distribution?
}
