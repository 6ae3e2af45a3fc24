import PARISC
import Testing

/// The differential tests' encoder against words assembled by hppa-linux-gnu-as 2.40.
@Suite("PA-RISC test encoder")
struct EncoderTests {
    typealias E = Encoder

    @Test("encodings equal the assembler's")
    func encodings() {
        #expect(E.arithmetic(0x18, r1: 1, r2: 2, t: 3) == 0x0841_0603)                 // add r1,rp,r3
        #expect(E.arithmetic(0x22, r1: 1, r2: 2, t: 0, c: 2, f: 1) == 0x0841_5880)     // cmpclr,>=
        #expect(E.immediate11(0x2D, r: 1, t: 2, immediate: -8, c: 2) == 0xB422_47F1)   // addi,< -8,r1,rp
        #expect(E.immediate11(0x24, r: 1, t: 2, immediate: 5, c: 1, f: 1) == 0x9022_300A)  // cmpiclr,<>
        #expect(E.ldo(base: 30, t: 30, displacement: -1) == 0x37DE_3FFF)
        #expect(E.ldil(t: 3, value: 0x1234_5000) == 0x2062_6246)
        #expect(E.addil(r: 27, value: 0x1000) == 0x2B60_2000)
        #expect(E.shiftDouble(r1: 1, r2: 2, shift: 8, t: 3, c: 0) == 0xD041_0AE3)
        #expect(E.shiftDoubleVariable(r1: 1, r2: 2, t: 3, c: 0) == 0xD041_0003)
        #expect(E.extract(ext: 6, r: 1, position: 23, length: 8, t: 3, c: 0) == 0xD023_1AF8)
        #expect(E.extract(ext: 5, r: 1, position: 0, length: 8, t: 3, c: 0) == 0xD023_1418)
        #expect(E.extract(ext: 6, r: 1, position: 30, length: 1, t: 0, c: 1) == 0xD020_3BDF)
        #expect(E.deposit(ext: 2, t: 3, source: 1, position: 15, length: 4, c: 0) == 0xD461_0A1C)
        #expect(E.deposit(ext: 1, t: 3, source: 1, position: 0, length: 4, c: 0) == 0xD461_041C)
        #expect(E.deposit(ext: 7, t: 3, source: -1, position: 31, length: 3, c: 0) == 0xD47F_1C1D)
        #expect(E.deposit(ext: 4, t: 3, source: 5, position: 0, length: 3, c: 0) == 0xD46A_101D)
        #expect(E.conditionalBranch(0x20, r2: 2, r1OrImmediate: 1, c: 1, nullify: true,
                                    displacement: 8) == 0x8041_2012)                   // cmpb,=,n
        #expect(E.conditionalBranch(0x20, r2: 2, r1OrImmediate: 1, c: 2, nullify: true,
                                    displacement: -24) == 0x8041_5FD7)                 // cmpb,<,n .-16
        #expect(E.conditionalBranch(0x23, r2: 1, r1OrImmediate: E.lowSign(3, bits: 5), c: 1,
                                    nullify: false, displacement: 8) == 0x8C26_2010)   // cmpib,<>
        #expect(E.branchOnBit(r: 1, position: 5, variable: false, branchIfClear: false, nullify: false,
                              displacement: 8) == 0xC4A1_4010)                         // bb,<
        #expect(E.branchOnBit(r: 1, position: 0, variable: true, branchIfClear: false, nullify: false,
                              displacement: 8) == 0xC001_4010)                         // bb,< sar
        #expect(E.branchLink(t: 2, displacement: 8, nullify: false) == 0xE840_0010)    // b,l .+16,rp
        #expect(E.branchLink(t: 0, displacement: -8, nullify: true) == 0xE81F_1FF7)    // b,n .
        #expect(E.memoryLong(0x13, base: 4, register: 5, displacement: 8) == 0x4C85_0010)  // ldwm
        #expect(E.shortLoad(ext4: 0, base: 25, displacement: 1, t: 26, modify: true,
                            before: true) == 0x0F22_303A)                              // ldb,mb 1(r25)
        #expect(E.shortStore(ext4: 10, base: 2, displacement: 4, source: 1, modify: true,
                             before: false) == 0x0C41_12A8)                            // stw,ma r1,4(rp)
        #expect(E.shortStore(ext4: 12, base: 4, displacement: 0, source: 5, modify: false,
                             before: true) == 0x0C85_3300)                             // stby,e
        #expect(E.indexedLoad(ext4: 2, base: 4, index: 3, t: 5, scaled: true, modify: false)
            == 0x0C83_2085)                                                            // ldw,s r3(r4)
        #expect(E.mtsar(1) == 0x0161_1840)
        #expect(E.mfsar(3) == 0x0160_08A3)
    }

    @Test("LDIL + LDO load any 32-bit value")
    func loadValue() {
        for value: UInt32 in [0, 1, 0x7FF, 0x800, 0xFFFF_FFFF, 0x8000_0000, 0x1234_5678, 0xDEAD_BEEF] {
            let words = E.load(value, into: 3)
            let high = InstructionFields.assemble21(words[0])
            let low = InstructionFields.im14(words[1])
            #expect(high &+ low == value)
        }
    }
}

