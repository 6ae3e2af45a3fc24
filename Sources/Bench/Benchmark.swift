import Foundation

/// `lockstep bench`: runs the experiments by driving the real lockstep binary (and QEMU) as
/// processes, and writes CSV, JSON, SVG charts and a Markdown summary.
public enum Benchmark {
    /// The marker before the generated section of a Markdown document (`--doc`).
    public static let beginMarker = "<!-- lockstep bench: generated section begins (do not edit by hand) -->"
    /// The marker after the generated section.
    public static let endMarker = "<!-- lockstep bench: generated section ends -->"

    /// Runs the chosen experiments and writes their files; returns the summary to print.
    public static func run(_ configuration: BenchConfiguration, log: ProgressLog) throws -> BenchOutcome {
        let output = URL(fileURLWithPath: configuration.outputDirectory).standardizedFileURL
        do {
            try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        } catch {
            throw BenchError.output(output.path, error.localizedDescription)
        }
        let guests = try GuestCatalog.locate(explicit: configuration.guestDirectory, executable: configuration.lockstep)
        let tools = HostTools.probe(lockstep: configuration.lockstep, qemuHPPA: configuration.qemuHPPA,
                                    qemuX86: configuration.qemuX86, log: log)
        var host = HostDescription.current(executable: configuration.lockstep, kvmDevice: tools.kvmDevice)
        for tool in [tools.qemuHPPA, tools.qemuX86] {
            guard case .success(let path) = tool,
                  let outcome = try? RunningProcess.run(path, ["--version"], timeout: 30), outcome.exited(with: 0)
            else { continue }
            host.qemuVersions[URL(fileURLWithPath: path).lastPathComponent] = outcome.stdout.split(separator: "\n").first.map(String.init) ?? ""
        }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lockstep-bench-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let plan = BenchPlan.make(quick: configuration.quick, repetitions: configuration.repetitions,
                                  failoverTrials: configuration.failoverTrials)
        let driver = LockstepDriver(executable: configuration.lockstep, guests: guests, scratch: scratch, timeout: plan.runTimeout)
        try driver.prepareKey()
        let context = BenchContext(configuration: configuration, plan: plan, tools: tools, driver: driver, log: log)
        log.line("lockstep \(configuration.lockstep) (\(host.lockstepBuild) build), guests in \(guests.directory), output in \(output.path)")
        if host.lockstepBuild == "debug" && !configuration.quick {
            log.line("warning: this is a debug build; build the release one (swift build -c release) for real numbers")
        }

        var results = BenchResults(host: host, command: configuration.commandLine, quick: configuration.quick,
                                   repetitions: plan.repetitions, experiments: configuration.experiments.map(\.rawValue),
                                   durationSeconds: 0, loadAverageAtEnd: "", skipped: [], problems: [], summary: [])
        var reports: [ExperimentReport] = []
        for experiment in Experiment.allCases where configuration.experiments.contains(experiment) {
            log.line("experiment \(experiment)")
            switch experiment {
            case .epochs:
                let (report, series) = EpochExperiment.run(context)
                reports.append(report)
                results.epochs = series
            case .disk:
                let (report, lines) = DiskExperiment.run(context)
                reports.append(report)
                results.disk = lines
            case .failover:
                let (report, points, trials) = FailoverExperiment.run(context)
                reports.append(report)
                results.failover = points
                results.failoverTrials = trials
            case .channel:
                let (report, points) = ChannelAnalysis.run(context)
                reports.append(report)
                results.channel = points
            case .boundary:
                let (report, result) = BoundaryExperiment.run(context)
                reports.append(report)
                results.boundary = result
            case .pariscQEMU, .x86QEMU:
                let outcome = experiment == .pariscQEMU ? PeerExperiment.pariscQEMU(context) : PeerExperiment.x86QEMU(context)
                reports.append(outcome.report)
                results.peers = (results.peers ?? []) + outcome.results
                results.peerProbes = (results.peerProbes ?? []) + outcome.probes
            case .counterClock:
                let (report, result) = CounterClockExperiment.run(context)
                reports.append(report)
                results.counterClock = result
            case .snapshot:
                let (report, points) = SnapshotExperiment.run(context)
                reports.append(report)
                results.snapshots = points
            case .reprotect:
                let (report, points) = ReprotectExperiment.run(context)
                reports.append(report)
                results.reprotect = points
            }
        }
        results.durationSeconds = log.elapsed
        results.loadAverageAtEnd = ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "")
            .split(separator: " ").prefix(3).joined(separator: " ")
        results.skipped = reports.flatMap { r in r.skipped.map { "\(r.experiment): \($0)" } }
        results.problems = context.problems
        results.summary = reports.flatMap(\.summary)

