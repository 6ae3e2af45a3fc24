/// The instruction decoder: a table indexed by the major opcode whose entries decode one format,
/// some through a second table indexed by the format's extension field. It runs once per
/// instruction word (results are cached per address by the interpreter).
enum Decoder {
    typealias Entry = @Sendable (UInt32) -> DecodedInstruction
    typealias F = InstructionFields

    /// Decodes one instruction word.
    static func decode(_ word: UInt32) -> DecodedInstruction {
        majorTable[Int(word >> 26)](word)
    }

    // MARK: The major opcode table

    static let majorTable: [Entry] = {
        var table = [Entry](repeating: { _ in .illegal }, count: 64)
        table[0x00] = system
        table[0x01] = memoryManagement
        table[0x02] = arithmetic
        table[0x03] = indexedMemory
        table[0x04] = { _ in DecodedInstruction(.coprocessor) }     // SPOP
        table[0x05] = diagnose
        table[0x06] = { _ in DecodedInstruction(.coprocessor) }     // FMPYADD
        table[0x08] = loadImmediateLeft
        table[0x09] = { _ in DecodedInstruction(.coprocessor) }     // CLDW (FLDW/FSTW)
        table[0x0A] = addImmediateLeft
        table[0x0B] = { _ in DecodedInstruction(.coprocessor) }     // CLDD (FLDD/FSTD)
        table[0x0C] = { _ in DecodedInstruction(.coprocessor) }     // COPR (FP)
        table[0x0D] = loadOffset
        table[0x0E] = { _ in DecodedInstruction(.coprocessor) }     // FP (PA 1.1 class 0E)
        table[0x10] = { displacementLoad($0, size: 0) }            // LDB
        table[0x11] = { displacementLoad($0, size: 1) }            // LDH
        table[0x12] = { displacementLoad($0, size: 2) }            // LDW
        table[0x13] = loadWordModify                               // LDWM
        table[0x18] = { displacementStore($0, size: 0) }           // STB
        table[0x19] = { displacementStore($0, size: 1) }           // STH
        table[0x1A] = { displacementStore($0, size: 2) }           // STW
        table[0x1B] = storeWordModify                              // STWM
        table[0x20] = { compareBranch($0, negate: false) }         // COMBT
        table[0x21] = { compareImmediateBranch($0, negate: false) }  // COMIBT
        table[0x22] = { compareBranch($0, negate: true) }          // COMBF
        table[0x23] = { compareImmediateBranch($0, negate: true) }   // COMIBF
        table[0x24] = compareImmediateClear                        // COMICLR
        table[0x25] = subtractImmediate                            // SUBI, SUBIO
        table[0x26] = { _ in DecodedInstruction(.coprocessor) }     // FMPYSUB
        table[0x28] = { addBranch($0, negate: false) }             // ADDBT
        table[0x29] = { addImmediateBranch($0, negate: false) }    // ADDIBT
        table[0x2A] = { addBranch($0, negate: true) }              // ADDBF
        table[0x2B] = { addImmediateBranch($0, negate: true) }     // ADDIBF
        table[0x2C] = { addImmediate($0, trapOnCondition: true) }  // ADDIT, ADDITO
        table[0x2D] = { addImmediate($0, trapOnCondition: false) } // ADDI, ADDIO
        table[0x30] = branchOnVariableBit                          // BVB
        table[0x31] = branchOnBit                                  // BB
        table[0x32] = moveBranch                                   // MOVB
        table[0x33] = moveImmediateBranch                          // MOVIB
        table[0x34] = { shiftTable[Int(F.ext3Shift($0))]($0) }     // SHD, EXTRU ...
        table[0x35] = { depositTable[Int(F.ext3Shift($0))]($0) }   // ZDEP, DEP, DEPI ...
        table[0x38] = { branchExternal($0, link: false) }          // BE
        table[0x39] = { branchExternal($0, link: true) }           // BLE
        table[0x3A] = { branchTable[Int(F.ext3Branch($0))]($0) }   // BL, GATE, BLR, BV
        table[0x3F] = { $0 == 0xFFFD_EAD0 ? privileged(DecodedInstruction(.halt)) : .illegal }  // QEMU HALT
        return table
    }()

