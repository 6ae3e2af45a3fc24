import ArgumentParser
import Hypervisor
import Bench
import Foundation

/// `lockstep bench`: the paper's experiments and the comparisons with QEMU, in one run.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run the benchmarks: epoch length against overhead, disk I/O, failover, channel traffic, Lockstep against QEMU.",
        discussion: """
            Drives this lockstep executable (and QEMU) as separate processes, as a user would, and writes CSV \
            and JSON results, SVG charts and a Markdown summary (summary.md) to the output directory. \
            Experiments: \(Experiment.allCases.map(\.rawValue).joined(separator: ", ")). Experiments whose tools \
            are missing (QEMU, /dev/kvm, Lockstep's KVM engine) are skipped with the reason. Use the release \
            build (swift build -c release) for numbers worth reading.
            """)

    @Option(name: .customLong("output"), help: "Directory for the results.")
    var output: String = "bench-results"

    @Flag(help: "A tiny setting that finishes in seconds (for tests): too small for conclusions.")
    var quick = false

    @Option(help: "Repetitions of each timed run (default 4; 1 with --quick).")
    var repetitions: Int?

    @Option(name: .customLong("failover-trials"), help: "Failover trials at the 1000 ms timeout (default 20; 1 with --quick); the other timeouts get about a seventh.")
    var failoverTrials: Int?

    @Option(help: "Experiments to run, comma-separated, or all.")
    var experiments: String = "all"

    @Option(help: "The guests' build directory (default: guests/build here or above the executable).")
    var guests: String?

    @Option(name: .customLong("doc"), help: "A Markdown file whose generated section is replaced with this run's results.")
    var document: String?

    @Option(name: .customLong("qemu-hppa"), help: "The qemu-system-hppa to compare with (default: from PATH).")
    var qemuHPPA: String?

    @Option(name: .customLong("qemu-x86"), help: "The qemu-system-x86_64 to compare with (default: from PATH).")
    var qemuX86: String?

    @Option(help: "Another lockstep binary the boundary and reprotect experiments measure the same way, for before/after ratios.")
    var baseline: String?

    @OptionGroup var log: LogOptions

    func run() throws {
        guard let chosen = Experiment.list(experiments) else {
            throw CLIFailure("--experiments \(experiments): expected all or a comma-separated list of \(Experiment.allCases.map(\.rawValue).joined(separator: ", "))", status: ExitStatus.usage)
        }
        if let repetitions, repetitions < 1 {
            throw CLIFailure("--repetitions must be at least 1", status: ExitStatus.usage)
        }
        if let failoverTrials, failoverTrials < 1 {
            throw CLIFailure("--failover-trials must be at least 1", status: ExitStatus.usage)
        }
        if let baseline, !FileManager.default.isExecutableFile(atPath: baseline) {
            throw CLIFailure("--baseline \(baseline): not an executable", status: ExitStatus.usage)
        }
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let configuration = BenchConfiguration(
            outputDirectory: output, quick: quick, repetitions: repetitions, failoverTrials: failoverTrials,
            experiments: chosen, guestDirectory: guests, documentPath: document, qemuHPPA: qemuHPPA, qemuX86: qemuX86,
            lockstep: executable, commandLine: (["lockstep"] + CommandLine.arguments.dropFirst()).joined(separator: " "),
            baseline: baseline)
        let outcome: BenchOutcome
        do {
            outcome = try Benchmark.run(configuration, log: ProgressLog())
        } catch let error as BenchError {
            switch error {
            case .usage: throw CLIFailure(error.description, status: ExitStatus.usage)
            case .noGuests: throw CLIFailure(error.description, status: ExitStatus.badInput)
            case .cannotStart, .output, .runFailed: throw CLIFailure(error.description, status: ExitStatus.internalError)
            }
        }
        print(outcome.summary, terminator: "")
        if !outcome.problems.isEmpty {
            throw CLIFailure("\(outcome.problems.count) measured run(s) failed; they are listed above and in the results", status: ExitStatus.internalError)
        }
    }
}
