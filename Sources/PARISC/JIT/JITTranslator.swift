import MachineCore

/// A translated block, ready to be copied into executable memory at `origin`.
struct TranslatedBlock {
    var code: [UInt8]
    /// Offset (in `code`) of the first instruction: the budget check.
    var entry: Int
    /// The chaining slots this block's exits use, from `firstSlot` on: for each, the offset (in
    /// `code`) of the stub that reports the exit until the slot is linked.
    var slotStubs: [Int]
    /// The guest words it was made from (their lines get marked).
    var guestAddresses: [UInt32]
}

/// Translates one guest block (from a front address with a sequential queue and PSW N = 0) into
/// x86-64 code: the main path runs through forward conditional branches not taken (a superblock)
/// and ends at an unconditional branch, an instruction it does not translate, or its length
/// limit; taken branches leave through out-of-line paths. Every exit leaves the CPU state exact:
/// the registers written back, IAOQ set, the budget charged with the counted instructions of
/// the path taken.
///
/// The budget (r13) is checked at entry against the longest path and charged at each exit; a
/// nullified instruction gives its unit back. Anything the translator does not handle inline
/// (traps, device accesses, stores into translated code, system instructions) is a fallback exit
/// before the instruction, so the interpreter executes it with the state exactly as it would be.
struct JITTranslator {
    /// Longest main path (guest instructions).
    static let maximumPath = 64

    let memory: GuestMemory
    let ramLimit: UInt32
    let linuxGateway: Bool
    /// Lines whose code is run by the interpreter (written too often to translate).
    let interpretedLines: Set<UInt32>
    /// Where the shared epilogue and jump-cache miss stub are in the executable region.
    let epilogue: Int
    let missStub: Int
    /// The first chaining slot this block may use.
    let firstSlot: Int

    var a = X86Assembler()
    var cache = JITRegisterCache()
    /// The longest path's instruction count (patched into the entry check).
    var longestPath = 0
    var slotStubs: [HostLabel] = []
    var slotTargets: [UInt32] = []
    var guestAddresses: [UInt32] = []
    /// Out-of-line code emitted after the main path.
    var deferred: [Deferred] = []

    /// Code placed after the main path: taken branches, exits, nullification give-backs.
    struct Deferred {
        let label: HostLabel
        let cache: JITRegisterCache
        let kind: Kind

        enum Kind {
            /// A taken conditional branch: its delay slot (unless nullified), then the target.
            case taken(delaySlot: UInt32, executeDelaySlot: Bool, target: UInt32, count: Int)
            /// Interpret the instruction at `front` (the state exact before it; with `nullify`,
            /// PSW N set: it is the nullified instruction the budget ended before).
            case fallback(front: UInt32, back: Back, count: Int, nullify: Bool)
            /// A nullified instruction: give its budget unit back and continue at `join`.
            case skip(join: HostLabel)
        }
    }

    /// The IAOQ back of an instruction: known, or already stored in the state (BV, BLR).
    enum Back {
        case known(UInt32)
        case stored
    }

    init(memory: GuestMemory, linuxGateway: Bool, interpretedLines: Set<UInt32>, origin: Int,
         epilogue: Int, missStub: Int, firstSlot: Int)
    {
        self.memory = memory
        ramLimit = memory.emulatorLimit & ~3
        self.linuxGateway = linuxGateway
        self.interpretedLines = interpretedLines
        self.epilogue = epilogue
        self.missStub = missStub
        self.firstSlot = firstSlot
        a.origin = origin
    }

    // MARK: The block

