import Foundation
import PARISC
import Testing

/// Throughput measurement, run by scripts/bench-parisc in a release build (it is skipped in the
/// normal test run): LOCKSTEP_PARISC_BENCH names a user-mode ELF; the run uses 1M-instruction
/// epochs with the guest's recovery counter enabled, and prints instructions per second.
@Suite("PA-RISC benchmark runner")
struct BenchmarkRunner {
    /// CPU time of the calling thread, in seconds (less disturbed by other processes than wall
    /// time on a shared machine).
    static func threadCPUTime() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    static let elf = ProcessInfo.processInfo.environment["LOCKSTEP_PARISC_BENCH"]

    @Test("run LOCKSTEP_PARISC_BENCH", .enabled(if: elf != nil))
    func bench() throws {
        let process = try UserModeProcess(path: Self.elf!)
        process.cpu.state.pswOther |= PSW.r
        process.cpu.recoveryCounter = 0x7FFF_FFFF
        let start = DispatchTime.now().uptimeNanoseconds
        let cpuStart = Self.threadCPUTime()
        let outcome = try process.run(limit: 100_000_000_000, slice: 1_000_000)
        let cpuSeconds = Self.threadCPUTime() - cpuStart
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let n = Double(process.cpu.progress)
        print("BENCH lockstep instructions=\(process.cpu.progress) wall=\(seconds) cpu=\(cpuSeconds) "
            + "wall_mips=\(Int(n / seconds / 1e6)) cpu_mips=\(Int(n / cpuSeconds / 1e6)) outcome=\(outcome) "
            + "output=\(process.outputText.replacingOccurrences(of: "\n", with: " | "))")
        #expect(outcome == .exited(0))
    }
}
