import Foundation
import KVM
import MachineCore

/// What this host's KVM can do for Lockstep, each item measured with a tiny VM rather than
/// assumed (`lockstep doctor`; `HostReport` turns it into the report). Takes about a second.
public struct HostProbe: Sendable {
    /// How guest code at one privilege level is executed.
    public struct Execution: Sendable {
        /// Nanoseconds per instruction of a dec/jnz loop (slope between two loop lengths).
        public var nanosecondsPerInstruction: Double
        /// How much the vCPU stat `insn_emulation` grew per instruction executed (1 when KVM's
        /// instruction emulator interprets every instruction; nil when the stat does not exist).
        public var emulatedFraction: Double?

        /// Whether the code is interpreted by KVM's instruction emulator rather than run natively.
        public var isInterpreted: Bool {
            if let emulatedFraction { return emulatedFraction > 0.5 }
            return nanosecondsPerInstruction > 50
        }
    }

    /// The emulation counter's overflow (its kick timer) and bounded runs, measured on a CPL0 loop.
    public struct OverflowMeasurement: Sendable, Codable, Hashable {
        /// How far ahead of the count each kick was armed, in instructions.
        public var armedAhead: UInt64
        /// How late each kick stopped the vCPU past the armed count, in instructions, sorted.
        public var skids: [UInt64]
        /// Instructions each interrupt-window run executed, sorted.
        public var boundedRuns: [UInt64]
        /// Microseconds per interrupt-window run (the fastest of them).
        public var microsecondsPerBoundedRun: Double

        /// The `fraction` quantile (0...1) of sorted `values`.
        public static func quantile(_ values: [UInt64], _ fraction: Double) -> UInt64 {
            guard !values.isEmpty else { return 0 }
            return values[min(values.count - 1, Int((Double(values.count - 1) * fraction).rounded()))]
        }
    }

    /// The result of a guest-debug probe at one privilege level.
    public enum DebugResult: Sendable, CustomStringConvertible {
        /// KVM exits to user space as asked.
        case works
        /// No exit: the program ran to its end.
        case neverFires
        /// KVM did not intercept; the event went to the guest (which had no IDT: a triple fault).
        case deliveredToGuest
        /// Something else happened.
        case failed(String)

        public var works: Bool {
            if case .works = self { return true }
            return false
        }

        public var description: String {
            switch self {
            case .works: "works"
            case .neverFires: "never fires"
            case .deliveredToGuest: "not intercepted (the guest gets the #DB)"
            case .failed(let why): "fails (\(why))"
            }
        }
    }

    /// The KVM device probed.
    public var path: String
    /// `KVM_GET_API_VERSION`.
    public var apiVersion: Int32
    /// CPL0 and CPL3 execution.
    public var cpl0: Execution
    public var cpl3: Execution
    /// Single-stepping (`KVM_GUESTDBG_SINGLESTEP`) at CPL0 and CPL3.
    public var singleStepCPL0: DebugResult
    public var singleStepCPL3: DebugResult
    /// Microseconds per single-step at CPL0 (the fastest of three runs of 300 steps), where
    /// single-step works there.
    public var microsecondsPerStep: Double?
    /// Hardware execute breakpoints (`KVM_GUESTDBG_USE_HW_BP`) at CPL0 and CPL3.
    public var breakpointCPL0: DebugResult
    public var breakpointCPL3: DebugResult
    /// The host CPU (/proc/cpuinfo).
    public var cpu: HostCPU?
    /// The PMU's retired-conditional-branch counter for this CPU (the `pmu` clock's).
    public var branchCounter: BranchCounterAvailability
    /// Whether `insn_emulation` counts every CPL0 instruction (the `emulation-counter` clock's).
    public var emulationCounter: CounterAvailability
    /// The emulation counter's overflow and bounded runs, where it exists.
    public var overflow: OverflowMeasurement?
    /// Pages written by the dirty-log probe, and the pages KVM reported dirty at CPL0 and CPL3.
    public var dirtyPagesWritten: [Int]
    public var dirtyPagesReportedCPL0: [Int]
    public var dirtyPagesReportedCPL3: [Int]

    /// Whether the dirty log reported exactly the pages written, at both privilege levels.
    public var dirtyLogIsExact: Bool {
        dirtyPagesWritten == dirtyPagesReportedCPL0 && dirtyPagesWritten == dirtyPagesReportedCPL3
    }