    /// Translates the block at `front`, or returns nil if its first instruction cannot be
    /// translated (the interpreter runs it).
    mutating func translate(front start: UInt32) -> TranslatedBlock? {
        guard let first = decode(start), Self.isTranslatable(first) else { return nil }
        let entry = a.offset
        let budgetCheck = a.cmp64Patchable(.r13)
        let budgetStub = a.newLabel()
        a.jump(if: .below, to: budgetStub)

        var position: Continuation? = Continuation(front: start, count: 0, skipped: nil)
        while let next = position {
            position = emitStraightLine(next)
        }
        while !deferred.isEmpty {
            let next = deferred.removeFirst()
            a.bind(next.label)
            cache = next.cache
            emitDeferred(next.kind)
        }
        // The budget stub: IAOQ = the block's start.
        a.bind(budgetStub)
        a.mov(StateLayout.front, imm: start)
        a.mov(StateLayout.back, imm: start &+ 4)
        a.mov(.rax, imm: JITExit.budgetCode)
        a.jump(toOffset: epilogue)
        // The slot stubs: IAOQ = the target, report the slot.
        for (i, label) in slotStubs.enumerated() {
            a.bind(label)
            a.mov(StateLayout.front, imm: slotTargets[i])
            a.mov(StateLayout.back, imm: slotTargets[i] &+ 4)
            a.mov(.rax, imm: UInt32(firstSlot + i) << 4 | JITExit.unlinkedCode)
            a.jump(toOffset: epilogue)
        }
        a.patch32(at: budgetCheck, UInt32(longestPath))
        let stubLabels = slotStubs
        var assembler = a
        let code = assembler.finish()
        return TranslatedBlock(code: code, entry: entry,
                               slotStubs: stubLabels.map { assembler.offset(of: $0) },
                               guestAddresses: guestAddresses)
    }

    /// Where a path continues: the front (sequential queue), the instructions counted on the
    /// path so far, and the instruction just nullified, if the path got here by skipping one.
    struct Continuation {
        var front: UInt32
        var count: Int
        /// A nullified instruction (and its IAOQ back) skipped right before `front`: if the
        /// budget ends exactly here, the interpreter would stop before it with PSW N set.
        var skipped: (front: UInt32, back: Back)?
    }

    /// Emits instructions along a path until it ends; returns where the main path continues
    /// after a conditional branch not taken, or nil when it has ended.
    mutating func emitStraightLine(_ start: Continuation) -> Continuation? {
        var front = start.front, count = start.count
        var skipped = start.skipped
        while true {
            guard count < Self.maximumPath, let d = decode(front), Self.isTranslatable(d) else {
                exitToInterpreter(front: front, back: .known(front &+ 4), count: count, skipped: skipped)
                return nil
            }
            if Self.isBranch(d) {
                return emitBranch(d, front: front, count: count)
            }
            skipped = nil
            let next = front &+ 4
            switch emitOperation(d, front: front, back: .known(next), count: count) {
            case .completes:
                front = next
                count += 1
            case .nullifiesNext:
                // The next instruction is never executed.
                front = next &+ 4
                count += 1
                skipped = (next, .known(next &+ 4))
            case .mayNullifyNext(let condition):
                count += 1
                if let nextInstruction = decode(next), Self.isTranslatable(nextInstruction),
                   !Self.isBranch(nextInstruction), !Self.mayNullify(nextInstruction),
                   count + 1 < Self.maximumPath, let after = decode(next &+ 4), Self.isTranslatable(after)
                {
                    // Skipped inline; an instruction follows, so the budget cannot end at the skip.
                    cache.unpinAll()
                    prepare(nextInstruction)
                    let skip = a.newLabel(), join = a.newLabel()
                    jump(if: condition, to: skip)
                    deferred.append(Deferred(label: skip, cache: cache, kind: .skip(join: join)))
                    _ = emitOperation(nextInstruction, front: next, back: .known(next &+ 4), count: count)
                    a.bind(join)
                    front = next &+ 4
                    count += 1
                } else {
                    // PSW N carries the nullification to the interpreter.
                    setFlag(condition, StateLayout.nullifyField)
                    exitToInterpreter(front: next, back: .known(next &+ 4), count: count, skipped: nil)
                    return nil
                }
            }
            cache.unpinAll()
        }
    }