    // MARK: Opcode 0x00: system control (ext8 in manual bits 19..26)

    static let systemTable: [UInt32: Entry] = [
        0x00: { _ in DecodedInstruction(.breakInstruction) },           // BREAK
        0x20: { _ in DecodedInstruction(.nop) },                        // SYNC, SYNCDMA
        0x60: { _ in privileged(DecodedInstruction(.returnFromInterruption)) },  // RFI
        0x65: { _ in                                                    // RFIR
            var d = privileged(DecodedInstruction(.returnFromInterruption))
            d.aux = 1
            return d
        },
        0x6B: { systemMaskChange($0, .setSystemMask) },                 // SSM
        0x73: { systemMaskChange($0, .resetSystemMask) },               // RSM
        0xC3: { w in                                                    // MTSM
            var d = privileged(DecodedInstruction(.moveToSystemMask))
            d.r1 = F.field11(w)
            return d
        },
        0x85: { w in                                                    // LDSID
            var d = DecodedInstruction(.loadSpaceID)
            d.r2 = F.field6(w)
            d.aux = F.space2(w)
            d.t = DecodedInstruction.target(F.field27(w))
            return d
        },
        0xC1: { w in                                                    // MTSP
            var d = DecodedInstruction(.moveToSpace)
            d.r1 = F.field11(w)
            d.aux = F.spaceRegister3(w)
            return d
        },
        0x25: { w in                                                    // MFSP
            var d = DecodedInstruction(.moveFromSpace)
            d.aux = F.spaceRegister3(w)
            d.t = DecodedInstruction.target(F.field27(w))
            return d
        },
        0xC2: { w in                                                    // MTCTL
            var d = DecodedInstruction(.moveToControl)
            d.r1 = F.field11(w)
            d.aux = F.field6(w)
            return d
        },
        0x45: { w in                                                    // MFCTL
            var d = DecodedInstruction(.moveFromControl)
            d.aux = F.field6(w)
            d.t = DecodedInstruction.target(F.field27(w))
            return d
        },
    ]

    static let system: Entry = { word in
        systemTable[F.ext8System(word)]?(word) ?? .illegal
    }

    static func privileged(_ d: DecodedInstruction) -> DecodedInstruction {
        var d = d
        d.flags |= DecodedFlag.privileged
        return d
    }

    /// SSM/RSM: `immediate` = the PSW bits to set or clear, `t` = where the old mask goes.
    static func systemMaskChange(_ word: UInt32, _ op: Operation) -> DecodedInstruction {
        var d = DecodedInstruction(op)
        d.immediate = PSW.systemMask(fromImmediate: F.systemMaskImmediate(word))
        d.t = DecodedInstruction.target(F.field27(word))
        d.flags |= DecodedFlag.privileged        // both are privileged in PA 1.1
        return d
    }

    // MARK: Opcode 0x01: memory management (cache flushes, TLB, PROBE, LPA, LCI)

