import MachineCore

/// The code for each translated instruction: the same computation as the interpreter's handler
/// (Interpreter+Arithmetic/Memory/Branches/ShiftDeposit), in the same order: read, compute,
/// check every trap (a side exit to the interpreter, before anything is written), then write.
extension JITTranslator {
    /// What an instruction does to its successor.
    enum OperationResult {
        case completes
        /// Always nullifies the next instruction (a condition that is always true).
        case nullifiesNext
        /// Nullifies the next instruction when the (live) condition holds.
        case mayNullifyNext(Condition)
    }

    // MARK: Register helpers

    /// `r = GR[g]` (from its host register, the state, or 0; flags unchanged).
    mutating func load(_ r: HostRegister, _ g: UInt8) {
        switch cache.operand(g) {
        case .register(let h): if h != r { a.mov(r, h) }
        case .memory(let m): a.mov(r, m)
        case .zero: a.mov(r, imm: 0)
        }
    }

    /// `r = r <op> GR[g]`.
    mutating func alu(_ operation: X86Assembler.ALU, _ r: HostRegister, _ g: UInt8) {
        switch cache.operand(g) {
        case .register(let h): a.alu(operation, r, h)
        case .memory(let m): a.alu(operation, r, m)
        case .zero: a.alu(operation, r, imm: 0)
        }
    }

    /// `r = operand` for an operand read earlier.
    mutating func move(_ r: HostRegister, _ operand: JITOperand) {
        switch operand {
        case .register(let h): if h != r { a.mov(r, h) }
        case .memory(let m): a.mov(r, m)
        case .zero: a.mov(r, imm: 0)
        }
    }

    /// GR[g] = r (nothing for GR0 and the discard slot; flags unchanged).
    mutating func store(_ g: UInt8, _ r: HostRegister) {
        if let h = cache.write(g, &a), h != r { a.mov(h, r) }
    }

    /// GR[g] = value.
    mutating func store(_ g: UInt8, imm value: UInt32) {
        if let h = cache.write(g, &a) { a.mov(h, imm: value) }
    }

    /// The register GR[t] is computed in: its cache register (holding GR[`source`] on return),
    /// or eax when the result is discarded. Reads `source` before allocating (t may be source).
    mutating func destination(_ t: UInt8, from source: UInt8) -> HostRegister {
        let operand = cache.operand(source)
        guard let d = cache.write(t, &a) else {
            move(.rax, operand)
            return .rax
        }
        move(d, operand)
        return d
    }

    /// GR[t] = GR[x] <op> GR[y] for an operation without side effects beyond GR[t].
    mutating func emitBinary(_ operation: X86Assembler.ALU, t: UInt8, _ x: UInt8, _ y: UInt8,
                             commutative: Bool)
    {
        guard t != 0 && t < 32 else { return }
        if t == y && t != x {
            if commutative {
                let d = destination(t, from: y)
                alu(operation, d, x)
            } else {
                load(.rax, x)
                alu(operation, .rax, y)
                store(t, .rax)
            }
            return
        }
        let d = destination(t, from: x)
        alu(operation, d, y)
    }

    /// Writes the carry state of `a + b = sum`: PSW C/B's vector from `aXorB` (a ^ b, consumed)
    /// and `sum`, and the carry out from the byte register `carry` (0 or 1).
    mutating func writeCarries(aXorB: HostRegister, sum: HostRegister, carry: HostRegister,
                               complemented: Bool = false)
    {
        a.alu(.xor, aXorB, sum)
        if complemented { a.not(aXorB) }
        a.mov(StateLayout.carryVectorField, aXorB)
        a.mov8(StateLayout.carryOutField, carry)
    }

    static func result(_ condition: Condition) -> OperationResult {
        switch condition {
        case .never: .completes
        case .always: .nullifiesNext
        case .flags: .mayNullifyNext(condition)
        }
    }

