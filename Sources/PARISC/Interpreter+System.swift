import MachineCore

/// System control instructions (opcodes 0x00, 0x01, 0x05, QEMU's HALT).
extension Interpreter {
    /// Privileged instructions at PL > 0 raise interruption 10.

    // MARK: PSW changes and the recovery counter

    /// Replaces the PSW bits other than N/V/C/B, keeping the recovery counter exact across a
    /// change of PSW R: the instruction doing it counts with the R it started with.
    mutating func setPSWOther(_ newOther: UInt32, _ q: Queue) {
        let wasCounting = s.pswOther & PSW.r != 0
        let willCount = newOther & PSW.r != 0
        // CR0 after this instruction completes (progress + 1).
        var value = s.recoveryCounter(atProgress: q.progress)
        if wasCounting { value &-= 1 }
        s.pswOther = newOther
        s.recoveryCounter = value
        if willCount { s.recoveryCounterBase = q.progress &+ 1 }
    }

    /// SSM: GR[t] = old system mask; PSW |= mask.
    mutating func setSystemMask(_ d: DecodedInstruction, _ q: Queue) -> Step {
        guard q.privilege == 0 else { return .trap(.privilegedOperation) }
        let old = s.pswOther & PSW.systemMask
        setPSWOther(s.pswOther | d.immediate, q)
        setGR(d.t, old)
        return .recheck
    }

    /// RSM: GR[t] = old system mask; PSW &= ~mask.
    mutating func resetSystemMask(_ d: DecodedInstruction, _ q: Queue) -> Step {
        guard q.privilege == 0 else { return .trap(.privilegedOperation) }
        let old = s.pswOther & PSW.systemMask
        setPSWOther(s.pswOther & ~d.immediate, q)
        setGR(d.t, old)
        return .recheck
    }

    /// MTSM: system mask = GR[r].
    mutating func moveToSystemMask(_ d: DecodedInstruction, _ q: Queue) -> Step {
        guard q.privilege == 0 else { return .trap(.privilegedOperation) }
        setPSWOther((s.pswOther & ~PSW.systemMask) | (gr(d.r1) & PSW.systemMask), q)
        return .recheck
    }

    /// RFI / RFIR: PSW = IPSW, IA queues = IIA queues (both elements); RFIR also restores
    /// GR1, 8, 9, 16, 17, 24, 25 from the shadow registers.
    mutating func returnFromInterruption(_ d: DecodedInstruction, _ q: Queue) -> Step {
        guard q.privilege == 0 else { return .trap(.privilegedOperation) }
        let ipsw = s.controlRegisters[22]
        setPSWOther(ipsw & ~(PSW.n | PSW.v | PSW.carryBorrow), q)
        let other = s.pswOther
        s.psw = ipsw
        s.pswOther = other
        s.iaoqFront = s.controlRegisters[18]
        s.iaoqBack = s.iiaoqBack
        queueReplaced = true
        s.iasqBack = s.iiasqBack
        spaceChange = s.controlRegisters[17] == s.iiasqBack ? nil
            : (delaySlot: s.iaoqFront, target: s.iaoqBack, oldSpace: s.controlRegisters[17])
        if d.aux == 1 {
            for (i, register) in Self.shadowed.enumerated() {
                setGR(register, s.shadowRegisters[i])
            }
        }
        return .recheck
    }

    /// The general registers the shadow registers copy, in order.
    static let shadowed: [UInt8] = [1, 8, 9, 16, 17, 24, 25]

    // MARK: Control registers

    /// MTCTL: CR11 (SAR) at any level, the others at PL 0 only.
    mutating func moveToControl(_ d: DecodedInstruction, _ q: Queue) -> Step {
        let value = gr(d.r1)
        let register = Int(d.aux)
        if register == 11 {
            s.controlRegisters[11] = value & 31
            return .next
        }
        guard q.privilege == 0 else { return .trap(.privilegedRegister) }
        switch register {
        case 0:
            // The written value is CR0 after this instruction (its own decrement is replaced).
            s.recoveryCounter = value
            s.recoveryCounterBase = q.progress &+ 1
            return .recheck
        case 16:
            s.controlRegisters[16] = value
            cpu.writeIntervalTimerComparator(value, atProgress: q.progress)
            return .next
        case 17:
            s.controlRegisters[17] = s.iiasqBack
            s.iiasqBack = value
            return .next
        case 18:
            s.controlRegisters[18] = s.iiaoqBack
            s.iiaoqBack = value
            return .next
        case 23:
            cpu.externalInterruptRequests &= ~value
            return .recheck
        case 15:
            s.controlRegisters[15] = value
            return .recheck
        default:
            s.controlRegisters[register] = value
            return .next
        }
    }

