/// Builds PA-RISC 1.1 instruction words from fields (the inverse of `InstructionFields`), for the
/// generated differential-test programs. Checked against hppa-linux-gnu-as in EncoderTests.
enum Encoder {
    /// `low_sign_ext` inverse: the sign in the least significant bit.
    static func lowSign(_ value: Int32, bits: Int) -> UInt32 {
        let magnitude = UInt32(bitPattern: value) & ((1 << UInt32(bits - 1)) - 1)
        return magnitude << 1 | (value < 0 ? 1 : 0)
    }

    static func r(_ register: Int) -> UInt32 { UInt32(register & 31) }

    /// Opcode 0x02: `ext6` with r1 (bits 11..15), r2 (bits 6..10), t, condition c and f.
    static func arithmetic(_ ext6: UInt32, r1: Int, r2: Int, t: Int, c: Int = 0, f: Int = 0) -> UInt32 {
        0x02 << 26 | r(r2) << 21 | r(r1) << 16 | UInt32(c & 7) << 13 | UInt32(f & 1) << 12
            | ext6 << 6 | r(t)
    }

    /// ADDI (0x2D), ADDIT (0x2C), SUBI (0x25), COMICLR (0x24): GR[t] = im11 op GR[r].
    static func immediate11(_ opcode: UInt32, r: Int, t: Int, immediate: Int32, c: Int = 0,
                            f: Int = 0, overflowTrap: Bool = false) -> UInt32
    {
        opcode << 26 | Self.r(r) << 21 | Self.r(t) << 16 | UInt32(c & 7) << 13 | UInt32(f & 1) << 12
            | (overflowTrap ? 1 << 11 : 0) | lowSign(immediate, bits: 11)
    }

    static func ldo(base: Int, t: Int, displacement: Int32) -> UInt32 {
        0x0D << 26 | r(base) << 21 | r(t) << 16 | lowSign(displacement, bits: 14)
    }

    /// The 21-bit field of LDIL/ADDIL holding `value >> 11`.
    static func assemble21Field(_ value: UInt32) -> UInt32 {
        let x = value >> 11
        return (x >> 20) & 1 | ((x >> 9) & 0x7FF) << 1 | ((x >> 7) & 3) << 14 | ((x >> 2) & 31) << 16
            | (x & 3) << 12
    }

    static func ldil(t: Int, value: UInt32) -> UInt32 { 0x08 << 26 | r(t) << 21 | assemble21Field(value) }
    static func addil(r: Int, value: UInt32) -> UInt32 {
        0x0A << 26 | Self.r(r) << 21 | assemble21Field(value)
    }

    /// Loads `value` into GR[t] (LDIL + LDO).
    static func load(_ value: UInt32, into t: Int) -> [UInt32] {
        let low = Int32(bitPattern: value << 21) >> 21          // sign-extended low 11 bits
        let high = value &- UInt32(bitPattern: low)
        return [ldil(t: t, value: high), ldo(base: t, t: t, displacement: low)]
    }

    /// Opcode 0x34: shift double and extract.
    static func shiftDoubleVariable(r1: Int, r2: Int, t: Int, c: Int) -> UInt32 {
        0x34 << 26 | r(r2) << 21 | r(r1) << 16 | UInt32(c & 7) << 13 | r(t)
    }

    static func shiftDouble(r1: Int, r2: Int, shift: Int, t: Int, c: Int) -> UInt32 {
        0x34 << 26 | r(r2) << 21 | r(r1) << 16 | UInt32(c & 7) << 13 | 2 << 10
            | UInt32(31 - shift) << 5 | r(t)
    }

    /// EXTRU/EXTRS (ext 6/7, `position` = p) or VEXTRU/VEXTRS (ext 4/5, `position` ignored).
    static func extract(ext: UInt32, r: Int, position: Int, length: Int, t: Int, c: Int) -> UInt32 {
        let p = ext >= 6 ? UInt32(position & 31) : 0
        return 0x34 << 26 | Self.r(r) << 21 | Self.r(t) << 16 | UInt32(c & 7) << 13 | ext << 10
            | p << 5 | UInt32(32 - length)
    }