    /// The registers an instruction reads and writes (for one that may be nullified: they are
    /// loaded before the test, so both ways leave the same register cache).
    static func registers(of d: DecodedInstruction) -> (reads: [UInt8], writes: [UInt8]) {
        switch d.operation {
        case .addNoCondition, .addLogicalNoCondition, .subNoCondition, .orNoCondition, .andNoCondition,
             .xorNoCondition, .andComplementNoCondition, .unitAddComplementNoCondition, .divideStep,
             .shiftDoubleNoCondition, .loadWordIndexed, .loadByteIndexed:
            return ([d.r1, d.r2], [d.t])
        case .copy:
            return ([d.r1], [d.t])
        case .loadImmediateLeft, .moveFromControl:
            return ([], [d.t])
        case .addImmediateLeft, .loadOffset, .addImmediate, .addImmediateNoCondition, .subImmediateNoCondition,
             .loadWord, .loadHalfword, .loadByte, .extractUnsignedNoCondition, .extractSignedNoCondition:
            return ([d.r2], [d.t])
        case .storeWord, .storeHalfword, .storeByte:
            return ([d.r1, d.r2], [])
        case .load:
            let modify = d.flags & (DecodedFlag.modifyAfter | DecodedFlag.modifyBefore) != 0
            return (d.flags & DecodedFlag.indexed != 0 ? [d.r1, d.r2] : [d.r2], modify ? [d.aux, d.t] : [d.t])
        case .store:
            let modify = d.flags & (DecodedFlag.modifyAfter | DecodedFlag.modifyBefore) != 0
            return ([d.r1, d.r2], modify ? [d.aux] : [])
        case .depositNoCondition:
            var reads: [UInt8] = []
            if d.flags & DecodedFlag.signed == 0 { reads.append(d.r1) }
            if d.flags & DecodedFlag.link != 0 { reads.append(d.r2) }
            return (reads, [d.t])
        case .moveToControl:
            return ([d.r1], [])
        case .nop:
            return ([], [])
        default:
            preconditionFailure("JIT: \(d.operation) is not prepared for nullification")
        }
    }

    /// Loads and pins what `d` uses before a test that may skip it.
    mutating func prepare(_ d: DecodedInstruction) {
        cache.unpinAll()
        let (reads, writes) = Self.registers(of: d)
        for r in reads { _ = cache.read(r, &a) }
        for w in writes { cache.prepareWrite(w, &a) }
        cache.frozen = true
    }

    // MARK: Dispatch

