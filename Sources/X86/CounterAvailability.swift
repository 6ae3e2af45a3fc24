import KVM
import Synchronization

/// Whether this host offers a counter-driven epoch clock's counter, probed rather than assumed.
public enum CounterAvailability: Hashable, Sendable {
    case available
    /// Why not, in words for the user.
    case unavailable(String)

    /// Whether the vCPU statistic `insn_emulation` counts every CPL0 instruction on the KVM
    /// device at `kvmPath`: KVM interprets CPL0 code (the PVM host). Probed once per device and
    /// process with a 4 MiB VM that runs 401 instructions at CPL0 (well under a millisecond).
    static func emulationCounter(kvmPath: String) -> CounterAvailability {
        if let known = emulationCache.withLock({ $0[kvmPath] }) { return known }
        let result = probeEmulationCounter(kvmPath: kvmPath)
        emulationCache.withLock { $0[kvmPath] = result }
        return result
    }

    private static let emulationCache = Mutex<[String: CounterAvailability]>([:])

    private static func probeEmulationCounter(kvmPath: String) -> CounterAvailability {
        let iterations: UInt64 = 200
        do {
            let system = try KVMSystem(path: kvmPath)
            let guest = try ProbeGuest(system: system, cpl: 0, code: ProbeGuest.loop)
            let statistics = try guest.vcpu.statistics()
            guard let before = try statistics.value(named: EmulationCounter.statisticName) else {
                return .unavailable("this KVM has no insn_emulation vCPU statistic")
            }
            try guest.restart(rcx: iterations)
            let (exit, _) = try guest.run()
            guard ProbeGuest.isMarker(exit) else { return .unavailable("the CPL0 probe loop ended with \(exit)") }
            let after = try statistics.value(named: EmulationCounter.statisticName) ?? before
            let expected = 2 * iterations + 1
            guard after &- before == expected else {
                return .unavailable("KVM runs CPL0 code natively here, so insn_emulation does not count it (\(after &- before) of \(expected) instructions counted)")
            }
            return .available
        } catch {
            return .unavailable("the insn_emulation probe failed: \(error)")
        }
    }

    /// The PMU's retired-conditional-branch event for this host's CPU, if it has one and it can
    /// be opened for guest-mode counting; else why not.
    static func branchCounter(cpu: HostCPU? = HostCPU.current()) -> BranchCounterAvailability {
        guard let cpu else { return .unavailable("the host CPU is unknown (/proc/cpuinfo unreadable)") }
        guard let event = RetiredBranchEvent.forCPU(cpu) else {
            return .unavailable("no retired-conditional-branch event is known for this CPU (\(cpu.summary))")
        }
        if let error = PerformanceCounter.probe(.raw(event.rawConfig), excluding: [.host]) {
            return .unavailable("there is no PMU (perf_event_open for \(event.eventName): \(error.errnoDescription))")
        }
        return .available(event)
    }
}

/// Whether the PMU's retired-conditional-branch counter can be used (the `pmu` clock).
public enum BranchCounterAvailability: Hashable, Sendable {
    case available(RetiredBranchEvent)
    /// Why not, in words for the user.
    case unavailable(String)
}