    /// Out-of-line code.
    mutating func emitDeferred(_ kind: Deferred.Kind) {
        switch kind {
        case .taken(let delaySlot, let executeDelaySlot, let target, let count):
            emitDelaySlotAndLeave(delaySlot: delaySlot, execute: executeDelaySlot, target: .known(target),
                                  count: count)
        case .fallback(let front, let back, let count, let nullify):
            cache.writeBack(&a)
            charge(count)
            a.mov(StateLayout.front, imm: front)
            if case .known(let value) = back { a.mov(StateLayout.back, imm: value) }
            if nullify { a.mov8(StateLayout.nullifyField, imm: 1) }
            a.mov(.rax, imm: JITExit.fallbackCode)
            a.jump(toOffset: epilogue)
        case .skip(let join):
            a.alu64(.add, .r13, imm: 1)
            a.jump(to: join)
        }
    }

    // MARK: Exits

    /// Subtracts `count` counted instructions from the budget.
    mutating func charge(_ count: Int) {
        longestPath = max(longestPath, count)
        if count > 0 { a.alu64(.sub, .r13, imm: Int32(count)) }
    }

    /// Leaves for the interpreter before the instruction at `front`, inline (the path ends).
    mutating func exitToInterpreter(front: UInt32, back: Back, count: Int,
                                    skipped: (front: UInt32, back: Back)?)
    {
        checkBudgetEndsAtSkip(skipped, count: count)
        emitDeferred(.fallback(front: front, back: back, count: count, nullify: false))
    }

    /// If the path got here by skipping a nullified instruction and the budget ends exactly
    /// here, the interpreter stops before that instruction with PSW N set: so does this.
    mutating func checkBudgetEndsAtSkip(_ skipped: (front: UInt32, back: Back)?, count: Int) {
        guard let skipped else { return }
        let label = a.newLabel()
        deferred.append(Deferred(label: label, cache: cache,
                                 kind: .fallback(front: skipped.front, back: skipped.back, count: count,
                                                 nullify: true)))
        a.alu64(.cmp, .r13, imm: Int32(count))
        a.jump(if: .equal, to: label)
    }

    /// A label for a fallback exit before the instruction at `front` with the current cache
    /// state (for conditional side exits: traps, device accesses, stores into code).
    mutating func sideExit(front: UInt32, back: Back, count: Int) -> HostLabel {
        let label = a.newLabel()
        deferred.append(Deferred(label: label, cache: cache,
                                 kind: .fallback(front: front, back: back, count: count, nullify: false)))
        return label
    }

    /// Leaves the block for a known target through a chaining slot.
    mutating func leave(to target: UInt32, count: Int, skipped: (front: UInt32, back: Back)?) {
        checkBudgetEndsAtSkip(skipped, count: count)
        cache.writeBack(&a)
        charge(count)
        let slot = firstSlot + slotStubs.count
        slotStubs.append(a.newLabel())
        slotTargets.append(target)
        a.jump(through: HostMemory(.r14, JITDataArea.slotsOffset + Int32(8 * slot)))
    }

    /// Leaves the block for the target stored in IAOQ back (BV, BLR) through the jump cache.
    mutating func leaveIndirect(count: Int, skipped: (front: UInt32, back: Back)?) {
        checkBudgetEndsAtSkip(skipped, count: count)
        cache.writeBack(&a)
        charge(count)
        a.mov(.rax, StateLayout.back)
        a.mov(StateLayout.front, .rax)
        a.lea(.rcx, HostMemory(.rax, 4))
        a.mov(StateLayout.back, .rcx)
        a.mov(.rcx, .rax)
        a.shift(.shr, .rcx, by: 2)
        a.alu(.and, .rcx, imm: UInt32(JITDataArea.jumpCacheEntries - 1))
        a.shift(.shl, .rcx, by: 4)
        a.alu(.cmp, .rax, HostMemory(.r14, index: .rcx, JITDataArea.jumpCacheOffset))
        a.jump(if: .notEqual, toOffset: missStub)
        a.jump(through: HostMemory(.r14, index: .rcx, JITDataArea.jumpCacheOffset + 8))
    }

    // MARK: Fetch and classification

    /// The decoded instruction at `front`, or nil if it is not fetched from translatable RAM.
    mutating func decode(_ front: UInt32) -> DecodedInstruction? {
        let address = front & ~3
        guard address < ramLimit, !(linuxGateway && address == 0x100),
              !interpretedLines.contains(address >> CodeLineMap.lineShift)
        else { return nil }
        guestAddresses.append(address)
        return Decoder.decode(memory.loadBigEndianWord(atOffset: address))
    }

