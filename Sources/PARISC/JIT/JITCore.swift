import Logging
import MachineCore

/// The JIT engine: guest blocks translated to x86-64 on first use (`JITTranslator`), kept in
/// executable memory, chained block to block through slots, indirect branches through a jump
/// cache; the interpreter for whatever the translator leaves out and for the last instructions
/// of a budget too short for the next block (so a run never passes its limit: the epoch and the
/// recovery counter stay exact, as QEMU's icount finishes a block one instruction at a time).
///
/// Blocks start where the instruction queue is sequential and PSW N is clear; any other state
/// (a delay slot after an interpreted branch, a pending nullification) is interpreted one
/// instruction at a time until it is. A store into a line of translated code (the generated code
/// checks before each store and leaves it to the interpreter) drops every translation; a line
/// written twice after being translated is left to the interpreter from then on.
final class JITCore: ExecutionCore {
    /// Bytes of executable memory and chaining slots; a full region is flushed and refilled.
    static let codeCapacity = 32 << 20
    static let slotCapacity = 1 << 20

    let memory: GuestMemory
    let lines: CodeLineMap
    let linuxGateway: Bool
    private let code: ExecutableMemory
    private let data: JITDataArea
    private let logger = Logger(label: "lockstep.parisc.jit")

    /// Offsets of the fixed code at the start of the region.
    private var trampoline = 0
    private var epilogue = 0
    private var missStub = 0
    private var fixedEnd = 0

    /// Block entries by guest front (with its privilege bits).
    private var blocks: [UInt32: Int] = [:]
    /// Fronts whose first instruction is not translated (interpreted every time).
    private var untranslatable: Set<UInt32> = []
    private var nextSlot = 0
    /// Set by a flush: the interpreter's decode cache must be dropped before it runs again.
    private var decodesUnmarked = false
    /// Incremented by every flush: a slot or jump-cache entry found before a flush is stale.
    private var generation = 0
    /// Lines written after translation, and how often; from the second time on they are
    /// interpreted.
    private var writtenLines: [UInt32: Int] = [:]
    private var interpretedLines: Set<UInt32> = []
    /// What the engine did (for tests and the bench).
    private(set) var statistics = Statistics()

    struct Statistics: Sendable {
        var translations = 0
        var flushes = 0
        var fallbacks = 0
        var budgetTails = 0
    }

    init(memory: GuestMemory, linuxGateway: Bool) throws(ExecutableMemoryError) {
        self.memory = memory
        self.linuxGateway = linuxGateway
        lines = try CodeLineMap(ramLimit: memory.emulatorLimit)
        code = try ExecutableMemory(capacity: Self.codeCapacity)
        data = try JITDataArea(slotCapacity: Self.slotCapacity)
        data.ramBase = memory.hostAddress
        data.codeLinesBase = lines.baseAddress
        data.writeMapBase = memory.writeMapHostAddress
        try emitFixedCode()
        resetJumpCache()
    }

    /// The entry trampoline, the shared epilogue and the jump-cache miss stub.
    private func emitFixedCode() throws(ExecutableMemoryError) {
        var a = X86Assembler()
        a.origin = 0
        trampoline = a.offset
        for r in [HostRegister.rbx, .rbp, .r12, .r13, .r14, .r15] { a.push(r) }
        a.mov64(.rbx, .rdi)
        a.mov64(.r14, .rsi)
        a.mov64(.r12, HostMemory(.r14, JITDataArea.ramBaseOffset))
        a.mov64(.r13, HostMemory(.r14, JITDataArea.budgetOffset))
        a.jump(to: .rdx)
        epilogue = a.offset
        a.mov64(HostMemory(.r14, JITDataArea.budgetOffset), .r13)
        for r in [HostRegister.r15, .r14, .r13, .r12, .rbp, .rbx] { a.pop(r) }
        a.ret()
        missStub = a.offset
        a.mov(.rax, imm: JITExit.jumpCacheMissCode)
        a.jump(toOffset: epilogue)
        let bytes = a.finish()
        guard let offset = try code.append(bytes), offset == 0 else {
            preconditionFailure("JIT: the fixed code does not fit")
        }
        fixedEnd = code.used
    }

    private func resetJumpCache() {
        let miss = code.address(missStub)
        for i in 0..<JITDataArea.jumpCacheEntries {
            data.setJumpCacheEntry(i, front: 0, code: miss)
        }
    }