    /// MFCTL: CR11, CR26, CR27 and CR16 (unless PSW S) at any level, the others at PL 0 only.
    mutating func moveFromControl(_ d: DecodedInstruction, _ q: Queue) -> Step {
        let register = Int(d.aux)
        let value: UInt32
        switch register {
        case 11, 26, 27:
            value = s.controlRegisters[register]
        case 16:
            if s.pswOther & PSW.s != 0 && q.privilege != 0 { return .trap(.privilegedRegister) }
            do {
                value = try cpu.readIntervalTimer(atProgress: q.progress)
            } catch {
                environmentError = error
                return .stopBefore(.environmentFailure)
            }
        default:
            guard q.privilege == 0 else { return .trap(.privilegedRegister) }
            switch register {
            case 0: value = s.recoveryCounter(atProgress: q.progress)
            case 23: value = cpu.externalInterruptRequests
            default: value = s.controlRegisters[register]
            }
        }
        setGR(d.t, value)
        return .next
    }

    // MARK: Space registers

    /// LDSID: GR[t] = the space of (s, b).
    mutating func loadSpaceID(_ d: DecodedInstruction) -> Step {
        let register = d.aux == 0 ? 4 + Int(gr(d.r2) >> 30) : Int(d.aux)
        setGR(d.t, s.spaceRegisters[register])
        return .next
    }

    /// MTSP: SR[s] = GR[r]; SR5-SR7 only at PL 0.
    mutating func moveToSpace(_ d: DecodedInstruction, _ q: Queue) -> Step {
        if d.aux >= 5 && q.privilege != 0 { return .trap(.privilegedRegister) }
        s.spaceRegisters[Int(d.aux & 7)] = gr(d.r1)
        return .next
    }

    /// MFSP: GR[t] = SR[s].
    mutating func moveFromSpace(_ d: DecodedInstruction) -> Step {
        setGR(d.t, s.spaceRegisters[Int(d.aux & 7)])
        return .next
    }

    // MARK: Implementation-dependent and management

    /// DIAG: `diag 0x100` is Lockstep's idle hint (stop with `.idle` if PSW I = 1 and no unmasked
    /// interrupt is pending); every other DIAG is a no-op, as in QEMU 7.2.
    mutating func diagnose(_ d: DecodedInstruction, _ q: Queue) -> Step {
        guard q.privilege == 0 else { return .trap(.privilegedOperation) }
        if d.immediate == 0x100 && s.pswOther & PSW.i != 0
            && cpu.externalInterruptRequests & s.controlRegisters[15] == 0
        {
            return .stopAfter(.idle)
        }
        return .next
    }

    /// QEMU's HALT (0xfffdead0): stop the machine.
    mutating func halt(_ d: DecodedInstruction, _ q: Queue) -> Step {
        guard q.privilege == 0 else { return .trap(.privilegedOperation) }
        return .stopAfter(.halted)
    }

    /// FDC, FIC, PDC, FDCE, FICE and the TLB purges/inserts: no-ops in a real-mode interpreter
    /// (stores keep the predecoded cache coherent), except for base modification.
    mutating func cacheOrTLB(_ d: DecodedInstruction, _ q: Queue) -> Step {
        if d.flags & DecodedFlag.privileged != 0 && q.privilege != 0 {
            return .trap(.privilegedOperation)
        }
        if d.flags & DecodedFlag.modifyAfter != 0 { setGR(d.aux, gr(d.r2) &+ gr(d.r1)) }
        return .next
    }

    /// PROBER/PROBEW: real mode has no protection, every access is allowed: GR[t] = 1.
    mutating func probe(_ d: DecodedInstruction) -> Step {
        setGR(d.t, 1)
        return .next
    }

    /// LPA: real mode, the physical address is the offset.
    mutating func loadPhysicalAddress(_ d: DecodedInstruction, _ q: Queue) -> Step {
        guard q.privilege == 0 else { return .trap(.privilegedOperation) }
        let base = gr(d.r2), modified = base &+ gr(d.r1)
        let modify = d.flags & DecodedFlag.modifyAfter != 0
        if modify { setGR(d.aux, modified) }
        setGR(d.t, modify ? base : modified)
        return .next
    }

    /// LCI: every address is coherent: GR[t] = 0.
    mutating func loadCoherenceIndex(_ d: DecodedInstruction, _ q: Queue) -> Step {
        guard q.privilege == 0 else { return .trap(.privilegedOperation) }
        setGR(d.t, 0)
        return .next
    }
}
