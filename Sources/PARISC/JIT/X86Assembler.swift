/// An x86-64 general-purpose register (the encoding number is the raw value).
enum HostRegister: UInt8, CaseIterable, Sendable {
    case rax = 0, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15

    /// The low three bits that go into ModRM/SIB/opcode.
    var low: UInt8 { rawValue & 7 }
    /// Whether the register needs a REX extension bit (r8-r15).
    var extended: Bool { rawValue >= 8 }
    /// Whether its 8-bit form needs an empty REX prefix (spl, bpl, sil, dil instead of ah ... bh).
    var needsREXForByte: Bool { rawValue >= 4 && rawValue < 8 }
}

/// A memory operand: `[base + index * scale + displacement]`.
struct HostMemory: Sendable {
    var base: HostRegister
    var index: HostRegister?
    /// 1, 2, 4 or 8.
    var scale: UInt8 = 1
    var displacement: Int32

    init(_ base: HostRegister, _ displacement: Int32 = 0) {
        self.base = base
        self.displacement = displacement
    }

    init(_ base: HostRegister, index: HostRegister, scale: UInt8 = 1, _ displacement: Int32 = 0) {
        precondition(index != .rsp, "rsp cannot be an index register")
        self.base = base
        self.index = index
        self.scale = scale
        self.displacement = displacement
    }
}

/// x86 condition codes (the low nibble of Jcc/SETcc/CMOVcc); `negated` flips the test.
enum HostCondition: UInt8, Sendable {
    case overflow = 0x0, noOverflow = 0x1
    case below = 0x2, aboveOrEqual = 0x3          // CF = 1 / CF = 0
    case equal = 0x4, notEqual = 0x5              // ZF
    case belowOrEqual = 0x6, above = 0x7          // CF | ZF
    case sign = 0x8, notSign = 0x9
    case parity = 0xA, noParity = 0xB
    case less = 0xC, greaterOrEqual = 0xD         // SF != OF
    case lessOrEqual = 0xE, greater = 0xF         // ZF | SF != OF

    var negated: HostCondition { HostCondition(rawValue: rawValue ^ 1)! }
}

/// A position in the code being assembled that jumps can target before it is bound.
struct HostLabel: Hashable, Sendable {
    let id: Int
}

/// A small x86-64 assembler for the JIT: the instructions the translator needs, encoded into a
/// byte array with 32-bit jump displacements resolved when their labels are bound. Pure data:
/// nothing here touches executable memory (that is `ExecutableMemory`).
///
/// Operand size is 32 bits unless the name says 64 or 8/16. Immediates use the short (8-bit)
/// form when they fit, and `eax` forms where they exist, as GNU as does, so encodings can be
/// compared with the assembler's in tests.
struct X86Assembler {
    private(set) var bytes: [UInt8] = []
    /// Where in the executable region these bytes will be placed (for absolute jump targets).
    var origin = 0
    private var labelOffsets: [Int?] = []
    /// (offset of the rel32 field, label): patched by `finish`.
    private var fixups: [(at: Int, label: HostLabel)] = []

    init() {
        bytes.reserveCapacity(4096)
    }

    var offset: Int { bytes.count }

    // MARK: Labels

    mutating func newLabel() -> HostLabel {
        labelOffsets.append(nil)
        return HostLabel(id: labelOffsets.count - 1)
    }

    mutating func bind(_ label: HostLabel) {
        precondition(labelOffsets[label.id] == nil, "label bound twice")
        labelOffsets[label.id] = bytes.count
    }

    func isBound(_ label: HostLabel) -> Bool { labelOffsets[label.id] != nil }

    /// Where `label` was bound, if it was.
    func labelOffset(_ label: HostLabel) -> Int? { labelOffsets[label.id] }

    /// Resolves every jump; every label used must be bound.
    mutating func finish() -> [UInt8] {
        for fixup in fixups {
            guard let target = labelOffsets[fixup.label.id] else {
                preconditionFailure("JIT: a jump to an unbound label")
            }
            let displacement = Int32(target - (fixup.at + 4))
            patch32(at: fixup.at, UInt32(bitPattern: displacement))
        }
        fixups.removeAll()
        return bytes
    }

