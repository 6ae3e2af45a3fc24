/// Which handler executes a decoded instruction. Several PA-RISC instructions share a handler
/// (their differences are in the decoded fields), and the most frequent ones have a fast variant
/// without a condition (`...NC`).
enum Operation: UInt8, Sendable {
    // Arithmetic and logical, opcode 0x02.
    case addNoCondition, addLogicalNoCondition, add, subNoCondition, sub
    case copy, orNoCondition, andNoCondition, xorNoCondition, andComplementNoCondition
    case logicalOr, logicalAnd, logicalXor, logicalAndComplement
    case compareClear, unitXor, unitAddComplement, unitAddComplementNoCondition, decimalCorrect
    case divideStep
    // Immediates.
    case loadImmediateLeft, addImmediateLeft, loadOffset
    case addImmediate, addImmediateNoCondition, subImmediate, subImmediateNoCondition
    case compareImmediateClear
    // Memory.
    case loadWord, loadHalfword, loadByte
    case storeWord, storeHalfword, storeByte
    case load, store, storeBytes, loadAndClearWord
    // Branches.
    case branchLink, branchGate, branchLinkRegister, branchVectored, branchExternal
    case compareBranch, compareImmediateBranch, addBranch, addImmediateBranch
    case moveBranch, moveImmediateBranch, branchOnBit, branchOnVariableBit
    // Shift, extract, deposit.
    case shiftDoubleVariable, shiftDouble, shiftDoubleNoCondition
    case extractUnsignedNoCondition, extractSignedNoCondition, extract, extractVariable
    case depositNoCondition, deposit, depositVariable
    // System.
    case breakInstruction, nop, returnFromInterruption, setSystemMask, resetSystemMask
    case moveToSystemMask, loadSpaceID, moveToSpace, moveFromSpace, moveToControl
    case moveFromControl, diagnose, halt, cacheOrTLB, probe, loadPhysicalAddress
    case loadCoherenceIndex
    // Not executable here.
    case illegal, coprocessor, gatewaySyscall, fetchFault
}

/// One instruction word decoded once into the fields its handler needs, cached per address.
///
/// Register fields hold read indexes (0...31, GR0 reads 0); `t` is the index to write, with GR0
/// mapped to the discard slot 32. The meaning of `condition`, `flags`, `aux` and `immediate` is
/// per operation and written next to each decoder.
struct DecodedInstruction: Sendable {
    var operation: Operation
    var r1: UInt8 = 0
    var r2: UInt8 = 0
    var t: UInt8 = 32
    var condition: UInt8 = 0
    var flags: UInt8 = 0
    var aux: UInt8 = 0
    var immediate: UInt32 = 0

    init(_ operation: Operation) { self.operation = operation }

    /// The write index for general register `index`: GR0 goes to the discard slot.
    static func target(_ index: UInt8) -> UInt8 { index == 0 ? 32 : index }

    static let illegal = DecodedInstruction(.illegal)
}

/// Bits of `DecodedInstruction.flags`.
enum DecodedFlag {
    /// Branches: `,n` (nullify).
    static let nullify: UInt8 = 0x01
    /// Adds: add the PSW carry (ADDC). Subtracts: subtract with borrow (SUBB).
    static let carryIn: UInt8 = 0x02
    /// Trap on signed overflow (the `O` forms, `,tsv`).
    static let trapOnOverflow: UInt8 = 0x04
    /// Trap if the condition is true (ADDIT, SUBT, UADDCMT, `,tc`).
    static let trapOnCondition: UInt8 = 0x08
    /// Adds: do not write the carry bits (ADDL, SHnADDL).
    static let logical: UInt8 = 0x10
    /// BE: link into GR31 and SR0 (BLE). Deposit: keep the other bits (DEP, not ZDEP).
    /// Unit add: DCOR immediate form (IDCOR).
    static let link: UInt8 = 0x20
    /// Extract/deposit: signed extract (EXTRS) / immediate source (DEPI).
    static let signed: UInt8 = 0x40
    /// Privileged instruction (checked at PL > 0).
    static let privileged: UInt8 = 0x80

    // Memory flags (load, store, storeBytes, loadAndClearWord, cacheOrTLB).
    /// Access size in bytes is 1 << (flags & sizeMask).
    static let sizeMask: UInt8 = 0x03
    /// Index register in r1 (else displacement in immediate).
    static let indexed: UInt8 = 0x04
    /// Scale the index by the access size (`,s`).
    static let scaled: UInt8 = 0x08
    /// Base modification after the access (`,ma`, indexed `,m`).
    static let modifyAfter: UInt8 = 0x10
    /// Base modification before the access (`,mb`).
    static let modifyBefore: UInt8 = 0x20
    /// STBYS: the `,e` (ending) form.
    static let endingBytes: UInt8 = 0x40
}