    static let memoryManagement: Entry = { word in
        // PROBER/PROBEW/PROBERI/PROBEWI: manual bits 19..24 = 100011, bit 26 = 0.
        if (word >> 7) & 0x3F == 0x23 && (word >> 5) & 1 == 0 {
            var d = DecodedInstruction(.probe)
            d.r2 = F.field6(word)                 // b
            d.r1 = F.field11(word)                // level register or immediate level
            d.t = DecodedInstruction.target(F.field27(word))
            d.aux = (word >> 13) & 1 != 0 ? 1 : 0  // immediate level
            d.condition = (word >> 6) & 1 != 0 ? 1 : 0  // write access
            return d
        }
        var d = DecodedInstruction(.cacheOrTLB)
        d.r2 = F.field6(word)                     // b
        d.r1 = F.field11(word)                    // x (or r for TLB inserts)
        d.aux = DecodedInstruction.target(F.field6(word))  // base write index
        let modify = (word >> 5) & 1 != 0
        if (word >> 12) & 1 != 0 {
            // Data-side forms with a 2-bit space field: ext8 in manual bits 18..25.
            switch F.ext8Management(word) {
            case 0x4A, 0x4B:                      // FDC, FDCE (indexed)
                if modify { d.flags |= DecodedFlag.modifyAfter | DecodedFlag.indexed }
            case 0xCA:                            // FDC with displacement (PA 2.0 form): no-op
                break
            case 0x4E:                            // PDC
                d.flags |= DecodedFlag.privileged
                if modify { d.flags |= DecodedFlag.modifyAfter | DecodedFlag.indexed }
            case 0x48, 0x49:                      // PDTLB, PDTLBE
                d.flags |= DecodedFlag.privileged
                if modify { d.flags |= DecodedFlag.modifyAfter | DecodedFlag.indexed }
            case 0x40, 0x41:                      // IDTLBA, IDTLBP
                d.flags |= DecodedFlag.privileged
            case 0x4D:                            // LPA
                var l = DecodedInstruction(.loadPhysicalAddress)
                l.r2 = d.r2
                l.r1 = d.r1
                l.aux = d.aux
                l.t = DecodedInstruction.target(F.field27(word))
                l.flags = DecodedFlag.privileged | DecodedFlag.indexed
                    | (modify ? DecodedFlag.modifyAfter : 0)
                return l
            case 0x4C:                            // LCI
                var l = DecodedInstruction(.loadCoherenceIndex)
                l.t = DecodedInstruction.target(F.field27(word))
                l.flags = DecodedFlag.privileged
                return l
            default:
                return .illegal
            }
        } else {
            // Instruction-side forms with a 3-bit space field: ext in manual bits 20..25.
            switch (word >> 6) & 0x3F {
            case 0x0A, 0x0B:                      // FIC, FICE
                if modify { d.flags |= DecodedFlag.modifyAfter | DecodedFlag.indexed }
            case 0x08, 0x09:                      // PITLB, PITLBE
                d.flags |= DecodedFlag.privileged
                if modify { d.flags |= DecodedFlag.modifyAfter | DecodedFlag.indexed }
            case 0x00, 0x01:                      // IITLBA, IITLBP
                d.flags |= DecodedFlag.privileged
            default:
                return .illegal
            }
        }
        return d
    }

    // MARK: Opcode 0x02: arithmetic and logical (ext6 in manual bits 20..25)

    /// `condition` = c << 1 | f (QEMU's `cf`), `aux` = shift of r1 for SHnADD.
    static let arithmetic: Entry = { word in
        guard (word >> 5) & 1 == 0 else { return .illegal }   // PA 2.0 doubleword forms
        return arithmeticTable[Int(F.ext6(word))](word)
    }

    static func threeRegister(_ word: UInt32, _ op: Operation) -> DecodedInstruction {
        var d = DecodedInstruction(op)
        d.r1 = F.field11(word)
        d.r2 = F.field6(word)
        d.t = DecodedInstruction.target(F.field27(word))
        d.condition = UInt8((word >> 12) & 0xF)
        return d
    }

    static func addFamily(_ word: UInt32, shift: UInt8, flags: UInt8) -> DecodedInstruction {
        var d = threeRegister(word, .add)
        d.aux = shift
        d.flags = flags
        if d.condition == 0 && flags & (DecodedFlag.trapOnOverflow | DecodedFlag.carryIn) == 0 {
            d.operation = flags & DecodedFlag.logical != 0 ? .addLogicalNoCondition : .addNoCondition
        }
        return d
    }

    static func subFamily(_ word: UInt32, flags: UInt8) -> DecodedInstruction {
        var d = threeRegister(word, .sub)
        d.flags = flags
        if d.condition == 0 && flags == 0 { d.operation = .subNoCondition }
        return d
    }

    static func logical(_ word: UInt32, _ general: Operation, _ fast: Operation)
        -> DecodedInstruction
    {
        var d = threeRegister(word, general)
        if d.condition == 0 {
            d.operation = fast
            if fast == .orNoCondition && (d.r2 == 0 || d.r1 == 0) {
                d.operation = .copy               // COPY: or r,0,t (and or 0,r,t)
                if d.r1 == 0 { d.r1 = d.r2 }
            }
        }
        return d
    }