    /// Probes the KVM device at `path`. Throws `X86Error.kvmUnavailable` if it cannot be used.
    public static func run(path: String = X86Machine.defaultKVMPath) throws(X86Error) -> HostProbe {
        let system: KVMSystem
        do { system = try KVMSystem(path: path) } catch { throw .kvmUnavailable(error) }
        do {
            let cpl0 = try execution(system, cpl: 0, short: 200, long: 2200)
            let cpl3Estimate = try execution(system, cpl: 3, short: 1000, long: 5000)
            let cpl3 = cpl3Estimate.nanosecondsPerInstruction < 20
                ? try execution(system, cpl: 3, short: 1000, long: 10_000_000) : cpl3Estimate
            let pages: [Int] = [0x100, 0x102, 0x105]
            let singleStepCPL0 = try singleStep(system, cpl: 0)
            let emulationCounter = CounterAvailability.emulationCounter(kvmPath: path)
            return HostProbe(
                path: path, apiVersion: system.apiVersion, cpl0: cpl0, cpl3: cpl3,
                singleStepCPL0: singleStepCPL0, singleStepCPL3: try singleStep(system, cpl: 3),
                microsecondsPerStep: singleStepCPL0.works ? try stepCost(system) : nil,
                breakpointCPL0: try breakpoint(system, cpl: 0), breakpointCPL3: try breakpoint(system, cpl: 3),
                cpu: HostCPU.current(), branchCounter: CounterAvailability.branchCounter(),
                emulationCounter: emulationCounter,
                overflow: emulationCounter == .available ? try measureOverflow(system) : nil,
                dirtyPagesWritten: pages,
                dirtyPagesReportedCPL0: try dirtyPages(system, cpl: 0, writing: pages),
                dirtyPagesReportedCPL3: try dirtyPages(system, cpl: 3, writing: pages))
        } catch let error as KVMError {
            throw .kvmUnavailable(error)
        } catch let error as X86Error {
            throw error
        } catch {
            throw .layout("host probe: \(error)")
        }
    }

    /// Times the loop at two lengths (best of three each) and reads `insn_emulation`.
    static func execution(_ system: KVMSystem, cpl: Int, short: UInt64, long: UInt64) throws -> Execution {
        let guest = try ProbeGuest(system: system, cpl: cpl, code: ProbeGuest.loop)
        let stats = try? guest.vcpu.statistics()
        func best(_ iterations: UInt64) throws -> UInt64 {
            var times: [UInt64] = []
            for _ in 0..<3 {
                try guest.restart(rcx: iterations)
                let (exit, ns) = try guest.run()
                guard ProbeGuest.isMarker(exit) else {
                    throw X86Error.layout("the CPL\(cpl) probe loop ended with \(exit)")
                }
                times.append(ns)
            }
            return times.min() ?? 0
        }
        let before = try stats?.value(named: "insn_emulation")
        let shortTime = try best(short)
        let afterShort = try stats?.value(named: "insn_emulation")
        let longTime = try best(long)
        let perInstruction = Double(longTime > shortTime ? longTime - shortTime : 0) / Double(2 * (long - short))
        var fraction: Double?
        if let before, let afterShort {
            // Three runs of 2 × short + 1 instructions each (the marker exits before it retires).
            fraction = Double(afterShort - before) / Double(3 * (2 * short + 1))
        }
        return Execution(nanosecondsPerInstruction: perInstruction, emulatedFraction: fraction)
    }

    static func classify(_ exit: VCPUExit, expectingDebug: (DebugExit) -> Bool) -> DebugResult {
        switch exit {
        case .debug(let debug): expectingDebug(debug) ? .works : .failed("unexpected debug exit \(debug)")
        case .shutdown: .deliveredToGuest
        case _ where ProbeGuest.isMarker(exit): .neverFires
        default: .failed("\(exit)")
        }
    }

    static func singleStep(_ system: KVMSystem, cpl: Int) throws -> DebugResult {
        let guest = try ProbeGuest(system: system, cpl: cpl, code: ProbeGuest.loop)
        try guest.restart(rcx: 1000)
        try guest.vcpu.setGuestDebug(.singleStep)
        let (exit, _) = try guest.run()
        return classify(exit) { $0.isSingleStep && $0.pc == ProbeGuest.codeAddress + 3 }
    }

