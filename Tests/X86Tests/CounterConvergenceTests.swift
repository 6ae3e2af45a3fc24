import Testing
import TestSupport
@testable import X86

/// The counter-driven clocks' convergence, driven by a simulated vCPU whose counter's overflow
/// arrives late by a random skid, against the reference the clocks must equal: single-stepping
/// from the previous boundary to the first stop at or after the target.
@Suite("counter convergence (simulated counter)")
struct CounterConvergenceTests {
    /// A generated instruction stream: each instruction's weight (what it adds to the count),
    /// whether it exits to user space, and whether a single-step over it also executes the next
    /// instruction (an IRETQ and the instruction after it are one step on the PVM host).
    struct Program {
        var weights: [UInt64] = []
        var exits: [Bool] = []
        var joins: [Bool] = []

        /// `branchy`: weights are 1 for one instruction in five (a conditional-branch counter);
        /// else every instruction weighs 1 (an instruction counter). One instruction in
        /// `exitEvery` exits.
        init(seed: UInt64, length: Int, branchy: Bool, exitEvery: UInt64) {
            var random = SplitMix64(seed: seed)
            weights.reserveCapacity(length)
            for _ in 0..<length {
                weights.append(branchy ? (random.next() % 5 == 0 ? 1 : 0) : 1)
                let exits = random.next() % exitEvery == 0
                self.exits.append(exits)
                joins.append(!exits && random.next() % 53 == 0)
            }
        }
    }

    /// A vCPU running a `Program`: `position` instructions executed, `count` their weight.
    struct CPU {
        let program: Program
        var position = 0
        var count: UInt64 = 0

        init(_ program: Program) { self.program = program }

        /// Executes one instruction; true if it exited to user space.
        mutating func execute() -> Bool {
            precondition(position < program.weights.count, "the simulated program is too short")
            count += program.weights[position]
            position += 1
            return program.exits[position - 1]
        }

        /// A single-step: one instruction, or two over a join. Always a precise stop.
        mutating func step() -> CounterConvergence.Stop {
            let joined = program.joins[position]
            if !execute(), joined { _ = execute() }
            return .precise
        }

        /// Runs until an exit (precise) or until the count reaches `armAt + skid` (the overflow,
        /// late by `skid`: imprecise).
        mutating func runFree(armAt: UInt64, skid: UInt64) -> CounterConvergence.Stop {
            while true {
                if execute() { return .precise }
                if count >= armAt + skid { return .imprecise }
            }
        }

        /// Runs `length` instructions, or to an exit.
        mutating func runBounded(length: Int) -> CounterConvergence.Stop {
            for _ in 0..<length where execute() { return .precise }
            return .imprecise
        }
    }

    enum Outcome: Equatable {
        case end(position: Int)
        case overshoot
    }

    /// The reference: single-steps from `cpu` until a stop at or after `target`.
    static func reference(_ start: CPU, target: UInt64) -> Int {
        var cpu = start
        while cpu.count < target { _ = cpu.step() }
        return cpu.position
    }

    /// Converges to `target`, with overflows late by up to `maximumSkid` and bounded runs of a
    /// random length up to the bound.
    static func converge(_ cpu: inout CPU, target: UInt64, capabilities: CounterConvergence.Capabilities,
                         maximumSkid: UInt64, random: inout SplitMix64) -> Outcome
    {
        var convergence = CounterConvergence(target: target, capabilities: capabilities)
        var stop = CounterConvergence.Stop.precise
        while true {
            switch convergence.next(count: cpu.count, stop: stop, boundedRunPossible: true) {
            case .end: return .end(position: cpu.position)
            case .overshoot: return .overshoot
            case .runFree(let armAt): stop = cpu.runFree(armAt: armAt, skid: random.next() % (maximumSkid + 1))
            case .runBounded:
                let bound = Int(capabilities.boundedRun ?? 1)
                stop = cpu.runBounded(length: 1 + Int(random.next() % UInt64(bound)))
            case .step: stop = cpu.step()
            }
        }
    }

    /// Runs `epochs` epochs of `length` units; returns (boundaries equal to the reference,
    /// overshoots, boundaries that differ from it).
    static func run(seed: UInt64, branchy: Bool, length: UInt64, epochs: Int,
                    capabilities: CounterConvergence.Capabilities, maximumSkid: UInt64, exitEvery: UInt64 = 97)
        -> (exact: Int, overshoots: Int, wrong: Int)
    {
        let perEpoch = Int(length) * (branchy ? 5 : 1)
        let program = Program(seed: seed, length: (epochs + 2) * perEpoch * 2 + Int(maximumSkid) * 10 + 1000,
                              branchy: branchy, exitEvery: exitEvery)
        var random = SplitMix64(seed: seed ^ 0x5EED)
        var cpu = CPU(program)
        var exact = 0, overshoots = 0, wrong = 0
        for _ in 0..<epochs {
            let target = cpu.count + length
            let start = cpu
            let expected = reference(start, target: target)
            switch converge(&cpu, target: target, capabilities: capabilities, maximumSkid: maximumSkid, random: &random) {
            case .end(let position):
                if position == expected { exact += 1 } else { wrong += 1 }
            case .overshoot:
                overshoots += 1
                // Go on from the reference boundary, as a run that stopped would start over.
                cpu = start
                while cpu.position < expected { _ = cpu.execute() }
            }
        }
        return (exact, overshoots, wrong)
    }

