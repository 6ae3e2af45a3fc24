import Foundation

/// The sizes of every experiment: the full setting (a real run, minutes) or the quick one
/// (seconds, for tests).
struct BenchPlan: Sendable {
    /// Repetitions of each timed run.
    var repetitions: Int
    /// The longest one run may take.
    var runTimeout: Double

    // epochs
    /// Epoch lengths (instructions) for the emulator's recovery counter and the pmu clock.
    var instructionEpochLengths: [UInt64]
    /// Epoch lengths for the emulator with the default --max-lag (flow-control stalls), and
    /// through the `lockstep pair` command.
    var flowControlEpochLengths: [UInt64]
    /// cpu rounds for the emulator (two values: the slope between them is the time per round).
    var emulatorRounds: (Int, Int)
    /// Epoch lengths (deterministic exits) for the KVM exits clock.
    var exitEpochLengths: [UInt64]
    /// cpu rounds at CPL3 on KVM (native speed).
    var kvmRounds: (Int, Int)
    /// Epoch lengths for single-step (CPL0 only on this host's KVM).
    var singleStepEpochLengths: [UInt64]
    /// cpu rounds at CPL0 with the single-step clock (equal: one round count, whole-process
    /// times, since each round takes seconds) and its repetitions.
    var singleStepRounds: (Int, Int)
    var singleStepRepetitions: Int

    // boundary
    /// Epoch lengths (instructions) for host instructions per boundary and pair/run ratios.
    var boundaryEpochLengths: [UInt64]
    /// cpu rounds under callgrind (it runs 50 to 100 times slower); nil: not measured (--quick).
    var boundaryCallgrindRounds: (Int, Int)?
    /// cpu rounds for the pair/run ratios.
    var boundaryTimingRounds: (Int, Int)
    /// Epoch records for the in-process sealing measurement.
    var sealingEpochs: Int

    // disk
    /// Sectors written and read back (each request moves 8 sectors).
    var diskBlocks: [Int]
    /// Epoch lengths for the disk runs (nil: the engine's default).
    var diskEpochLengths: [UInt64?]

    // failover
    /// Detection timeouts (ms) to sweep; `failoverMainTimeout` gets the most trials.
    var failoverTimeouts: [Int]
    var failoverMainTimeout: Int
    var failoverTrials: Int
    var failoverSweepTrials: Int
    /// SIGKILL trials per guest and engine for the guests other than ticks (whose are the
    /// main timeout's `failoverTrials`).
    var failoverGuestTrials: Int
    /// Seconds of replication before the primary is killed or frozen.
    var failoverDelay: Double

    // peers
    /// cpu rounds for QEMU (fast) and for Lockstep's emulator in the PA-RISC comparison.
    var qemuHPPARounds: (Int, Int)
    var pariscLockstepRounds: (Int, Int)
    /// cpu rounds for the instruction count (pair at 1K-instruction epochs).
    var instructionCountRounds: (Int, Int)
    /// cpu rounds at CPL3 and CPL0 for the x86 comparison.
    var x86Rounds: (Int, Int)
    /// nil: no CPL0 cpu workload in the x86 comparison (it takes seconds per round).
    var x86Ring0Rounds: (Int, Int)?
    /// Whether the x86 comparison includes QEMU's pc machine, for boot only (its SeaBIOS boot
    /// runs at CPL0: seconds, and noisy, on a host whose KVM interprets CPL0 code).
    var qemuPC: Bool

    static func make(quick: Bool, repetitions: Int?, failoverTrials: Int?) -> BenchPlan {
        if quick {
            return BenchPlan(
                repetitions: repetitions ?? 1, runTimeout: 120,
                instructionEpochLengths: [1024, 16384], flowControlEpochLengths: [16384], emulatorRounds: (1, 2),
                exitEpochLengths: [16], kvmRounds: (1, 256),
                singleStepEpochLengths: [], singleStepRounds: (1, 1), singleStepRepetitions: 1,
                boundaryEpochLengths: [4096], boundaryCallgrindRounds: nil, boundaryTimingRounds: (1, 2),
                sealingEpochs: 20_000,
                diskBlocks: [8, 32], diskEpochLengths: [nil],
                failoverTimeouts: [200], failoverMainTimeout: 200,
                failoverTrials: failoverTrials ?? 1, failoverSweepTrials: 1, failoverGuestTrials: failoverTrials ?? 1,
                failoverDelay: 0.1,
                qemuHPPARounds: (1, 4), pariscLockstepRounds: (1, 2), instructionCountRounds: (1, 2),
                x86Rounds: (1, 256), x86Ring0Rounds: nil, qemuPC: false)
        }
        let trials = failoverTrials ?? 20
        return BenchPlan(
            repetitions: repetitions ?? 4, runTimeout: 600,
            instructionEpochLengths: [1024, 2048, 4096, 8192, 16384, 32768, 65536, 262_144, 1_048_576],
            // The JIT runs a cpu round in about 0.25 ms: the larger round count must make the
            // difference between the two last long (a quarter of a second or more, unreplicated)
            // against process start-up and the scheduler's noise.
            flowControlEpochLengths: [1024, 4096, 16384, 65536], emulatorRounds: (40, 1000),
            exitEpochLengths: [1, 4, 16, 64, 256], kvmRounds: (64, 8192),
            singleStepEpochLengths: [1024, 16384], singleStepRounds: (1, 1), singleStepRepetitions: 1,
            boundaryEpochLengths: [1024, 4096, 32768], boundaryCallgrindRounds: (1, 3), boundaryTimingRounds: (100, 2000),
            sealingEpochs: 1_000_000,
            diskBlocks: [64, 512, 2048], diskEpochLengths: [4096, nil],
            failoverTimeouts: [100, 250, 500, 1000, 2000], failoverMainTimeout: 1000,
            failoverTrials: trials, failoverSweepTrials: max(2, (trials + 4) / 7), failoverGuestTrials: trials,
            failoverDelay: 0.25,
            qemuHPPARounds: (64, 1024), pariscLockstepRounds: (40, 1000), instructionCountRounds: (1, 3),
            x86Rounds: (64, 8192), x86Ring0Rounds: (1, 2), qemuPC: true)
    }
}