        // Files.
        var files: [String] = []
        func write(_ name: String, _ text: String) throws {
            let url = output.appendingPathComponent(name)
            do { try Data(text.utf8).write(to: url, options: .atomic) } catch { throw BenchError.output(url.path, error.localizedDescription) }
            files.append(url.path)
        }
        for report in reports {
            for (name, table) in report.csv.sorted(by: { $0.key < $1.key }) { try write(name, table.csv()) }
            for (name, svg) in report.charts.sorted(by: { $0.key < $1.key }) { try write(name, svg) }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let json = try encoder.encode(results)
        try write("results.json", String(decoding: json, as: UTF8.self))
        try write("summary.md", section(results, reports: reports, linkPrefix: ""))
        if let document = configuration.documentPath {
            let documentURL = URL(fileURLWithPath: document).standardizedFileURL
            let prefix = relativePath(from: documentURL.deletingLastPathComponent(), to: output)
            try splice(section(results, reports: reports, linkPrefix: prefix), into: documentURL)
            files.append(documentURL.path)
        }
        return BenchOutcome(summary: printedSummary(results, output: output.path), files: files,
                            problems: results.problems, skipped: results.skipped)
    }

    /// The overall summary table.
    static func summaryTable(_ results: BenchResults) -> Table {
        var t = Table(["Experiment", "Measure", "Lockstep", "Reference or peer", "Ratio"])
        for row in results.summary { t.append(row) }
        return t
    }

    /// What the command prints at the end.
    static func printedSummary(_ results: BenchResults, output: String) -> String {
        var text = "\n## lockstep bench summary (\(String(format: "%.0f", results.durationSeconds)) s)\n\n"
        text += summaryTable(results).markdown()
        if let probes = results.peerProbes, !probes.isEmpty {
            text += "\nQEMU peers (probed on this host):\n" + probes.map { "- \($0.summary)\n" }.joined()
        }
        if !results.skipped.isEmpty { text += "\nSkipped:\n" + results.skipped.map { "- \($0)\n" }.joined() }
        if !results.problems.isEmpty { text += "\nProblems:\n" + results.problems.map { "- \($0)\n" }.joined() }
        text += "\nFiles in \(output): summary.md, results.json, CSV tables and SVG charts.\n"
        return text
    }

    /// The docs-ready section: the machine, the command, the summary, then each experiment.
    static func section(_ results: BenchResults, reports: [ExperimentReport], linkPrefix: String) -> String {
        var text = "## Results of the last run\n\n"
        text += "Generated by `\(results.command)` on \(results.host.date); the run took \(String(format: "%.1f", results.durationSeconds / 60)) minutes"
        text += results.quick ? " (the --quick setting: too small for conclusions).\n\n" : ".\n\n"
        text += "### Machine\n\n" + results.host.table.markdown() + "\n"
        text += "Load average at the end of the run: \(results.loadAverageAtEnd). The machine has \(results.host.cores) cores shared with other work, so timings carry noise: each timed configuration ran \(results.repetitions) times; the fastest run counts and the spread is shown.\n\n"
        text += "### Summary\n\n" + summaryTable(results).markdown() + "\n"
        let findings = Findings.lines(results)
        if !findings.isEmpty {
            text += "### What the numbers say\n\n(Generated from this run's results.)\n\n" + findings.map { "- \($0)\n" }.joined() + "\n"
        }
        if let probes = results.peerProbes, !probes.isEmpty {
            text += "QEMU peers (probed on this host by `scripts/qemu-run-guest --probe`):\n\n" + probes.map { "- \($0.summary)\n" }.joined() + "\n"
        }
        if !results.skipped.isEmpty { text += "Skipped:\n\n" + results.skipped.map { "- \($0)\n" }.joined() + "\n" }
        text += results.problems.isEmpty ? "No run failed.\n\n" : "Problems (failed runs, with their commands):\n\n" + results.problems.map { "- \($0)\n" }.joined() + "\n"
        for (index, report) in reports.enumerated() {
            text += "### \(index + 1). \(report.title)\n\n" + report.markdown(linkPrefix) + "\n"
        }
        return text
    }

    /// Replaces the text between the markers in `document` (creating it, or appending the
    /// markers, as needed).
    static func splice(_ section: String, into document: URL) throws {
        let block = beginMarker + "\n\n" + section + "\n" + endMarker + "\n"
        var text = (try? String(contentsOf: document, encoding: .utf8)) ?? "# Benchmarks\n\n"
        if let begin = text.range(of: beginMarker), let end = text.range(of: endMarker, range: begin.upperBound..<text.endIndex) {
            var after = end.upperBound
            if after < text.endIndex, text[after] == "\n" { after = text.index(after: after) }
            text.replaceSubrange(begin.lowerBound..<after, with: block)
        } else {
            if !text.hasSuffix("\n\n") { text += text.hasSuffix("\n") ? "\n" : "\n\n" }
            text += block
        }
        do { try Data(text.utf8).write(to: document, options: .atomic) } catch { throw BenchError.output(document.path, error.localizedDescription) }
    }

    /// `to` relative to the directory `from`, ending in "/" (e.g. "bench/").
    static func relativePath(from: URL, to: URL) -> String {
        let a = from.standardizedFileURL.pathComponents, b = to.standardizedFileURL.pathComponents
        var common = 0
        while common < a.count && common < b.count && a[common] == b[common] { common += 1 }
        let parts = Array(repeating: "..", count: a.count - common) + b[common...]
        return parts.isEmpty ? "" : parts.joined(separator: "/") + "/"
    }
}
