import MachineCore

/// The block-cache engine ("threaded"): guest code predecoded once into blocks (consecutive
/// instructions up to a branch and its delay slot), found by a direct-mapped table on the block's
/// front address, and run with the interpreter's own handlers back to back. The per-instruction
/// work of the interpreter's loop (the cache tag check, the limit check) becomes per-block work:
/// a block runs only if the budget left covers all its instructions, else the interpreter
/// finishes the budget one instruction at a time.
///
/// Stores into a line that holds a block (the interpreter's store paths check `lines`) drop every
/// block; a line written twice after translation is left to the interpreter.
final class BlockCache: ExecutionCore {
    static let maximumBlock = 32
    static let tableBits = 14
    /// A full store is flushed and refilled.
    static let instructionCapacity = 1 << 20

    let memory: GuestMemory
    let lines: CodeLineMap
    let linuxGateway: Bool
    private let ramLimit: UInt32

    /// The blocks: moved into a local value while a run uses them (so the hot loop touches no
    /// class property).
    struct Blocks {
        /// All blocks' instructions, back to back.
        var instructions: [DecodedInstruction] = []
        /// For each table slot, the front it holds (or 1: empty) and its instructions.
        var tags: [UInt32] = []
        var firsts: [Int32] = []
        var counts: [Int32] = []

        static func empty(slots: Int) -> Blocks {
            Blocks(instructions: [], tags: [UInt32](repeating: 1, count: slots),
                   firsts: [Int32](repeating: 0, count: slots), counts: [Int32](repeating: 0, count: slots))
        }

        mutating func clear() {
            instructions.removeAll(keepingCapacity: true)
            for i in tags.indices { tags[i] = 1 }
        }
    }

    private var blocks = Blocks.empty(slots: 1 << tableBits)
    /// Set by `invalidate()` while a run has the blocks.
    private var invalidatedDuringRun = false
    private var writtenLines: [UInt32: Int] = [:]
    private var interpretedLines: Set<UInt32> = []

    init(memory: GuestMemory, linuxGateway: Bool) throws(ExecutableMemoryError) {
        self.memory = memory
        self.linuxGateway = linuxGateway
        ramLimit = memory.emulatorLimit & ~3
        lines = try CodeLineMap(ramLimit: memory.emulatorLimit)
        blocks.instructions.reserveCapacity(4096)
    }

    func invalidate() {
        invalidatedDuringRun = true
        blocks.clear()
        lines.clear()
    }

    func run(_ it: inout Interpreter, limit: UInt64) -> Step {
        var local = Blocks()
        swap(&local, &blocks)
        invalidatedDuringRun = false
        let step = run(&it, limit: limit, &local)
        swap(&local, &blocks)
        if invalidatedDuringRun {
            blocks.clear()
            lines.clear()
        }
        return step
    }

    /// Mirrors `Interpreter.runFast`, fetching from blocks.
    private func run(_ it: inout Interpreter, limit: UInt64, _ b: inout Blocks) -> Step {
        var count = it.progress
        var front = it.s.iaoqFront
        var back = it.s.iaoqBack
        if it.s.nullifyNext {
            it.s.nullifyNext = false
            front = back
            back = back &+ 4
        }
        while true {
            guard let slot = block(at: front, &b) else {
                finish(&it, front: front, back: back, count: count)
                return interpret(&it, limit: min(limit, count &+ 1), &b)
            }
            let start = b.tags[slot]
            let first = Int(b.firsts[slot]), n = Int(b.counts[slot])
            guard limit &- count >= UInt64(n) else {
                finish(&it, front: front, back: back, count: count)
                return interpret(&it, limit: limit, &b)
            }
            var i = 0
            while true {
                let step = it.execute(b.instructions[first + i], Queue(front: front, back: back, progress: count))
                switch step {
                case .next:
                    front = back
                    back = back &+ 4
                    count &+= 1
                case .branched:
                    front = back
                    back = it.branchTarget
                    count &+= 1
                case .conditional:
                    front = back
                    back = back &+ 4
                    count &+= 1
                    if count == limit { return finish(&it, front: front, back: back, count: count) }
                    if it.s.nullifyNext {
                        it.s.nullifyNext = false
                        front = back
                        back = back &+ 4
                    }
                case .branchedConditional:
                    front = back
                    back = it.branchTarget
                    count &+= 1
                    if count == limit { return finish(&it, front: front, back: back, count: count) }
                    if it.s.nullifyNext {
                        it.s.nullifyNext = false
                        front = back
                        back = back &+ 4
                    }
                case .recheck, .stopAfter:
                    return finish(&it, front: back, back: back &+ 4, count: count &+ 1, step: step)
                case .trap, .stopBefore:
                    return finish(&it, front: front, back: back, count: count, step: step)
                }
                if it.codeWritten {
                    it.codeWritten = false
                    codeWasWritten(at: it.lastCodeWrite, &b)
                    return finish(&it, front: front, back: back, count: count)
                }
                if count == limit { return finish(&it, front: front, back: back, count: count) }
                // Continue in this block if the queue moved forward inside it.
                let index = Int(Int64(front) - Int64(start)) >> 2
                guard front & 3 == start & 3, index > i, index < n else { break }
                i = index
            }
        }
    }