    /// Emits one non-branch instruction at `front` (IAOQ back `back`, `count` counted before it on
    /// this path).
    mutating func emitOperation(_ d: DecodedInstruction, front: UInt32, back: Back, count: Int)
        -> OperationResult
    {
        defer { cache.frozen = false }
        switch d.operation {
        case .addNoCondition:
            load(.rax, d.r1)
            if d.aux != 0 { a.shift(.shl, .rax, by: d.aux) }
            a.mov(.rcx, .rax)
            alu(.xor, .rcx, d.r2)
            alu(.add, .rax, d.r2)
            a.set(.below, .rdx)
            writeCarries(aXorB: .rcx, sum: .rax, carry: .rdx)
            store(d.t, .rax)
            return .completes
        case .addLogicalNoCondition:
            if d.aux == 0 {
                emitBinary(.add, t: d.t, d.r1, d.r2, commutative: true)
            } else {
                load(.rax, d.r1)
                a.shift(.shl, .rax, by: d.aux)
                alu(.add, .rax, d.r2)
                store(d.t, .rax)
            }
            return .completes
        case .add:
            return emitAdd(d, front: front, back: back, count: count)
        case .subNoCondition:
            load(.rax, d.r1)
            a.mov(.rcx, .rax)
            alu(.xor, .rcx, d.r2)
            alu(.sub, .rax, d.r2)
            a.set(.aboveOrEqual, .rdx)
            writeCarries(aXorB: .rcx, sum: .rax, carry: .rdx, complemented: true)
            store(d.t, .rax)
            return .completes
        case .sub:
            return emitSub(d, front: front, back: back, count: count)
        case .copy:
            if d.t != 32 { _ = destination(d.t, from: d.r1) }
            return .completes
        case .orNoCondition, .andNoCondition, .xorNoCondition:
            emitBinary(d.operation == .orNoCondition ? .or : d.operation == .andNoCondition ? .and : .xor,
                       t: d.t, d.r1, d.r2, commutative: true)
            return .completes
        case .andComplementNoCondition:
            guard d.t != 32 else { return .completes }
            load(.rdx, d.r2)
            a.not(.rdx)
            let target = destination(d.t, from: d.r1)
            a.alu(.and, target, .rdx)
            return .completes
        case .logicalOr, .logicalAnd, .logicalXor, .logicalAndComplement:
            if d.operation == .logicalAndComplement {
                load(.rdx, d.r2)
                a.not(.rdx)
            }
            load(.rax, d.r1)
            switch d.operation {
            case .logicalOr: alu(.or, .rax, d.r2)
            case .logicalAnd: alu(.and, .rax, d.r2)
            case .logicalXor: alu(.xor, .rax, d.r2)
            default: a.alu(.and, .rax, .rdx)
            }
            store(d.t, .rax)
            return Self.result(logicalCondition(d.condition, value: .rax))
        case .compareClear:
            load(.rax, d.r1)
            alu(.sub, .rax, d.r2)
            let condition = compareCondition(d.condition, difference: .rax)
            store(d.t, imm: 0)
            return Self.result(condition)
        case .unitAddComplementNoCondition:
            guard d.t != 32 else { return .completes }
            load(.rdx, d.r2)
            a.not(.rdx)
            let target = destination(d.t, from: d.r1)
            a.alu(.add, target, .rdx)
            return .completes
        case .divideStep:
            return emitDivideStep(d)
        case .loadImmediateLeft:
            store(d.t, imm: d.immediate)
            return .completes
        case .addImmediateLeft, .loadOffset:
            if d.r2 == 0 {
                store(d.t, imm: d.immediate)
            } else if d.t != 32 {
                if case .register(let base) = cache.operand(d.r2), d.t != d.r2 {
                    if let target = cache.write(d.t, &a) { a.lea(target, HostMemory(base, Int32(bitPattern: d.immediate))) }
                } else {
                    let target = destination(d.t, from: d.r2)
                    if d.immediate != 0 { a.alu(.add, target, imm: d.immediate) }
                }
            }
            return .completes
        case .addImmediateNoCondition:
            load(.rdx, d.r2)
            a.mov(.rax, imm: d.immediate)
            a.mov(.rcx, .rax)
            a.alu(.xor, .rcx, .rdx)
            a.alu(.add, .rax, .rdx)
            a.set(.below, .rdx)
            writeCarries(aXorB: .rcx, sum: .rax, carry: .rdx)
            store(d.t, .rax)
            return .completes
        case .addImmediate:
            return emitAddImmediate(d, front: front, back: back, count: count)
        case .subImmediateNoCondition:
            load(.rdx, d.r2)
            a.mov(.rax, imm: d.immediate)
            a.mov(.rcx, .rax)
            a.alu(.xor, .rcx, .rdx)
            a.alu(.sub, .rax, .rdx)
            a.set(.aboveOrEqual, .rdx)
            writeCarries(aXorB: .rcx, sum: .rax, carry: .rdx, complemented: true)
            store(d.t, .rax)
            return .completes
        case .subImmediate:
            load(.rdx, d.r2)
            a.mov(.rax, imm: d.immediate)
            a.mov(.rcx, .rax)
            a.alu(.xor, .rcx, .rdx)
            a.alu(.sub, .rax, .rdx)
            if d.flags & DecodedFlag.trapOnOverflow != 0 {
                a.jump(if: .overflow, to: sideExit(front: front, back: back, count: count))
            }
            a.set(.aboveOrEqual, .rdx)
            let condition = materialize(compareCondition(d.condition, difference: .rax))
            writeCarries(aXorB: .rcx, sum: .rax, carry: .rdx, complemented: true)
            store(d.t, .rax)
            return Self.result(retest(condition))
        case .compareImmediateClear:
            a.mov(.rax, imm: d.immediate)
            alu(.sub, .rax, d.r2)
            let condition = compareCondition(d.condition, difference: .rax)
            store(d.t, imm: 0)
            return Self.result(condition)
        case .loadWord, .loadHalfword, .loadByte:
            let size: UInt8 = d.operation == .loadWord ? 2 : d.operation == .loadHalfword ? 1 : 0
            emitMemory(load: true, size: size, d, indexed: false, shift: 0, front: front, back: back, count: count)
            return .completes
        case .loadWordIndexed:
            emitMemory(load: true, size: 2, d, indexed: true, shift: d.aux, front: front, back: back, count: count)
            return .completes
        case .loadByteIndexed:
            emitMemory(load: true, size: 0, d, indexed: true, shift: 0, front: front, back: back, count: count)
            return .completes
        case .storeWord, .storeHalfword, .storeByte:
            let size: UInt8 = d.operation == .storeWord ? 2 : d.operation == .storeHalfword ? 1 : 0
            emitMemory(load: false, size: size, d, indexed: false, shift: 0, front: front, back: back, count: count)
            return .completes
        case .load, .store:
            let size = d.flags & DecodedFlag.sizeMask
            let indexed = d.flags & DecodedFlag.indexed != 0
            let shift = indexed && d.flags & DecodedFlag.scaled != 0 ? size : 0
            emitMemory(load: d.operation == .load, size: size, d, indexed: indexed, shift: shift,
                       modifyAfter: d.flags & DecodedFlag.modifyAfter != 0,
                       modifyBefore: d.flags & DecodedFlag.modifyBefore != 0,
                       front: front, back: back, count: count)
            return .completes
        case .shiftDoubleNoCondition, .shiftDouble, .shiftDoubleVariable:
            if d.operation != .shiftDoubleVariable && (d.r1 == d.r2 || d.aux == 0) {
                // A rotate (or no shift): computed in place.
                let target = destination(d.t, from: d.r2)
                if d.aux != 0 { a.shift(.ror, target, by: d.aux) }
                if d.operation == .shiftDoubleNoCondition { return .completes }
                return Self.result(logicalCondition(d.condition, value: target))
            }
            load(.rax, d.r2)
            load(.rdx, d.r1)
            if d.operation == .shiftDoubleVariable {
                a.mov(.rcx, StateLayout.sar)
                a.alu(.and, .rcx, imm: 31)
                a.shrdByCL(.rax, .rdx)
            } else {
                a.shrd(.rax, .rdx, by: d.aux)
            }
            store(d.t, .rax)
            if d.operation == .shiftDoubleNoCondition { return .completes }
            return Self.result(logicalCondition(d.condition, value: .rax))
        case .extractUnsignedNoCondition, .extractSignedNoCondition, .extract:
            if d.operation != .extract && d.t == 32 { return .completes }
            let target = destination(d.t, from: d.r2)
            if d.operation == .extractSignedNoCondition
                || (d.operation == .extract && d.flags & DecodedFlag.signed != 0)
            {
                if d.aux != 0 { a.shift(.shl, target, by: d.aux) }
                if d.immediate != 0 { a.shift(.sar, target, by: UInt8(d.immediate)) }
            } else {
                if d.aux != 0 { a.shift(.shr, target, by: d.aux) }
                if d.immediate != UInt32.max && UInt64(d.immediate) + 1 != UInt64(1) << (32 - UInt64(d.aux)) {
                    a.alu(.and, target, imm: d.immediate)
                }
            }
            if d.operation != .extract { return .completes }
            return Self.result(logicalCondition(d.condition, value: target))
        case .extractVariable:
            // shift = 31 - SAR; the field of `immediate` bits, zero- or sign-extended.
            load(.rax, d.r2)
            a.mov(.rcx, imm: 31)
            a.alu(.sub, .rcx, StateLayout.sar)
            a.alu(.and, .rcx, imm: 31)
            let length = d.immediate
            if d.flags & DecodedFlag.signed != 0 {
                a.shiftByCL(.sar, .rax)
                if length < 32 {
                    a.shift(.shl, .rax, by: UInt8(32 - length))
                    a.shift(.sar, .rax, by: UInt8(32 - length))
                }
            } else {
                a.shiftByCL(.shr, .rax)
                let mask = Decoder.lengthMask(length)
                if mask != UInt32.max { a.alu(.and, .rax, imm: mask) }
            }
            store(d.t, .rax)
            return Self.result(logicalCondition(d.condition, value: .rax))
        case .depositNoCondition, .deposit:
            let shift = UInt8(d.aux)
            let mask = d.immediate << UInt32(shift)
            depositSource(d)
            if shift != 0 { a.shift(.shl, .rax, by: shift) }
            a.alu(.and, .rax, imm: mask)
            if d.flags & DecodedFlag.link != 0 {
                load(.rdx, d.r2)
                a.alu(.and, .rdx, imm: ~mask)
                a.alu(.or, .rax, .rdx)
            }
            store(d.t, .rax)
            if d.operation == .depositNoCondition { return .completes }
            return Self.result(logicalCondition(d.condition, value: .rax))
        case .depositVariable:
            // shift = 31 - SAR; mask = lengthMask << shift.
            a.mov(.rcx, imm: 31)
            a.alu(.sub, .rcx, StateLayout.sar)
            a.alu(.and, .rcx, imm: 31)
            depositSource(d)
            a.shiftByCL(.shl, .rax)
            a.mov(.rdx, imm: d.immediate)
            a.shiftByCL(.shl, .rdx)
            a.alu(.and, .rax, .rdx)
            if d.flags & DecodedFlag.link != 0 {
                a.not(.rdx)
                alu(.and, .rdx, d.r2)
                a.alu(.or, .rax, .rdx)
            }
            store(d.t, .rax)
            return Self.result(logicalCondition(d.condition, value: .rax))
        case .moveToControl:
            load(.rax, d.r1)
            a.alu(.and, .rax, imm: 31)
            a.mov(StateLayout.sar, .rax)
            return .completes
        case .moveFromControl:
            a.mov(.rax, StateLayout.cr(Int(d.aux)))
            store(d.t, .rax)
            return .completes
        case .nop:
            return .completes
        default:
            preconditionFailure("JIT: \(d.operation) is not translatable")
        }
    }

