/// Branches (opcodes 0x20-0x23, 0x28-0x2B, 0x30-0x33, 0x38-0x3A).
///
/// When a handler runs, the queue has already advanced (front = the delay slot, back = the
/// instruction after it); a taken branch replaces the back with its target. Nullification:
/// `,n` on an unconditional branch always nullifies the delay slot; on a conditional branch it
/// nullifies the delay slot of a taken forward branch (displacement >= 0) and of a not-taken
/// backward branch.
extension Interpreter {
    /// A conditional branch's outcome.
    @inline(__always) mutating func conditionalBranch(_ d: DecodedInstruction, _ q: Queue, taken: Bool) -> Step {
        let forward = Int32(bitPattern: d.immediate) >= 0
        if taken {
            nextBack = q.front &+ 8 &+ d.immediate
            s.nullifyNext = d.flags & DecodedFlag.nullify != 0 && forward
        } else {
            s.nullifyNext = d.flags & DecodedFlag.nullify != 0 && !forward
        }
        return .next
    }

    /// The offset `target` with its privilege bits no more privileged than the current level
    /// (BV, BE, BLE cannot promote).
    @inline(__always) mutating func demoted(_ target: UInt32, _ q: Queue) -> UInt32 {
        let level = max(q.privilege, target & 3)
        return (target & ~3) | level
    }

    // MARK: Unconditional

    /// BL: GR[t] = return address (after the delay slot), branch to IAOQ_Front + 8 + disp.
    @inline(__always) mutating func branchLink(_ d: DecodedInstruction, _ q: Queue) -> Step {
        setGR(d.t, q.back &+ 4)
        nextBack = q.front &+ 8 &+ d.immediate
        s.nullifyNext = d.flags & DecodedFlag.nullify != 0
        return .next
    }

    /// GATE: branch like BL, promoting to PL 0 (real mode: no page-table access rights); the old
    /// privilege level goes into the low bits of GR[t].
    mutating func branchGate(_ d: DecodedInstruction, _ q: Queue) -> Step {
        let level = q.privilege
        let target = ((q.front &+ 8 &+ d.immediate) & ~3)
        if d.t != 32 { setGR(d.t, (gr(d.t) & ~3) | level) }
        nextBack = target
        s.nullifyNext = d.flags & DecodedFlag.nullify != 0
        return .next
    }

    /// BLR: GR[t] = return address, branch to IAOQ_Front + 8 + GR[x] * 8.
    mutating func branchLinkRegister(_ d: DecodedInstruction, _ q: Queue) -> Step {
        let target = q.front &+ 8 &+ (gr(d.r1) &<< 3)
        setGR(d.t, q.back &+ 4)
        nextBack = target
        s.nullifyNext = d.flags & DecodedFlag.nullify != 0
        return .next
    }

    /// BV: branch to GR[b] + GR[x] * 8.
    @inline(__always) mutating func branchVectored(_ d: DecodedInstruction, _ q: Queue) -> Step {
        nextBack = demoted(gr(d.r2) &+ (gr(d.r1) &<< 3), q)
        s.nullifyNext = d.flags & DecodedFlag.nullify != 0
        return .next
    }

    /// BE / BLE: branch to GR[b] + disp in space SR[s] (spaces do not affect addressing).
    /// BLE links the return offset into GR31 and its space into SR0.
    mutating func branchExternal(_ d: DecodedInstruction, _ q: Queue) -> Step {
        let target = demoted(gr(d.r2) &+ d.immediate, q)
        let space = s.spaceRegisters[Int(d.aux & 7)]
        if d.flags & DecodedFlag.link != 0 {
            setGR(31, q.back &+ 4)
            s.spaceRegisters[0] = s.iasqBack
        }
        nextBack = target
        if space != s.iasqBack {
            spaceChange = (delaySlot: q.back, target: target, oldSpace: s.iasqBack)
            s.iasqBack = space
        }
        s.nullifyNext = d.flags & DecodedFlag.nullify != 0
        return .next
    }

