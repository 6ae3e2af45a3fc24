import Foundation
import MachineCore

/// `lockstep doctor`'s report, built from a `HostProbe`: what this host's KVM can do, what each
/// epoch clock costs here, and which to choose. `lines` is the text; the value itself is what
/// `--json` prints (`lockstep bench` reads the epoch clocks from it).
public struct HostReport: Codable, Sendable {
    public struct KVM: Codable, Sendable {
        public var device: String
        public var apiVersion: Int32
    }

    public struct Execution: Codable, Sendable {
        /// "interpreted" (by KVM's instruction emulator) or "native".
        public var mode: String
        public var nanosecondsPerInstruction: Double
        /// How much `insn_emulation` grew per instruction executed (1: it counts every one).
        public var insnEmulationPerInstruction: Double?
    }

    public struct Debugging: Codable, Sendable {
        public var singleStepCPL0: String
        public var singleStepCPL3: String
        public var microsecondsPerStep: Double?
        public var hardwareBreakpointCPL0: String
        public var hardwareBreakpointCPL3: String
    }

    /// The PMU's retired-conditional-branch counter (the `pmu` clock's).
    public struct PMU: Codable, Sendable {
        public var available: Bool
        /// The event this CPU would count with, if its family is known.
        public var event: RetiredBranchEvent?
        public var note: String
    }

    /// A sorted sample of instruction counts with its summary.
    public struct Distribution: Codable, Sendable {
        public var samples: [UInt64]
        public var median: UInt64
        public var percentile95: UInt64
        public var largest: UInt64

        init(_ sorted: [UInt64]) {
            samples = sorted
            median = HostProbe.OverflowMeasurement.quantile(sorted, 0.5)
            percentile95 = HostProbe.OverflowMeasurement.quantile(sorted, 0.95)
            largest = sorted.last ?? 0
        }
    }

    public struct Counters: Codable, Sendable {
        public var pmu: PMU
        /// Whether `insn_emulation` counts every CPL0 instruction (the `emulation-counter` clock's).
        public var insnEmulationCountsCPL0: Bool
        public var insnEmulationNote: String
        /// The emulation counter's overflow: kicks armed this many instructions ahead...
        public var kickArmedAhead: UInt64?
        /// ...landed this many instructions past the armed count (the skid).
        public var kickSkid: Distribution?
        /// Instructions per interrupt-window (bounded) run.
        public var boundedRun: Distribution?
        public var microsecondsPerBoundedRun: Double?
        /// How early the `emulation-counter` clock arms its kick timer, and the most instructions
        /// it lets a bounded run execute.
        public var clockKickMargin: UInt64
        public var clockBoundedRunLimit: UInt64
    }

    public struct DirtyLogging: Codable, Sendable {
        public var exact: Bool
        public var pagesWritten: [Int]
        public var reportedCPL0: [Int]
        public var reportedCPL3: [Int]
    }

    /// One `--epoch-clock` choice on this host.
    public struct Clock: Codable, Sendable {
        /// The `--epoch-clock` value.
        public var name: String
        public var available: Bool
        /// Which guests it works for: "any x86 guest", "x86 ring0 (CPL0) guests", "PA-RISC guests".
        public var guests: String
        /// What an epoch length counts.
        public var unit: String
        /// What it costs, in words.
        public var cost: String
        /// Estimated microseconds of host time per unit at `epochLength`, where measured.
        public var microsecondsPerUnit: Double?
        /// The epoch length the estimate is for (the clock's default).
        public var epochLength: UInt64
        /// Why it is unavailable, or what to know about it.
        public var note: String
    }

    public var kvm: KVM
    public var cpu: HostCPU?
    public var cpl0: Execution
    public var cpl3: Execution
    public var debugging: Debugging
    public var counters: Counters
    public var dirtyLogging: DirtyLogging
    public var epochClocks: [Clock]
    /// What `--epoch-clock auto` picks for an x86 guest here.
    public var automaticX86Clock: String
    public var recommendations: [String]