    /// The source of a deposit in eax: GR[r1], or im5 for the immediate forms.
    mutating func depositSource(_ d: DecodedInstruction) {
        if d.flags & DecodedFlag.signed != 0 {
            a.mov(.rax, imm: UInt32(bitPattern: Int32(Int8(bitPattern: d.r1))))
        } else {
            load(.rax, d.r1)
        }
    }

    // MARK: Arithmetic with conditions and traps

    /// ADD, ADDC, ADDO, SHnADD(L/O) with a condition: `Interpreter.add`.
    mutating func emitAdd(_ d: DecodedInstruction, front: UInt32, back: Back, count: Int) -> OperationResult {
        let logical = d.flags & DecodedFlag.logical != 0
        load(.rax, d.r1)
        if d.aux != 0 { a.shift(.shl, .rax, by: d.aux) }
        load(.rdx, d.r2)
        a.mov(.rcx, .rax)
        a.alu(.xor, .rcx, .rdx)
        if d.flags & DecodedFlag.carryIn != 0 {
            a.bt(StateLayout.carryOutField, bit: 0)
            a.alu(.adc, .rax, .rdx)
        } else {
            a.alu(.add, .rax, .rdx)
        }
        if d.flags & DecodedFlag.trapOnOverflow != 0 {
            a.jump(if: .overflow, to: sideExit(front: front, back: back, count: count))
        }
        a.set(.below, .rdx)
        let condition = materialize(addCondition(d.condition, result: .rax, carryIsBorrow: false))
        if !logical { writeCarries(aXorB: .rcx, sum: .rax, carry: .rdx) }
        store(d.t, .rax)
        return Self.result(retest(condition))
    }

