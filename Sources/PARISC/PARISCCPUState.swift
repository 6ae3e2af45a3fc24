/// The architectural state of the PA-RISC 1.1 CPU as one flat value: general, space, control and
/// shadow registers, the instruction address queues and the PSW.
///
/// The interpreter works on a copy of this struct held in a local variable for the duration of
/// `PARISCCPU.run`, so the hot loop never touches a class property.
public struct PARISCCPUState: Sendable {
    /// General registers 0...31, plus slot 32 where the decoder sends writes to GR0 (so GR0 always
    /// reads zero without a check), padded to 256 so that an 8-bit index never needs a bounds check.
    @usableFromInline var registers = InlineArray<256, UInt32>(repeating: 0)
    /// Space registers SR0...SR7 (stored; addressing is flat).
    @usableFromInline var spaceRegisters = InlineArray<8, UInt32>(repeating: 0)
    /// Control registers CR0...CR31 as stored values. CR0 (recovery counter) is kept in
    /// `recoveryCounter` while PSW R = 1; CR16 here is the interval timer comparator; CR23 (EIRR)
    /// lives in the shared interrupt state; CR17/CR18 here are the front of the IIA queues.
    @usableFromInline var controlRegisters = InlineArray<32, UInt32>(repeating: 0)
    /// Shadow registers SHR0...SHR6: copies of GR1, 8, 9, 16, 17, 24, 25 at interruption.
    @usableFromInline var shadowRegisters = InlineArray<7, UInt32>(repeating: 0)

    /// IAOQ front: the offset of the current instruction; the low 2 bits are its privilege level.
    public var iaoqFront: UInt32 = 0
    /// IAOQ back: the offset of the instruction after it (a branch target after a taken branch).
    public var iaoqBack: UInt32 = 4
    /// IASQ front and back (space identifiers; stored, not used for addressing).
    public var iasqFront: UInt32 = 0
    public var iasqBack: UInt32 = 0
    /// IIAOQ back and IIASQ back (the fronts are CR18 and CR17).
    public var iiaoqBack: UInt32 = 0
    public var iiasqBack: UInt32 = 0

    /// PSW bits other than N, V and C/B, which live in the fields below.
    public var pswOther: UInt32 = 0
    /// PSW N: the next instruction is nullified.
    public var nullifyNext = false
    /// PSW V: the divide-step correction bit.
    public var divideStepV = false
    /// The carry into each bit position of the last carry-producing operation (`a ^ b ^ sum`);
    /// with `carryOut` it determines the eight PSW C/B nibble carries.
    @usableFromInline var carryVector: UInt32 = 0
    /// The carry out of bit 0 (the word carry, PSW C/B bit 7), 0 or 1.
    @usableFromInline var carryOut: UInt32 = 0

    /// The recovery counter value at `recoveryCounterBase` progress, while PSW R = 1; CR0 itself
    /// while PSW R = 0.
    @usableFromInline var recoveryCounter: UInt32 = 0
    /// The progress count at which `recoveryCounter` was valid (PSW R = 1 only).
    @usableFromInline var recoveryCounterBase: UInt64 = 0

    public init() {}

    /// General register `index` (0...31). GR0 always reads 0; writes to it are ignored.
    public subscript(gr index: Int) -> UInt32 {
        get { registers[index & 31] }
        set { if index & 31 != 0 { registers[index & 31] = newValue } }
    }

    /// Space register `index` (0...7).
    public subscript(sr index: Int) -> UInt32 {
        get { spaceRegisters[index & 7] }
        set { spaceRegisters[index & 7] = newValue }
    }

    /// Shadow register `index` (0...6).
    public subscript(shadow index: Int) -> UInt32 {
        get { shadowRegisters[index % 7] }
        set { shadowRegisters[index % 7] = newValue }
    }

    /// The stored value of control register `index` (0...31), without side effects. CR0 reads
    /// as the value at `progress` (see `recoveryCounter(atProgress:)`); CR16 is the comparator.
    public subscript(cr index: Int) -> UInt32 {
        get { controlRegisters[index & 31] }
        set { controlRegisters[index & 31] = newValue }
    }

    /// The full PSW, with N, V and the eight carry/borrow bits folded in.
    public var psw: UInt32 {
        get {
            var value = pswOther & ~(PSW.n | PSW.v | PSW.carryBorrow)
            if nullifyNext { value |= PSW.n }
            if divideStepV { value |= PSW.v }
            return value | carryBorrowBits << 8
        }
        set {
            pswOther = newValue & ~(PSW.n | PSW.v | PSW.carryBorrow)
            nullifyNext = newValue & PSW.n != 0
            divideStepV = newValue & PSW.v != 0
            let cb = (newValue >> 8) & 0xFF
            var vector: UInt32 = 0
            for k in 0..<7 where cb & (1 << UInt32(k)) != 0 { vector |= 1 << UInt32(4 * k + 4) }
            carryVector = vector
            carryOut = cb >> 7
        }
    }

    /// PSW C/B as an 8-bit value: bit k is the carry out of nibble k (k = 0 least significant).
    public var carryBorrowBits: UInt32 {
        var bits = carryOut << 7
        for k in 0..<7 { bits |= ((carryVector >> UInt32(4 * k + 4)) & 1) << UInt32(k) }
        return bits
    }

    /// The current privilege level (0 most privileged ... 3), from the low bits of IAOQ front.
    public var privilegeLevel: UInt32 { iaoqFront & 3 }

    /// CR0 as the guest would read it after `progress` counted instructions.
    public func recoveryCounter(atProgress progress: UInt64) -> UInt32 {
        guard pswOther & PSW.r != 0 else { return recoveryCounter }
        return recoveryCounter &- UInt32(truncatingIfNeeded: progress &- recoveryCounterBase)
    }
}
