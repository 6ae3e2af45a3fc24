import Foundation

/// What every experiment shares: the plan, the tools, the driver, the log, and the raw
/// measurements and problems gathered so far.
final class BenchContext {
    let configuration: BenchConfiguration
    let plan: BenchPlan
    let tools: HostTools
    let driver: LockstepDriver
    let log: ProgressLog
    private(set) var measurements: [Measurement] = []
    /// Runs that failed (a possible bug in Lockstep or a peer): one line each, with the command.
    private(set) var problems: [String] = []
    private var cpuLines: [Int: String] = [:]

    init(configuration: BenchConfiguration, plan: BenchPlan, tools: HostTools, driver: LockstepDriver, log: ProgressLog) {
        self.configuration = configuration
        self.plan = plan
        self.tools = tools
        self.driver = driver
        self.log = log
    }

    /// The engines that can run the bundled guest `guest` here ("emulator"/"parisc",
    /// "KVM"/"x86"), and why the others cannot.
    func engines(running guest: String) -> (engines: [(name: String, arch: String)], skipped: [String]) {
        var engines: [(name: String, arch: String)] = []
        var skipped: [String] = []
        if driver.guests.has("parisc", guest) { engines.append(("emulator", "parisc")) } else {
            skipped.append("emulator: guests/build/parisc/\(guest).elf is missing")
        }
        switch tools.kvm {
        case .success where driver.guests.has("x86", guest): engines.append(("KVM", "x86"))
        case .success: skipped.append("KVM: guests/build/x86/\(guest).elf is missing")
        case .failure(let why): skipped.append("KVM: \(why)")
        }
        return (engines, skipped)
    }

    /// The cpu guest's expected line for `rounds` (computed once).
    func cpuLine(rounds: Int) -> String {
        if let line = cpuLines[rounds] { return line }
        let line = GuestExpectations.cpuLine(rounds: rounds)
        cpuLines[rounds] = line
        return line
    }

    /// Records a measured run; a failed one is also a problem, reported with its command.
    @discardableResult
    func record(_ experiment: Experiment, series: String, mode: String, epochLength: UInt64? = nil, work: Int,
                repetition: Int, outcome: ProcessOutcome, expectedStatus: Int32 = 0, expectedOutput: String?,
                channel: ChannelFigures? = nil) -> Measurement
    {
        var ok = outcome.exited(with: expectedStatus)
        var why = ok ? "" : outcome.ending
        if ok, let expectedOutput, !outcome.stdout.contains(expectedOutput) {
            ok = false
            why = "its output lacks \"\(expectedOutput.prefix(60))\" (got \"\(outcome.stdout.suffix(160).replacingOccurrences(of: "\n", with: "\\n"))\")"
        }
        let m = Measurement(experiment: experiment.rawValue, series: series, mode: mode, epochLength: epochLength,
                            work: work, repetition: repetition, seconds: outcome.seconds,
                            markerSeconds: outcome.markerSeconds, cpuSeconds: outcome.cpuSeconds,
                            exitStatus: outcome.status, ok: ok, channel: channel)
        measurements.append(m)
        let lengthText = epochLength.map { " L=\(NumberFormat.binary(Double($0)))" } ?? ""
        log.line("\(experiment) \(series) \(mode)\(lengthText) work=\(work) rep \(repetition + 1): \(String(format: "%.3f", outcome.seconds)) s\(ok ? "" : " FAILED")")
        if !ok {
            let error = outcome.lastErrorLine
            problem("\(experiment): `\(outcome.command.map(Self.shellQuoted).joined(separator: " "))` \(why)" + (error.isEmpty ? "" : "; stderr: \(error)"))
        }
        return m
    }

    func problem(_ text: String) {
        problems.append(text)
        log.line("problem: \(text)")
    }

    static func shellQuoted(_ word: String) -> String {
        word.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,@+".contains($0) } ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