    @Test("instruction counter with overflow and bounded runs: every boundary is single-step's",
          arguments: [UInt64(7), 100, 1000, 5000])
    func instructionCounter(length: UInt64) {
        let capabilities = CounterConvergence.Capabilities(overflowSkid: 300, boundedRun: 64,
                                                           countsEveryInstruction: true, maximumPerStep: 2)
        let result = Self.run(seed: length, branchy: false, length: length, epochs: 100,
                              capabilities: capabilities, maximumSkid: 300)
        #expect(result == (100, 0, 0))
    }

    @Test("overflow only, skids up to three times the epoch length: every boundary exact",
          arguments: [UInt64(1000), 10_000])
    func skidLongerThanEpoch(length: UInt64) {
        let capabilities = CounterConvergence.Capabilities(overflowSkid: 3000, boundedRun: nil,
                                                           countsEveryInstruction: true, maximumPerStep: 2)
        let result = Self.run(seed: 17 &+ length, branchy: false, length: length, epochs: 50,
                              capabilities: capabilities, maximumSkid: 3000, exitEvery: 5000)
        #expect(result == (50, 0, 0))
    }

    @Test("branch counter (a count shared by the instructions between branches): every boundary exact")
    func branchCounter() {
        let capabilities = CounterConvergence.Capabilities(overflowSkid: 100, boundedRun: nil,
                                                           countsEveryInstruction: false, maximumPerStep: 2)
        let result = Self.run(seed: 99, branchy: true, length: 500, epochs: 100,
                              capabilities: capabilities, maximumSkid: 100, exitEvery: 2000)
        #expect(result == (100, 0, 0))
    }

    @Test("skids beyond the declared one are overshoots, reported; never a wrong boundary",
          arguments: [false, true])
    func excessiveSkid(branchy: Bool) {
        let capabilities = CounterConvergence.Capabilities(overflowSkid: 100, boundedRun: nil,
                                                           countsEveryInstruction: !branchy, maximumPerStep: 2)
        let result = Self.run(seed: branchy ? 5 : 6, branchy: branchy, length: 2000, epochs: 100,
                              capabilities: capabilities, maximumSkid: 5000, exitEvery: 100_000)
        #expect(result.wrong == 0)
        #expect(result.overshoots > 25, "\(result)")
        #expect(result.exact + result.overshoots == 100)
    }

    @Test("the single-step clock (no overflow, no bounded run) only ever steps")
    func singleStepOnly() {
        var convergence = CounterConvergence(
            target: 10, capabilities: .init(overflowSkid: nil, boundedRun: nil, countsEveryInstruction: true))
        #expect(convergence.next(count: 0, stop: .precise, boundedRunPossible: true) == .step)
        #expect(convergence.next(count: 9, stop: .precise, boundedRunPossible: true) == .step)
        #expect(convergence.next(count: 11, stop: .precise, boundedRunPossible: true) == .end)
    }

    @Test("decisions: bounded runs only beyond the bound, overflow armed skid + 1 early, exits at the target")
    func decisions() {
        let capabilities = CounterConvergence.Capabilities(overflowSkid: 100, boundedRun: 1000,
                                                           countsEveryInstruction: true)
        var c = CounterConvergence(target: 10_000, capabilities: capabilities)
        #expect(c.next(count: 0, stop: .precise, boundedRunPossible: true) == .runBounded)
        #expect(c.next(count: 8999, stop: .imprecise, boundedRunPossible: true) == .runBounded)
        #expect(c.next(count: 9000, stop: .imprecise, boundedRunPossible: true) == .runFree(armAt: 9899))
        #expect(c.next(count: 9000, stop: .precise, boundedRunPossible: false) == .runFree(armAt: 9899))
        #expect(c.next(count: 9899, stop: .imprecise, boundedRunPossible: false) == .step)
        #expect(c.next(count: 10_000, stop: .precise, boundedRunPossible: false) == .end)
        // An exit during a free run exactly at the target ends the epoch for an instruction
        // counter; past it, or after an overflow, it is an overshoot.
        var free = CounterConvergence(target: 10_000, capabilities: capabilities)
        #expect(free.next(count: 0, stop: .precise, boundedRunPossible: false) == .runFree(armAt: 9899))
        #expect(free.next(count: 10_000, stop: .precise, boundedRunPossible: false) == .end)
        #expect(free.next(count: 10_001, stop: .precise, boundedRunPossible: false) == .overshoot(reached: 10_001))
        #expect(free.next(count: 10_000, stop: .imprecise, boundedRunPossible: false) == .overshoot(reached: 10_000))
        // A branch counter's count is shared by the instructions after the branch: an exit at
        // the target after a free run may be past the point.
        var branches = CounterConvergence(target: 500, capabilities: .init(overflowSkid: 100, boundedRun: nil,
                                                                           countsEveryInstruction: false))
        #expect(branches.next(count: 0, stop: .precise, boundedRunPossible: true) == .runFree(armAt: 399))
        #expect(branches.next(count: 500, stop: .precise, boundedRunPossible: true) == .overshoot(reached: 500))
    }
}
