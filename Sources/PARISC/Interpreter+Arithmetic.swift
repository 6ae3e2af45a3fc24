/// Arithmetic, logical and immediate instructions (opcodes 0x02, 0x08, 0x0A, 0x0D, 0x24, 0x25,
/// 0x2C, 0x2D). Each computes everything, checks its traps, and only then writes back.
extension Interpreter {
    // MARK: Helpers

    /// Signed overflow of `a + b = sum`.
    @inline(__always) static func addOverflow(_ a: UInt32, _ b: UInt32, _ sum: UInt32) -> Bool {
        (sum ^ a) & ~(a ^ b) & 0x8000_0000 != 0
    }

    /// Signed overflow of `a - b = difference`.
    @inline(__always) static func subOverflow(_ a: UInt32, _ b: UInt32, _ difference: UInt32) -> Bool {
        (difference ^ a) & (a ^ b) & 0x8000_0000 != 0
    }

    /// `a + b + carryIn` with the carry out of bit 0 (manual numbering).
    @inline(__always)
    static func addWithCarry(_ a: UInt32, _ b: UInt32, _ carryIn: UInt32) -> (UInt32, UInt32) {
        let wide = UInt64(a) &+ UInt64(b) &+ UInt64(carryIn)
        return (UInt32(truncatingIfNeeded: wide), UInt32(truncatingIfNeeded: wide >> 32))
    }

    /// Records the carries of `a + b = sum` (PSW C/B).
    @inline(__always) mutating func setCarries(_ a: UInt32, _ b: UInt32, _ sum: UInt32, out: UInt32) {
        s.carryVector = a ^ b ^ sum
        s.carryOut = out
    }

    // MARK: ADD, ADDL, ADDC, ADDO, SHnADD, SHnADDL, SHnADDO

    /// ADD / SHnADD without condition: GR[t] = (GR[r1] << n) + GR[r2], carries written.
    @inline(__always) mutating func addNoCondition(_ d: DecodedInstruction) -> Step {
        let a = gr(d.r1) &<< UInt32(d.aux), b = gr(d.r2)
        let (sum, out) = Self.addWithCarry(a, b, 0)
        setCarries(a, b, sum, out: out)
        setGR(d.t, sum)
        return .next
    }

    /// ADDL / SHnADDL without condition: no carries.
    @inline(__always) mutating func addLogicalNoCondition(_ d: DecodedInstruction) -> Step {
        setGR(d.t, (gr(d.r1) &<< UInt32(d.aux)) &+ gr(d.r2))
        return .next
    }

    /// The general add: conditions (which nullify the next instruction), ADDC carry in, the
    /// overflow trap of the O forms, ADDL's "no carry" rule. For SHnADD the shifted-out bits
    /// count as unsigned overflow (NUV/ZNV) and as signed overflow (SV, <, <=, the O trap).
    mutating func add(_ d: DecodedInstruction) -> Step {
        let original = gr(d.r1)
        let shift = UInt32(d.aux)
        let a = original &<< shift, b = gr(d.r2)
        let carryIn = d.flags & DecodedFlag.carryIn != 0 ? s.carryOut : 0
        let (sum, out) = Self.addWithCarry(a, b, carryIn)
        var overflow = Self.addOverflow(a, b, sum)
        var carry = out != 0
        if shift != 0 {
            // Bits shifted out of (or through) the sign position.
            let signs = UInt32(bitPattern: Int32(bitPattern: original) >> 31)
            let through = (original ^ signs) >> (31 - shift)
            if through != 0 { overflow = true }
            if original >> (32 - shift) != 0 { carry = true }
        }
        if overflow && d.flags & DecodedFlag.trapOnOverflow != 0 { return .trap(.overflow) }
        let condition = Conditions.add(d.condition, result: sum, carry: carry, overflow: overflow)
        if d.flags & DecodedFlag.logical == 0 { setCarries(a, b, sum, out: out) }
        setGR(d.t, sum)
        s.nullifyNext = condition
        return .next
    }

    // MARK: SUB, SUBB, SUBO, SUBT ...

    /// SUB without condition: GR[t] = GR[r1] - GR[r2], carries (borrows) written.
    @inline(__always) mutating func subNoCondition(_ d: DecodedInstruction) -> Step {
        let a = gr(d.r1), b = gr(d.r2)
        let (difference, out) = Self.addWithCarry(a, ~b, 1)
        setCarries(a, ~b, difference, out: out)
        setGR(d.t, difference)
        return .next
    }