    /// Overwrites 4 bytes (little-endian) at `at`.
    mutating func patch32(at: Int, _ value: UInt32) {
        for k in 0..<4 { bytes[at + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(k))) }
    }

    // MARK: Encoding helpers

    private mutating func emit(_ byte: UInt8) { bytes.append(byte) }

    private mutating func emit32(_ value: UInt32) {
        bytes.append(UInt8(truncatingIfNeeded: value))
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value >> 16))
        bytes.append(UInt8(truncatingIfNeeded: value >> 24))
    }

    /// A REX prefix if any bit is needed (or `force`, for sil/dil/bpl/spl).
    private mutating func rex(w: Bool = false, r: Bool = false, x: Bool = false, b: Bool = false,
                              force: Bool = false)
    {
        let value: UInt8 = 0x40 | (w ? 8 : 0) | (r ? 4 : 0) | (x ? 2 : 0) | (b ? 1 : 0)
        if value != 0x40 || force { emit(value) }
    }

    /// ModRM for a register-direct operand.
    private mutating func modRM(reg: UInt8, rm: HostRegister) {
        emit(0xC0 | (reg & 7) << 3 | rm.low)
    }

    /// ModRM (+ SIB + displacement) for a memory operand.
    private mutating func modRM(reg: UInt8, _ m: HostMemory) {
        let mod: UInt8
        if m.displacement == 0 && m.base.low != 5 {
            mod = 0
        } else if Int8(exactly: m.displacement) != nil {
            mod = 1
        } else {
            mod = 2
        }
        if let index = m.index {
            emit(mod << 6 | (reg & 7) << 3 | 4)
            let scaleBits: UInt8 = switch m.scale { case 1: 0; case 2: 1; case 4: 2; default: 3 }
            emit(scaleBits << 6 | index.low << 3 | m.base.low)
        } else if m.base.low == 4 {
            emit(mod << 6 | (reg & 7) << 3 | 4)
            emit(0x24)                                   // no index, base rsp/r12
        } else {
            emit(mod << 6 | (reg & 7) << 3 | m.base.low)
        }
        if mod == 1 {
            emit(UInt8(bitPattern: Int8(m.displacement)))
        } else if mod == 2 {
            emit32(UInt32(bitPattern: m.displacement))
        }
    }

    /// `opcode reg, r/m(register)` with REX as needed.
    private mutating func op(_ opcode: [UInt8], reg: UInt8, rm: HostRegister, w: Bool = false,
                             byteRegisters: [HostRegister] = [])
    {
        rex(w: w, r: reg & 8 != 0, b: rm.extended,
            force: byteRegisters.contains { $0.needsREXForByte })
        bytes += opcode
        modRM(reg: reg, rm: rm)
    }

    /// `opcode reg, r/m(memory)` with REX as needed.
    private mutating func op(_ opcode: [UInt8], reg: UInt8, _ m: HostMemory, w: Bool = false,
                             forceREX: Bool = false)
    {
        rex(w: w, r: reg & 8 != 0, x: m.index?.extended ?? false, b: m.base.extended, force: forceREX)
        bytes += opcode
        modRM(reg: reg, m)
    }

    // MARK: Moves

    /// mov r32, r32
    mutating func mov(_ dst: HostRegister, _ src: HostRegister) {
        op([0x89], reg: src.rawValue, rm: dst)
    }

    /// mov r32, [m]
    mutating func mov(_ dst: HostRegister, _ m: HostMemory) {
        op([0x8B], reg: dst.rawValue, m)
    }

    /// mov [m], r32
    mutating func mov(_ m: HostMemory, _ src: HostRegister) {
        op([0x89], reg: src.rawValue, m)
    }

    /// mov r32, imm32 (xor r32, r32 is not used for 0: it would change the flags).
    mutating func mov(_ dst: HostRegister, imm: UInt32) {
        rex(b: dst.extended)
        emit(0xB8 + dst.low)
        emit32(imm)
    }

    /// mov dword [m], imm32
    mutating func mov(_ m: HostMemory, imm: UInt32) {
        op([0xC7], reg: 0, m)
        emit32(imm)
    }

    /// mov r64, [m]
    mutating func mov64(_ dst: HostRegister, _ m: HostMemory) {
        op([0x8B], reg: dst.rawValue, m, w: true)
    }

    /// mov [m], r64
    mutating func mov64(_ m: HostMemory, _ src: HostRegister) {
        op([0x89], reg: src.rawValue, m, w: true)
    }

    /// mov r64, r64
    mutating func mov64(_ dst: HostRegister, _ src: HostRegister) {
        op([0x89], reg: src.rawValue, rm: dst, w: true)
    }

    /// mov byte [m], r8
    mutating func mov8(_ m: HostMemory, _ src: HostRegister) {
        op([0x88], reg: src.rawValue, m, forceREX: src.needsREXForByte)
    }

    /// mov byte [m], imm8
    mutating func mov8(_ m: HostMemory, imm: UInt8) {
        op([0xC6], reg: 0, m)
        emit(imm)
    }

    /// mov word [m], r16
    mutating func mov16(_ m: HostMemory, _ src: HostRegister) {
        emit(0x66)
        op([0x89], reg: src.rawValue, m)
    }

    /// movzx r32, byte [m]
    mutating func movzx8(_ dst: HostRegister, _ m: HostMemory) {
        op([0x0F, 0xB6], reg: dst.rawValue, m)
    }

    /// movzx r32, r8
    mutating func movzx8(_ dst: HostRegister, _ src: HostRegister) {
        op([0x0F, 0xB6], reg: dst.rawValue, rm: src, byteRegisters: [src])
    }

    /// movzx r32, word [m]
    mutating func movzx16(_ dst: HostRegister, _ m: HostMemory) {
        op([0x0F, 0xB7], reg: dst.rawValue, m)
    }

    /// lea r32, [m]
    mutating func lea(_ dst: HostRegister, _ m: HostMemory) {
        op([0x8D], reg: dst.rawValue, m)
    }

    // MARK: Arithmetic and logic

    /// The eight classic ALU operations (their /digit and opcode row).
    enum ALU: UInt8 {
        case add = 0, or = 1, adc = 2, sbb = 3, and = 4, sub = 5, xor = 6, cmp = 7
    }

    /// op r32, r32
    mutating func alu(_ operation: ALU, _ dst: HostRegister, _ src: HostRegister) {
        op([operation.rawValue << 3 | 1], reg: src.rawValue, rm: dst)
    }

    /// op r32, [m]
    mutating func alu(_ operation: ALU, _ dst: HostRegister, _ m: HostMemory) {
        op([operation.rawValue << 3 | 3], reg: dst.rawValue, m)
    }

    /// op r32, imm32 (the imm8 form when it fits; the eax form otherwise).
    mutating func alu(_ operation: ALU, _ dst: HostRegister, imm: UInt32) {
        if let small = Int8(exactly: Int32(bitPattern: imm)) {
            op([0x83], reg: operation.rawValue, rm: dst)
            emit(UInt8(bitPattern: small))
        } else if dst == .rax {
            emit(operation.rawValue << 3 | 5)
            emit32(imm)
        } else {
            op([0x81], reg: operation.rawValue, rm: dst)
            emit32(imm)
        }
    }

    /// op dword [m], imm32
    mutating func alu(_ operation: ALU, _ m: HostMemory, imm: UInt32) {
        if let small = Int8(exactly: Int32(bitPattern: imm)) {
            op([0x83], reg: operation.rawValue, m)
            emit(UInt8(bitPattern: small))
        } else {
            op([0x81], reg: operation.rawValue, m)
            emit32(imm)
        }
    }

    /// op r64, imm32 (sign-extended)
    mutating func alu64(_ operation: ALU, _ dst: HostRegister, imm: Int32) {
        if let small = Int8(exactly: imm) {
            op([0x83], reg: operation.rawValue, rm: dst, w: true)
            emit(UInt8(bitPattern: small))
        } else if dst == .rax {
            rex(w: true)
            emit(operation.rawValue << 3 | 5)
            emit32(UInt32(bitPattern: imm))
        } else {
            op([0x81], reg: operation.rawValue, rm: dst, w: true)
            emit32(UInt32(bitPattern: imm))
        }
    }

    /// op r64, [m]
    mutating func alu64(_ operation: ALU, _ dst: HostRegister, _ m: HostMemory) {
        op([operation.rawValue << 3 | 3], reg: dst.rawValue, m, w: true)
    }

    /// cmp byte [m], imm8
    mutating func cmp8(_ m: HostMemory, imm: UInt8) {
        op([0x80], reg: ALU.cmp.rawValue, m)
        emit(imm)
    }

    /// or r8, r8
    mutating func or8(_ dst: HostRegister, _ src: HostRegister) {
        op([0x08], reg: src.rawValue, rm: dst, byteRegisters: [src, dst])
    }

    /// xor r8, r8
    mutating func xor8(_ dst: HostRegister, _ src: HostRegister) {
        op([0x30], reg: src.rawValue, rm: dst, byteRegisters: [src, dst])
    }

    /// and r8, r8
    mutating func and8(_ dst: HostRegister, _ src: HostRegister) {
        op([0x20], reg: src.rawValue, rm: dst, byteRegisters: [src, dst])
    }

    /// test r32, r32
    mutating func test(_ a: HostRegister, _ b: HostRegister) {
        op([0x85], reg: b.rawValue, rm: a)
    }

    /// test r32, imm32 (the eax form, or the 8-bit form for an 8-bit mask of eax/ecx/edx/ebx).
    mutating func test(_ a: HostRegister, imm: UInt32) {
        if imm <= 0xFF && a.rawValue < 4 {
            if a == .rax {
                emit(0xA8)
            } else {
                emit(0xF6)
                modRM(reg: 0, rm: a)
            }
            emit(UInt8(imm))
        } else if a == .rax {
            emit(0xA9)
            emit32(imm)
        } else {
            op([0xF7], reg: 0, rm: a)
            emit32(imm)
        }
    }

    /// test r8, r8
    mutating func test8(_ a: HostRegister, _ b: HostRegister) {
        op([0x84], reg: b.rawValue, rm: a, byteRegisters: [a, b])
    }

    /// neg r32
    mutating func neg(_ r: HostRegister) { op([0xF7], reg: 3, rm: r) }

    /// not r32
    mutating func not(_ r: HostRegister) { op([0xF7], reg: 2, rm: r) }

    /// bswap r32
    mutating func bswap(_ r: HostRegister) {
        rex(b: r.extended)
        emit(0x0F)
        emit(0xC8 + r.low)
    }

    /// bt r32, imm8
    mutating func bt(_ r: HostRegister, bit: UInt8) {
        op([0x0F, 0xBA], reg: 4, rm: r)
        emit(bit)
    }

    // MARK: Shifts

    enum Shift: UInt8 {
        case rol = 0, ror = 1, shl = 4, shr = 5, sar = 7
    }

    /// shift r32, imm8 (imm 1 uses the D1 form, as GNU as does).
    mutating func shift(_ kind: Shift, _ r: HostRegister, by amount: UInt8) {
        if amount == 1 {
            op([0xD1], reg: kind.rawValue, rm: r)
        } else {
            op([0xC1], reg: kind.rawValue, rm: r)
            emit(amount)
        }
    }

    /// shift r32, cl
    mutating func shiftByCL(_ kind: Shift, _ r: HostRegister) {
        op([0xD3], reg: kind.rawValue, rm: r)
    }

    /// rol r16, 8 (swaps the bytes of a halfword).
    mutating func swapHalfword(_ r: HostRegister) {
        emit(0x66)
        op([0xC1], reg: Shift.rol.rawValue, rm: r)
        emit(8)
    }

    /// shrd dst, src, imm8: dst = low 32 bits of (src:dst) >> imm.
    mutating func shrd(_ dst: HostRegister, _ src: HostRegister, by amount: UInt8) {
        op([0x0F, 0xAC], reg: src.rawValue, rm: dst)
        emit(amount)
    }

    /// shrd dst, src, cl
    mutating func shrdByCL(_ dst: HostRegister, _ src: HostRegister) {
        op([0x0F, 0xAD], reg: src.rawValue, rm: dst)
    }

    // MARK: Flags to values

    /// setcc r8
    mutating func set(_ condition: HostCondition, _ r: HostRegister) {
        op([0x0F, 0x90 | condition.rawValue], reg: 0, rm: r, byteRegisters: [r])
    }

    /// setcc byte [m]
    mutating func set(_ condition: HostCondition, _ m: HostMemory) {
        op([0x0F, 0x90 | condition.rawValue], reg: 0, m)
    }

    /// cmovcc r32, r32
    mutating func cmov(_ condition: HostCondition, _ dst: HostRegister, _ src: HostRegister) {
        op([0x0F, 0x40 | condition.rawValue], reg: dst.rawValue, rm: src)
    }

    // MARK: Control flow

    /// jcc rel32 to `label`.
    mutating func jump(if condition: HostCondition, to label: HostLabel) {
        emit(0x0F)
        emit(0x80 | condition.rawValue)
        fixups.append((at: bytes.count, label: label))
        emit32(0)
    }

    /// jmp rel32 to `label`.
    mutating func jump(to label: HostLabel) {
        emit(0xE9)
        fixups.append((at: bytes.count, label: label))
        emit32(0)
    }

    /// jmp qword [m]
    mutating func jump(through m: HostMemory) {
        op([0xFF], reg: 4, m)
    }

    /// jmp r64
    mutating func jump(to r: HostRegister) {
        op([0xFF], reg: 4, rm: r)
    }

    mutating func push(_ r: HostRegister) {
        rex(b: r.extended)
        emit(0x50 + r.low)
    }

    mutating func pop(_ r: HostRegister) {
        rex(b: r.extended)
        emit(0x58 + r.low)
    }

    mutating func ret() { emit(0xC3) }

    /// Raw bytes (for tests and fixed sequences).
    mutating func raw(_ data: [UInt8]) { bytes += data }

    /// bt dword [m], imm8 (use `bt(_:bit:)`).
    fileprivate mutating func btMemory(_ m: HostMemory, bit: UInt8) {
        op([0x0F, 0xBA], reg: 4, m)
        emit(bit)
    }

    /// cmp r64, imm32 with a zero immediate to patch.
    fileprivate mutating func cmp64Wide(_ r: HostRegister) {
        op([0x81], reg: ALU.cmp.rawValue, rm: r, w: true)
        emit32(0)
    }
}

