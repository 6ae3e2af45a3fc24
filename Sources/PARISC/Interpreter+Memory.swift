import MachineCore

/// Loads and stores (opcodes 0x03, 0x10-0x13, 0x18-0x1B). Aligned accesses below the RAM size
/// take the fast path; everything else goes through `slowLoad`/`slowStore`: an unaligned address
/// raises interruption 28, an address on the MMIO bus goes to the device, anything else raises
/// interruption 15 (data fault). A faulting access writes nothing (no base modification).
extension Interpreter {
    // MARK: Fast forms (no base modification)

    /// LDW d(s,b), LDWS without modification.
    @inline(__always) mutating func loadWord(_ d: DecodedInstruction) -> Step {
        let address = gr(d.r2) &+ d.immediate
        if address & 3 == 0 && address < ramLimit {
            setGR(d.t, memory.loadBigEndianWord(atOffset: address))
            return .next
        }
        return slowLoadInto(d, address: address, base: gr(d.r2), size: 4)
    }

    @inline(__always) mutating func loadHalfword(_ d: DecodedInstruction) -> Step {
        let address = gr(d.r2) &+ d.immediate
        if address & 1 == 0 && address < ramLimit {
            setGR(d.t, UInt32(memory.loadBigEndianHalfword(atOffset: address)))
            return .next
        }
        return slowLoadInto(d, address: address, base: gr(d.r2), size: 2)
    }

    @inline(__always) mutating func loadByte(_ d: DecodedInstruction) -> Step {
        let address = gr(d.r2) &+ d.immediate
        if address < ramLimit {
            setGR(d.t, UInt32(memory.loadByte(atOffset: address)))
            return .next
        }
        return slowLoadInto(d, address: address, base: gr(d.r2), size: 1)
    }

    @inline(__always) mutating func storeWord(_ d: DecodedInstruction) -> Step {
        let address = gr(d.r2) &+ d.immediate
        if address & 3 == 0 && address < ramLimit {
            memory.storeBigEndianWord(gr(d.r1), atOffset: address)
            invalidateCode(address)
            return .next
        }
        return slowStoreStep(address: address, base: gr(d.r2), space: d.condition, size: 4,
                             value: gr(d.r1))
    }

    @inline(__always) mutating func storeHalfword(_ d: DecodedInstruction) -> Step {
        let address = gr(d.r2) &+ d.immediate
        if address & 1 == 0 && address < ramLimit {
            memory.storeBigEndianHalfword(UInt16(truncatingIfNeeded: gr(d.r1)), atOffset: address)
            invalidateCode(address)
            return .next
        }
        return slowStoreStep(address: address, base: gr(d.r2), space: d.condition, size: 2,
                             value: gr(d.r1))
    }

    @inline(__always) mutating func storeByte(_ d: DecodedInstruction) -> Step {
        let address = gr(d.r2) &+ d.immediate
        if address < ramLimit {
            memory.storeByte(UInt8(truncatingIfNeeded: gr(d.r1)), atOffset: address)
            invalidateCode(address)
            return .next
        }
        return slowStoreStep(address: address, base: gr(d.r2), space: d.condition, size: 1,
                             value: gr(d.r1))
    }

    // MARK: General forms

    /// The effective address of a general load/store and the new base value.
    @inline(__always)
    mutating func addresses(_ d: DecodedInstruction, size: UInt32) -> (address: UInt32, modified: UInt32) {
        let base = gr(d.r2)
        let offset: UInt32
        if d.flags & DecodedFlag.indexed != 0 {
            let index = gr(d.r1)
            offset = d.flags & DecodedFlag.scaled != 0 ? index &<< UInt32(size.trailingZeroBitCount) : index
        } else {
            offset = d.immediate
        }
        let modified = base &+ offset
        return (d.flags & DecodedFlag.modifyAfter != 0 ? base : modified, modified)
    }

    /// LDB/LDH/LDW in every form: indexed (`,s` scaling), short or long displacement, base
    /// modification before or after, LDWA. If t = b the loaded value wins.
    mutating func load(_ d: DecodedInstruction, _ q: Queue) -> Step {
        if d.flags & DecodedFlag.privileged != 0 && q.privilege != 0 {
            return .trap(.privilegedOperation)
        }
        let size = UInt32(1) << UInt32(d.flags & DecodedFlag.sizeMask)
        let (address, modified) = addresses(d, size: size)
        var value: UInt32
        var step = Step.next
        if address & (size - 1) == 0 && address < ramLimit {
            switch size {
            case 1: value = UInt32(memory.loadByte(atOffset: address))
            case 2: value = UInt32(memory.loadBigEndianHalfword(atOffset: address))
            default: value = memory.loadBigEndianWord(atOffset: address)
            }
        } else {
            guard let slow = slowLoad(address: address, base: gr(d.r2), space: d.condition,
                                      size: size)
            else { return .trap(pendingDataTrap) }
            value = slow
            step = .recheck
        }
        if d.flags & (DecodedFlag.modifyAfter | DecodedFlag.modifyBefore) != 0 {
            setGR(d.aux, modified)
        }
        setGR(d.t, value)
        return step
    }

    /// STB/STH/STW in every form (short or long displacement, modification, STWA).
    mutating func store(_ d: DecodedInstruction, _ q: Queue) -> Step {
        if d.flags & DecodedFlag.privileged != 0 && q.privilege != 0 {
            return .trap(.privilegedOperation)
        }
        let size = UInt32(1) << UInt32(d.flags & DecodedFlag.sizeMask)
        let (address, modified) = addresses(d, size: size)
        let value = gr(d.r1)
        var step = Step.next
        if address & (size - 1) == 0 && address < ramLimit {
            storeRAM(value, at: address, size: size)
        } else {
            guard slowStore(address: address, base: gr(d.r2), space: d.condition, size: size,
                            value: value)
            else { return .trap(pendingDataTrap) }
            step = .recheck
        }
        if d.flags & (DecodedFlag.modifyAfter | DecodedFlag.modifyBefore) != 0 {
            setGR(d.aux, modified)
        }
        return step
    }

