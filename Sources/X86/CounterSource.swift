import KVM

/// What a counter-driven epoch clock counts with: a monotonic count of the guest's progress that
/// is exact whenever the vCPU is stopped, and (optionally) an overflow that stops the vCPU once
/// the count reaches a programmed value, late by up to a skid.
///
/// Three sources: `EmulationCounter` (KVM's `insn_emulation` statistic, with a kick timer as the
/// overflow: the PVM host), `BranchCounter` (the PMU's retired conditional branches, with the
/// counter's own overflow signal: a host with a PMU) and `StepCounter` (one unit per
/// single-step stop, no overflow: the single-step clock where KVM does not interpret the guest).
/// All calls come from the vCPU's thread.
protocol CounterSource: AnyObject {
    /// What the count measures and how it reaches the target.
    var capabilities: CounterConvergence.Capabilities { get }
    /// Whether the count only moves for code KVM interprets, so that a guest at CPL3 (run
    /// natively on the PVM host) would make no progress: the clock then stops with one line.
    var countsOnlyInterpretedCode: Bool { get }
    /// The count now (the vCPU is stopped).
    func count() throws(KVMError) -> UInt64
    /// Called at every deterministic exit, before `count()` (the step counter counts them).
    func noteDeterministicExit()
    /// Arms the overflow at `value`: the vCPU's `run()` returns `.interrupted` once the count
    /// reaches it (late by up to the skid). Only called when `capabilities.overflowSkid` is set.
    func armOverflow(at value: UInt64) throws(KVMError)
    /// Disarms the overflow (a late one may still interrupt the next run, harmlessly).
    func disarmOverflow() throws(KVMError)
}

/// The single-step clock's counter where KVM does not interpret the guest: one unit per
/// deterministic exit (a single-step exit, or an exit to user space that ended the step).
final class StepCounter: CounterSource {
    private var stops: UInt64 = 0

    var capabilities: CounterConvergence.Capabilities {
        .init(overflowSkid: nil, boundedRun: nil, countsEveryInstruction: true)
    }
    var countsOnlyInterpretedCode: Bool { false }
    func count() throws(KVMError) -> UInt64 { stops }
    func noteDeterministicExit() { stops += 1 }
    func armOverflow(at value: UInt64) throws(KVMError) {
        preconditionFailure("the step counter has no overflow")
    }
    func disarmOverflow() throws(KVMError) {}
}