    /// Microseconds per single-step at CPL0: the fastest of three runs of 300 steps.
    static func stepCost(_ system: KVMSystem) throws -> Double {
        let guest = try ProbeGuest(system: system, cpl: 0, code: ProbeGuest.loop)
        try guest.vcpu.setGuestDebug(.singleStep)
        var best = UInt64.max
        for _ in 0..<3 {
            try guest.restart(rcx: 1000)
            var total: UInt64 = 0
            for _ in 0..<300 {
                let (exit, ns) = try guest.run()
                guard case .debug = exit else { throw X86Error.layout("the single-step cost probe ended with \(exit)") }
                total += ns
            }
            best = min(best, total)
        }
        return Double(best) / 300 / 1000
    }

    /// The emulation counter's overflow on a CPL0 loop: `samples` kicks armed `armedAhead`
    /// instructions ahead (where each landed past its armed count), and 40 interrupt-window runs
    /// (how many instructions each executed, and how long the fastest took).
    static func measureOverflow(_ system: KVMSystem, samples: Int = 30, armedAhead: UInt64 = 5000) throws -> OverflowMeasurement? {
        let guest = try ProbeGuest(system: system, cpl: 0, code: ProbeGuest.loop)
        guard let counter = try EmulationCounter(vcpu: guest.vcpu) else { return nil }
        try guest.restart(rcx: 1 << 40, interrupts: true)
        var skids: [UInt64] = []
        for _ in 0..<samples {
            let armAt = try counter.count() + armedAhead
            try counter.armOverflow(at: armAt)
            var exit = try guest.vcpu.run()
            for _ in 0..<1000 where exit != .interrupted { exit = try guest.vcpu.run() }
            try counter.disarmOverflow()
            guard exit == .interrupted else { throw X86Error.layout("the kick-timer probe ended with \(exit)") }
            let reached = try counter.count()
            skids.append(reached > armAt ? reached - armAt : 0)
        }
        var runs: [UInt64] = []
        var fastest = UInt64.max
        for _ in 0..<40 {
            let before = try counter.count()
            guest.vcpu.requestInterruptWindow = true
            let start = DispatchTime.now().uptimeNanoseconds
            let exit = try guest.vcpu.run()
            let elapsed = DispatchTime.now().uptimeNanoseconds - start
            guest.vcpu.requestInterruptWindow = false
            guard exit == .irqWindowOpen || exit == .interrupted else {
                throw X86Error.layout("the bounded-run probe ended with \(exit)")
            }
            let executed = try counter.count() - before
            runs.append(executed)
            if executed > 0 { fastest = min(fastest, elapsed) }
        }
        return OverflowMeasurement(armedAhead: armedAhead, skids: skids.sorted(), boundedRuns: runs.sorted(),
                                   microsecondsPerBoundedRun: fastest == .max ? 0 : Double(fastest) / 1000)
    }

    static func breakpoint(_ system: KVMSystem, cpl: Int) throws -> DebugResult {
        let guest = try ProbeGuest(system: system, cpl: cpl, code: ProbeGuest.loop)
        try guest.restart(rcx: 1000)
        try guest.vcpu.setGuestDebug(.hardwareBreakpoints([HardwareBreakpoint(address: ProbeGuest.loopBranchAddress)]))
        let (exit, _) = try guest.run()
        return classify(exit) { $0.hardwareBreakpointsHit == [0] && $0.pc == ProbeGuest.loopBranchAddress }
    }

    /// The guest-physical pages KVM reports dirty after a program at `cpl` wrote one byte to each
    /// of `pages`. The page tables have their accessed and dirty bits set beforehand (else the
    /// CPU's own updates of them are dirty pages too), and the program runs once before the
    /// measured run (on the PVM host the first entry at CPL3 also dirties the code page).
    static func dirtyPages(_ system: KVMSystem, cpl: Int, writing pages: [Int]) throws -> [Int] {
        let guest = try ProbeGuest(system: system, cpl: cpl, code: ProbeGuest.writes(to: pages.map(UInt64.init)),
                                   dirtyLogging: true)
        for _ in 0..<2 {
            _ = try guest.vm.dirtyLog(slot: 0)
            try guest.restart()
            let (exit, _) = try guest.run()
            guard ProbeGuest.isMarker(exit) else { throw X86Error.layout("the dirty-log probe ended with \(exit)") }
        }
        return try guest.vm.dirtyLog(slot: 0).dirtyPages
    }
}