    /// The report of `probe`; `defaultEpochLength` gives each clock's default epoch length (the
    /// cost estimates are for it).
    public init(_ probe: HostProbe, defaultEpochLength: (EpochClock) -> UInt64) {
        func execution(_ e: HostProbe.Execution) -> Execution {
            Execution(mode: e.isInterpreted ? "interpreted" : "native", nanosecondsPerInstruction: e.nanosecondsPerInstruction,
                      insnEmulationPerInstruction: e.emulatedFraction)
        }
        kvm = KVM(device: probe.path, apiVersion: probe.apiVersion)
        cpu = probe.cpu
        cpl0 = execution(probe.cpl0)
        cpl3 = execution(probe.cpl3)
        debugging = Debugging(singleStepCPL0: probe.singleStepCPL0.description, singleStepCPL3: probe.singleStepCPL3.description,
                              microsecondsPerStep: probe.microsecondsPerStep,
                              hardwareBreakpointCPL0: probe.breakpointCPL0.description,
                              hardwareBreakpointCPL3: probe.breakpointCPL3.description)
        let event = probe.cpu.flatMap(RetiredBranchEvent.forCPU)
        let pmu: PMU = switch probe.branchCounter {
        case .available(let event): PMU(available: true, event: event, note: "counts \(event.eventName) in guest mode")
        case .unavailable(let why): PMU(available: false, event: event, note: why)
        }
        let insnNote: String = switch probe.emulationCounter {
        case .available: "counts every instruction of CPL0 code (KVM interprets it); none of CPL3 code"
        case .unavailable(let why): why
        }
        let overflow = probe.overflow
        counters = Counters(pmu: pmu, insnEmulationCountsCPL0: probe.emulationCounter == .available, insnEmulationNote: insnNote,
                            kickArmedAhead: overflow?.armedAhead, kickSkid: overflow.map { Distribution($0.skids) },
                            boundedRun: overflow.map { Distribution($0.boundedRuns) },
                            microsecondsPerBoundedRun: overflow?.microsecondsPerBoundedRun,
                            clockKickMargin: EmulationCounter.kickSkid, clockBoundedRunLimit: EmulationCounter.boundedRun)
        dirtyLogging = DirtyLogging(exact: probe.dirtyLogIsExact, pagesWritten: probe.dirtyPagesWritten,
                                    reportedCPL0: probe.dirtyPagesReportedCPL0, reportedCPL3: probe.dirtyPagesReportedCPL3)
        automaticX86Clock = pmu.available ? EpochClock.performanceCounter.rawValue : EpochClock.deterministicExits.rawValue
        epochClocks = Self.clocks(probe, pmu: pmu, defaultEpochLength: defaultEpochLength)
        recommendations = Self.recommendations(epochClocks, automatic: automaticX86Clock)
    }

    // MARK: - Epoch clocks and what they cost

