import Foundation
import Loader
import MachineCore
import PARISC
import Testing

/// Differential testing against qemu-hppa-static (Debian qemu-user-static 7.2): generated
/// instruction sequences run under both, compared after every counted instruction (IAOQ front
/// and back, PSW with N/V/C-B, all general registers) using QEMU's `-singlestep -d cpu,nochain`
/// trace, and the 2 KiB data area they leave behind (written to stdout) compared byte for byte.
///
/// LOCKSTEP_PARISC_DIFFTEST_COUNT / _LENGTH / _SEED run more (scripts/difftest-parisc).
@Suite("PA-RISC differential tests against qemu-hppa-static",
       .enabled(if: Toolchain.hasQEMUUser, "qemu-hppa-static is not installed (Debian qemu-user-static)"))
struct DifferentialTests {
    static let environment = ProcessInfo.processInfo.environment
    static let count = Int(environment["LOCKSTEP_PARISC_DIFFTEST_COUNT"] ?? "") ?? 24
    static let length = Int(environment["LOCKSTEP_PARISC_DIFFTEST_LENGTH"] ?? "") ?? 150
    static let firstSeed = UInt64(environment["LOCKSTEP_PARISC_DIFFTEST_SEED"] ?? "") ?? 1

    /// The result of comparing one program.
    struct Mismatch: Error, CustomStringConvertible {
        let description: String
    }

    /// Runs program `seed` under both and returns nil or the first difference.
    static func compare(seed: UInt64, length: Int) throws -> Mismatch? {
        let program = RandomProgram(seed: seed, length: length)
        return try compare(elf: program.elf, label: "seed \(seed)")
    }

