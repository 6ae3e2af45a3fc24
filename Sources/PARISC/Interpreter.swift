import MachineCore

/// What one instruction handler did.
enum Step {
    /// Completed; the next instruction follows in the fast loop.
    case next
    /// Completed, a taken branch: the next IAOQ back is `branchTarget`.
    case branched
    /// Completed, and may have set PSW N (nullify the next instruction).
    case conditional
    /// A taken branch that may have set PSW N.
    case branchedConditional
    /// Completed; interrupts, the recovery counter or a device stop must be re-evaluated before
    /// the next instruction (system instructions, MMIO accesses).
    case recheck
    /// Did not complete: take this group-3 interruption (no register was written).
    case trap(Interruption)
    /// Completed, and the run stops after it (HALT, the idle hint).
    case stopAfter(StopCode)
    /// Did not complete, and the run stops before it (the syscall gateway, an environment error).
    case stopBefore(StopCode)
}

/// The instruction address queue of the instruction being executed (front = its address,
/// low 2 bits = privilege level; back = the next instruction) and the progress count before it.
struct Queue {
    let front: UInt32
    let back: UInt32
    let progress: UInt64
    /// The privilege level the instruction executes at (0 most privileged).
    @inline(__always) var privilege: UInt32 { front & 3 }
}

/// The stops a handler can ask for (a trivial value, so `Step` stays trivial).
enum StopCode {
    case idle, halted, systemCall, environmentFailure

    var stop: PARISCStop {
        switch self {
        case .idle: .idle
        case .halted: .halted
        case .systemCall: .systemCall
        case .environmentFailure: .crashed(reason: "the environment refused an interval timer read")
        }
    }
}

/// The interpreter: the CPU state in a local value plus what the handlers need. It lives only for
/// the duration of one `PARISCCPU.run`, so the hot loop works on a stack value (no class
/// properties, no reference counting, no exclusivity checks) and hands everything back at the end.
struct Interpreter {
    var s: PARISCCPUState
    var cache: [DecodeCacheEntry]
    let cacheMask: UInt32
    let memory: GuestMemory
    /// RAM size as a 32-bit bound: an aligned access below it lies entirely in RAM.
    let ramLimit: UInt32
    unowned let cpu: PARISCCPU
    let linuxGateway: Bool
    var progress: UInt64

    /// The target of the taken branch being executed (the next IAOQ back).
    var branchTarget: UInt32 = 0
    /// Set by RFI, which loads the whole queue (IAOQ front and back) itself.
    var queueReplaced = false
    /// The last BE/BLE: its delay slot still runs in the old space (see `frontSpace`).
    var spaceChange: (delaySlot: UInt32, target: UInt32, oldSpace: UInt32)?
    /// The data address of the last faulting access (ISR/IOR).
    var faultSpace: UInt32 = 0
    var faultOffset: UInt32 = 0
    var faultUnaligned = false
    /// Set when a CR16 read was refused by the environment.
    var environmentError: EnvironmentError?
    /// Interruptions delivered since the last counted instruction (a storm guard).
    var interruptionsWithoutProgress = 0
    /// The lines of guest memory that translated code (block cache, JIT) was made from; nil for
    /// the interpreter alone. A store to a marked line sets `codeWritten`.
    let codeLines: CodeLineMap?
    /// A store hit a line in `codeLines`: the translations must be dropped before they run again.
    var codeWritten = false
    /// Whether decoded words mark their lines in `codeLines` (the JIT's stores do not update the
    /// decode cache, so they must leave stores into such lines to the interpreter).
    let marksDecodedLines: Bool
    /// The word of the last such store.
    var lastCodeWrite: UInt32 = 0

    init(cpu: PARISCCPU) {
        s = cpu.state
        cache = []
        swap(&cache, &cpu.decodeCache)
        cacheMask = UInt32(cache.count - 1)
        cpu.decodeCacheInvalidated = false
        memory = cpu.memory
        ramLimit = cpu.memory.emulatorLimit & ~3
        self.cpu = cpu
        linuxGateway = cpu.configuration.linuxGateway
        progress = cpu.progress
        codeLines = cpu.codeLines
        marksDecodedLines = cpu.engine == .jit
        if s.iasqFront != s.iasqBack {
            spaceChange = (delaySlot: s.iaoqFront, target: s.iaoqBack, oldSpace: s.iasqFront)
        }
    }

    /// Hands the state back to the CPU.
    mutating func finish(into cpu: PARISCCPU) {
        s.iasqFront = frontSpace(front: s.iaoqFront, back: s.iaoqBack)
        cpu.state = s
        swap(&cache, &cpu.decodeCache)
        cpu.progress = progress
    }

    // MARK: Register access

    @inline(__always) mutating func gr(_ index: UInt8) -> UInt32 { s.registers[Int(index)] }
    @inline(__always) mutating func setGR(_ index: UInt8, _ value: UInt32) {
        s.registers[Int(index)] = value
    }

    // MARK: The run loop