    @inline(__always) mutating func storeRAM(_ value: UInt32, at address: UInt32, size: UInt32) {
        switch size {
        case 1: memory.storeByte(UInt8(truncatingIfNeeded: value), atOffset: address)
        case 2: memory.storeBigEndianHalfword(UInt16(truncatingIfNeeded: value), atOffset: address)
        default: memory.storeBigEndianWord(value, atOffset: address)
        }
        invalidateCode(address)
    }

    /// STBYS,b / STBYS,e: store the bytes of a word from (begin) or up to (end) the address, for
    /// unaligned block moves. With `,m` the base becomes (base + disp) rounded down to a word.
    /// As QEMU, the access uses GR[b] itself when `,m` is given, GR[b] + disp otherwise.
    mutating func storeBytes(_ d: DecodedInstruction) -> Step {
        let base = gr(d.r2)
        let modify = d.flags & DecodedFlag.modifyAfter != 0
        let address = modify ? base : base &+ d.immediate
        let value = gr(d.r1)
        let word = address & ~3
        let ending = d.flags & DecodedFlag.endingBytes != 0
        // The bytes of `value` (big-endian) and where they go.
        let first: UInt32, count: UInt32, from: UInt32
        switch (ending, address & 3) {
        case (false, let k): (first, count, from) = (address, 4 - k, k)
        case (true, let k): (first, count, from) = (word, k, 0)
        }
        var step = Step.next
        if word < ramLimit {
            for i in 0..<count {
                let byte = UInt8(truncatingIfNeeded: value >> (8 * (3 - (from + i))))
                memory.storeByte(byte, atOffset: first &+ i)
            }
            invalidateCode(word)
        } else if count > 0 {
            for i in 0..<count {
                let byte = value >> (8 * (3 - (from + i))) & 0xFF
                guard slowStore(address: first &+ i, base: base, space: d.condition, size: 1,
                                value: byte)
                else { return .trap(pendingDataTrap) }
            }
            step = .recheck
        }
        if modify { setGR(d.aux, (base &+ d.immediate) & ~3) }
        return step
    }

    /// LDCW: load a word and clear it (a semaphore; atomic in a one-CPU interpreter).
    mutating func loadAndClearWord(_ d: DecodedInstruction) -> Step {
        let (address, modified) = addresses(d, size: 4)
        let value: UInt32
        var step = Step.next
        if address & 3 == 0 && address < ramLimit {
            value = memory.loadBigEndianWord(atOffset: address)
            storeRAM(0, at: address, size: 4)
        } else {
            guard let slow = slowLoad(address: address, base: gr(d.r2), space: d.condition, size: 4),
                  slowStore(address: address, base: gr(d.r2), space: d.condition, size: 4, value: 0)
            else { return .trap(pendingDataTrap) }
            value = slow
            step = .recheck
        }
        if d.flags & (DecodedFlag.modifyAfter | DecodedFlag.modifyBefore) != 0 {
            setGR(d.aux, modified)
        }
        setGR(d.t, value)
        return step
    }

    // MARK: Slow paths

    /// The interruption the last failed slow access raises.
    var pendingDataTrap: Interruption { faultUnaligned ? .unalignedData : .dataFault }

    /// A load outside the fast path: unaligned (28), MMIO, or a data fault (15).
    mutating func slowLoad(address: UInt32, base: UInt32, space: UInt8, size: UInt32) -> UInt32? {
        if address & (size - 1) != 0 {
            recordFault(address, base: base, space: space, unaligned: true)
            return nil
        }
        if let value = cpu.bus.read(UInt64(address), size: Int(size), cpuOrder: .big) {
            return UInt32(truncatingIfNeeded: value)
        }
        recordFault(address, base: base, space: space, unaligned: false)
        return nil
    }

    /// A store outside the fast path. Returns false if it faulted.
    mutating func slowStore(address: UInt32, base: UInt32, space: UInt8, size: UInt32,
                            value: UInt32) -> Bool
    {
        if address & (size - 1) != 0 {
            recordFault(address, base: base, space: space, unaligned: true)
            return false
        }
        if cpu.bus.write(UInt64(address), size: Int(size), value: UInt64(value), cpuOrder: .big) {
            return true
        }
        recordFault(address, base: base, space: space, unaligned: false)
        return false
    }

    /// A fast-form load that missed the fast path.
    mutating func slowLoadInto(_ d: DecodedInstruction, address: UInt32, base: UInt32,
                               size: UInt32) -> Step
    {
        guard let value = slowLoad(address: address, base: base, space: d.condition, size: size)
        else { return .trap(pendingDataTrap) }
        setGR(d.t, value)
        return .recheck
    }

    /// A fast-form store that missed the fast path.
    mutating func slowStoreStep(address: UInt32, base: UInt32, space: UInt8, size: UInt32,
                                value: UInt32) -> Step
    {
        guard slowStore(address: address, base: base, space: space, size: size, value: value)
        else { return .trap(pendingDataTrap) }
        return .recheck
    }

    /// Records the faulting address for ISR/IOR: the space is SR[s], or for s = 0 the space
    /// register SR[4 + top two bits of the base] (short pointer space selection).
    mutating func recordFault(_ address: UInt32, base: UInt32, space: UInt8, unaligned: Bool) {
        let register = space == 0 ? 4 + Int(base >> 30) : Int(space)
        faultSpace = s.spaceRegisters[register]
        faultOffset = address
        faultUnaligned = unaligned
    }
}