    static func isBranch(_ d: DecodedInstruction) -> Bool {
        switch d.operation {
        case .branchLink, .branchLinkRegister, .branchVectored, .compareBranch, .compareImmediateBranch,
             .addBranch, .addImmediateBranch, .moveBranch, .moveImmediateBranch, .branchOnBit,
             .branchOnVariableBit:
            true
        default:
            false
        }
    }

    /// Whether the instruction may set PSW N (nullify its successor).
    static func mayNullify(_ d: DecodedInstruction) -> Bool {
        switch d.operation {
        case .add, .sub, .logicalOr, .logicalAnd, .logicalXor, .logicalAndComplement, .compareClear,
             .subImmediate, .compareImmediateClear, .shiftDoubleVariable, .shiftDouble, .extract,
             .extractVariable, .deposit, .depositVariable:
            true
        case .divideStep:
            d.condition != 0
        case .addImmediate:
            d.flags & DecodedFlag.trapOnCondition == 0
        default:
            false
        }
    }

    /// What the translator handles inline; everything else is interpreted.
    static func isTranslatable(_ d: DecodedInstruction) -> Bool {
        switch d.operation {
        case .addNoCondition, .addLogicalNoCondition, .add, .subNoCondition, .sub, .copy, .orNoCondition,
             .andNoCondition, .xorNoCondition, .andComplementNoCondition, .logicalOr, .logicalAnd,
             .logicalXor, .logicalAndComplement, .compareClear, .unitAddComplementNoCondition, .divideStep,
             .loadImmediateLeft, .addImmediateLeft, .loadOffset, .addImmediate, .addImmediateNoCondition,
             .subImmediate, .subImmediateNoCondition, .compareImmediateClear,
             .loadWord, .loadHalfword, .loadByte, .loadWordIndexed, .loadByteIndexed,
             .storeWord, .storeHalfword, .storeByte,
             .branchLink, .branchLinkRegister, .branchVectored, .compareBranch, .compareImmediateBranch,
             .addBranch, .addImmediateBranch, .moveBranch, .moveImmediateBranch, .branchOnBit,
             .branchOnVariableBit,
             .shiftDoubleVariable, .shiftDouble, .shiftDoubleNoCondition, .extractUnsignedNoCondition,
             .extractSignedNoCondition, .extract, .extractVariable, .depositNoCondition, .deposit,
             .depositVariable, .nop:
            return true
        case .load, .store:
            return d.flags & DecodedFlag.privileged == 0
        case .moveToControl:
            return d.aux == 11
        case .moveFromControl:
            return d.aux == 11 || d.aux == 26 || d.aux == 27
        case .unitXor, .unitAddComplement, .decimalCorrect, .storeBytes, .loadAndClearWord, .branchGate,
             .branchExternal, .breakInstruction, .returnFromInterruption, .setSystemMask, .resetSystemMask,
             .moveToSystemMask, .loadSpaceID, .moveToSpace, .moveFromSpace, .diagnose, .halt, .cacheOrTLB,
             .probe, .loadPhysicalAddress, .loadCoherenceIndex, .illegal, .coprocessor, .gatewaySyscall,
             .fetchFault:
            return false
        }
    }

    // MARK: Conditions

    /// A condition as the generated code can test it.
    enum Condition {
        case never
        case always
        /// The host flags (live right now) satisfy this.
        case flags(HostCondition)
    }

    /// Jumps to `label` if `condition` holds.
    mutating func jump(if condition: Condition, to label: HostLabel) {
        switch condition {
        case .never: break
        case .always: a.jump(to: label)
        case .flags(let cc): a.jump(if: cc, to: label)
        }
    }

    /// Stores `condition` (0 or 1) into the byte at `m`.
    mutating func setFlag(_ condition: Condition, _ m: HostMemory) {
        switch condition {
        case .never: a.mov8(m, imm: 0)
        case .always: a.mov8(m, imm: 1)
        case .flags(let cc): a.set(cc, m)
        }
    }