    /// The general subtract: SUBB borrow in, SUBO overflow trap, SUBT condition trap.
    mutating func sub(_ d: DecodedInstruction) -> Step {
        let a = gr(d.r1), b = gr(d.r2)
        let borrowing = d.flags & DecodedFlag.carryIn != 0
        let (difference, out) = Self.addWithCarry(a, ~b, borrowing ? s.carryOut : 1)
        let overflow = Self.subOverflow(a, b, difference)
        if overflow && d.flags & DecodedFlag.trapOnOverflow != 0 { return .trap(.overflow) }
        let condition = borrowing
            ? Conditions.add(d.condition, result: difference, carry: out != 0, overflow: overflow)
            : Conditions.compare(d.condition, a, b, result: difference, overflow: overflow)
        if condition && d.flags & DecodedFlag.trapOnCondition != 0 { return .trap(.conditional) }
        setCarries(a, ~b, difference, out: out)
        setGR(d.t, difference)
        s.nullifyNext = condition && d.flags & DecodedFlag.trapOnCondition == 0
        return .next
    }

    // MARK: Logical

    /// OR r,0,t (COPY).
    @inline(__always) mutating func copy(_ d: DecodedInstruction) -> Step {
        setGR(d.t, gr(d.r1))
        return .next
    }

    @inline(__always) mutating func orNoCondition(_ d: DecodedInstruction) -> Step {
        setGR(d.t, gr(d.r1) | gr(d.r2))
        return .next
    }

    @inline(__always) mutating func andNoCondition(_ d: DecodedInstruction) -> Step {
        setGR(d.t, gr(d.r1) & gr(d.r2))
        return .next
    }

    @inline(__always) mutating func xorNoCondition(_ d: DecodedInstruction) -> Step {
        setGR(d.t, gr(d.r1) ^ gr(d.r2))
        return .next
    }

    /// ANDCM: GR[t] = GR[r1] & ~GR[r2].
    @inline(__always) mutating func andComplementNoCondition(_ d: DecodedInstruction) -> Step {
        setGR(d.t, gr(d.r1) & ~gr(d.r2))
        return .next
    }

    @inline(__always) mutating func logicalResult(_ d: DecodedInstruction, _ value: UInt32) -> Step {
        setGR(d.t, value)
        s.nullifyNext = Conditions.logical(d.condition, value)
        return .next
    }

    mutating func logicalOr(_ d: DecodedInstruction) -> Step { logicalResult(d, gr(d.r1) | gr(d.r2)) }
    mutating func logicalAnd(_ d: DecodedInstruction) -> Step { logicalResult(d, gr(d.r1) & gr(d.r2)) }
    mutating func logicalXor(_ d: DecodedInstruction) -> Step { logicalResult(d, gr(d.r1) ^ gr(d.r2)) }
    mutating func logicalAndComplement(_ d: DecodedInstruction) -> Step {
        logicalResult(d, gr(d.r1) & ~gr(d.r2))
    }

    /// COMCLR: compare GR[r1] with GR[r2], nullify on the condition, clear GR[t].
    mutating func compareClear(_ d: DecodedInstruction) -> Step {
        let a = gr(d.r1), b = gr(d.r2)
        let difference = a &- b
        s.nullifyNext = Conditions.compare(d.condition, a, b, result: difference,
                                           overflow: Self.subOverflow(a, b, difference))
        setGR(d.t, 0)
        return .next
    }

    // MARK: Unit instructions

    /// UXOR: GR[t] = GR[r1] ^ GR[r2] with the unit zero conditions.
    mutating func unitXor(_ d: DecodedInstruction) -> Step {
        let value = gr(d.r1) ^ gr(d.r2)
        s.nullifyNext = Conditions.unit(d.condition, result: value, carries: 0)
        setGR(d.t, value)
        return .next
    }

    /// The carry out of every bit of `a + b + carryIn` (bit i = carry out of bit i).
    @inline(__always)
    static func carriesOut(_ a: UInt32, _ b: UInt32, _ carryIn: UInt32) -> (UInt32, UInt32) {
        let wide = UInt64(a) &+ UInt64(b) &+ UInt64(carryIn)
        let sum = UInt32(truncatingIfNeeded: wide)
        let into = (UInt64(a) ^ UInt64(b) ^ wide) >> 1
        return (sum, UInt32(truncatingIfNeeded: into))
    }

    /// UADDCM / UADDCMT: GR[t] = GR[r1] + ~GR[r2], unit conditions, UADDCMT traps on them.
    mutating func unitAddComplement(_ d: DecodedInstruction) -> Step {
        let (value, carries) = Self.carriesOut(gr(d.r1), ~gr(d.r2), 0)
        let condition = Conditions.unit(d.condition, result: value, carries: carries)
        if d.flags & DecodedFlag.trapOnCondition != 0 {
            if condition { return .trap(.conditional) }
        } else {
            s.nullifyNext = condition
        }
        setGR(d.t, value)
        return .next
    }

    @inline(__always) mutating func unitAddComplementNoCondition(_ d: DecodedInstruction) -> Step {
        setGR(d.t, gr(d.r1) &+ ~gr(d.r2))
        return .next
    }