    static let arithmeticTable: [Entry] = {
        var table = [Entry](repeating: { _ in .illegal }, count: 64)
        let trapV = DecodedFlag.trapOnOverflow, carry = DecodedFlag.carryIn
        let logicalFlag = DecodedFlag.logical, trapC = DecodedFlag.trapOnCondition
        table[0x00] = { logical($0, .logicalAndComplement, .andComplementNoCondition) }  // ANDCM
        table[0x08] = { logical($0, .logicalAnd, .andNoCondition) }                      // AND
        table[0x09] = { logical($0, .logicalOr, .orNoCondition) }                        // OR
        table[0x0A] = { logical($0, .logicalXor, .xorNoCondition) }                      // XOR
        table[0x0E] = { threeRegister($0, .unitXor) }                                    // UXOR
        table[0x11] = { threeRegister($0, .divideStep) }                                 // DS
        table[0x22] = { threeRegister($0, .compareClear) }                               // COMCLR
        table[0x26] = { w in                                                             // UADDCM
            var d = threeRegister(w, .unitAddComplement)
            if d.condition == 0 { d.operation = .unitAddComplementNoCondition }
            return d
        }
        table[0x27] = { w in                                                             // UADDCMT
            var d = threeRegister(w, .unitAddComplement)
            d.flags = trapC
            return d
        }
        table[0x2E] = { w in                                                             // DCOR
            var d = threeRegister(w, .decimalCorrect)
            d.r1 = d.r2
            return d
        }
        table[0x2F] = { w in                                                             // IDCOR
            var d = threeRegister(w, .decimalCorrect)
            d.r1 = d.r2
            d.flags = DecodedFlag.link
            return d
        }
        for sh in 0..<4 {
            let s = UInt8(sh)
            table[0x18 + sh] = { addFamily($0, shift: s, flags: 0) }                     // ADD, SHnADD
            table[0x28 + sh] = { addFamily($0, shift: s, flags: logicalFlag) }           // ADDL, SHnADDL
            table[0x38 + sh] = { addFamily($0, shift: s, flags: trapV) }                 // ADDO, SHnADDO
        }
        table[0x1C] = { addFamily($0, shift: 0, flags: carry) }                          // ADDC
        table[0x3C] = { addFamily($0, shift: 0, flags: carry | trapV) }                  // ADDCO
        table[0x10] = { subFamily($0, flags: 0) }                                        // SUB
        table[0x30] = { subFamily($0, flags: trapV) }                                    // SUBO
        table[0x13] = { subFamily($0, flags: trapC) }                                    // SUBT
        table[0x33] = { subFamily($0, flags: trapC | trapV) }                            // SUBTO
        table[0x14] = { subFamily($0, flags: carry) }                                    // SUBB
        table[0x34] = { subFamily($0, flags: carry | trapV) }                            // SUBBO
        return table
    }()

    // MARK: Opcode 0x03: indexed and short-displacement memory (ext4 in manual bits 22..25)

    static let indexedMemory: Entry = { word in
        let ext = F.ext4Memory(word)
        let short = (word >> 12) & 1 != 0
        let modify = (word >> 5) & 1 != 0
        let bit13 = (word >> 13) & 1 != 0          // `u` (scale) or `a` (modify before)
        var d = DecodedInstruction(.load)
        d.r2 = F.field6(word)                      // b
        d.aux = DecodedInstruction.target(F.field6(word))
        d.condition = F.space2(word)
        switch ext {
        case 0, 1, 2, 6, 7:                        // LDB, LDH, LDW, LDWA, LDCW
            d.t = DecodedInstruction.target(F.field27(word))
            d.flags = ext == 6 || ext == 7 ? 2 : UInt8(ext)
            if ext == 6 { d.flags |= DecodedFlag.privileged }
            if ext == 7 { d.operation = .loadAndClearWord }
            if short {
                d.immediate = F.im5At11(word)
                if modify { d.flags |= bit13 ? DecodedFlag.modifyBefore : DecodedFlag.modifyAfter }
                if !modify && ext < 3 && d.operation == .load {
                    d.operation = ext == 0 ? .loadByte : ext == 1 ? .loadHalfword : .loadWord
                }
            } else {
                d.r1 = F.field11(word)             // x
                d.flags |= DecodedFlag.indexed
                if bit13 { d.flags |= DecodedFlag.scaled }
                if modify { d.flags |= DecodedFlag.modifyAfter }
            }
        case 8, 9, 10, 14:                         // STB, STH, STW, STWA
            guard short else { return .illegal }
            d.operation = .store
            d.r1 = F.field11(word)                 // the register stored
            d.immediate = F.im5At27(word)
            d.flags = ext == 14 ? 2 | DecodedFlag.privileged : UInt8(ext - 8)
            if modify { d.flags |= bit13 ? DecodedFlag.modifyBefore : DecodedFlag.modifyAfter }
            if !modify && ext != 14 {
                d.operation = ext == 8 ? .storeByte : ext == 9 ? .storeHalfword : .storeWord
            }
        case 12:                                   // STBYS
            guard short else { return .illegal }
            d.operation = .storeBytes
            d.r1 = F.field11(word)
            d.immediate = F.im5At27(word)
            d.flags = 2 | (bit13 ? DecodedFlag.endingBytes : 0)
                | (modify ? DecodedFlag.modifyAfter : 0)
        default:                                   // PA 2.0 doubleword forms
            return .illegal
        }
        return d
    }