    /// Keeps `condition` in the data area's scratch byte (so later code may change the flags),
    /// and returns the test that recovers it.
    mutating func materialize(_ condition: Condition) -> Condition {
        guard case .flags(let cc) = condition else { return condition }
        a.set(cc, HostMemory(.r14, JITDataArea.scratchByteOffset))
        return .flags(.notEqual)
    }

    /// Re-tests a materialized condition (sets the flags from the scratch byte).
    mutating func retest(_ condition: Condition) -> Condition {
        guard case .flags = condition else { return condition }
        a.cmp8(HostMemory(.r14, JITDataArea.scratchByteOffset), imm: 0)
        return .flags(.notEqual)
    }

    /// Applies the negation bit `f` of a condition.
    static func negate(_ condition: Condition, if f: Bool) -> Condition {
        guard f else { return condition }
        switch condition {
        case .never: return .always
        case .always: return .never
        case .flags(let cc): return .flags(cc.negated)
        }
    }

    /// The add conditions (never, =, <, <=, NUV, ZNV, SV, OD) from the flags of the add just
    /// executed, whose result is in `result`. `carryIsBorrow`: the host CF is the inverse of the
    /// PA-RISC carry (a subtract). May change CF (NUV, ZNV) or all flags (OD).
    mutating func addCondition(_ cf: UInt8, result: HostRegister, carryIsBorrow: Bool) -> Condition {
        let test: Condition
        switch cf >> 1 {
        case 0: test = .never
        case 1: test = .flags(.equal)
        case 2: test = .flags(.less)
        case 3: test = .flags(.lessOrEqual)
        case 4:
            if !carryIsBorrow { a.complementCarry() }
            test = .flags(.below)
        case 5:
            if !carryIsBorrow { a.complementCarry() }
            test = .flags(.belowOrEqual)
        case 6: test = .flags(.overflow)
        default:
            a.test(result, imm: 1)
            test = .flags(.notEqual)
        }
        return Self.negate(test, if: cf & 1 != 0)
    }

    /// The compare conditions (never, =, <, <=, <<, <<=, SV, OD) from the flags of `a - b` just
    /// computed (cmp or sub); OD needs the difference in `difference`. `swapped`: the flags are
    /// those of `b - a` (only for =, <, <=, <<, <<=).
    mutating func compareCondition(_ cf: UInt8, difference: HostRegister?, swapped: Bool = false) -> Condition {
        let test: Condition
        switch cf >> 1 {
        case 0: test = .never
        case 1: test = .flags(.equal)
        case 2: test = .flags(swapped ? .greater : .less)
        case 3: test = .flags(swapped ? .greaterOrEqual : .lessOrEqual)
        case 4: test = .flags(swapped ? .above : .below)
        case 5: test = .flags(swapped ? .aboveOrEqual : .belowOrEqual)
        case 6:
            precondition(!swapped, "JIT: SV of swapped operands")
            test = .flags(.overflow)
        default:
            guard let difference, !swapped else { preconditionFailure("JIT: OD needs the difference") }
            a.test(difference, imm: 1)
            test = .flags(.notEqual)
        }
        return Self.negate(test, if: cf & 1 != 0)
    }

    /// The logical conditions (never, =, <, <=, true, true, never, OD) of the value in `value`.
    mutating func logicalCondition(_ cf: UInt8, value: HostRegister) -> Condition {
        let test: Condition
        switch cf >> 1 {
        case 1:
            a.test(value, value)
            test = .flags(.equal)
        case 2:
            a.test(value, value)
            test = .flags(.sign)
        case 3:
            a.test(value, value)
            test = .flags(.lessOrEqual)
        case 4, 5: test = .always
        case 7:
            a.test(value, imm: 1)
            test = .flags(.notEqual)
        default: test = .never
        }
        return Self.negate(test, if: cf & 1 != 0)
    }
}

extension X86Assembler {
    /// The offset a bound label was bound at.
    func offset(of label: HostLabel) -> Int {
        guard let offset = labelOffset(label) else { preconditionFailure("JIT: unbound label") }
        return offset
    }
}