    /// DCOR / IDCOR: decimal correction from the PSW digit carries. DCOR subtracts 6 from each
    /// digit that produced no carry; IDCOR adds 6 to each digit that did.
    mutating func decimalCorrect(_ d: DecodedInstruction) -> Step {
        let digitCarries = ((s.carryVector >> 4) | (s.carryOut << 28)) & 0x1111_1111
        let source = gr(d.r1)
        let value: UInt32, carries: UInt32
        if d.flags & DecodedFlag.link != 0 {
            (value, carries) = Self.carriesOut(source, digitCarries &* 6, 0)
        } else {
            let sixes = (~digitCarries & 0x1111_1111) &* 6
            (value, carries) = Self.carriesOut(source, ~sixes, 1)
        }
        s.nullifyNext = Conditions.unit(d.condition, result: value, carries: carries)
        setGR(d.t, value)
        return .next
    }

    // MARK: DS

    /// DS, divide step: GR[t] = (GR[r1] << 1 | C) + (V ? ~GR[r2] + 1 : GR[r2]); C ← carry out,
    /// V ← carry out XOR sign of GR[r2]. Exactly as the millicode in libgcc expects.
    mutating func divideStep(_ d: DecodedInstruction) -> Step {
        let a = gr(d.r1), b = gr(d.r2)
        let add1 = a << 1 | s.carryOut
        let subtracting = s.divideStepV
        let add2 = subtracting ? ~b : b
        let (result, out) = Self.addWithCarry(add1, add2, subtracting ? 1 : 0)
        if d.condition != 0 {
            s.nullifyNext = Conditions.add(d.condition, result: result, carry: out != 0,
                                           overflow: Self.addOverflow(add1, add2, result))
        }
        setCarries(add1, add2, result, out: out)
        s.divideStepV = (out != 0) != (b & 0x8000_0000 != 0)
        setGR(d.t, result)
        return .next
    }

    // MARK: Immediates

    /// LDIL: GR[t] = assemble_21 << 11.
    @inline(__always) mutating func loadImmediateLeft(_ d: DecodedInstruction) -> Step {
        setGR(d.t, d.immediate)
        return .next
    }

    /// ADDIL: GR1 = GR[r] + assemble_21 << 11.
    @inline(__always) mutating func addImmediateLeft(_ d: DecodedInstruction) -> Step {
        setGR(1, gr(d.r2) &+ d.immediate)
        return .next
    }

    /// LDO: GR[t] = GR[b] + im14 (also LDI with b = 0).
    @inline(__always) mutating func loadOffset(_ d: DecodedInstruction) -> Step {
        setGR(d.t, gr(d.r2) &+ d.immediate)
        return .next
    }

    @inline(__always) mutating func addImmediateNoCondition(_ d: DecodedInstruction) -> Step {
        let a = d.immediate, b = gr(d.r2)
        let (sum, out) = Self.addWithCarry(a, b, 0)
        setCarries(a, b, sum, out: out)
        setGR(d.t, sum)
        return .next
    }

    /// ADDI, ADDIO (overflow trap), ADDIT, ADDITO (condition trap): GR[t] = im11 + GR[r].
    mutating func addImmediate(_ d: DecodedInstruction) -> Step {
        let a = d.immediate, b = gr(d.r2)
        let (sum, out) = Self.addWithCarry(a, b, 0)
        let overflow = Self.addOverflow(a, b, sum)
        if overflow && d.flags & DecodedFlag.trapOnOverflow != 0 { return .trap(.overflow) }
        let condition = Conditions.add(d.condition, result: sum, carry: out != 0, overflow: overflow)
        if d.flags & DecodedFlag.trapOnCondition != 0 {
            if condition { return .trap(.conditional) }
        } else {
            s.nullifyNext = condition
        }
        setCarries(a, b, sum, out: out)
        setGR(d.t, sum)
        return .next
    }

    @inline(__always) mutating func subImmediateNoCondition(_ d: DecodedInstruction) -> Step {
        let a = d.immediate, b = gr(d.r2)
        let (difference, out) = Self.addWithCarry(a, ~b, 1)
        setCarries(a, ~b, difference, out: out)
        setGR(d.t, difference)
        return .next
    }

    /// SUBI, SUBIO: GR[t] = im11 - GR[r].
    mutating func subImmediate(_ d: DecodedInstruction) -> Step {
        let a = d.immediate, b = gr(d.r2)
        let (difference, out) = Self.addWithCarry(a, ~b, 1)
        let overflow = Self.subOverflow(a, b, difference)
        if overflow && d.flags & DecodedFlag.trapOnOverflow != 0 { return .trap(.overflow) }
        s.nullifyNext = Conditions.compare(d.condition, a, b, result: difference, overflow: overflow)
        setCarries(a, ~b, difference, out: out)
        setGR(d.t, difference)
        return .next
    }

    /// COMICLR: compare im11 with GR[r], nullify on the condition, clear GR[t].
    mutating func compareImmediateClear(_ d: DecodedInstruction) -> Step {
        let a = d.immediate, b = gr(d.r2)
        let difference = a &- b
        s.nullifyNext = Conditions.compare(d.condition, a, b, result: difference,
                                           overflow: Self.subOverflow(a, b, difference))
        setGR(d.t, 0)
        return .next
    }
}