    // MARK: Long-displacement loads and stores

    /// LDB/LDH/LDW: `r2` = base, `t` = target, `immediate` = im14, `condition` = space.
    static func displacementLoad(_ word: UInt32, size: UInt8) -> DecodedInstruction {
        var d = DecodedInstruction(size == 0 ? .loadByte : size == 1 ? .loadHalfword : .loadWord)
        d.r2 = F.field6(word)
        d.t = DecodedInstruction.target(F.field11(word))
        d.immediate = F.im14(word)
        d.condition = F.space2(word)
        d.flags = size
        d.aux = DecodedInstruction.target(F.field6(word))
        return d
    }

    /// STB/STH/STW: `r1` = the register stored, `r2` = base.
    static func displacementStore(_ word: UInt32, size: UInt8) -> DecodedInstruction {
        var d = DecodedInstruction(size == 0 ? .storeByte : size == 1 ? .storeHalfword : .storeWord)
        d.r2 = F.field6(word)
        d.r1 = F.field11(word)
        d.immediate = F.im14(word)
        d.condition = F.space2(word)
        d.flags = size
        d.aux = DecodedInstruction.target(F.field6(word))
        return d
    }

    /// LDWM: modify before when the displacement is negative, after otherwise.
    static let loadWordModify: Entry = { word in
        var d = displacementLoad(word, size: 2)
        d.operation = .load
        d.flags = 2 | (word & 1 != 0 ? DecodedFlag.modifyBefore : DecodedFlag.modifyAfter)
        return d
    }

    /// STWM: modify before when the displacement is negative, after otherwise.
    static let storeWordModify: Entry = { word in
        var d = displacementStore(word, size: 2)
        d.operation = .store
        d.flags = 2 | (word & 1 != 0 ? DecodedFlag.modifyBefore : DecodedFlag.modifyAfter)
        return d
    }

    // MARK: Immediates

    static let loadImmediateLeft: Entry = { word in                 // LDIL
        var d = DecodedInstruction(.loadImmediateLeft)
        d.t = DecodedInstruction.target(F.field6(word))
        d.immediate = F.assemble21(word)
        return d
    }

    static let addImmediateLeft: Entry = { word in                  // ADDIL: GR1 = GR[r] + im
        var d = DecodedInstruction(.addImmediateLeft)
        d.r2 = F.field6(word)
        d.t = 1
        d.immediate = F.assemble21(word)
        return d
    }

    static let loadOffset: Entry = { word in                        // LDO
        var d = DecodedInstruction(.loadOffset)
        d.r2 = F.field6(word)
        d.t = DecodedInstruction.target(F.field11(word))
        d.immediate = F.im14(word)
        return d
    }

