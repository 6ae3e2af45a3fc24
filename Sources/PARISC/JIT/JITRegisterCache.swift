/// A guest register as an x86 operand.
enum JITOperand {
    case register(HostRegister)
    case memory(HostMemory)
    /// GR0.
    case zero
}

/// Where the generated code finds the CPU state: byte offsets into `PARISCCPUState` (rbx points
/// at it during a call), taken from the compiler's layout, not assumed.
enum StateLayout {
    static let registers = offset(\.registers)
    static let controlRegisters = offset(\.controlRegisters)
    static let carryVector = offset(\.carryVector)
    static let carryOut = offset(\.carryOut)
    static let nullifyNext = offset(\.nullifyNext)
    static let divideStepV = offset(\.divideStepV)
    static let iaoqFront = offset(\.iaoqFront)
    static let iaoqBack = offset(\.iaoqBack)

    /// General register `index` (0...32; 32 is the discard slot).
    static func gr(_ index: UInt8) -> HostMemory { HostMemory(.rbx, registers + 4 * Int32(index)) }
    /// Control register `index`.
    static func cr(_ index: Int) -> HostMemory { HostMemory(.rbx, controlRegisters + 4 * Int32(index)) }
    static var sar: HostMemory { cr(11) }
    static var front: HostMemory { HostMemory(.rbx, iaoqFront) }
    static var back: HostMemory { HostMemory(.rbx, iaoqBack) }
    static var carryVectorField: HostMemory { HostMemory(.rbx, carryVector) }
    static var carryOutField: HostMemory { HostMemory(.rbx, carryOut) }
    static var nullifyField: HostMemory { HostMemory(.rbx, nullifyNext) }
    static var divideStepVField: HostMemory { HostMemory(.rbx, divideStepV) }

    private static func offset<T>(_ path: KeyPath<PARISCCPUState, T>) -> Int32 {
        guard let offset = MemoryLayout<PARISCCPUState>.offset(of: path) else {
            preconditionFailure("JIT: a CPU state field is not stored inline")
        }
        return Int32(offset)
    }
}

/// Guest general registers held in host registers inside one translated block: loaded on first
/// read, written back lazily (at exits and evictions). Reads and writes of one guest instruction
/// are pinned so that allocating one operand never evicts another.
///
/// Host register roles in generated code: rbx = CPU state, r12 = RAM, r13 = budget left,
/// r14 = JIT data area; rax, rcx, rdx = scratch; the eight below cache guest registers.
struct JITRegisterCache {
    static let hosts: [HostRegister] = [.rsi, .rdi, .r8, .r9, .r10, .r11, .rbp, .r15]

    /// For each host slot, the guest register it holds (or -1).
    private(set) var guestOf: [Int8] = Array(repeating: -1, count: hosts.count)
    /// For each guest register 0...32, its host slot (or -1).
    private var slotOf: [Int8] = Array(repeating: -1, count: 33)
    /// Slots whose value is newer than the state's.
    private(set) var dirty: UInt8 = 0
    private var pinned: UInt8 = 0
    private var lastUse: [UInt32] = Array(repeating: 0, count: hosts.count)
    private var clock: UInt32 = 0
    /// While set, no register may be loaded or evicted (the code being emitted may be skipped,
    /// and both ways must leave the same cache state).
    var frozen = false

    /// Ends the current guest instruction: its registers may be evicted again.
    mutating func unpinAll() { pinned = 0 }

    /// Whether guest register `g` is in a host register now.
    func isCached(_ g: UInt8) -> Bool { slotOf[Int(g)] >= 0 }

    /// Guest register `g` as an operand: its host register if cached (pinned for this
    /// instruction), else its place in the state (no register is allocated); GR0 reads 0.
    mutating func operand(_ g: UInt8) -> JITOperand {
        guard g != 0 && g < 32 else { return .zero }
        if let slot = slot(of: g) { return .register(touch(slot)) }
        return .memory(StateLayout.gr(g))
    }

    /// The host register holding guest register `g` (loaded if needed); nil for GR0, which reads 0.
    mutating func read(_ g: UInt8, _ a: inout X86Assembler) -> HostRegister? {
        guard g != 0 && g < 32 else { return nil }
        if let slot = slot(of: g) { return touch(slot) }
        let slot = allocate(&a)
        a.mov(Self.hosts[slot], StateLayout.gr(g))
        bind(g, to: slot)
        return touch(slot)
    }

    /// The host register to write guest register `g` into (not loaded: the caller overwrites it);
    /// nil for GR0 and the discard slot 32.
    mutating func write(_ g: UInt8, _ a: inout X86Assembler) -> HostRegister? {
        guard g != 0 && g < 32 else { return nil }
        let slot = slot(of: g) ?? {
            let s = allocate(&a)
            bind(g, to: s)
            return s
        }()
        dirty |= 1 << UInt8(slot)
        return touch(slot)
    }

    /// Makes `g` cached and dirty with its current value (for an instruction that may be
    /// nullified: both paths then leave the same cache state).
    mutating func prepareWrite(_ g: UInt8, _ a: inout X86Assembler) {
        guard read(g, &a) != nil, let slot = slot(of: g) else { return }
        dirty |= 1 << UInt8(slot)
    }

    /// Stores every dirty register (the mapping stays; the values are now clean).
    mutating func writeBack(_ a: inout X86Assembler) {
        Self.emitWriteBack(of: self, &a)
        dirty = 0
    }

    /// The stores that make the state current for the cache state `snapshot`.
    static func emitWriteBack(of snapshot: JITRegisterCache, _ a: inout X86Assembler) {
        for slot in 0..<hosts.count where snapshot.dirty & (1 << UInt8(slot)) != 0 {
            a.mov(StateLayout.gr(UInt8(snapshot.guestOf[slot])), hosts[slot])
        }
    }

    /// Writes back and forgets every mapping.
    mutating func flush(_ a: inout X86Assembler) {
        writeBack(&a)
        self = JITRegisterCache()
    }

    // MARK: Slots

    private func slot(of g: UInt8) -> Int? {
        let s = slotOf[Int(g)]
        return s >= 0 ? Int(s) : nil
    }

    private mutating func touch(_ slot: Int) -> HostRegister {
        clock &+= 1
        lastUse[slot] = clock
        pinned |= 1 << UInt8(slot)
        return Self.hosts[slot]
    }

    private mutating func bind(_ g: UInt8, to slot: Int) {
        guestOf[slot] = Int8(g)
        slotOf[Int(g)] = Int8(slot)
    }

    /// A free slot, or the least recently used unpinned one (written back if dirty).
    private mutating func allocate(_ a: inout X86Assembler) -> Int {
        precondition(!frozen, "JIT: a nullifiable instruction used a register it did not prepare")
        if let free = guestOf.firstIndex(of: -1) { return free }
        var victim = -1
        for slot in 0..<Self.hosts.count where pinned & (1 << UInt8(slot)) == 0 {
            if victim < 0 || lastUse[slot] < lastUse[victim] { victim = slot }
        }
        precondition(victim >= 0, "JIT: more registers pinned than the cache holds")
        let g = UInt8(guestOf[victim])
        if dirty & (1 << UInt8(victim)) != 0 {
            a.mov(StateLayout.gr(g), Self.hosts[victim])
            dirty &= ~(1 << UInt8(victim))
        }
        slotOf[Int(g)] = -1
        guestOf[victim] = -1
        return victim
    }
}
