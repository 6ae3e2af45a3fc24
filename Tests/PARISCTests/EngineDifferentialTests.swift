import Foundation
import Loader
import MachineCore
@testable import PARISC
import TestSupport
import Testing

/// The block cache and the JIT against the interpreter (the reference), on generated system-mode
/// programs (`EngineProgram`: traps, nullification, loops, calls, self-modifying code, device
/// interrupts, the recovery counter): the same program runs on each engine in the same slices of
/// random budgets (1 instruction ... thousands), and after every slice the stop, the progress
/// count, every register (the state digest's CPU part) and RAM must be equal. A difference is
/// narrowed down to the first instruction that differs.
///
/// LOCKSTEP_PARISC_ENGINE_COUNT / _LENGTH / _SEED run more (scripts/difftest-parisc).
@Suite("PA-RISC engines against the interpreter")
struct EngineDifferentialTests {
    static let environment = ProcessInfo.processInfo.environment
    static let count = Int(environment["LOCKSTEP_PARISC_ENGINE_COUNT"] ?? "") ?? 40
    static let length = Int(environment["LOCKSTEP_PARISC_ENGINE_LENGTH"] ?? "") ?? 300
    static let firstSeed = UInt64(environment["LOCKSTEP_PARISC_ENGINE_SEED"] ?? "") ?? 1
    /// Counted instructions per program.
    static let instructions: UInt64 = 20_000

    /// The engines compared with the interpreter (the JIT where this host runs it).
    static var candidates: [PARISCEngine] {
        PARISCEngine.allCases.filter { $0 != .interpreter && $0.unavailableReason == nil }
    }

    /// The state after one slice.
    struct Observation: Equatable {
        var stop: String
        var progress: UInt64
        var cpu: [UInt8]
        var ram: StateDigest
    }

    /// A CPU running `program` on `engine`.
    final class Run {
        let memory: GuestMemory
        let cpu: PARISCCPU

        init(_ program: EngineProgram, engine: PARISCEngine) throws {
            memory = try GuestMemory(size: EngineProgram.ramSize)
            let bus = Bus(name: "mmio")
            cpu = PARISCCPU(memory: memory, bus: bus, configuration: .init(engine: engine))
            try bus.register(IOExternalInterruptRegister(cpu: cpu), name: "io-eir",
                             base: UInt64(EngineProgram.ioEIR), length: 0x1000, byteOrder: .big)
            try program.install(into: memory, cpu: cpu)
        }

        func run(_ budget: UInt64) throws -> Observation {
            let stop = try cpu.run(budget: budget)
            return Observation(stop: "\(stop)", progress: cpu.progress, cpu: cpu.digestBytes(), ram: MemoryDigest.recomputed(memory))
        }
    }

    /// The budgets of the slices for `seed`: single instructions, short and long runs.
    static func slices(seed: UInt64, total: UInt64) -> [UInt64] {
        var rng = SplitMix64(seed: seed ^ 0x5151_5151)
        var result: [UInt64] = []
        var sum: UInt64 = 0
        while sum < total {
            let budget: UInt64 = switch Int.random(in: 0..<10, using: &rng) {
            case 0, 1: UInt64.random(in: 1...3, using: &rng)
            case 2, 3, 4: UInt64.random(in: 4...64, using: &rng)
            default: UInt64.random(in: 65...4000, using: &rng)
            }
            result.append(budget)
            sum += budget
        }
        return result
    }

    /// Runs `program` on `engine` and the interpreter slice by slice; nil if they agree, else
    /// the first difference.
    static func compare(_ program: EngineProgram, engine: PARISCEngine) throws -> String? {
        let budgets = slices(seed: program.seed, total: instructions)
        let reference = try Run(program, engine: .interpreter)
        let candidate = try Run(program, engine: engine)
        for (i, budget) in budgets.enumerated() {
            let want = try reference.run(budget)
            let got = try candidate.run(budget)
            if got != want {
                return try firstDifference(program, engine: engine, budgets: Array(budgets[..<i]),
                                           then: budget, got: got, want: want)
            }
            if want.stop.hasPrefix("halted") || want.stop.hasPrefix("crashed") { break }
        }
        return nil
    }