    static func clocks(_ probe: HostProbe, pmu: PMU, defaultEpochLength: (EpochClock) -> UInt64) -> [Clock] {
        let anyX86 = "any x86 guest"
        let ring0 = "x86 ring0 (CPL0) guests"
        let stepAnywhere = probe.singleStepCPL0.works && probe.singleStepCPL3.works
        let stepCPL0 = probe.singleStepCPL0.works
        let interpretedMicroseconds = probe.cpl0.nanosecondsPerInstruction / 1000
        var clocks: [Clock] = []

        clocks.append(Clock(
            name: EpochClock.deterministicExits.rawValue, available: true, guests: anyX86, unit: "exits",
            cost: "nothing beyond the guest's own exits to user space; an epoch is a number of them, so an interrupt waits for the guest's next exit",
            microsecondsPerUnit: nil, epochLength: defaultEpochLength(.deterministicExits), note: ""))

        let step = probe.microsecondsPerStep
        clocks.append(Clock(
            name: EpochClock.singleStep.rawValue, available: stepCPL0 || stepAnywhere,
            guests: stepAnywhere ? anyX86 : stepCPL0 ? ring0 : "none", unit: "instructions",
            cost: step.map { s in
                "exact, one exit per instruction: about \(Self.microseconds(s)) per instruction"
                    + (probe.cpl0.isInterpreted && interpretedMicroseconds > 0
                        ? String(format: " (%.1fx the interpreted CPL0 speed)", s / interpretedMicroseconds) : "")
            } ?? "exact, one exit per instruction",
            microsecondsPerUnit: step, epochLength: defaultEpochLength(.singleStep),
            note: stepCPL0 || stepAnywhere ? "the reference the counter-driven clocks are tested against"
                : "KVM does not single-step here"))

        let emulationLength = defaultEpochLength(.emulationCounter)
        let emulationAvailable = probe.emulationCounter == .available && stepCPL0
        var emulationCost = "exact: runs free, then single-steps to the epoch's end"
        var emulationEstimate: Double?
        if emulationAvailable, let step, let overflow = probe.overflow {
            // Bounded runs at the interpreted speed plus one exit each, then single-steps for
            // what is left when no more bounded run fits: in a guest that does not exit, the
            // epoch length modulo the batch, or a whole batch when that is within the margin.
            let batchLength = max(HostProbe.OverflowMeasurement.quantile(overflow.boundedRuns, 1), 1)
            let batch = Double(batchLength)
            let running = max(overflow.microsecondsPerBoundedRun / batch, interpretedMicroseconds)
            let left = emulationLength % batchLength
            let margin = EmulationCounter.boundedRun - min(EmulationCounter.boundedRun, batchLength)
            let stepsPerEpoch = Double(left > margin ? left : left + batchLength)
            let perInstruction = running + stepsPerEpoch * step / Double(emulationLength)
            emulationEstimate = perInstruction
            emulationCost = "exact: about \(Self.microseconds(running)) per instruction in runs of at most \(Int(batch)) (interrupt windows), "
                + "plus about \(Int(stepsPerEpoch)) single-steps (\(Self.milliseconds(stepsPerEpoch * step))) at each epoch's end when the guest does not exit: "
                + "about \(Self.microseconds(perInstruction)) per instruction at \(emulationLength)-instruction epochs"
                + String(format: ", %.1fx faster than single-step", step / perInstruction)
        }
        let emulationNote: String = switch probe.emulationCounter {
        case .available where !stepCPL0: "KVM does not single-step CPL0 code here, which its last stretch needs"
        case .available: "counts KVM's insn_emulation statistic, with a kick timer as its overflow (skid above)"
        case .unavailable(let why): why
        }
        clocks.append(Clock(
            name: EpochClock.emulationCounter.rawValue, available: emulationAvailable,
            guests: emulationAvailable ? ring0 : "none", unit: "instructions", cost: emulationCost,
            microsecondsPerUnit: emulationEstimate, epochLength: emulationLength, note: emulationNote))

        let skid = pmu.event.map { "\($0.skid) branches" + ($0.skidIsUnbounded ? " (exceeded in rare cases)" : "") }
        clocks.append(Clock(
            name: EpochClock.performanceCounter.rawValue, available: pmu.available, guests: pmu.available ? anyX86 : "none",
            unit: "branches",
            cost: "exact: runs free at native speed with the PMU's overflow armed \(skid ?? "its skid") early, then single-steps",
            microsecondsPerUnit: nil, epochLength: defaultEpochLength(.performanceCounter),
            note: pmu.available ? "unverified: Lockstep has never run on a host with a PMU" : pmu.note))

        clocks.append(Clock(
            name: EpochClock.recoveryCounter.rawValue, available: true, guests: "PA-RISC guests", unit: "instructions",
            cost: "exact and built into Lockstep's emulator", microsecondsPerUnit: nil,
            epochLength: defaultEpochLength(.recoveryCounter), note: ""))
        return clocks
    }

    static func recommendations(_ clocks: [Clock], automatic: String) -> [String] {
        func clock(_ c: EpochClock) -> Clock? { clocks.first { $0.name == c.rawValue && $0.available } }
        var advice: [String] = []
        if let pmu = clock(.performanceCounter) {
            advice.append("x86 guests: --epoch-clock \(pmu.name) (what auto picks here): exact epochs at native speed at any privilege level; unverified, so check a first run against single-step or exits.")
        } else {
            advice.append("x86 guests at CPL3 (the default): --epoch-clock exits, what auto picks here. It is the fastest, but epochs are counted in exits, so a guest that computes without I/O takes no interrupt meanwhile.")
        }
        if let counter = clock(.emulationCounter) {
            let speed = counter.microsecondsPerUnit.flatMap { c in clock(.singleStep)?.microsecondsPerUnit.map { $0 / c } }
            advice.append("x86 ring0 guests that need instruction-exact epochs (the paper's): --epoch-clock emulation-counter"
                + (speed.map { String(format: ", about %.1fx faster than single-step here at %d-instruction epochs", $0, counter.epochLength) } ?? "")
                + ". Its epochs end on the same instructions as single-step's.")
        }
        if clock(.singleStep) != nil {
            advice.append("--epoch-clock single-step only to check another clock: it is exact and the slowest.")
        }
        if clock(.performanceCounter) == nil {
            advice.append("--epoch-clock pmu needs a host with a PMU (none here); it is what auto would pick there.")
        }
        advice.append("PA-RISC guests: the recovery counter (auto).")
        return advice
    }

    static func microseconds(_ value: Double) -> String {
        value < 10 ? String(format: "%.2f µs", value) : String(format: "%.0f µs", value)
    }

    static func milliseconds(_ microseconds: Double) -> String {
        microseconds < 10_000 ? String(format: "%.1f ms", microseconds / 1000) : String(format: "%.0f ms", microseconds / 1000)
    }

    // MARK: - Text

