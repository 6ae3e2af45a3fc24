import Foundation
import Loader
import MachineCore
import PARISC

/// Runs a statically linked hppa32 program the way `qemu-hppa` (Linux user mode) does, on
/// Lockstep's CPU: the ELF is loaded at its virtual addresses into flat RAM, the program runs at
/// PL 3, and the Linux syscall gateway (`ble 0x100(%sr2,%r0)`, number in r20, arguments in
/// r26/r25/r24/r23, result in r28, return to r31) provides `exit` and `write`.
///
/// This is the test-side harness for differential testing and the GCC torture suite; it is not
/// part of the emulator.
final class UserModeProcess {
    /// How a run ended.
    enum Outcome: Equatable, CustomStringConvertible {
        case exited(Int32)
        case crashed(String)
        case timedOut(UInt64)

        var description: String {
            switch self {
            case .exited(let status): "exit \(status)"
            case .crashed(let reason): "crash: \(reason)"
            case .timedOut(let n): "timeout after \(n) instructions"
            }
        }
    }

    let cpu: PARISCCPU
    private(set) var output: [UInt8] = []
    private(set) var errorOutput: [UInt8] = []

    /// The stack pointer qemu-hppa 7.2 starts a static program with (the programs here set their
    /// own stack in crt0, so only register comparisons care).
    static let initialStackPointer: UInt32 = 0xFA00_06C0

    /// The engine programs run on unless a test says otherwise: LOCKSTEP_PARISC_ENGINE
    /// (interpreter, threaded, jit; scripts/difftest-parisc runs the torture suite on each), else
    /// the fastest this host runs.
    static let defaultEngine = ProcessInfo.processInfo.environment["LOCKSTEP_PARISC_ENGINE"]
        .flatMap(PARISCEngine.init(rawValue:)) ?? .fastestAvailable

    init(image: ELFImage, memorySize: UInt64 = 64 << 20, engine: PARISCEngine = defaultEngine) throws {
        let memory = try GuestMemory(size: memorySize)
        try image.load(into: memory) { $0.virtualAddress }
        cpu = PARISCCPU(memory: memory, configuration: .init(linuxGateway: true, engine: engine))
        let entry = UInt32(truncatingIfNeeded: image.entry)
        cpu.state.iaoqFront = entry | 3
        cpu.state.iaoqBack = (entry &+ 4) | 3
        cpu.state.pswOther = PSW.q | PSW.i
    }

    convenience init(path: String, memorySize: UInt64 = 64 << 20, engine: PARISCEngine = defaultEngine) throws {
        try self.init(image: try ELFImage.load(contentsOf: path), memorySize: memorySize, engine: engine)
    }

    var outputText: String { String(decoding: output, as: UTF8.self) }

    /// Runs until exit, a crash, or `limit` counted instructions.
    func run(limit: UInt64 = 2_000_000_000, slice: UInt64 = 50_000_000) throws -> Outcome {
        let end = cpu.progress &+ limit
        while cpu.progress < end {
            let stop = try cpu.run(until: min(end, cpu.progress &+ slice))
            switch stop {
            case .budgetExhausted:
                continue
            case .systemCall:
                if let status = serviceSystemCall() { return .exited(status) }
            case .crashed(let reason):
                return .crashed(reason)
            case .idle, .halted, .exited:
                return .crashed("unexpected stop in user mode: \(stop)")
            }
        }
        return .timedOut(limit)
    }

    /// Performs the Linux syscall at the gateway and returns to r31; returns the exit status for
    /// exit.
    func serviceSystemCall() -> Int32? {
        let number = cpu.state[gr: 20]
        let a0 = cpu.state[gr: 26], a1 = cpu.state[gr: 25], a2 = cpu.state[gr: 24]
        var result: UInt32
        switch number {
        case 1, 248:                                     // exit, exit_group
            return Int32(bitPattern: a0 & 0xFF)
        case 4:                                          // write(fd, buf, count)
            if let bytes = try? cpu.memory.read(at: GuestAddress(UInt64(a1)), count: Int(a2)) {
                if a0 == 2 { errorOutput += bytes } else { output += bytes }
                result = a2
            } else {
                result = UInt32(bitPattern: -14)         // EFAULT
            }
        default:
            result = UInt32(bitPattern: -38)             // ENOSYS
        }
        cpu.state[gr: 28] = result
        let returnAddress = cpu.state[gr: 31] | 3
        cpu.state.iaoqFront = returnAddress
        cpu.state.iaoqBack = returnAddress &+ 4
        return nil
    }
}
