/// The bit fields of a PA-RISC 1.1 instruction word, each extracted by one named function.
///
/// The HP manual numbers bits big-endian (bit 0 is the most significant). These functions take
/// the whole 32-bit word and name the manual's field in their documentation; internally they use
/// shifts from the least significant end (bit `k` here is manual bit `31 - k`). Immediates that
/// the manual builds with `low_sign_ext` or `assemble_n` are returned already sign-extended (and,
/// for branch displacements, already multiplied by 4), as 32-bit two's-complement values.
public enum InstructionFields {
    /// The major opcode, manual bits 0..5.
    @inlinable public static func majorOpcode(_ word: UInt32) -> UInt32 { word >> 26 }

    /// The 5-bit field at manual bits 6..10 (`b`, `r2`, `t` of LDIL, `p` of BB ...).
    @inlinable public static func field6(_ word: UInt32) -> UInt8 { UInt8((word >> 21) & 31) }

    /// The 5-bit field at manual bits 11..15 (`r1`, `x`, `t` of loads, `im5` of short loads ...).
    @inlinable public static func field11(_ word: UInt32) -> UInt8 { UInt8((word >> 16) & 31) }

    /// The 5-bit field at manual bits 27..31 (`t` of arithmetic, `r`/`t` of short memory ...).
    @inlinable public static func field27(_ word: UInt32) -> UInt8 { UInt8(word & 31) }

    /// The 2-bit space field `s` at manual bits 16..17.
    @inlinable public static func space2(_ word: UInt32) -> UInt8 { UInt8((word >> 14) & 3) }

    /// The 3-bit condition `c` at manual bits 16..18.
    @inlinable public static func condition(_ word: UInt32) -> UInt8 { UInt8((word >> 13) & 7) }

    /// The negation bit `f` at manual bit 19.
    @inlinable public static func negate(_ word: UInt32) -> Bool { (word >> 12) & 1 != 0 }

    /// The nullification bit `n` of branches, manual bit 30.
    @inlinable public static func nullify(_ word: UInt32) -> Bool { (word >> 1) & 1 != 0 }

    /// `low_sign_ext(x, len)`: the sign is the least significant bit of `x`, the magnitude the
    /// `len - 1` bits above it.
    @inlinable public static func lowSignExtend(_ x: UInt32, length: Int) -> UInt32 {
        let magnitude = (x >> 1) & ((1 << UInt32(length - 1)) - 1)
        return x & 1 != 0 ? magnitude | ~((1 << UInt32(length - 1)) - 1) : magnitude
    }

    /// `sign_ext(x, len)`: ordinary two's-complement sign extension of a `len`-bit field.
    @inlinable public static func signExtend(_ x: UInt32, length: Int) -> UInt32 {
        let shift = UInt32(32 - length)
        return UInt32(bitPattern: Int32(bitPattern: x << shift) >> shift)
    }

    /// `low_sign_ext(im5, 5)` of the 5-bit field at manual bits 11..15 (COMIB, ADDIB, DEPI,
    /// short-displacement loads).
    @inlinable public static func im5At11(_ word: UInt32) -> UInt32 {
        lowSignExtend((word >> 16) & 31, length: 5)
    }

    /// `low_sign_ext(im5, 5)` of the 5-bit field at manual bits 27..31 (short-displacement
    /// stores, STBYS).
    @inlinable public static func im5At27(_ word: UInt32) -> UInt32 {
        lowSignExtend(word & 31, length: 5)
    }

    /// `low_sign_ext(im11, 11)` of manual bits 21..31 (ADDI, SUBI, COMICLR).
    @inlinable public static func im11(_ word: UInt32) -> UInt32 {
        lowSignExtend(word & 0x7FF, length: 11)
    }

    /// `low_sign_ext(im14, 14)` of manual bits 18..31 (LDO, LDW, STW, LDWM ...).
    @inlinable public static func im14(_ word: UInt32) -> UInt32 {
        lowSignExtend(word & 0x3FFF, length: 14)
    }

    /// `assemble_21(im21)` shifted left by 11: the left part of LDIL and ADDIL.
    /// assemble_21(x) = cat(x{20}, x{9..19}, x{5..6}, x{0..4}, x{7..8}).
    @inlinable public static func assemble21(_ word: UInt32) -> UInt32 {
        let sign = word & 1
        let part1 = (word >> 1) & 0x7FF        // x{9..19}
        let part2 = (word >> 14) & 3           // x{5..6}
        let part3 = (word >> 16) & 31          // x{0..4}
        let part4 = (word >> 12) & 3           // x{7..8}
        let value = sign << 20 | part1 << 9 | part2 << 7 | part3 << 2 | part4
        return value << 11
    }