    /// Runs `elf` under qemu-hppa-static (traced) and on Lockstep, compares the state after every
    /// counted instruction, then the output and exit status. System calls are served by each side
    /// (Lockstep's harness: exit and write) and the comparison resumes where they return.
    static func compare(elf: [UInt8], label: String) throws -> Mismatch? {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("lockstep-parisc-difftest-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let elfPath = directory.appendingPathComponent("p.elf").path
        let logPath = directory.appendingPathComponent("trace.log").path
        try Data(elf).write(to: URL(fileURLWithPath: elfPath))
        chmod(elfPath, 0o755)

        let q = try Toolchain.run(Toolchain.qemuUser, ["-singlestep", "-d", "cpu,nochain", "-D", logPath, elfPath],
                                  timeout: 600)
        let trace = QEMUTraceEntry.parse((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")
        guard trace.count > 2 else {
            return Mismatch(description: "\(label): qemu-hppa-static failed (status \(q.status))")
        }
        let process = try UserModeProcess(image: try ELFImage(bytes: elf, path: elfPath))
        process.cpu.state.pswOther = 0                         // qemu-user's PSW
        for r in 1..<32 { process.cpu.state[gr: r] = trace[0].gr[r] }

        var counted = 0
        var i = 0
        while i < trace.count - 1 {
            let entry = trace[i]
            if entry.psw & PSW.n != 0 {                         // a nullified instruction
                i += 1
                continue
            }
            if entry.front & ~3 == 0x100 {                       // the syscall gateway
                guard try process.cpu.run(budget: 1) == .systemCall else {
                    return Mismatch(description: "\(label): qemu entered the gateway, Lockstep did not")
                }
                if let status = process.serviceSystemCall() {
                    return try finish(process, status: status, qemu: q, label: label)
                }
                // Resume the comparison where the call returns.
                let resume = process.cpu.state.iaoqFront
                guard let next = trace[(i + 1)...].firstIndex(where: { $0.front == resume }) else { break }
                i = next
                continue
            }
            let want = trace[i + 1]
            let before = process.cpu.state
            let executed = (before.nullifyNext ? before.iaoqBack : before.iaoqFront) & ~3
            let word = (try? process.cpu.memory.load(UInt32.self, at: GuestAddress(UInt64(executed)),
                                                      order: .big)) ?? 0
            _ = try process.cpu.run(budget: 1)
            var got = QEMUTraceEntry(process.cpu.state).skippingNullified(toMatch: want)
            // QEMU's user-mode BE into the gateway page does not apply the privilege rule.
            if want.back & ~3 == 0x100 && got.back & ~3 == 0x100 { got.back = want.back }
            if got != want {
                var differences: [String] = []
                if got.front != want.front { differences.append("IAOQ front \(hex(got.front)) vs \(hex(want.front))") }
                if got.back != want.back { differences.append("IAOQ back \(hex(got.back)) vs \(hex(want.back))") }
                if got.psw != want.psw { differences.append("PSW \(hex(got.psw)) vs \(hex(want.psw))") }
                if got.digitCarries != want.digitCarries {
                    differences.append("digit carries \(String(got.digitCarries, radix: 2)) vs \(String(want.digitCarries, radix: 2))")
                }
                for r in 1..<32 where got.gr[r] != want.gr[r] {
                    differences.append("r\(r) \(hex(got.gr[r])) vs \(hex(want.gr[r]))")
                }
                return Mismatch(description: "\(label), counted instruction \(counted) at "
                    + "\(hex(executed)): word \(hex(word)) "
                    + "(\(InstructionNames.mnemonic(word) ?? "?")): lockstep vs qemu: "
                    + differences.joined(separator: ", "))
            }
            counted += 1
            i += 1
        }
        if !label.hasPrefix("seed") {
            print("difftest: \(label): \(counted) instructions compared, \(trace.count) trace entries")
        }
        let outcome = try process.run(limit: 100_000_000)
        guard case .exited(let status) = outcome else {
            return Mismatch(description: "\(label): lockstep ended with \(outcome)")
        }
        return try finish(process, status: status, qemu: q, label: label)
    }

    /// Compares the exit statuses and the outputs.
    static func finish(_ process: UserModeProcess, status: Int32,
                       qemu: (status: Int32, output: Data, error: Data), label: String) throws -> Mismatch?
    {
        if status != qemu.status {
            return Mismatch(description: "\(label): exit status \(status) vs qemu \(qemu.status)")
        }
        if process.output != [UInt8](qemu.output) {
            let firstDifference = Array(zip(process.output, [UInt8](qemu.output))).firstIndex { $0 != $1 } ?? -1
            return Mismatch(description: "\(label): outputs differ (first at byte \(firstDifference), "
                + "\(process.output.count) vs \(qemu.output.count) bytes)")
        }
        return nil
    }

    /// A short C program (millicode multiply/divide, 64-bit arithmetic, a jump-table switch,
    /// function pointers, strings; ~330,000 instructions) compared instruction by instruction.
    /// Opt in with LOCKSTEP_PARISC_DIFFTEST_PROGRAMS=1 (the QEMU trace is ~250 MB).
    @Test("a C program agrees with qemu-hppa-static instruction by instruction",
          .enabled(if: ProcessInfo.processInfo.environment["LOCKSTEP_PARISC_DIFFTEST_PROGRAMS"] != nil
                       && Toolchain.hasCompiler,
                   "opt-in (LOCKSTEP_PARISC_DIFFTEST_PROGRAMS, scripts/difftest-parisc); needs hppa-linux-gnu-gcc"))
    func cProgram() throws {
        let programs = Toolchain.support.appendingPathComponent("programs").path
        let elf = try Toolchain.buildUserProgram(
            name: "trace", sources: ["muldiv", "ll64", "switch", "fptr", "strtest", "plat_user", "trace_main"]
                .map { "\(programs)/\($0).c" },
            runtime: ["\(programs)/rt.c"])
        let mismatch = try Self.compare(elf: [UInt8](try Data(contentsOf: URL(fileURLWithPath: elf))),
                                        label: "trace_main")
        print("difftest: C program trace_main: \(mismatch.map { "\($0)" } ?? "identical")")
        #expect(mismatch == nil)
    }

    @Test("generated programs agree with qemu-hppa-static instruction by instruction")
    func generatedPrograms() throws {
        var mismatches: [String] = []
        for seed in Self.firstSeed..<(Self.firstSeed + UInt64(Self.count)) {
            if let mismatch = try Self.compare(seed: seed, length: Self.length) {
                mismatches.append(mismatch.description)
            }
        }
        print("difftest: \(Self.count) programs of \(Self.length) random instructions, "
            + "\(mismatches.count) mismatches")
        for m in mismatches.prefix(20) { print("  \(m)") }
        #expect(mismatches.isEmpty)
    }
}