    /// SUB, SUBB, SUBO, SUBT with a condition: `Interpreter.sub`.
    mutating func emitSub(_ d: DecodedInstruction, front: UInt32, back: Back, count: Int) -> OperationResult {
        let borrowing = d.flags & DecodedFlag.carryIn != 0
        load(.rax, d.r1)
        load(.rdx, d.r2)
        a.mov(.rcx, .rax)
        a.alu(.xor, .rcx, .rdx)
        if borrowing {
            // Host CF = the borrow in = NOT the PSW carry.
            a.alu(.cmp, StateLayout.carryOutField, imm: 1)
            a.alu(.sbb, .rax, .rdx)
        } else {
            a.alu(.sub, .rax, .rdx)
        }
        if d.flags & DecodedFlag.trapOnOverflow != 0 {
            a.jump(if: .overflow, to: sideExit(front: front, back: back, count: count))
        }
        a.set(.aboveOrEqual, .rdx)
        var condition = borrowing
            ? addCondition(d.condition, result: .rax, carryIsBorrow: true)
            : compareCondition(d.condition, difference: .rax)
        condition = materialize(condition)
        let trapOnCondition = d.flags & DecodedFlag.trapOnCondition != 0
        if trapOnCondition {
            switch retest(condition) {
            case .never: break
            case .always: a.jump(to: sideExit(front: front, back: back, count: count))
            case .flags(let cc): a.jump(if: cc, to: sideExit(front: front, back: back, count: count))
            }
        }
        writeCarries(aXorB: .rcx, sum: .rax, carry: .rdx, complemented: true)
        store(d.t, .rax)
        return trapOnCondition ? .completes : Self.result(retest(condition))
    }

    /// ADDI, ADDIO, ADDIT, ADDITO: `Interpreter.addImmediate`.
    mutating func emitAddImmediate(_ d: DecodedInstruction, front: UInt32, back: Back, count: Int)
        -> OperationResult
    {
        load(.rdx, d.r2)
        a.mov(.rax, imm: d.immediate)
        a.mov(.rcx, .rax)
        a.alu(.xor, .rcx, .rdx)
        a.alu(.add, .rax, .rdx)
        if d.flags & DecodedFlag.trapOnOverflow != 0 {
            a.jump(if: .overflow, to: sideExit(front: front, back: back, count: count))
        }
        a.set(.below, .rdx)
        let condition = materialize(addCondition(d.condition, result: .rax, carryIsBorrow: false))
        let trapOnCondition = d.flags & DecodedFlag.trapOnCondition != 0
        if trapOnCondition {
            switch retest(condition) {
            case .never: break
            case .always: a.jump(to: sideExit(front: front, back: back, count: count))
            case .flags(let cc): a.jump(if: cc, to: sideExit(front: front, back: back, count: count))
            }
        }
        writeCarries(aXorB: .rcx, sum: .rax, carry: .rdx)
        store(d.t, .rax)
        return trapOnCondition ? .completes : Self.result(retest(condition))
    }

