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
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("lockstep-parisc-difftest-\(getpid())-\(seed)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let elfPath = directory.appendingPathComponent("p.elf").path
        let logPath = directory.appendingPathComponent("trace.log").path
        try Data(program.elf).write(to: URL(fileURLWithPath: elfPath))
        chmod(elfPath, 0o755)

        let q = try Toolchain.run(Toolchain.qemuUser, ["-singlestep", "-d", "cpu,nochain", "-D", logPath, elfPath])
        let trace = QEMUTraceEntry.parse((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")
        guard q.status == 0, trace.count > 2 else {
            return Mismatch(description: "seed \(seed): qemu-hppa-static failed (status \(q.status))")
        }
        // QEMU's after-state of each counted instruction is the entry after it.
        var expected: [QEMUTraceEntry] = []
        // Stop at the branch into the syscall gateway (QEMU's user-mode BE does not apply the
        // privilege rule to the gateway page; the gateway itself is the harness's business).
        for i in 0..<(trace.count - 1) where trace[i].psw & PSW.n == 0 {
            if trace[i + 1].back & ~3 == 0x100 || trace[i + 1].front & ~3 == 0x100 { break }
            expected.append(trace[i + 1])
        }

        let process = try UserModeProcess(image: try ELFImage(bytes: program.elf, path: elfPath))
        process.cpu.state.pswOther = 0                         // qemu-user's PSW
        for r in 1..<32 { process.cpu.state[gr: r] = trace[0].gr[r] }
        for (index, want) in expected.enumerated() {
            let before = process.cpu.state
            let executed = (before.nullifyNext ? before.iaoqBack : before.iaoqFront) & ~3
            let word = (try? process.cpu.memory.load(UInt32.self, at: GuestAddress(UInt64(executed)),
                                                      order: .big)) ?? 0
            _ = try process.cpu.run(budget: 1)
            let got = QEMUTraceEntry(process.cpu.state).skippingNullified(toMatch: want)
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
                return Mismatch(description: "seed \(seed), counted instruction \(index) at "
                    + "\(hex(executed)): word \(hex(word)) "
                    + "(\(InstructionNames.mnemonic(word) ?? "?")): lockstep vs qemu: "
                    + differences.joined(separator: ", "))
            }
        }
        let outcome = try process.run(limit: 10_000)
        guard outcome == .exited(0) else {
            return Mismatch(description: "seed \(seed): lockstep ended with \(outcome)")
        }
        if process.output != [UInt8](q.output) {
            let firstDifference = Array(zip(process.output, [UInt8](q.output))).firstIndex { $0 != $1 } ?? -1
            return Mismatch(description: "seed \(seed): data areas differ (first at byte \(firstDifference), "
                + "\(process.output.count) vs \(q.output.count) bytes)")
        }
        return nil
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

