import KVM

/// The `pmu` clock's counter: the host PMU's retired conditional branches of the vCPU thread,
/// counted in guest mode only, whose overflow sends the vCPU thread the kick signal (so a running
/// `KVM_RUN` returns EINTR, as for a kick).
///
/// UNVERIFIED: no host Lockstep was developed on has a PMU, so this has never run. It follows
/// rr's use of the same counters (rr-debugger/rr, src/PerfCounters.cc): a sampling counter whose
/// period is reset at each arming (`PERF_EVENT_IOC_RESET`, `PERF_EVENT_IOC_PERIOD`), with the
/// overflow signalled to one thread (`F_SETOWN_EX`, `F_SETSIG`, `O_ASYNC`), and the event and
/// skid of the host's CPU family (`RetiredBranchEvent`).
final class BranchCounter: CounterSource {
    let event: RetiredBranchEvent
    let counter: PerformanceCounter
    /// Branches counted before the counter was last reset.
    private var base: UInt64 = 0

    /// Opens the counter on the calling thread, which must be the vCPU's thread.
    init(event: RetiredBranchEvent) throws(KVMError) {
        self.event = event
        counter = try PerformanceCounter.open(.raw(event.rawConfig), excluding: [.host], sampling: true)
        try counter.signalOverflows(VCPU.kickSignal)
    }

    var capabilities: CounterConvergence.Capabilities {
        .init(overflowSkid: event.skid, boundedRun: nil, countsEveryInstruction: false, maximumPerStep: 2)
    }
    var countsOnlyInterpretedCode: Bool { false }

    func count() throws(KVMError) -> UInt64 {
        base &+ (try counter.read())
    }

    func noteDeterministicExit() {}

    func armOverflow(at value: UInt64) throws(KVMError) {
        let now = try count()
        base = now
        try counter.reset()
        try counter.setPeriod(value > now ? value - now : 1)
    }

    func disarmOverflow() throws(KVMError) {
        try counter.setPeriod(PerformanceCounter.disarmedPeriod)
    }
}
