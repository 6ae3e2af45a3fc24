import Foundation
import Testing

/// Real C programs built with hppa-linux-gnu-gcc, run on Lockstep's CPU in the user-mode harness
/// and, when available, under qemu-hppa-static: same output, same exit status.
@Suite("PA-RISC programs")
struct ProgramTests {
    static func withoutTime(_ text: String) -> String {
        text.replacingOccurrences(of: #"cr16_delta=\d+"#, with: "cr16_delta=*", options: .regularExpression)
    }

    @Test("the 9-program suite gives qemu-hppa's output", .enabled(if: Toolchain.hasCompiler))
    func suite() throws {
        let elf = try Toolchain.buildSuite()
        let process = try UserModeProcess(path: elf)
        let outcome = try process.run()
        print("lockstep: \(outcome) \(process.outputText)")
        #expect(outcome == .exited(0))
        if Toolchain.hasQEMUUser {
            let q = try Toolchain.run(Toolchain.qemuUser, [elf])
            let qemuOutput = String(decoding: q.output, as: UTF8.self)
            print("qemu: exit \(q.status) \(qemuOutput)")
            // cr16_delta is time: virtual under Lockstep, host time under qemu-user.
            #expect(Self.withoutTime(process.outputText) == Self.withoutTime(qemuOutput))
            #expect(q.status == 0)
        }
    }
}
