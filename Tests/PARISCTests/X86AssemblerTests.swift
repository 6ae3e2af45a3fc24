import Foundation
@testable import PARISC
import Testing

/// The JIT's x86-64 encoder against GNU as: every form the translator emits (REX prefixes for
/// r8-r15 and sil/dil, rsp/r12 bases that need a SIB byte, rbp/r13 bases that need a
/// displacement, 8/32-bit immediates, the eax short forms) assembled both ways, byte for byte.
@Suite("PA-RISC JIT: x86-64 encodings")
struct X86AssemblerTests {
    static let gnuAssembler = "/usr/bin/as"
    static let objcopy = "/usr/bin/objcopy"
    static var hasBinutils: Bool {
        FileManager.default.isExecutableFile(atPath: gnuAssembler) && FileManager.default.isExecutableFile(atPath: objcopy)
    }

    typealias Case = (text: String, emit: @Sendable (inout X86Assembler) -> Void)

    static let cases: [Case] = [
        ("mov eax, ecx", { $0.mov(.rax, .rcx) }),
        ("mov r8d, r15d", { $0.mov(.r8, .r15) }),
        ("mov esi, [rbx+0x10]", { $0.mov(.rsi, HostMemory(.rbx, 0x10)) }),
        ("mov [rbx+0x400], r10d", { $0.mov(HostMemory(.rbx, 0x400), .r10) }),
        ("mov eax, [r12+rax]", { $0.mov(.rax, HostMemory(.r12, index: .rax)) }),
        ("mov [r12+rax], edx", { $0.mov(HostMemory(.r12, index: .rax), .rdx) }),
        ("mov ebp, [r13]", { $0.mov(.rbp, HostMemory(.r13, 0)) }),
        ("mov ecx, [rsp+8]", { $0.mov(.rcx, HostMemory(.rsp, 8)) }),
        ("mov ecx, [r12]", { $0.mov(.rcx, HostMemory(.r12, 0)) }),
        ("mov r11d, 0x12345678", { $0.mov(.r11, imm: 0x1234_5678) }),
        ("mov eax, 0", { $0.mov(.rax, imm: 0) }),
        ("mov dword ptr [rbx+0x20], 0x1234", { $0.mov(HostMemory(.rbx, 0x20), imm: 0x1234) }),
        ("mov rbx, rdi", { $0.mov64(.rbx, .rdi) }),
        ("mov r12, [r14]", { $0.mov64(.r12, HostMemory(.r14, 0)) }),
        ("mov [r14+8], r13", { $0.mov64(HostMemory(.r14, 8), .r13) }),
        ("mov byte ptr [rbx+0x30], dl", { $0.mov8(HostMemory(.rbx, 0x30), .rdx) }),
        ("mov byte ptr [rbx+0x31], sil", { $0.mov8(HostMemory(.rbx, 0x31), .rsi) }),
        ("mov byte ptr [rbx+0x32], r11b", { $0.mov8(HostMemory(.rbx, 0x32), .r11) }),
        ("mov byte ptr [rbx+0x33], 1", { $0.mov8(HostMemory(.rbx, 0x33), imm: 1) }),
        ("mov word ptr [r12+rax], dx", { $0.mov16(HostMemory(.r12, index: .rax), .rdx) }),
        ("movzx edx, byte ptr [r12+rax]", { $0.movzx8(.rdx, HostMemory(.r12, index: .rax)) }),
        ("movzx edx, word ptr [r12+rax]", { $0.movzx16(.rdx, HostMemory(.r12, index: .rax)) }),
        ("movzx ecx, byte ptr [rbx+0x35]", { $0.movzx8(.rcx, HostMemory(.rbx, 0x35)) }),
        ("movzx eax, sil", { $0.movzx8(.rax, .rsi) }),
        ("lea ecx, [rax+rdx]", { $0.lea(.rcx, HostMemory(.rax, index: .rdx)) }),
        ("lea ecx, [rax-0x1234]", { $0.lea(.rcx, HostMemory(.rax, -0x1234)) }),
        ("lea ecx, [rax+4]", { $0.lea(.rcx, HostMemory(.rax, 4)) }),
        ("add eax, edx", { $0.alu(.add, .rax, .rdx) }),
        ("adc r9d, r10d", { $0.alu(.adc, .r9, .r10) }),
        ("sub eax, [rbx+0x40]", { $0.alu(.sub, .rax, HostMemory(.rbx, 0x40)) }),
        ("or eax, [rbx+0x44]", { $0.alu(.or, .rax, HostMemory(.rbx, 0x44)) }),
        ("sbb eax, edx", { $0.alu(.sbb, .rax, .rdx) }),
        ("xor ecx, eax", { $0.alu(.xor, .rcx, .rax) }),
        ("cmp eax, 0x7f", { $0.alu(.cmp, .rax, imm: 0x7F) }),
        ("cmp eax, 0x12345", { $0.alu(.cmp, .rax, imm: 0x12345) }),
        ("cmp r11d, 0x4000000", { $0.alu(.cmp, .r11, imm: 0x400_0000) }),
        ("and r11d, 31", { $0.alu(.and, .r11, imm: 31) }),
        ("and ecx, -4", { $0.alu(.and, .rcx, imm: 0xFFFF_FFFC) }),
        ("or eax, 0xffffff00", { $0.alu(.or, .rax, imm: 0xFFFF_FF00) }),
        ("add esi, 0x10000", { $0.alu(.add, .rsi, imm: 0x10000) }),
        ("add r13, 1", { $0.alu64(.add, .r13, imm: 1) }),
        ("sub r13, 300", { $0.alu64(.sub, .r13, imm: 300) }),
        ("cmp r13, 5", { $0.alu64(.cmp, .r13, imm: 5) }),
        ("cmp dword ptr [rbx+0x44], 1", { $0.alu(.cmp, HostMemory(.rbx, 0x44), imm: 1) }),
        ("cmp byte ptr [r15+rdx], 0", { $0.cmp8(HostMemory(.r15, index: .rdx), imm: 0) }),
        ("cmp eax, [r14+rcx+64]", { $0.alu(.cmp, .rax, HostMemory(.r14, index: .rcx, 64)) }),
        ("test eax, eax", { $0.test(.rax, .rax) }),
        ("test r11b, r11b", { $0.test8(.r11, .r11) }),
        ("test dl, dl", { $0.test8(.rdx, .rdx) }),
        ("test al, 1", { $0.test(.rax, imm: 1) }),
        ("test cl, 1", { $0.test(.rcx, imm: 1) }),
        ("test esi, 0x100", { $0.test(.rsi, imm: 0x100) }),
        ("neg ecx", { $0.neg(.rcx) }),
        ("not edx", { $0.not(.rdx) }),
        ("bswap edx", { $0.bswap(.rdx) }),
        ("bswap r10d", { $0.bswap(.r10) }),
        ("bt eax, 31", { $0.bt(.rax, bit: 31) }),
        ("bt dword ptr [rbx+0x48], 0", { $0.bt(HostMemory(.rbx, 0x48), bit: 0) }),
        ("shl eax, 3", { $0.shift(.shl, .rax, by: 3) }),
        ("shr r11d, 31", { $0.shift(.shr, .r11, by: 31) }),
        ("sar eax, 1", { $0.shift(.sar, .rax, by: 1) }),
        ("ror r11d, 2", { $0.shift(.ror, .r11, by: 2) }),
        ("rol dx, 8", { $0.swapHalfword(.rdx) }),
        ("shl eax, cl", { $0.shiftByCL(.shl, .rax) }),
        ("sar r9d, cl", { $0.shiftByCL(.sar, .r9) }),
        ("shrd eax, edx, 5", { $0.shrd(.rax, .rdx, by: 5) }),
        ("shrd esi, r10d, 13", { $0.shrd(.rsi, .r10, by: 13) }),
        ("shrd eax, edx, cl", { $0.shrdByCL(.rax, .rdx) }),
        ("setb dl", { $0.set(.below, .rdx) }),
        ("setne r11b", { $0.set(.notEqual, .r11) }),
        ("setae sil", { $0.set(.aboveOrEqual, .rsi) }),
        ("seto byte ptr [rbx+0x50]", { $0.set(.overflow, HostMemory(.rbx, 0x50)) }),
        ("cmovl eax, ecx", { $0.cmov(.less, .rax, .rcx) }),
        ("jmp qword ptr [r14+0x10040]", { $0.jump(through: HostMemory(.r14, 0x10040)) }),
        ("jmp qword ptr [r14+rcx+72]", { $0.jump(through: HostMemory(.r14, index: .rcx, 72)) }),
        ("jmp rdx", { $0.jump(to: .rdx) }),
        ("push rbx", { $0.push(.rbx) }),
        ("push r15", { $0.push(.r15) }),
        ("pop r12", { $0.pop(.r12) }),
        ("ret", { $0.ret() }),
        ("cmc", { $0.complementCarry() }),
        ("xor r11b, cl", { $0.xor8(.r11, .rcx) }),
        ("or r11b, dl", { $0.or8(.r11, .rdx) }),
        ("and dl, sil", { $0.and8(.rdx, .rsi) }),
        ("cmp r13, 0x12345678", {
            let at = $0.cmp64Patchable(.r13)
            $0.patch32(at: at, 0x1234_5678)
        }),
    ]