    /// DS: `Interpreter.divideStep`.
    mutating func emitDivideStep(_ d: DecodedInstruction) -> OperationResult {
        let add1 = HostMemory(.r14, JITDataArea.scratchWordOffset)
        a.movzx8(.rcx, StateLayout.divideStepVField)
        a.neg(.rcx)                                           // V ? all ones : 0
        load(.rdx, d.r2)
        a.alu(.xor, .rdx, .rcx)                               // add2 = V ? ~b : b
        load(.rax, d.r1)
        a.shift(.shl, .rax, by: 1)
        a.alu(.or, .rax, StateLayout.carryOutField)           // add1 = a << 1 | C
        a.mov(add1, .rax)
        a.bt(.rcx, bit: 0)                                    // CF = V (carry in)
        a.alu(.adc, .rax, .rdx)
        a.set(.below, .rcx)                                   // the carry out
        var condition = Condition.never
        if d.condition != 0 {
            condition = materialize(addCondition(d.condition, result: .rax, carryIsBorrow: false))
        }
        a.alu(.xor, .rdx, .rax)
        a.alu(.xor, .rdx, add1)
        a.mov(StateLayout.carryVectorField, .rdx)
        a.mov8(StateLayout.carryOutField, .rcx)
        // V = carry out XOR the sign of GR[r2] (read again: GR[t] is written last).
        load(.rdx, d.r2)
        a.shift(.shr, .rdx, by: 31)
        a.xor8(.rdx, .rcx)
        a.mov8(StateLayout.divideStepVField, .rdx)
        store(d.t, .rax)
        return Self.result(retest(condition))
    }

    // MARK: Loads and stores

    /// A load or store: the address (base + displacement or index), the RAM check (an unaligned
    /// access, a device, a fault, or a store into translated code leaves for the interpreter),
    /// the access, then the base modification and the target.
    mutating func emitMemory(load isLoad: Bool, size: UInt8, _ d: DecodedInstruction, indexed: Bool,
                             shift: UInt8, modifyAfter: Bool = false, modifyBefore: Bool = false,
                             front: UInt32, back: Back, count: Int)
    {
        let modify = modifyAfter || modifyBefore
        let displacement = Int32(bitPattern: d.immediate)
        // eax = the address, ecx = the modified base.
        if indexed {
            load(.rax, d.r2)
            load(.rdx, d.r1)
            if shift != 0 { a.shift(.shl, .rdx, by: shift) }
            if modify { a.lea(.rcx, HostMemory(.rax, index: .rdx)) }
            if !modifyAfter { a.alu(.add, .rax, .rdx) }
        } else if !modify, case .register(let base) = cache.operand(d.r2) {
            a.lea(.rax, HostMemory(base, displacement))
        } else {
            load(.rax, d.r2)
            if modify { a.lea(.rcx, HostMemory(.rax, displacement)) }
            if !modifyAfter && displacement != 0 { a.alu(.add, .rax, imm: d.immediate) }
        }
        let exit = sideExit(front: front, back: back, count: count)
        switch size {
        case 2:
            a.mov(.rdx, .rax)
            a.shift(.ror, .rdx, by: 2)
            a.alu(.cmp, .rdx, imm: ramLimit >> 2)
        case 1:
            a.mov(.rdx, .rax)
            a.shift(.ror, .rdx, by: 1)
            a.alu(.cmp, .rdx, imm: ramLimit >> 1)
        default:
            a.alu(.cmp, .rax, imm: ramLimit)
        }
        a.jump(if: .aboveOrEqual, to: exit)
        let ram = HostMemory(.r12, index: .rax)
        if isLoad {
            if modify { store(d.aux, .rcx) }
            guard let target = cache.write(d.t, &a) else { return }
            switch size {
            case 2:
                a.mov(target, ram)
                a.bswap(target)
            case 1:
                a.movzx16(target, ram)
                a.swapHalfword(target)
            default:
                a.movzx8(target, ram)
            }
        } else {
            // A store into a line of translated code: the interpreter does it and the
            // translations are dropped.
            a.mov(.rdx, .rax)
            a.shift(.shr, .rdx, by: UInt8(CodeLineMap.lineShift))
            a.alu64(.add, .rdx, HostMemory(.r14, JITDataArea.codeLinesOffset))
            a.cmp8(HostMemory(.rdx, 0), imm: 0)
            a.jump(if: .notEqual, to: exit)
            self.load(.rdx, d.r1)
            switch size {
            case 2:
                a.bswap(.rdx)
                a.mov(ram, .rdx)
            case 1:
                a.swapHalfword(.rdx)
                a.mov16(ram, .rdx)
            default:
                a.mov8(ram, .rdx)
            }
            markWritten(address: .rax)
            if modify { store(d.aux, .rcx) }
        }
    }