    /// Opcode 0x35 (ext 0...7): `source` is a register or, for ext >= 4, an im5 value;
    /// `position` = p for the fixed forms.
    static func deposit(ext: UInt32, t: Int, source: Int32, position: Int, length: Int, c: Int) -> UInt32 {
        let sourceField = ext >= 4 ? lowSign(source, bits: 5) : r(Int(source))
        let cp = ext & 2 != 0 ? UInt32(31 - position) : 0
        return 0x35 << 26 | r(t) << 21 | sourceField << 16 | UInt32(c & 7) << 13 | ext << 10
            | cp << 5 | UInt32(32 - length)
    }

    /// The w1/w fields of a 12-bit branch displacement (`displacement` in bytes from pc + 8).
    static func assemble12Fields(_ displacement: Int32) -> UInt32 {
        let v = UInt32(bitPattern: displacement >> 2) & 0xFFF
        return (v >> 11) & 1 | ((v >> 10) & 1) << 2 | (v & 0x3FF) << 3
    }

    /// COMB/COMIB/ADDB/ADDIB/MOVB/MOVIB (`opcode`), with r1 or an im5 at bits 11..15.
    static func conditionalBranch(_ opcode: UInt32, r2: Int, r1OrImmediate: UInt32, c: Int,
                                  nullify: Bool, displacement: Int32) -> UInt32
    {
        opcode << 26 | r(r2) << 21 | (r1OrImmediate & 31) << 16 | UInt32(c & 7) << 13
            | (nullify ? 2 : 0) | assemble12Fields(displacement)
    }

    /// BB (`variable` false: bit p) or BVB.
    static func branchOnBit(r: Int, position: Int, variable: Bool, branchIfClear: Bool,
                            nullify: Bool, displacement: Int32) -> UInt32
    {
        (variable ? 0x30 : 0x31) << 26 | UInt32(variable ? 0 : position & 31) << 21 | Self.r(r) << 16
            | (branchIfClear ? 1 << 15 : 0) | 1 << 14 | (nullify ? 2 : 0) | assemble12Fields(displacement)
    }

    /// BL with a 17-bit displacement.
    static func branchLink(t: Int, displacement: Int32, nullify: Bool) -> UInt32 {
        let v = UInt32(bitPattern: displacement >> 2) & 0x1FFFF
        return 0x3A << 26 | r(t) << 21 | ((v >> 11) & 31) << 16 | ((v >> 10) & 1) << 2
            | (v & 0x3FF) << 3 | (nullify ? 2 : 0) | (v >> 16) & 1
    }

    /// Long-displacement loads/stores (LDB ... STWM): `register` is t or the value stored.
    static func memoryLong(_ opcode: UInt32, base: Int, register: Int, displacement: Int32) -> UInt32 {
        opcode << 26 | r(base) << 21 | r(register) << 16 | lowSign(displacement, bits: 14)
    }

    /// Opcode 0x03 short-displacement load (ext4 0...2): `before` selects `,mb`.
    static func shortLoad(ext4: UInt32, base: Int, displacement: Int32, t: Int, modify: Bool,
                          before: Bool) -> UInt32
    {
        0x03 << 26 | r(base) << 21 | lowSign(displacement, bits: 5) << 16 | (before ? 1 << 13 : 0)
            | 1 << 12 | ext4 << 6 | (modify ? 1 << 5 : 0) | r(t)
    }

    /// Opcode 0x03 short-displacement store (ext4 8...10, 12 = STBYS with `before` = `,e`).
    static func shortStore(ext4: UInt32, base: Int, displacement: Int32, source: Int, modify: Bool,
                           before: Bool) -> UInt32
    {
        0x03 << 26 | r(base) << 21 | r(source) << 16 | (before ? 1 << 13 : 0) | 1 << 12
            | ext4 << 6 | (modify ? 1 << 5 : 0) | lowSign(displacement, bits: 5)
    }

    /// Opcode 0x03 indexed load (ext4 0...2).
    static func indexedLoad(ext4: UInt32, base: Int, index: Int, t: Int, scaled: Bool, modify: Bool) -> UInt32 {
        0x03 << 26 | r(base) << 21 | r(index) << 16 | (scaled ? 1 << 13 : 0) | ext4 << 6
            | (modify ? 1 << 5 : 0) | r(t)
    }

    static func mtsar(_ register: Int) -> UInt32 { 11 << 21 | r(register) << 16 | 0xC2 << 5 }
    static func mfsar(_ t: Int) -> UInt32 { 11 << 21 | 0x45 << 5 | r(t) }
    static let nop: UInt32 = 0x0800_0240
    /// ble 0x100(sr2,r0) — the Linux syscall gateway.
    static let gateway: UInt32 = 0xE400_8200
}