    /// `assemble_12(w1, w)` sign-extended and multiplied by 4: the displacement of the
    /// conditional branches (COMB, COMIB, ADDB, ADDIB, MOVB, MOVIB, BB, BVB).
    /// assemble_12(x, y) = cat(y, x{10}, x{0..9}).
    @inlinable public static func assemble12(_ word: UInt32) -> UInt32 {
        let w = word & 1
        let w1Last = (word >> 2) & 1          // w1{10}
        let w1Rest = (word >> 3) & 0x3FF      // w1{0..9}
        let value = w << 11 | w1Last << 10 | w1Rest
        return signExtend(value, length: 12) << 2
    }

    /// `assemble_17(w1, w2, w)` sign-extended and multiplied by 4: the displacement of BL, GATE,
    /// BE and BLE. assemble_17(x, y, z) = cat(z, x, y{10}, y{0..9}).
    @inlinable public static func assemble17(_ word: UInt32) -> UInt32 {
        let w = word & 1
        let w1 = (word >> 16) & 31
        let w2Last = (word >> 2) & 1          // w2{10}
        let w2Rest = (word >> 3) & 0x3FF      // w2{0..9}
        let value = w << 16 | w1 << 11 | w2Last << 10 | w2Rest
        return signExtend(value, length: 17) << 2
    }

    /// `assemble_3(s)`: the 3-bit space register number of BE and BLE, manual bits 16..18,
    /// cat(s{2}, s{0..1}).
    @inlinable public static func assemble3(_ word: UInt32) -> UInt8 {
        let s = (word >> 13) & 7
        return UInt8((s & 1) << 2 | s >> 1)
    }

    /// The 3-bit space register number of MTSP and MFSP, manual bits 16..18 in the same order as
    /// assemble_3.
    @inlinable public static func spaceRegister3(_ word: UInt32) -> UInt8 { assemble3(word) }

    /// The 6-bit extension of arithmetic/logical instructions (opcode 0x02), manual bits 20..25.
    @inlinable public static func ext6(_ word: UInt32) -> UInt32 { (word >> 6) & 0x3F }

    /// The 8-bit extension of system instructions (opcode 0x00), manual bits 19..26.
    @inlinable public static func ext8System(_ word: UInt32) -> UInt32 { (word >> 5) & 0xFF }

    /// The 8-bit extension of memory-management instructions (opcode 0x01), manual bits 18..25
    /// (19..25 for the forms with a 3-bit space field, which the decoder handles).
    @inlinable public static func ext8Management(_ word: UInt32) -> UInt32 { (word >> 6) & 0xFF }

    /// The 4-bit extension of indexed and short memory instructions (opcode 0x03), manual bits
    /// 22..25.
    @inlinable public static func ext4Memory(_ word: UInt32) -> UInt32 { (word >> 6) & 0xF }

    /// The 3-bit extension of shift/extract/deposit (opcodes 0x34, 0x35), manual bits 19..21.
    @inlinable public static func ext3Shift(_ word: UInt32) -> UInt32 { (word >> 10) & 7 }

    /// The 3-bit extension of opcode 0x3A branches, manual bits 16..18.
    @inlinable public static func ext3Branch(_ word: UInt32) -> UInt32 { (word >> 13) & 7 }

    /// The 5-bit position or `cp` field of SHD/EXTR/DEP immediates, manual bits 22..26.
    @inlinable public static func position(_ word: UInt32) -> UInt32 { (word >> 5) & 31 }

    /// The field length of extract/deposit: `32 - clen` from manual bits 27..31.
    @inlinable public static func length(_ word: UInt32) -> UInt32 { 32 - (word & 31) }

    /// The 10-bit system mask immediate of SSM and RSM, manual bits 6..15.
    @inlinable public static func systemMaskImmediate(_ word: UInt32) -> UInt32 { (word >> 16) & 0x3FF }

    /// The 26-bit immediate of DIAG, manual bits 6..31.
    @inlinable public static func diagImmediate(_ word: UInt32) -> UInt32 { word & 0x3FF_FFFF }
}
