import MachineCore
import PARISC

/// Instruction words (assembled with hppa-linux-gnu-as 2.40 when the tests were written) and a
/// small helper to lay them out in a fresh CPU's RAM.
enum Words {
    static let nop: UInt32 = 0x0800_0240              // or r0,r0,r0
    static let addi1r3: UInt32 = 0xB463_0002          // addi 1,r3,r3
    static let cmpclrAlways: UInt32 = 0x0800_2880     // cmpclr,= r0,r0,r0 (nullifies the next)
    static let addi1r4: UInt32 = 0xB484_0002          // addi 1,r4,r4
    static let addi1r5: UInt32 = 0xB4A5_0002          // addi 1,r5,r5
    static let rfi: UInt32 = 0x0000_0C00              // rfi
    static let mtctlR1EIEM: UInt32 = 0x01E1_1840      // mtctl r1,eiem (cr15)
    static let mtctlR6CR0: UInt32 = 0x0006_1840       // mtctl r6,rctr (cr0)
    static let ssmR: UInt32 = 0x0010_0D60             // ssm 10,r0 (PSW R)
    static let branch256: UInt32 = 0xE800_01F0        // b,l .+0x100,r0
    static let mfctlCR16r7: UInt32 = 0x0200_08A7      // mfctl itmr,r7
    static let mtctlR8CR16: UInt32 = 0x0208_1840      // mtctl r8,itmr
    static let ssmI: UInt32 = 0x0001_0D60             // ssm 1,r0 (PSW I)
    static let diagIdle: UInt32 = 0x1400_0100         // diag 100
    static let ldwR9R10: UInt32 = 0x0D20_108A         // ldw 0(r9),r10
    static let stwR10R9: UInt32 = 0x0D2A_1280         // stw r10,0(r9)
    static let mfctlCR0r11: UInt32 = 0x0000_08AB      // mfctl rctr,r11
    static let halt: UInt32 = 0xFFFD_EAD0             // QEMU HALT
    static let breakWord: UInt32 = 0x0024_6005        // break 5,123
    static let illegal: UInt32 = 0x1C00_0000          // major opcode 0x07
}

/// A CPU with 1 MiB of RAM and words placed at chosen addresses; execution starts at 0x1000
/// with PSW Q = 1 at PL 0; IVA = 0x4000 (set `iva` to 0 for "no handler").
final class CodeImage {
    let memory: GuestMemory
    let cpu: PARISCCPU
    static let start: UInt32 = 0x1000
    static let vectors: UInt32 = 0x4000

    init(iva: UInt32 = vectors, bus: Bus = Bus(name: "mmio")) throws {
        memory = try GuestMemory(size: 1 << 20)
        cpu = PARISCCPU(memory: memory, bus: bus)
        cpu.state.iaoqFront = Self.start
        cpu.state.iaoqBack = Self.start + 4
        cpu.state.psw = PSW.q
        cpu.state[cr: 14] = iva
    }

    func place(_ words: [UInt32], at address: UInt32) throws {
        for (i, word) in words.enumerated() {
            try memory.store(word, at: GuestAddress(UInt64(address) + UInt64(4 * i)), order: .big)
        }
    }

    /// Places `words` in the vector of interruption `n`.
    func vector(_ n: Int, _ words: [UInt32]) throws {
        try place(words, at: Self.vectors + UInt32(32 * n))
    }

    func word(at address: UInt32) throws -> UInt32 {
        try memory.load(UInt32.self, at: GuestAddress(UInt64(address)), order: .big)
    }
}