    // MARK: Conditional

    /// COMBT / COMBF: branch if GR[r1] <cond> GR[r2].
    @inline(__always) mutating func compareBranch(_ d: DecodedInstruction, _ q: Queue) -> Step {
        let a = gr(d.r1), b = gr(d.r2)
        let difference = a &- b
        let taken = Conditions.compare(d.condition, a, b, result: difference,
                                       overflow: Self.subOverflow(a, b, difference))
        return conditionalBranch(d, q, taken: taken)
    }

    /// COMIBT / COMIBF: branch if im5 <cond> GR[r].
    @inline(__always) mutating func compareImmediateBranch(_ d: DecodedInstruction, _ q: Queue) -> Step {
        let a = UInt32(bitPattern: Int32(Int8(bitPattern: d.aux))), b = gr(d.r2)
        let difference = a &- b
        let taken = Conditions.compare(d.condition, a, b, result: difference,
                                       overflow: Self.subOverflow(a, b, difference))
        return conditionalBranch(d, q, taken: taken)
    }

    /// ADDBT / ADDBF: GR[r2] = GR[r1] + GR[r2], branch on the add condition (PSW C/B unchanged).
    @inline(__always) mutating func addBranch(_ d: DecodedInstruction, _ q: Queue) -> Step {
        let a = gr(d.r1), b = gr(d.r2)
        let (sum, out) = Self.addWithCarry(a, b, 0)
        let taken = Conditions.add(d.condition, result: sum, carry: out != 0,
                                   overflow: Self.addOverflow(a, b, sum))
        setGR(d.t, sum)
        return conditionalBranch(d, q, taken: taken)
    }

    /// ADDIBT / ADDIBF: GR[r] = im5 + GR[r], branch on the add condition.
    @inline(__always) mutating func addImmediateBranch(_ d: DecodedInstruction, _ q: Queue) -> Step {
        let a = UInt32(bitPattern: Int32(Int8(bitPattern: d.aux))), b = gr(d.r2)
        let (sum, out) = Self.addWithCarry(a, b, 0)
        let taken = Conditions.add(d.condition, result: sum, carry: out != 0,
                                   overflow: Self.addOverflow(a, b, sum))
        setGR(d.t, sum)
        return conditionalBranch(d, q, taken: taken)
    }

    /// MOVB: GR[t] = GR[r1], branch on the shift/extract condition of the value.
    mutating func moveBranch(_ d: DecodedInstruction, _ q: Queue) -> Step {
        let value = gr(d.r1)
        setGR(d.t, value)
        return conditionalBranch(d, q, taken: Conditions.logical(d.condition, value))
    }

    /// MOVIB: GR[t] = im5, branch on the shift/extract condition of the value.
    mutating func moveImmediateBranch(_ d: DecodedInstruction, _ q: Queue) -> Step {
        let value = UInt32(bitPattern: Int32(Int8(bitPattern: d.aux)))
        setGR(d.t, value)
        return conditionalBranch(d, q, taken: Conditions.logical(d.condition, value))
    }

    /// BB: branch if bit p (0 = most significant) of GR[r] is 1 (`<`) or 0 (`>=`).
    @inline(__always) mutating func branchOnBit(_ d: DecodedInstruction, _ q: Queue) -> Step {
        let bit = (gr(d.r1) &<< UInt32(d.aux)) & 0x8000_0000 != 0
        return conditionalBranch(d, q, taken: bit == (d.condition == 0))
    }

    /// BVB: as BB with the bit number in SAR.
    mutating func branchOnVariableBit(_ d: DecodedInstruction, _ q: Queue) -> Step {
        let bit = (gr(d.r1) &<< s.controlRegisters[11]) & 0x8000_0000 != 0
        return conditionalBranch(d, q, taken: bit == (d.condition == 0))
    }
}
