import KVM
import MachineCore

/// An x86 machine's counter-driven epoch clock across epochs: its counter source, the count the
/// machine started at, and what the runs did (`X86Machine.Statistics` shows it).
///
/// Three epoch clocks are this one algorithm (`CounterConvergence`) with different counters:
/// - `emulation-counter`: KVM's `insn_emulation` (`EmulationCounter`); runs free, in bounded
///   runs and, near the target, in single-steps.
/// - `pmu`: the PMU's retired conditional branches (`BranchCounter`); runs free with the
///   overflow armed early by the CPU family's skid, then single-steps. Unverified.
/// - `single-step`: no free runs at all; counts with `insn_emulation` where KVM interprets the
///   guest (so its boundaries are the emulation counter's, the reference that clock is tested
///   against) and one unit per step elsewhere (`StepCounter`).
final class CounterClock {
    let source: any CounterSource
    /// The source's count at progress 0 (progress is counted from it).
    private(set) var base: UInt64
    /// False for the single-step clock: every instruction is stepped.
    let runsFree: Bool

    init(source: any CounterSource, runsFree: Bool) throws(KVMError) {
        self.source = source
        self.runsFree = runsFree
        base = try source.count()
    }

    /// Makes the progress `progress` from now on (a restored snapshot's).
    func rebase(progress: UInt64) throws(KVMError) {
        base = try source.count() &- progress
    }

    /// What the convergence may use.
    var capabilities: CounterConvergence.Capabilities {
        let offered = source.capabilities
        return runsFree ? offered
            : .init(overflowSkid: nil, boundedRun: nil, countsEveryInstruction: offered.countsEveryInstruction,
                    maximumPerStep: offered.maximumPerStep)
    }

    /// Progress: units counted since the machine was created.
    func progress() throws(KVMError) -> UInt64 {
        try source.count() &- base
    }
}

/// How late the overflows of a counter-driven clock arrived: count at the stop minus the count
/// the overflow was armed at, in the clock's units.
public struct SkidHistogram: Hashable, Sendable, Codable {
    /// Overflows seen.
    public private(set) var count: UInt64 = 0
    /// The largest skid seen.
    public private(set) var largest: UInt64 = 0
    /// `buckets[i]`: skids in [2^(i-1), 2^i) (bucket 0: a skid of 0).
    public private(set) var buckets: [UInt64] = []

    public init() {}

    mutating func record(_ skid: UInt64) {
        count += 1
        largest = max(largest, skid)
        let bucket = skid == 0 ? 0 : 64 - skid.leadingZeroBitCount
        if buckets.count <= bucket { buckets += [UInt64](repeating: 0, count: bucket + 1 - buckets.count) }
        buckets[bucket] += 1
    }

    /// "0: 3, 1: 2, 2-3: 5, ..." for the non-empty buckets.
    public var description: String {
        buckets.enumerated().filter { $0.element > 0 }.map { index, n in
            let low = index == 0 ? 0 : 1 << (index - 1)
            let high = index == 0 ? 0 : (1 << index) - 1
            return (low == high ? "\(low)" : "\(low)-\(high)") + ": \(n)"
        }.joined(separator: ", ")
    }
}
