import Foundation
import PARISC
import Testing

/// Throughput measurement, run by scripts/bench-parisc in a release build (it is skipped in the
/// normal test run): LOCKSTEP_PARISC_BENCH names a user-mode ELF; the run uses 1M-instruction
/// epochs with the guest's recovery counter enabled, and prints instructions per second.
@Suite("PA-RISC benchmark runner")
struct BenchmarkRunner {
    static let elf = ProcessInfo.processInfo.environment["LOCKSTEP_PARISC_BENCH"]

    @Test("run LOCKSTEP_PARISC_BENCH", .enabled(if: elf != nil))
    func bench() throws {
        let process = try UserModeProcess(path: Self.elf!)
        process.cpu.state.pswOther |= PSW.r
        process.cpu.recoveryCounter = 0x7FFF_FFFF
        let start = DispatchTime.now().uptimeNanoseconds
        let outcome = try process.run(limit: 100_000_000_000, slice: 1_000_000)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let n = process.cpu.progress
        print("BENCH lockstep instructions=\(n) seconds=\(seconds) rate=\(Double(n) / seconds / 1e6) MIPS outcome=\(outcome) output=\(process.outputText.replacingOccurrences(of: "\n", with: " | "))")
        #expect(outcome == .exited(0))
    }
}
