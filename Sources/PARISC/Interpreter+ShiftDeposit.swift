/// Shift double, extract and deposit (opcodes 0x34, 0x35). Bit positions in the manual count
/// from the most significant bit; the decoder has turned them into shift amounts. The variable
/// forms take the position from SAR (CR11): manual position p is a right shift of 31 - p.
extension Interpreter {
    @inline(__always) var sar: UInt32 { mutating get { s.controlRegisters[11] & 31 } }

    @inline(__always) static func shiftPair(_ high: UInt32, _ low: UInt32, by amount: UInt32) -> UInt32 {
        UInt32(truncatingIfNeeded: (UInt64(high) &<< 32 | UInt64(low)) &>> UInt64(amount))
    }

    @inline(__always) mutating func shiftResult(_ d: DecodedInstruction, _ value: UInt32) -> Step {
        setGR(d.t, value)
        s.nullifyNext = Conditions.logical(d.condition, value)
        return .next
    }

    /// VSHD: GR[t] = low word of (GR[r1]:GR[r2]) >> SAR.
    mutating func shiftDoubleVariable(_ d: DecodedInstruction) -> Step {
        shiftResult(d, Self.shiftPair(gr(d.r1), gr(d.r2), by: sar))
    }

    /// SHD: GR[t] = low word of (GR[r1]:GR[r2]) >> (31 - p).
    mutating func shiftDouble(_ d: DecodedInstruction) -> Step {
        shiftResult(d, Self.shiftPair(gr(d.r1), gr(d.r2), by: UInt32(d.aux)))
    }

    @inline(__always) mutating func shiftDoubleNoCondition(_ d: DecodedInstruction) -> Step {
        setGR(d.t, Self.shiftPair(gr(d.r1), gr(d.r2), by: UInt32(d.aux)))
        return .next
    }

    /// EXTRU without condition: the `len`-bit field ending at bit p, zero-extended.
    @inline(__always) mutating func extractUnsignedNoCondition(_ d: DecodedInstruction) -> Step {
        setGR(d.t, (gr(d.r2) &>> UInt32(d.aux)) & d.immediate)
        return .next
    }

    /// EXTRS without condition: the field, sign-extended.
    @inline(__always) mutating func extractSignedNoCondition(_ d: DecodedInstruction) -> Step {
        let left = gr(d.r2) &<< UInt32(d.aux)
        setGR(d.t, UInt32(bitPattern: Int32(bitPattern: left) &>> Int32(d.immediate)))
        return .next
    }

    /// EXTRU / EXTRS with a condition.
    mutating func extract(_ d: DecodedInstruction) -> Step {
        let value: UInt32
        if d.flags & DecodedFlag.signed != 0 {
            let left = gr(d.r2) &<< UInt32(d.aux)
            value = UInt32(bitPattern: Int32(bitPattern: left) &>> Int32(d.immediate))
        } else {
            value = (gr(d.r2) &>> UInt32(d.aux)) & d.immediate
        }
        return shiftResult(d, value)
    }

    /// VEXTRU / VEXTRS: the `len`-bit field ending at bit SAR.
    mutating func extractVariable(_ d: DecodedInstruction) -> Step {
        let shift = 31 - sar
        let length = d.immediate
        let value: UInt32
        if d.flags & DecodedFlag.signed != 0 {
            let shifted = Int64(Int32(bitPattern: gr(d.r2))) >> Int64(shift)
            let field = UInt64(bitPattern: shifted) << (64 - UInt64(length))
            value = UInt32(truncatingIfNeeded: Int64(bitPattern: field) >> (64 - Int64(length)))
        } else {
            value = (gr(d.r2) &>> shift) & Decoder.lengthMask(length)
        }
        return shiftResult(d, value)
    }

    /// The source of a deposit: GR[r1], or im5 for the immediate forms.
    @inline(__always) mutating func depositSource(_ d: DecodedInstruction) -> UInt32 {
        d.flags & DecodedFlag.signed != 0
            ? UInt32(bitPattern: Int32(Int8(bitPattern: d.r1))) : gr(d.r1)
    }

    /// `value` placed under `mask` (at `shift`), the rest zero (ZDEP) or kept from GR[t] (DEP).
    @inline(__always)
    mutating func deposited(_ d: DecodedInstruction, mask: UInt32, shift: UInt32) -> UInt32 {
        let field = (depositSource(d) &<< shift) & mask
        return d.flags & DecodedFlag.link != 0 ? (gr(d.r2) & ~mask) | field : field
    }

    /// ZDEP/DEP/ZDEPI/DEPI without condition.
    @inline(__always) mutating func depositNoCondition(_ d: DecodedInstruction) -> Step {
        let shift = UInt32(d.aux)
        setGR(d.t, deposited(d, mask: d.immediate &<< shift, shift: shift))
        return .next
    }

    /// ZDEP/DEP/ZDEPI/DEPI with a condition.
    mutating func deposit(_ d: DecodedInstruction) -> Step {
        let shift = UInt32(d.aux)
        return shiftResult(d, deposited(d, mask: d.immediate &<< shift, shift: shift))
    }

    /// ZVDEP/VDEP/ZVDEPI/VDEPI: deposit with the rightmost bit at SAR.
    mutating func depositVariable(_ d: DecodedInstruction) -> Step {
        let shift = 31 - sar
        return shiftResult(d, deposited(d, mask: d.immediate &<< shift, shift: shift))
    }
}