extension X86Assembler {
    /// cmc: complements CF (the other flags stay).
    mutating func complementCarry() { raw([0xF5]) }

    /// bt dword [m], imm8
    mutating func bt(_ m: HostMemory, bit: UInt8) {
        raw(Self.encode { $0.btMemory(m, bit: bit) })
    }

    /// cmp r64, imm32 always in the 4-byte immediate form; returns the immediate's offset so it
    /// can be patched.
    mutating func cmp64Patchable(_ r: HostRegister) -> Int {
        raw(Self.encode { $0.cmp64Wide(r) })
        return offset - 4
    }

    /// jmp rel32 to an absolute offset in the executable region (the assembler's `origin` is
    /// where these bytes will be placed).
    mutating func jump(toOffset target: Int) {
        raw([0xE9, 0, 0, 0, 0])
        patch32(at: offset - 4, UInt32(bitPattern: Int32(target - (origin + offset))))
    }

    /// jcc rel32 to an absolute offset in the executable region.
    mutating func jump(if condition: HostCondition, toOffset target: Int) {
        raw([0x0F, 0x80 | condition.rawValue, 0, 0, 0, 0])
        patch32(at: offset - 4, UInt32(bitPattern: Int32(target - (origin + offset))))
    }

    private static func encode(_ body: (inout X86Assembler) -> Void) -> [UInt8] {
        var a = X86Assembler()
        body(&a)
        return a.bytes
    }
}