    /// Marks the page of the store at `address` (in the register) in guest memory's write map
    /// (`GuestMemory.markWritten`, for dirty-page tracking): the one place generated stores do it.
    /// A naturally aligned store lies in one page. Uses rdx.
    mutating func markWritten(address: HostRegister) {
        a.mov(.rdx, address)
        a.shift(.shr, .rdx, by: UInt8(GuestMemory.pageShift))
        a.alu64(.add, .rdx, HostMemory(.r14, JITDataArea.writeMapOffset))
        a.mov8(HostMemory(.rdx, 0), imm: 1)
    }

    // MARK: Branches

    /// Emits a branch at `front`; returns where the main path continues (a conditional branch
    /// not taken) or nil when the path has ended.
    mutating func emitBranch(_ d: DecodedInstruction, front: UInt32, count: Int) -> Continuation? {
        let nullify = d.flags & DecodedFlag.nullify != 0
        let delaySlot = front &+ 4
        let link = front &+ 8
        switch d.operation {
        case .branchLink:
            store(d.t, imm: link)
            cache.unpinAll()
            emitDelaySlotAndLeave(delaySlot: delaySlot, execute: !nullify, target: .known(front &+ 8 &+ d.immediate),
                                  count: count + 1)
            return nil
        case .branchLinkRegister:
            load(.rax, d.r1)
            a.shift(.shl, .rax, by: 3)
            a.alu(.add, .rax, imm: front &+ 8)
            a.mov(StateLayout.back, .rax)
            store(d.t, imm: link)
            cache.unpinAll()
            emitDelaySlotAndLeave(delaySlot: delaySlot, execute: !nullify, target: .stored, count: count + 1)
            return nil
        case .branchVectored:
            load(.rax, d.r2)
            if d.r1 != 0 {
                load(.rdx, d.r1)
                a.shift(.shl, .rdx, by: 3)
                a.alu(.add, .rax, .rdx)
            }
            demote(.rax, privilege: front & 3)
            a.mov(StateLayout.back, .rax)
            cache.unpinAll()
            emitDelaySlotAndLeave(delaySlot: delaySlot, execute: !nullify, target: .stored, count: count + 1)
            return nil
        default:
            break
        }
        let condition = emitBranchCondition(d)
        cache.unpinAll()
        let target = front &+ 8 &+ d.immediate
        let forward = Int32(bitPattern: d.immediate) >= 0
        let notTaken = nullify && !forward
            ? Continuation(front: front &+ 8, count: count + 1, skipped: (delaySlot, .known(front &+ 8)))
            : Continuation(front: delaySlot, count: count + 1, skipped: nil)
        switch condition {
        case .never:
            return notTaken
        case .always:
            emitDelaySlotAndLeave(delaySlot: delaySlot, execute: !(nullify && forward), target: .known(target),
                                  count: count + 1)
            return nil
        case .flags(let cc):
            let taken = a.newLabel()
            a.jump(if: cc, to: taken)
            deferred.append(Deferred(label: taken, cache: cache,
                                     kind: .taken(delaySlot: delaySlot, executeDelaySlot: !(nullify && forward),
                                                  target: target, count: count + 1)))
            return notTaken
        }
    }