    /// ADDI/ADDIO/ADDIT/ADDITO: `r2` = source, `t` = target, `condition` = cf, `immediate` = im11.
    static func addImmediate(_ word: UInt32, trapOnCondition: Bool) -> DecodedInstruction {
        var d = DecodedInstruction(.addImmediate)
        d.r2 = F.field6(word)
        d.t = DecodedInstruction.target(F.field11(word))
        d.condition = UInt8((word >> 12) & 0xF)
        d.immediate = F.im11(word)
        if (word >> 11) & 1 != 0 { d.flags |= DecodedFlag.trapOnOverflow }
        if trapOnCondition { d.flags |= DecodedFlag.trapOnCondition }
        if d.condition == 0 && d.flags == 0 { d.operation = .addImmediateNoCondition }
        return d
    }

    /// SUBI/SUBIO: GR[t] = im11 - GR[r].
    static let subtractImmediate: Entry = { word in
        var d = DecodedInstruction(.subImmediate)
        d.r2 = F.field6(word)
        d.t = DecodedInstruction.target(F.field11(word))
        d.condition = UInt8((word >> 12) & 0xF)
        d.immediate = F.im11(word)
        if (word >> 11) & 1 != 0 { d.flags |= DecodedFlag.trapOnOverflow }
        if d.condition == 0 && d.flags == 0 { d.operation = .subImmediateNoCondition }
        return d
    }

    static let compareImmediateClear: Entry = { word in             // COMICLR
        var d = DecodedInstruction(.compareImmediateClear)
        d.r2 = F.field6(word)
        d.t = DecodedInstruction.target(F.field11(word))
        d.condition = UInt8((word >> 12) & 0xF)
        d.immediate = F.im11(word)
        return d
    }

    static let diagnose: Entry = { word in                          // DIAG
        var d = privileged(DecodedInstruction(.diagnose))
        d.immediate = F.diagImmediate(word)
        return d
    }

    // MARK: Conditional branches: `immediate` = displacement, `condition` = cf, `flags` bit 0 = n

    static func conditionalBranch(_ word: UInt32, _ op: Operation, negate: Bool)
        -> DecodedInstruction
    {
        var d = DecodedInstruction(op)
        d.immediate = F.assemble12(word)
        d.condition = F.condition(word) << 1 | (negate ? 1 : 0)
        if F.nullify(word) { d.flags |= DecodedFlag.nullify }
        return d
    }

    /// COMBT/COMBF: compare GR[r1] with GR[r2].
    static func compareBranch(_ word: UInt32, negate: Bool) -> DecodedInstruction {
        var d = conditionalBranch(word, .compareBranch, negate: negate)
        d.r1 = F.field11(word)
        d.r2 = F.field6(word)
        return d
    }

    /// COMIBT/COMIBF: compare im5 (in `aux`, as a signed byte) with GR[r2].
    static func compareImmediateBranch(_ word: UInt32, negate: Bool) -> DecodedInstruction {
        var d = conditionalBranch(word, .compareImmediateBranch, negate: negate)
        d.aux = UInt8(truncatingIfNeeded: F.im5At11(word))
        d.r2 = F.field6(word)
        return d
    }

    /// ADDBT/ADDBF: GR[r2] = GR[r1] + GR[r2], branch on the add condition.
    static func addBranch(_ word: UInt32, negate: Bool) -> DecodedInstruction {
        var d = conditionalBranch(word, .addBranch, negate: negate)
        d.r1 = F.field11(word)
        d.r2 = F.field6(word)
        d.t = DecodedInstruction.target(F.field6(word))
        return d
    }

    /// ADDIBT/ADDIBF: GR[r2] = im5 + GR[r2].
    static func addImmediateBranch(_ word: UInt32, negate: Bool) -> DecodedInstruction {
        var d = conditionalBranch(word, .addImmediateBranch, negate: negate)
        d.aux = UInt8(truncatingIfNeeded: F.im5At11(word))
        d.r2 = F.field6(word)
        d.t = DecodedInstruction.target(F.field6(word))
        return d
    }

    /// MOVB: GR[t] = GR[r1], branch on the shift/extract condition (3-bit `condition`).
    static let moveBranch: Entry = { word in
        var d = conditionalBranch(word, .moveBranch, negate: false)
        d.condition = Conditions.logicalCF(fromShiftCondition: F.condition(word))
        d.r1 = F.field11(word)
        d.t = DecodedInstruction.target(F.field6(word))
        return d
    }

