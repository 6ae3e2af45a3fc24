import Foundation
import Loader
import MachineCore
import PARISC
import Testing

/// Throughput measurement, run by scripts/bench-parisc in a release build (it is skipped in the
/// normal test run): LOCKSTEP_PARISC_BENCH names a user-mode ELF; the run uses 1M-instruction
/// epochs with the guest's recovery counter enabled, and prints instructions per second.
/// LOCKSTEP_PARISC_ENGINE picks the engine (default: the fastest).
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
    static let guest = ProcessInfo.processInfo.environment["LOCKSTEP_PARISC_BENCH_GUEST"]

    @Test("run LOCKSTEP_PARISC_BENCH", .enabled(if: elf != nil, "a benchmark: set LOCKSTEP_PARISC_BENCH to a user-mode ELF (release build)"))
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
        print("BENCH lockstep engine=\(process.cpu.engine) instructions=\(process.cpu.progress) wall=\(seconds) cpu=\(cpuSeconds) "
            + "wall_mips=\(Int(n / seconds / 1e6)) cpu_mips=\(Int(n / cpuSeconds / 1e6)) outcome=\(outcome) "
            + "output=\(process.outputText.replacingOccurrences(of: "\n", with: " | "))")
        #expect(outcome == .exited(0))
    }

    /// A bundled guest kernel on PARISCMachine (system mode), epochs of 1M instructions counted
    /// with the recovery-counter rule, as the hypervisor runs it: LOCKSTEP_PARISC_BENCH_GUEST is
    /// the ELF, LOCKSTEP_PARISC_BENCH_CMDLINE its command line.
    @Test("run LOCKSTEP_PARISC_BENCH_GUEST", .enabled(if: guest != nil, "a benchmark: run by scripts/bench-parisc (LOCKSTEP_PARISC_BENCH_GUEST)"))
    func benchGuest() throws {
        let commandLine = ProcessInfo.processInfo.environment["LOCKSTEP_PARISC_BENCH_CMDLINE"] ?? ""
        let environment = TestEnvironment()
        let machine = try PARISCMachine(image: try ELFImage.load(contentsOf: Self.guest!),
                                        configuration: .init(commandLine: commandLine,
                                                             engine: UserModeProcess.defaultEngine),
                                        environment: environment)
        let start = DispatchTime.now().uptimeNanoseconds
        let cpuStart = Self.threadCPUTime()
        var stop = MachineStop.epochEnd
        while case .epochEnd = stop {
            stop = try machine.run(budget: 1_000_000)
            if stop == .epochEnd || stop == .idle {
                try machine.applyBoundary(time: machine.clock.now, events: environment.takeEvents(consoleRoom: machine.consoleInputRoom))
                if stop == .idle { stop = .epochEnd }
            }
        }
        let cpuSeconds = Self.threadCPUTime() - cpuStart
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let n = Double(machine.progress)
        print("BENCH lockstep engine=\(machine.cpu.engine) instructions=\(machine.progress) wall=\(seconds) cpu=\(cpuSeconds) "
            + "wall_mips=\(Int(n / seconds / 1e6)) cpu_mips=\(Int(n / cpuSeconds / 1e6)) stop=\(stop) "
            + "output=\(environment.output.replacingOccurrences(of: "\n", with: " | "))")
        #expect(stop == .exited(status: 0))
    }
}