    /// The condition under which a conditional branch is taken (its register writes done).
    mutating func emitBranchCondition(_ d: DecodedInstruction) -> Condition {
        switch d.operation {
        case .compareBranch:
            if d.condition >> 1 != 7, case .register(let x) = cache.operand(d.r1) {
                alu(.cmp, x, d.r2)
                return compareCondition(d.condition, difference: nil)
            }
            load(.rax, d.r1)
            alu(.sub, .rax, d.r2)
            return compareCondition(d.condition, difference: .rax)
        case .compareImmediateBranch:
            let immediate = UInt32(bitPattern: Int32(Int8(bitPattern: d.aux)))
            switch (d.condition >> 1, cache.operand(d.r2)) {
            case (1...5, .register(let y)):
                // GR - imm: the same conditions with the operands swapped.
                a.alu(.cmp, y, imm: immediate)
                return compareCondition(d.condition, difference: nil, swapped: true)
            case (1...5, .memory(let m)):
                a.alu(.cmp, m, imm: immediate)
                return compareCondition(d.condition, difference: nil, swapped: true)
            default:
                a.mov(.rax, imm: immediate)
                alu(.sub, .rax, d.r2)
                return compareCondition(d.condition, difference: .rax)
            }
        case .addBranch, .addImmediateBranch:
            // GR[t] = GR[t] + (GR[r1] or im5): t is r2.
            guard d.t != 32 else {
                if d.operation == .addBranch { load(.rax, d.r1) } else {
                    a.mov(.rax, imm: UInt32(bitPattern: Int32(Int8(bitPattern: d.aux))))
                }
                alu(.add, .rax, d.r2)
                return addCondition(d.condition, result: .rax, carryIsBorrow: false)
            }
            let addend: JITOperand = d.operation == .addBranch ? cache.operand(d.r1) : .zero
            let target = destination(d.t, from: d.r2)
            if d.operation == .addBranch {
                switch addend {
                case .register(let h): a.alu(.add, target, h)
                case .memory(let m): a.alu(.add, target, m)
                case .zero: a.alu(.add, target, imm: 0)
                }
            } else {
                a.alu(.add, target, imm: UInt32(bitPattern: Int32(Int8(bitPattern: d.aux))))
            }
            return addCondition(d.condition, result: target, carryIsBorrow: false)
        case .moveBranch:
            let target = destination(d.t, from: d.r1)
            return logicalCondition(d.condition, value: target)
        case .moveImmediateBranch:
            let value = UInt32(bitPattern: Int32(Int8(bitPattern: d.aux)))
            store(d.t, imm: value)
            return Conditions.logical(d.condition, value) ? .always : .never
        case .branchOnBit:
            switch cache.operand(d.r1) {
            case .register(let h): a.bt(h, bit: 31 - d.aux)
            default:
                load(.rax, d.r1)
                a.bt(.rax, bit: 31 - d.aux)
            }
            return .flags(d.condition == 0 ? .below : .aboveOrEqual)
        case .branchOnVariableBit:
            load(.rax, d.r1)
            a.mov(.rcx, StateLayout.sar)
            a.shiftByCL(.shl, .rax)
            a.test(.rax, .rax)
            return .flags(d.condition == 0 ? .sign : .notSign)
        default:
            preconditionFailure("JIT: \(d.operation) is not a conditional branch")
        }
    }

    /// The privilege rule of BV/BE/BLE: the target's privilege bits no more privileged than
    /// `privilege`.
    mutating func demote(_ r: HostRegister, privilege: UInt32) {
        switch privilege {
        case 0:
            break
        case 3:
            a.alu(.or, r, imm: 3)
        default:
            // level = max(privilege, r & 3)
            let keep = a.newLabel()
            a.mov(.rcx, r)
            a.alu(.and, .rcx, imm: 3)
            a.alu(.cmp, .rcx, imm: privilege)
            a.jump(if: .aboveOrEqual, to: keep)
            a.alu(.and, r, imm: ~3)
            a.alu(.or, r, imm: privilege)
            a.bind(keep)
        }
    }

    /// A branch's delay slot (unless nullified), then the exit to its target.
    mutating func emitDelaySlotAndLeave(delaySlot: UInt32, execute: Bool, target: Back, count: Int) {
        var count = count
        if execute {
            guard let d = decode(delaySlot), Self.isTranslatable(d), !Self.isBranch(d), !Self.mayNullify(d) else {
                exitToInterpreter(front: delaySlot, back: target, count: count, skipped: nil)
                return
            }
            _ = emitOperation(d, front: delaySlot, back: target, count: count)
            cache.unpinAll()
            count += 1
        }
        let skipped: (front: UInt32, back: Back)? = execute ? nil : (delaySlot, target)
        switch target {
        case .known(let address): leave(to: address, count: count, skipped: skipped)
        case .stored: leaveIndirect(count: count, skipped: skipped)
        }
    }
}