    /// The interpreter up to `limit`, then the blocks dropped if it stored into one.
    private func interpret(_ it: inout Interpreter, limit: UInt64, _ b: inout Blocks) -> Step {
        let step = it.runFast(limit: limit)
        if it.codeWritten {
            it.codeWritten = false
            codeWasWritten(at: it.lastCodeWrite, &b)
        }
        return step
    }

    /// Hands the queue and count back to the interpreter (unless RFI replaced the queue) and
    /// returns `step`.
    @inline(__always) @discardableResult
    private func finish(_ it: inout Interpreter, front: UInt32, back: UInt32, count: UInt64,
                        step: Step = .next) -> Step
    {
        it.progress = count
        if it.queueReplaced {
            it.queueReplaced = false
        } else {
            it.s.iaoqFront = front
            it.s.iaoqBack = back
        }
        return step
    }

    private func codeWasWritten(at address: UInt32, _ b: inout Blocks) {
        let line = address >> CodeLineMap.lineShift
        let times = writtenLines[line, default: 0] + 1
        writtenLines[line] = times
        if times >= 2 { interpretedLines.insert(line) }
        b.clear()
        lines.clear()
    }

    // MARK: Blocks

    /// The table slot of the block at `front`, decoded now if needed; nil if its first
    /// instruction cannot be fetched from RAM here (the interpreter raises the fault) or is in an
    /// interpreted line.
    @inline(__always)
    private func block(at front: UInt32, _ b: inout Blocks) -> Int? {
        let slot = Int((front >> 2) & UInt32((1 << Self.tableBits) - 1))
        if b.tags[slot] == front { return slot }
        return fill(front, slot: slot, &b)
    }

    @inline(never)
    private func fill(_ front: UInt32, slot: Int, _ b: inout Blocks) -> Int? {
        if b.instructions.count + Self.maximumBlock > Self.instructionCapacity {
            b.clear()
            lines.clear()
        }
        let first = b.instructions.count
        var address = front & ~3
        var delaySlotNext = false
        while b.instructions.count - first < Self.maximumBlock {
            guard address < ramLimit, !(linuxGateway && address == 0x100),
                  !interpretedLines.contains(address >> CodeLineMap.lineShift)
            else { break }
            let d = Decoder.decode(memory.loadBigEndianWord(atOffset: address))
            b.instructions.append(d)
            lines.mark(address)
            if delaySlotNext { break }
            if Self.endsBlock(d) { delaySlotNext = true }
            address &+= 4
        }
        let n = b.instructions.count - first
        guard n > 0 else { return nil }
        b.tags[slot] = front
        b.firsts[slot] = Int32(first)
        b.counts[slot] = Int32(n)
        return slot
    }

    /// Branches (their delay slot ends the block) and instructions that never fall through.
    static func endsBlock(_ d: DecodedInstruction) -> Bool {
        switch d.operation {
        case .branchLink, .branchGate, .branchLinkRegister, .branchVectored, .branchExternal,
             .compareBranch, .compareImmediateBranch, .addBranch, .addImmediateBranch, .moveBranch,
             .moveImmediateBranch, .branchOnBit, .branchOnVariableBit, .returnFromInterruption:
            true
        default:
            false
        }
    }
}
