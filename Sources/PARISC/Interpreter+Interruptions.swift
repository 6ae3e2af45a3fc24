/// Taking an interruption (PA-RISC 1.1 manual, "Interruptions"):
/// 1. IPSW ← PSW (N included: a group-2 interruption before a nullified instruction keeps it
///    nullified after RFI), then PSW ← 0 (real mode, PL 0, I = Q = R = 0, C/B and V cleared).
/// 2. If the old PSW Q was 1: IIASQ/IIAOQ ← both elements of the instruction address queues
///    (group 3: the trapping instruction and its successor; group 2: the next instruction not yet
///    executed and its successor), IIR ← the instruction word for traps, ISR/IOR ← the space and
///    offset of a faulting data access, shadow registers ← GR1, 8, 9, 16, 17, 24, 25.
/// 3. Execution continues at IVA + 32 · number.
///
/// With IVA = 0 the guest has installed no handler: the run stops with one line naming the
/// interruption, the instruction word, its mnemonic and its address.
extension Interpreter {
    mutating func deliver(_ interruption: Interruption, front: UInt32, back: UInt32) -> PARISCStop? {
        let iva = s.controlRegisters[14]
        guard iva != 0 else {
            return .crashed(reason: noHandlerMessage(interruption, front: front))
        }
        interruptionsWithoutProgress += 1
        if interruptionsWithoutProgress > 1000 {
            return .crashed(reason: "interruption storm: \(interruption) taken again at "
                + hex(front) + " without completing any instruction (IVA = \(hex(iva)))")
        }
        if s.pswOther & PSW.r != 0 {
            s.recoveryCounter = s.recoveryCounter(atProgress: progress)
        }
        let old = s.psw
        s.controlRegisters[22] = old
        if old & PSW.q != 0 {
            s.controlRegisters[17] = frontSpace(front: front, back: back)
            s.iiasqBack = s.iasqBack
            s.controlRegisters[18] = front
            s.iiaoqBack = back
            if interruption.setsIIR { s.controlRegisters[19] = instructionWord(at: front) ?? 0 }
            if interruption.setsDataAddress {
                s.controlRegisters[20] = faultSpace
                s.controlRegisters[21] = faultOffset
            }
            for (i, register) in Self.shadowed.enumerated() {
                s.shadowRegisters[i] = gr(register)
            }
        }
        s.psw = 0
        s.iaoqFront = iva &+ 32 &* UInt32(interruption.number)
        s.iaoqBack = s.iaoqFront &+ 4
        s.iasqFront = 0
        s.iasqBack = 0
        spaceChange = nil
        return nil
    }

    /// The one line for an interruption the guest has no handler for.
    func noHandlerMessage(_ interruption: Interruption, front: UInt32) -> String {
        var message = "\(interruption)"
        if interruption.group == 2 {
            message += " before the instruction at \(hex(front))"
        } else if let word = instructionWord(at: front) {
            message += " at \(hex(front)): instruction word \(hex(word))"
            if let name = InstructionNames.mnemonic(word) { message += " (\(name))" }
        } else {
            message += " at \(hex(front)): instruction fetch outside RAM"
        }
        if interruption.setsDataAddress {
            message += ", data address \(hex(faultOffset))"
            if interruption == .dataFault { message += " is neither RAM nor a device" }
        }
        return message + "; no interruption handler is installed (IVA = 0)"
    }
}

/// `0x` and eight hexadecimal digits.
func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}