    /// MOVIB: GR[t] = im5.
    static let moveImmediateBranch: Entry = { word in
        var d = conditionalBranch(word, .moveImmediateBranch, negate: false)
        d.condition = Conditions.logicalCF(fromShiftCondition: F.condition(word))
        d.aux = UInt8(truncatingIfNeeded: F.im5At11(word))
        d.t = DecodedInstruction.target(F.field6(word))
        return d
    }

    /// BB: branch on bit p (manual numbering, in `aux`) of GR[r1]; `condition` 0 = branch if
    /// the bit is 1 (`<`), 1 = branch if it is 0 (`>=`).
    static let branchOnBit: Entry = { word in
        var d = conditionalBranch(word, .branchOnBit, negate: false)
        d.condition = UInt8((word >> 15) & 1)
        d.r1 = F.field11(word)
        d.aux = F.field6(word)
        return d
    }

    /// BVB: as BB with the bit position taken from SAR.
    static let branchOnVariableBit: Entry = { word in
        guard F.field6(word) == 0 else { return .illegal }
        var d = conditionalBranch(word, .branchOnVariableBit, negate: false)
        d.condition = UInt8((word >> 15) & 1)
        d.r1 = F.field11(word)
        return d
    }

    // MARK: Unconditional branches

    /// BE/BLE: target GR[b] + disp in space SR[s] (`aux`); BLE links into GR31 and SR0.
    static func branchExternal(_ word: UInt32, link: Bool) -> DecodedInstruction {
        var d = DecodedInstruction(.branchExternal)
        d.r2 = F.field6(word)
        d.immediate = F.assemble17(word)
        d.aux = F.assemble3(word)
        if F.nullify(word) { d.flags |= DecodedFlag.nullify }
        if link { d.flags |= DecodedFlag.link }
        return d
    }

    static let branchTable: [Entry] = {
        var table = [Entry](repeating: { _ in .illegal }, count: 8)
        table[0] = { w in                                   // BL: t = link, immediate = disp
            var d = DecodedInstruction(.branchLink)
            d.t = DecodedInstruction.target(F.field6(w))
            d.immediate = F.assemble17(w)
            if F.nullify(w) { d.flags |= DecodedFlag.nullify }
            return d
        }
        table[1] = { w in                                   // GATE
            var d = DecodedInstruction(.branchGate)
            d.t = DecodedInstruction.target(F.field6(w))
            d.immediate = F.assemble17(w)
            if F.nullify(w) { d.flags |= DecodedFlag.nullify }
            return d
        }
        table[2] = { w in                                   // BLR: t = link, r1 = x
            guard (w >> 2) & 0x7FF == 0, w & 1 == 0 else { return .illegal }
            var d = DecodedInstruction(.branchLinkRegister)
            d.t = DecodedInstruction.target(F.field6(w))
            d.r1 = F.field11(w)
            if F.nullify(w) { d.flags |= DecodedFlag.nullify }
            return d
        }
        table[6] = { w in                                   // BV: r2 = b, r1 = x
            guard (w >> 2) & 0x7FF == 0, w & 1 == 0 else { return .illegal }
            var d = DecodedInstruction(.branchVectored)
            d.r2 = F.field6(w)
            d.r1 = F.field11(w)
            if F.nullify(w) { d.flags |= DecodedFlag.nullify }
            return d
        }
        return table
    }()

    // MARK: Opcode 0x34: shift double and extract (3-bit `condition`)

    static let shiftTable: [Entry] = {
        var table = [Entry](repeating: { _ in .illegal }, count: 8)
        table[0] = { w in                                   // VSHD: r1 high, r2 low
            guard F.position(w) == 0 else { return .illegal }
            var d = DecodedInstruction(.shiftDoubleVariable)
            d.r1 = F.field11(w)
            d.r2 = F.field6(w)
            d.t = DecodedInstruction.target(F.field27(w))
            d.condition = Conditions.logicalCF(fromShiftCondition: F.condition(w))
            return d
        }
        table[2] = { w in                                   // SHD: aux = right shift 31 - cp
            var d = DecodedInstruction(.shiftDouble)
            d.r1 = F.field11(w)
            d.r2 = F.field6(w)
            d.t = DecodedInstruction.target(F.field27(w))
            d.condition = Conditions.logicalCF(fromShiftCondition: F.condition(w))
            d.aux = UInt8(31 - F.position(w))
            if d.condition == 0 { d.operation = .shiftDoubleNoCondition }
            return d
        }
        table[4] = { extractVariable($0, signed: false) }   // VEXTRU
        table[5] = { extractVariable($0, signed: true) }    // VEXTRS
        table[6] = { extract($0, signed: false) }           // EXTRU
        table[7] = { extract($0, signed: true) }            // EXTRS
        return table
    }()

