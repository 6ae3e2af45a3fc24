import PARISC
import Testing

/// The named field extractors, each against words assembled by hppa-linux-gnu-as 2.40.
@Suite("PA-RISC instruction fields")
struct InstructionFieldsTests {
    typealias F = InstructionFields

    @Test("low_sign_ext puts the sign in the least significant bit")
    func lowSignExtend() {
        #expect(F.lowSignExtend(0b00110, length: 5) == 3)
        #expect(F.lowSignExtend(0b00111, length: 5) == UInt32(bitPattern: -13))
        #expect(F.lowSignExtend(0b11111, length: 5) == UInt32(bitPattern: -1))
        #expect(F.lowSignExtend(0b00001, length: 5) == UInt32(bitPattern: -16))
        #expect(F.lowSignExtend(0x3FFF, length: 14) == UInt32(bitPattern: -1))
    }

    @Test("sign_ext is two's-complement extension")
    func signExtend() {
        #expect(F.signExtend(0x800, length: 12) == UInt32(bitPattern: -2048))
        #expect(F.signExtend(0x7FF, length: 12) == 0x7FF)
    }

    @Test("assemble_21: LDIL and ADDIL")
    func assemble21() {
        #expect(F.assemble21(0x2062_6246) == 0x1234_5000)   // ldil L%12345000,r3
        #expect(F.assemble21(0x2B60_2000) == 0x0000_1000)   // addil L%1000,dp,r1
    }

    @Test("assemble_12: conditional branch displacements (x4, signed)")
    func assemble12() {
        #expect(F.assemble12(0x8041_2012) == 8)                          // cmpb,=,n r1,rp,.+16
        #expect(F.assemble12(0x8041_5FD7) == UInt32(bitPattern: -24))    // cmpb,<,n r1,rp,.-16
        #expect(F.assemble12(0x8DC6_3FE5) == UInt32(bitPattern: -16))    // cmpib,<> 3,r14,.-8
    }

    @Test("assemble_17: BL, BE, BLE displacements (x4, signed)")
    func assemble17() {
        #expect(F.assemble17(0xE840_0010) == 8)                          // b,l .+16,rp
        #expect(F.assemble17(0xE400_8200) == 0x100)                      // be,l 100(sr2,r0)
        #expect(F.assemble17(0xE81F_1FF7) == UInt32(bitPattern: -8))     // b,n . (b,l,n .,r0)
        #expect(F.assemble17(0xE81F_1FED) == UInt32(bitPattern: -12))    // b,l .-4,r0
    }

    @Test("assemble_3: the space register of BE/BLE and MTSP/MFSP")
    func assemble3() {
        #expect(F.assemble3(0xE400_8200) == 2)                           // be,l 100(sr2,r0)
        #expect(F.spaceRegister3(0x0001_7820) == 5)                      // mtsp r1,sr5
        #expect(F.spaceRegister3(0x0000_64A2) == 5)                      // mfsp sr5,rp
        #expect(F.spaceRegister3(0x0483_22A0) == 4)                      // fic,m r3(sr4,r4)
    }

    @Test("im5 (short loads at bits 11..15, short stores at 27..31), im11, im14")
    func immediates() {
        #expect(F.im5At11(0x0FD9_1098) == UInt32(bitPattern: -4))        // ldw -4(sp),r24
        #expect(F.im5At11(0x8C26_2010) == 3)                             // cmpib,<> 3,r1
        #expect(F.im5At27(0x0C85_32B9) == UInt32(bitPattern: -4))        // stw,mb r5,-4(r4)
        #expect(F.im5At27(0x0C41_12A8) == 4)                             // stw,ma r1,4(rp)
        #expect(F.im11(0xB422_47F1) == UInt32(bitPattern: -8))           // addi,< -8,r1,rp
        #expect(F.im11(0x9422_0014) == 10)                               // subi a,r1,rp
        #expect(F.im14(0x37DE_3FFF) == UInt32(bitPattern: -1))           // ldo -1(sp),sp
        #expect(F.im14(0x3403_0018) == 12)                               // ldi c,r3
    }

    @Test("register, condition and extension fields")
    func fields() {
        let cmpb: UInt32 = 0x81AC_4012                                   // cmpb,<,n r12,r13,...
        #expect(F.majorOpcode(cmpb) == 0x20)
        #expect(F.field11(cmpb) == 12)
        #expect(F.field6(cmpb) == 13)
        #expect(F.condition(cmpb) == 2)
        #expect(F.nullify(cmpb))
        let cmpclr: UInt32 = 0x0841_5880                                 // cmpclr,>= r1,rp,r0
        #expect(F.ext6(cmpclr) == 0x22)
        #expect(F.condition(cmpclr) == 2)
        #expect(F.negate(cmpclr))
        #expect(F.field27(0x0841_0403) == 3)                             // sub r1,rp,r3
        #expect(F.ext8System(0x0001_1840) == 0xC2)                       // mtctl r1,rctr
        #expect(F.ext4Memory(0x0C41_12A8) == 10)                         // stw,ma (STWS)
        #expect(F.space2(0x0C83_2085) == 0)                              // ldw,s r3(r4),r5
        let extrw: UInt32 = 0xD0E8_1AF8                                  // extrw,u r7,23,8,r8
        #expect(F.ext3Shift(extrw) == 6)
        #expect(F.position(extrw) == 23)
        #expect(F.length(extrw) == 8)
        #expect(F.ext3Branch(0xE840_C002) == 6)                          // bv,n r0(rp)
        #expect(F.systemMaskImmediate(0x0010_0D61) == 0x10)              // ssm 10,r1
        #expect(F.diagImmediate(0x1400_0100) == 0x100)                   // diag 100
    }

    @Test("mnemonics for messages")
    func mnemonics() {
        #expect(InstructionNames.mnemonic(0x0C90_1085) == "LDWS")
        #expect(InstructionNames.mnemonic(0x0C83_2085) == "LDWX")
        #expect(InstructionNames.mnemonic(0x0841_0E03) == "ADDO")
        #expect(InstructionNames.mnemonic(0xB000_3002) == "ADDIT")
        #expect(InstructionNames.mnemonic(0xE840_C002) == "BV")
        #expect(InstructionNames.mnemonic(0x27C1_1016) == "FLDW/FSTW (coprocessor)")
        #expect(InstructionNames.mnemonic(0x1C00_0000) == nil)
    }
}