    /// Runs until `progress == end` or a stop, with `core` executing instructions between the
    /// checks of group-2 interruptions and stops (which are the same for every engine).
    mutating func run<Core: ExecutionCore>(until end: UInt64, core: Core) -> PARISCStop {
        while true {
            if let stop = cpu.requestedStop {
                cpu.requestedStop = nil
                return stop
            }
            if progress >= end { return .budgetExhausted }
            if cpu.decodeCacheInvalidated {
                cpu.decodeCacheInvalidated = false
                flushDecodeCache()
                core.invalidate()
            }
            // Group 2, between instructions: recovery counter (3) before external (4).
            let recoveryEnabled = s.pswOther & PSW.r != 0
            let recoveryTrapAt = recoveryEnabled ? recoveryCounterTrapProgress() : UInt64.max
            if progress >= recoveryTrapAt {
                if let stop = deliver(.recoveryCounter, front: s.iaoqFront, back: s.iaoqBack) {
                    return crash(stop)
                }
                continue
            }
            if s.pswOther & PSW.i != 0 && cpu.externalInterruptRequests & s.controlRegisters[15] != 0 {
                if let stop = deliver(.externalInterrupt, front: s.iaoqFront, back: s.iaoqBack) {
                    return crash(stop)
                }
                continue
            }
            switch core.run(&self, limit: min(end, recoveryTrapAt)) {
            case .next, .branched, .conditional, .branchedConditional, .recheck:
                interruptionsWithoutProgress = 0
            case .trap(let interruption):
                if let stop = deliver(interruption, front: s.iaoqFront, back: s.iaoqBack) {
                    return crash(stop)
                }
            case .stopAfter(let code), .stopBefore(let code):
                return code.stop
            }
        }
    }

    /// A crash (an interruption with no handler, a storm) counts as one unit of progress, like
    /// the instruction that idles or exits, so a backup that replays to the primary's progress
    /// stops at the same point (the `Machine.run` contract).
    mutating func crash(_ stop: PARISCStop) -> PARISCStop {
        progress &+= 1
        return stop
    }

    /// The progress count before whose next instruction the recovery counter trap is due
    /// (PSW R = 1): CR0 = N - 1 traps after N more counted instructions.
    func recoveryCounterTrapProgress() -> UInt64 {
        let value = s.recoveryCounter
        if value & 0x8000_0000 != 0 { return s.recoveryCounterBase }
        return s.recoveryCounterBase &+ UInt64(value) &+ 1
    }

    /// The fast loop: fetch (from the predecoded cache), skip nullified instructions, execute,
    /// count. Returns when `progress` reaches `limit` or a handler needs the slow path. The queue
    /// and the count live in locals here and are written back on the way out.
    @inline(__always)
    mutating func runFast(limit: UInt64) -> Step {
        var count = progress
        var front = s.iaoqFront
        var back = s.iaoqBack
        defer {
            progress = count
            if queueReplaced {
                queueReplaced = false
            } else {
                s.iaoqFront = front
                s.iaoqBack = back
            }
        }
        if s.nullifyNext {
            // A nullified instruction: it is not executed and does not count.
            s.nullifyNext = false
            front = back
            back = back &+ 4
        }
        while true {
            let address = front & ~3
            let slot = Int((address &>> 2) & cacheMask)
            let d: DecodedInstruction
            if cache[slot].tag == address {
                d = cache[slot].instruction
            } else {
                d = fill(address, slot: slot)
            }
            let step = execute(d, Queue(front: front, back: back, progress: count))
            switch step {
            case .next:
                front = back
                back = back &+ 4
                count &+= 1
                if count == limit { return .next }
            case .branched:
                front = back
                back = branchTarget
                count &+= 1
                if count == limit { return .next }
            case .conditional:
                front = back
                back = back &+ 4
                count &+= 1
                // At the limit a nullification stays pending (PSW N) for the next run.
                if count == limit { return .next }
                if s.nullifyNext {
                    s.nullifyNext = false
                    front = back
                    back = back &+ 4
                }
            case .branchedConditional:
                front = back
                back = branchTarget
                count &+= 1
                if count == limit { return .next }
                if s.nullifyNext {
                    s.nullifyNext = false
                    front = back
                    back = back &+ 4
                }
            case .recheck, .stopAfter:
                front = back
                back = back &+ 4
                count &+= 1
                return step
            case .trap, .stopBefore:
                return step
            }
        }
    }

    /// The space of the instruction at the front of the queue. IASQ is tracked lazily: it only
    /// differs from IASQ back in the delay slot of a BE/BLE, which records the old space.
    func frontSpace(front: UInt32, back: UInt32) -> UInt32 {
        if let pending = spaceChange, pending.delaySlot == front, pending.target == back {
            return pending.oldSpace
        }
        return s.iasqBack
    }

    /// Decodes the instruction at `address` into the cache (or reports a fetch fault).
    @inline(never) mutating func fill(_ address: UInt32, slot: Int) -> DecodedInstruction {
        if linuxGateway && address == 0x100 {
            return DecodedInstruction(.gatewaySyscall)
        }
        guard address < ramLimit else { return DecodedInstruction(.fetchFault) }
        let d = Decoder.decode(memory.loadBigEndianWord(atOffset: address))
        cache[slot] = DecodeCacheEntry(tag: address, instruction: d)
        if marksDecodedLines, let codeLines { codeLines.mark(address, CodeLineMap.decoded) }
        return d
    }

    /// Drops the cached decoding of the word containing `address` (after a store to it), and
    /// notes a store into code that a block cache or the JIT translated.
    @inline(__always)
    mutating func invalidateCode(_ address: UInt32) {
        let word = address & ~3
        let slot = Int((word >> 2) & cacheMask)
        if cache[slot].tag == word { cache[slot].tag = 1 }
        if let codeLines, codeLines.isMarked(word) {
            codeWritten = true
            lastCodeWrite = word
        }
    }

    /// Forgets every predecoded instruction.
    mutating func flushDecodeCache() {
        for i in cache.indices { cache[i].tag = 1 }
    }

    /// The instruction word at the front of the queue being executed (for IIR and messages).
    func instructionWord(at front: UInt32) -> UInt32? {
        let address = front & ~3
        guard address < ramLimit else { return nil }
        return memory.loadBigEndianWord(atOffset: address)
    }
}