    /// EXTRU: `r2` = source, `aux` = right shift (31 - p), `immediate` = the length mask.
    /// EXTRS: `aux` = left shift (32 - shift - length), `immediate` = right shift (32 - length).
    static func extract(_ word: UInt32, signed: Bool) -> DecodedInstruction {
        var d = DecodedInstruction(.extract)
        d.r2 = F.field6(word)
        d.t = DecodedInstruction.target(F.field11(word))
        d.condition = Conditions.logicalCF(fromShiftCondition: F.condition(word))
        let shift = 31 - F.position(word)
        var length = F.length(word)
        if shift + length > 32 { length = 32 - shift }      // undefined in the manual; as QEMU
        if signed {
            // Signed: shift left to put the field's top bit in bit 31, then arithmetic right.
            d.aux = UInt8(32 - shift - length)
            d.immediate = 32 - length
            d.flags |= DecodedFlag.signed
        } else {
            d.aux = UInt8(shift)
            d.immediate = lengthMask(length)
        }
        if d.condition == 0 {
            d.operation = signed ? .extractSignedNoCondition : .extractUnsignedNoCondition
        }
        return d
    }

    /// VEXTRU/VEXTRS: `r2` = source, `immediate` = length, position from SAR.
    static func extractVariable(_ word: UInt32, signed: Bool) -> DecodedInstruction {
        var d = DecodedInstruction(.extractVariable)
        d.r2 = F.field6(word)
        d.t = DecodedInstruction.target(F.field11(word))
        d.condition = Conditions.logicalCF(fromShiftCondition: F.condition(word))
        d.immediate = F.length(word)
        if signed { d.flags |= DecodedFlag.signed }
        return d
    }

    // MARK: Opcode 0x35: deposit (3-bit `condition`)

    static let depositTable: [Entry] = (0..<8).map { ext in
        { word in deposit(word, ext: ext) }
    }

    /// ZVDEP/VDEP/ZDEP/DEP/ZVDEPI/VDEPI/ZDEPI/DEPI: `r1` = source register (or, for the
    /// immediate forms, im5 as a signed byte), `r2` = the target as a source (non-zeroing forms),
    /// `t` = target, `aux` = left shift (fixed forms), `immediate` = the length mask.
    static func deposit(_ word: UInt32, ext: Int) -> DecodedInstruction {
        let variable = ext & 2 == 0
        let keep = ext & 1 != 0
        let immediateSource = ext & 4 != 0
        var d = DecodedInstruction(variable ? .depositVariable : .deposit)
        let target = F.field6(word)
        d.t = DecodedInstruction.target(target)
        d.r2 = keep ? target : 0
        d.condition = Conditions.logicalCF(fromShiftCondition: F.condition(word))
        if keep { d.flags |= DecodedFlag.link }
        if immediateSource {
            d.flags |= DecodedFlag.signed
            d.r1 = UInt8(truncatingIfNeeded: F.im5At11(word))
        } else {
            d.r1 = F.field11(word)
        }
        var length = F.length(word)
        if variable {
            guard F.position(word) == 0 else { return .illegal }
        } else {
            let shift = F.position(word)
            if shift + length > 32 { length = 32 - shift }
            d.aux = UInt8(shift)
            if d.condition == 0 { d.operation = .depositNoCondition }
        }
        d.immediate = lengthMask(length)
        return d
    }

    /// The mask of the low `length` bits (1...32).
    static func lengthMask(_ length: UInt32) -> UInt32 {
        length >= 32 ? UInt32.max : (1 << length) - 1
    }
}