    /// Replays both up to the last equal slice, then one instruction at a time.
    static func firstDifference(_ program: EngineProgram, engine: PARISCEngine, budgets: [UInt64], then budget: UInt64,
                                got: Observation, want: Observation) throws -> String
    {
        let reference = try Run(program, engine: .interpreter)
        let candidate = try Run(program, engine: engine)
        for b in budgets {
            _ = try reference.run(b)
            _ = try candidate.run(b)
        }
        let start = reference.cpu.progress
        var stepwise = "stepwise the runs agree (the difference depends on the slice)"
        for _ in 0..<budget {
            let before = reference.cpu.state
            let r = try reference.run(1), c = try candidate.run(1)
            if r != c {
                stepwise = "first difference after instruction at \(hex(before.iaoqFront)) (progress \(r.progress)): "
                    + describe(reference.cpu, candidate.cpu, r, c)
                break
            }
        }
        return "seed \(program.seed), \(engine): slice from progress \(start) of \(budget): "
            + "\(want.stop) at \(want.progress) vs \(got.stop) at \(got.progress); \(stepwise)"
    }

    static func describe(_ a: PARISCCPU, _ b: PARISCCPU, _ ra: Observation, _ rb: Observation) -> String {
        var out: [String] = []
        if ra.stop != rb.stop { out.append("stop \(ra.stop) vs \(rb.stop)") }
        if ra.progress != rb.progress { out.append("progress \(ra.progress) vs \(rb.progress)") }
        let sa = a.state, sb = b.state
        if sa.iaoqFront != sb.iaoqFront { out.append("IAOQ front \(hex(sa.iaoqFront)) vs \(hex(sb.iaoqFront))") }
        if sa.iaoqBack != sb.iaoqBack { out.append("IAOQ back \(hex(sa.iaoqBack)) vs \(hex(sb.iaoqBack))") }
        if sa.psw != sb.psw { out.append("PSW \(hex(sa.psw)) vs \(hex(sb.psw))") }
        for r in 1..<32 where sa[gr: r] != sb[gr: r] { out.append("r\(r) \(hex(sa[gr: r])) vs \(hex(sb[gr: r]))") }
        for r in 0..<32 where sa[cr: r] != sb[cr: r] { out.append("cr\(r) \(hex(sa[cr: r])) vs \(hex(sb[cr: r]))") }
        if a.recoveryCounter != b.recoveryCounter { out.append("CR0 \(hex(a.recoveryCounter)) vs \(hex(b.recoveryCounter))") }
        if ra.ram != rb.ram { out.append("RAM differs") }
        return "interpreter vs engine: " + (out.isEmpty ? "digest bytes differ" : out.joined(separator: ", "))
    }

    @Test("generated programs: every engine equals the interpreter after every slice",
          arguments: candidates)
    func generatedPrograms(engine: PARISCEngine) throws {
        var mismatches: [String] = []
        for seed in Self.firstSeed..<(Self.firstSeed + UInt64(Self.count)) {
            let program = EngineProgram(seed: seed, length: Self.length)
            if let mismatch = try Self.compare(program, engine: engine) { mismatches.append(mismatch) }
        }
        print("engine difftest: \(engine): \(Self.count) programs of \(Self.length) words, \(mismatches.count) mismatches")
        for m in mismatches.prefix(10) { print("  \(m)") }
        #expect(mismatches.isEmpty)
    }

    @Test("the JIT probe: this host can run generated code, or the engine says why not")
    func probe() {
        if let reason = PARISCEngine.jit.unavailableReason {
            #expect(PARISCEngine.fastestAvailable == .interpreter, "\(reason)")
        } else {
            #expect(PARISCEngine.fastestAvailable == .jit)
        }
        let memory = try? GuestMemory(size: 1 << 20)
        let cpu = PARISCCPU(memory: memory!, configuration: .init(engine: .jit))
        #expect(cpu.engine == PARISCEngine.fastestAvailable)
    }
}