    // MARK: ExecutionCore

    func invalidate() {
        guard !blocks.isEmpty || !untranslatable.isEmpty || !lines.isEmpty else { return }
        blocks.removeAll(keepingCapacity: true)
        untranslatable.removeAll(keepingCapacity: true)
        code.truncate(to: fixedEnd)
        nextSlot = 0
        lines.clear()
        resetJumpCache()
        generation += 1
        decodesUnmarked = true
        statistics.flushes += 1
    }

    func run(_ it: inout Interpreter, limit: UInt64) -> Step {
        while true {
            if it.progress >= limit { return .next }
            guard !it.s.nullifyNext, it.s.iaoqBack == it.s.iaoqFront &+ 4,
                  let entry = entry(for: it.s.iaoqFront)
            else {
                statistics.fallbacks += 1
                return interpret(&it, limit: min(limit, it.progress &+ 1))
            }
            data.budget = limit &- it.progress
            let exit = code.run(trampoline: trampoline, entry: entry, state: &it.s, data: data)
            it.progress = limit &- data.budget
            // At the limit the state is exactly the interpreter's there (a nullification pending
            // in PSW N included): nothing more runs.
            if it.progress >= limit { return .next }
            switch exit {
            case .fallback:
                statistics.fallbacks += 1
                return interpret(&it, limit: min(limit, it.progress &+ 1))
            case .budget:
                statistics.budgetTails += 1
                return interpret(&it, limit: limit)
            case .unlinked(let slot):
                let before = generation
                if let target = self.entry(for: it.s.iaoqFront), generation == before {
                    data.setSlot(slot, to: code.address(target))
                }
            case .jumpCacheMiss:
                let front = it.s.iaoqFront
                if let target = self.entry(for: front) {
                    let index = Int((front >> 2) & UInt32(JITDataArea.jumpCacheEntries - 1))
                    data.setJumpCacheEntry(index, front: front, code: code.address(target))
                }
            }
        }
    }

    /// The interpreter up to `limit`, and the translations dropped if it stored into translated
    /// code. Its decode cache stays valid: the lines it decoded are marked, and generated code
    /// leaves stores into them to the interpreter.
    private func interpret(_ it: inout Interpreter, limit: UInt64) -> Step {
        if decodesUnmarked {
            // A flush unmarked the lines the decode cache holds words of.
            it.flushDecodeCache()
            decodesUnmarked = false
        }
        let step = it.runFast(limit: limit)
        if it.codeWritten {
            it.codeWritten = false
            codeWasWritten(at: it.lastCodeWrite)
        }
        return step
    }

    private func codeWasWritten(at address: UInt32) {
        let line = address >> CodeLineMap.lineShift
        let times = writtenLines[line, default: 0] + 1
        writtenLines[line] = times
        if times >= 2 { interpretedLines.insert(line) }
        invalidate()
    }

    // MARK: Translation

    /// The code offset of the block at `front`, translated now if needed; nil if the instruction
    /// there is interpreted.
    private func entry(for front: UInt32) -> Int? {
        if let entry = blocks[front] { return entry }
        if untranslatable.contains(front) { return nil }
        for attempt in 0..<2 {
            var translator = JITTranslator(
                memory: memory, linuxGateway: linuxGateway, interpretedLines: interpretedLines,
                origin: (code.used + 15) & ~15, epilogue: epilogue, missStub: missStub, firstSlot: nextSlot)
            guard let block = translator.translate(front: front) else {
                untranslatable.insert(front)
                return nil
            }
            guard nextSlot + block.slotStubs.count <= data.slotCapacity, block.code.count + 16 <= code.available else {
                if attempt == 0 { invalidate() }
                continue
            }
            let offset: Int
            do {
                guard let placed = try code.append(block.code) else { continue }
                offset = placed
            } catch {
                logger.error("\(error); interpreting from now on")
                untranslatable.insert(front)
                return nil
            }
            precondition(offset == translator.a.origin, "JIT: a block placed elsewhere than assembled for")
            for (i, stub) in block.slotStubs.enumerated() {
                data.setSlot(nextSlot + i, to: code.address(offset + stub))
            }
            nextSlot += block.slotStubs.count
            for address in block.guestAddresses { lines.mark(address) }
            blocks[front] = offset + block.entry
            statistics.translations += 1
            return offset + block.entry
        }
        untranslatable.insert(front)
        return nil
    }
}