    /// Assembles `lines` (Intel syntax) with GNU as and returns the .text bytes.
    static func gnu(_ lines: [String]) throws -> [UInt8] {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("lockstep-x86asm-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = directory.appendingPathComponent("a.s"), object = directory.appendingPathComponent("a.o")
        let binary = directory.appendingPathComponent("a.bin")
        try (".intel_syntax noprefix\n.text\n" + lines.joined(separator: "\n") + "\n")
            .write(to: source, atomically: true, encoding: .utf8)
        for (tool, arguments) in [(gnuAssembler, ["--64", "-o", object.path, source.path]),
                                  (objcopy, ["-O", "binary", "-j", ".text", object.path, binary.path])]
        {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: tool)
            process.arguments = arguments
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "\(tool) failed on \(lines)"])
            }
        }
        return [UInt8](try Data(contentsOf: binary))
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined(separator: " ")
    }

    @Test("every form the translator emits encodes as GNU as encodes it",
          .enabled(if: hasBinutils, "GNU as and objcopy (binutils) are not installed"))
    func againstGNUAssembler() throws {
        var mismatches: [String] = []
        for c in Self.cases {
            var a = X86Assembler()
            c.emit(&a)
            let mine = a.finish()
            let theirs = try Self.gnu([c.text])
            if mine != theirs { mismatches.append("\(c.text): \(Self.hex(mine)) vs as \(Self.hex(theirs))") }
        }
        #expect(mismatches.isEmpty, "\(mismatches.joined(separator: "; "))")
    }

    @Test("jumps: rel32 displacements to labels bound before and after, and to absolute offsets")
    func jumps() {
        var a = X86Assembler()
        a.origin = 0x100
        let back = a.newLabel(), forward = a.newLabel()
        a.bind(back)                                  // offset 0
        a.jump(if: .equal, to: forward)               // 0..<6
        a.jump(to: back)                              // 6..<11
        a.jump(toOffset: 0x100)                       // 11..<16: to offset 0 of this code
        a.bind(forward)                               // 16
        let code = a.finish()
        #expect(Array(code[0..<6]) == [0x0F, 0x84, 10, 0, 0, 0])
        #expect(Array(code[6..<11]) == [0xE9, 0xF5, 0xFF, 0xFF, 0xFF])
        #expect(Array(code[11..<16]) == [0xE9, 0xF0, 0xFF, 0xFF, 0xFF])
    }

    @Test("condition codes: each negation flips the test")
    func negations() {
        for raw in UInt8(0)...15 {
            let condition = HostCondition(rawValue: raw)!
            #expect(condition.negated.rawValue == raw ^ 1)
            #expect(condition.negated.negated == condition)
        }
    }
}