    /// The report as text: sections of labelled items, long items wrapped under their label.
    public var lines: [String] {
        var out: [String] = ["lockstep doctor: what this host's KVM can do (each item probed)"]
        func section(_ title: String) {
            out.append("")
            out.append(title)
        }
        func item(_ label: String, _ text: String) {
            out += Self.wrap(text, label: "  " + label.padding(toLength: 19, withPad: " ", startingAt: 0))
        }
        func execution(_ e: Execution) -> String {
            let speed = e.nanosecondsPerInstruction < 1
                ? String(format: "%.3f ns/instruction", e.nanosecondsPerInstruction)
                : String(format: "%.0f ns/instruction", e.nanosecondsPerInstruction)
            let counted = e.insnEmulationPerInstruction.map { String(format: "; insn_emulation counts %.0f%% of its instructions", $0 * 100) } ?? ""
            return (e.mode == "interpreted" ? "interpreted by KVM's instruction emulator: " : "native: ") + speed + counted
        }
        section("Host")
        item("KVM", "\(kvm.device), API version \(kvm.apiVersion)")
        item("CPU", cpu?.summary ?? "unknown (/proc/cpuinfo unreadable)")
        section("Execution")
        item("CPL0 code", execution(cpl0))
        item("CPL3 code", execution(cpl3))
        section("Debugging")
        item("single-step", "CPL0: \(debugging.singleStepCPL0)" + (debugging.microsecondsPerStep.map { " (\(Self.microseconds($0)) per step)" } ?? "")
             + "; CPL3: \(debugging.singleStepCPL3)")
        item("hw breakpoints", "CPL0: \(debugging.hardwareBreakpointCPL0); CPL3: \(debugging.hardwareBreakpointCPL3)")
        section("Counters")
        let event = counters.pmu.event.map {
            "\($0.microarchitecture): \($0.eventName), raw event 0x\(String($0.rawConfig, radix: 16)), skid \($0.skid) branches"
        } ?? "no retired-conditional-branch event known for this CPU"
        item("PMU", (counters.pmu.available ? "available: " : "none: ") + counters.pmu.note + " (\(event))")
        item("insn_emulation", counters.insnEmulationNote)
        if let skid = counters.kickSkid, let ahead = counters.kickArmedAhead {
            item("kick-timer skid", "\(skid.samples.count) kicks armed \(ahead) instructions ahead landed \(skid.samples.first ?? 0)-\(skid.largest) instructions past it (median \(skid.median), 95% within \(skid.percentile95))")
        }
        if let runs = counters.boundedRun, let time = counters.microsecondsPerBoundedRun {
            item("bounded runs", "an interrupt-window run executes at most \(runs.largest) instructions (\(runs.samples.count) runs, median \(runs.median)), \(Self.microseconds(time)) each")
        }
        section("Dirty logging")
        item("dirty log", dirtyLogging.exact
             ? "exact at CPL0 and CPL3 (\(dirtyLogging.pagesWritten.count) pages written, the same \(dirtyLogging.pagesWritten.count) reported)"
             : "inexact (wrote pages \(Self.pageList(dirtyLogging.pagesWritten)); KVM reported \(Self.pageList(dirtyLogging.reportedCPL0)) at CPL0, \(Self.pageList(dirtyLogging.reportedCPL3)) at CPL3)")
        section("Epoch clocks (--epoch-clock; auto picks \(automaticX86Clock) for x86 guests here)")
        for clock in epochClocks {
            let text = clock.available
                ? "\(clock.guests). \(Self.sentence(clock.cost))" + (clock.note.isEmpty ? "" : " \(Self.sentence(clock.note))")
                : "not available: \(clock.note)"
            item(clock.name, text)
        }
        section("Recommendations")
        for advice in recommendations {
            out += Self.wrap(advice, label: "  - ")
        }
        return out
    }

    /// `text` with a capital first letter and a final full stop.
    static func sentence(_ text: String) -> String {
        text.prefix(1).uppercased() + text.dropFirst() + (text.hasSuffix(".") ? "" : ".")
    }

    static func pageList(_ pages: [Int]) -> String {
        pages.map { hex(UInt64($0)) }.joined(separator: " ")
    }

    /// `text` after `label`, wrapped at `width` columns; continuation lines are indented as far
    /// as the label.
    static func wrap(_ text: String, label: String, width: Int = 100) -> [String] {
        var lines: [String] = []
        var line = label
        let indent = String(repeating: " ", count: label.count)
        for word in text.split(separator: " ") {
            if line.count > indent.count, line.count + 1 + word.count > width, line != label {
                lines.append(line)
                line = indent + word
            } else {
                line += (line == label || line == indent ? "" : " ") + word
            }
        }
        lines.append(line)
        return lines
    }
}
