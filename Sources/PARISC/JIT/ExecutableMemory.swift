#if canImport(Glibc)
import Glibc
#endif

// The JIT's unsafe code, all of it: the executable pages (W^X: written while read-write, run
// while read-execute, never both), the data area the generated code reads and writes (its
// context, the jump cache, the chaining slots), the map of translated code lines, and the call
// into generated code. Every other JIT file is safe Swift that produces and inspects bytes.

/// Whether this host can run the JIT, probed once: an x86-64 host whose kernel lets the process
/// map a page read-write, make it read-execute, and run a function written there.
enum JITHost {
    /// nil when the JIT can run; otherwise why not (one line).
    static let unavailableReason: String? = probe()

    private static func probe() -> String? {
        #if arch(x86_64) && os(Linux)
        let memory: ExecutableMemory
        do { memory = try ExecutableMemory(capacity: Int(pageSize)) } catch { return error.description }
        // mov eax, 42; ret
        guard let offset = try? memory.append([0xB8, 42, 0, 0, 0, 0xC3]) else {
            return "the host refused to make a page executable (mprotect PROT_EXEC)"
        }
        // SAFETY: the six bytes just written at `offset` are a complete function with the C
        // calling convention (no arguments, result in eax), and the page is now read-execute.
        let function = unsafeBitCast(memory.base + offset, to: (@convention(c) () -> UInt32).self)
        return function() == 42 ? nil : "a probe of generated code returned the wrong value"
        #else
        return "the JIT generates x86-64 code and this host is not x86-64 Linux"
        #endif
    }

    static let pageSize = UInt(sysconf(Int32(_SC_PAGESIZE)))
}

/// Why executable memory could not be set up.
struct ExecutableMemoryError: Error, CustomStringConvertible {
    let operation: String
    let errno: Int32

    var description: String {
        "JIT: \(operation) failed: \(String(cString: strerror(errno)))"
    }
}

/// A region for generated code. Code is appended: the pages it lands on are made read-write,
/// written, and made read-execute again, so no page is ever writable and executable at once.
/// `reset()` forgets everything appended (the pages are rewritten later).
final class ExecutableMemory {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    private(set) var used = 0

    init(capacity: Int) throws(ExecutableMemoryError) {
        // SAFETY: an anonymous private mapping with no fixed address, checked for MAP_FAILED and
        // unmapped exactly once in deinit. It starts read-only: nothing is written or run yet.
        let p = mmap(nil, capacity, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p, p != MAP_FAILED else { throw ExecutableMemoryError(operation: "mmap", errno: errno) }
        base = p
        self.capacity = capacity
    }

    deinit {
        // SAFETY: `base` came from mmap with exactly `capacity` bytes and nothing else unmaps it;
        // no generated code runs while this object is being destroyed (the CPU owns it and runs
        // code only inside `run`).
        munmap(base, capacity)
    }

    /// Bytes left for code.
    var available: Int { capacity - used }

    /// Copies `code` in (16-byte aligned) and returns its offset; nil if it does not fit.
    func append(_ code: [UInt8]) throws(ExecutableMemoryError) -> Int? {
        let start = (used + 15) & ~15
        guard start + code.count <= capacity else { return nil }
        let page = Int(JITHost.pageSize)
        let first = start & ~(page - 1)
        let last = (start + code.count + page - 1) & ~(page - 1)
        // SAFETY: [first, last) lies inside the mapping (last <= capacity rounded to a page, and
        // capacity is a whole number of pages); no generated code runs while it is writable (the
        // JIT translates between runs, on the CPU's thread).
        guard mprotect(base + first, last - first, PROT_READ | PROT_WRITE) == 0 else {
            throw ExecutableMemoryError(operation: "mprotect(PROT_READ | PROT_WRITE)", errno: errno)
        }
        code.withUnsafeBytes { source in
            // SAFETY: the destination [start, start + count) is inside the writable range above.
            (base + start).copyMemory(from: source.baseAddress!, byteCount: source.count)
        }
        // SAFETY: the same range, back to read-execute.
        guard mprotect(base + first, last - first, PROT_READ | PROT_EXEC) == 0 else {
            throw ExecutableMemoryError(operation: "mprotect(PROT_READ | PROT_EXEC)", errno: errno)
        }
        used = start + code.count
        return start
    }

    /// Forgets all code from `offset` on (the pages stay read-execute until rewritten).
    func truncate(to offset: Int) {
        precondition(offset >= 0 && offset <= used)
        used = offset
    }

    /// The address of the code at `offset`, as the generated code stores it in slots.
    func address(_ offset: Int) -> UInt64 {
        precondition(offset >= 0 && offset < capacity)
        return UInt64(UInt(bitPattern: base + offset))
    }
}

/// The read-write memory the generated code uses through r14: a header (RAM base, budget, map
/// bases), the jump cache for indirect branches, and the chaining slots (one code address per
/// block exit). Swift reads and writes it only through the checked accessors below.
final class JITDataArea {
    /// Header offsets.
    static let ramBaseOffset: Int32 = 0
    static let budgetOffset: Int32 = 8
    static let codeLinesOffset: Int32 = 16
    /// Guest memory's write map (see `JITTranslator.markWritten`).
    static let writeMapOffset: Int32 = 24
    /// Scratch the generated code keeps values in across flag-changing code (a condition byte,
    /// a word).
    static let scratchByteOffset: Int32 = 32
    static let scratchWordOffset: Int32 = 40
    /// The jump cache: `jumpCacheEntries` entries of (guest front: UInt32, pad, code: UInt64).
    static let jumpCacheOffset: Int32 = 64
    static let jumpCacheBits = 12
    static var jumpCacheEntries: Int { 1 << jumpCacheBits }
    static var slotsOffset: Int32 { jumpCacheOffset + Int32(jumpCacheEntries * 16) }

    let slotCapacity: Int
    private let base: UnsafeMutableRawPointer
    private let size: Int

    init(slotCapacity: Int) throws(ExecutableMemoryError) {
        self.slotCapacity = slotCapacity
        size = Int(Self.slotsOffset) + slotCapacity * 8
        // SAFETY: an anonymous read-write mapping, checked, unmapped once in deinit; it is never
        // made executable.
        let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p, p != MAP_FAILED else { throw ExecutableMemoryError(operation: "mmap", errno: errno) }
        base = p
    }

    deinit {
        // SAFETY: `base` came from mmap with exactly `size` bytes; nothing else unmaps it.
        munmap(base, size)
    }

    /// The address generated code receives in r14.
    var address: UnsafeMutableRawPointer { base }

    private func store64(_ value: UInt64, at offset: Int) {
        precondition(offset >= 0 && offset + 8 <= size && offset & 7 == 0, "JIT data access out of range")
        // SAFETY: the precondition keeps the aligned 8-byte store inside the mapping.
        base.storeBytes(of: value, toByteOffset: offset, as: UInt64.self)
    }

    private func load64(at offset: Int) -> UInt64 {
        precondition(offset >= 0 && offset + 8 <= size && offset & 7 == 0, "JIT data access out of range")
        // SAFETY: as in store64.
        return base.load(fromByteOffset: offset, as: UInt64.self)
    }

    var ramBase: UInt64 {
        get { load64(at: Int(Self.ramBaseOffset)) }
        set { store64(newValue, at: Int(Self.ramBaseOffset)) }
    }

    var budget: UInt64 {
        get { load64(at: Int(Self.budgetOffset)) }
        set { store64(newValue, at: Int(Self.budgetOffset)) }
    }

    var codeLinesBase: UInt64 {
        get { load64(at: Int(Self.codeLinesOffset)) }
        set { store64(newValue, at: Int(Self.codeLinesOffset)) }
    }

    var writeMapBase: UInt64 {
        get { load64(at: Int(Self.writeMapOffset)) }
        set { store64(newValue, at: Int(Self.writeMapOffset)) }
    }

    /// Sets chaining slot `index` to jump to `code`.
    func setSlot(_ index: Int, to code: UInt64) {
        precondition(index >= 0 && index < slotCapacity, "JIT slot out of range")
        store64(code, at: Int(Self.slotsOffset) + 8 * index)
    }

    /// Sets jump cache entry `index` to (front → code).
    func setJumpCacheEntry(_ index: Int, front: UInt32, code: UInt64) {
        precondition(index >= 0 && index < Self.jumpCacheEntries, "JIT jump cache index out of range")
        store64(UInt64(front), at: Int(Self.jumpCacheOffset) + 16 * index)
        store64(code, at: Int(Self.jumpCacheOffset) + 16 * index + 8)
    }
}

/// Which 64-byte lines of guest RAM translated code was made from (one byte per line), so that a
/// store into one can drop the translations; the generated code checks it before every store.
/// Bit 0 marks a line with translated blocks; bit 1 (JIT only) a line the interpreter's decode
/// cache holds words of, which generated stores must leave to the interpreter too.
final class CodeLineMap {
    static let lineShift: UInt32 = 6
    static let translated: UInt8 = 1
    static let decoded: UInt8 = 2
    let lineCount: Int
    private let bytes: UnsafeMutablePointer<UInt8>
    private let size: Int
    /// The marked lines, to clear them without sweeping the whole map.
    private var marked: [Int] = []

    /// A map for `ramLimit` bytes of RAM.
    init(ramLimit: UInt32) throws(ExecutableMemoryError) {
        lineCount = Int((UInt64(ramLimit) + 63) >> UInt64(Self.lineShift))
        size = max(lineCount, 1)
        // SAFETY: an anonymous read-write zero-filled mapping of `size` bytes, checked, unmapped
        // once in deinit; pages the guest never runs code from are never touched.
        let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p, p != MAP_FAILED else { throw ExecutableMemoryError(operation: "mmap", errno: errno) }
        bytes = p.bindMemory(to: UInt8.self, capacity: size)
    }

    deinit {
        // SAFETY: `bytes` came from mmap with exactly `size` bytes.
        munmap(bytes, size)
    }

    /// The address generated code indexes with `address >> lineShift`.
    var baseAddress: UInt64 { UInt64(UInt(bitPattern: bytes)) }

    /// Whether the line holding `address` has translated code (bit 0).
    @inline(__always) func isMarked(_ address: UInt32) -> Bool {
        let line = Int(address >> Self.lineShift)
        guard line < lineCount else { return false }
        // SAFETY: line < lineCount <= size.
        return bytes[line] & Self.translated != 0
    }

    /// Marks the line holding `address` with `bits`.
    @inline(__always) func mark(_ address: UInt32, _ bits: UInt8 = translated) {
        let line = Int(address >> Self.lineShift)
        guard line < lineCount else { return }
        // SAFETY: line < lineCount <= size.
        let old = bytes[line]
        if old & bits != bits {
            if old == 0 { marked.append(line) }
            bytes[line] = old | bits
        }
    }

    /// Whether no line is marked.
    var isEmpty: Bool { marked.isEmpty }

    /// Unmarks every line.
    func clear() {
        for line in marked {
            // SAFETY: every recorded line was checked against lineCount when it was marked.
            bytes[line] = 0
        }
        marked.removeAll(keepingCapacity: true)
    }
}

/// How one call into generated code ended (the low 4 bits of its result; the rest is an
/// argument).
enum JITExit: Equatable {
    /// Interpret the instruction at IAOQ front (the state is exact before it).
    case fallback
    /// A block exit whose chaining slot is not linked yet; IAOQ = its target.
    case unlinked(slot: Int)
    /// A block's instructions do not fit in the remaining budget; IAOQ = the block's start.
    case budget
    /// An indirect branch whose target is not in the jump cache; IAOQ = the target.
    case jumpCacheMiss

    static let fallbackCode: UInt32 = 0
    static let unlinkedCode: UInt32 = 1
    static let budgetCode: UInt32 = 2
    static let jumpCacheMissCode: UInt32 = 3

    init(_ raw: UInt64) {
        switch UInt32(truncatingIfNeeded: raw & 15) {
        case Self.unlinkedCode: self = .unlinked(slot: Int(raw >> 4))
        case Self.budgetCode: self = .budget
        case Self.jumpCacheMissCode: self = .jumpCacheMiss
        default: self = .fallback
        }
    }
}

extension ExecutableMemory {
    /// Runs generated code: the entry trampoline at `trampoline` saves the host's callee-saved
    /// registers, loads the CPU state (rbx), the data area (r14), RAM (r12) and the budget
    /// (r13), and jumps to `entry`; the code returns through the trampoline's
    /// epilogue, which stores the budget left back into the data area.
    func run(trampoline: Int, entry: Int, state: inout PARISCCPUState, data: JITDataArea) -> JITExit {
        precondition(trampoline < used && entry < used, "JIT: running code that was not written")
        typealias Trampoline = @convention(c) (UnsafeMutableRawPointer, UnsafeMutableRawPointer,
                                               UnsafeRawPointer) -> UInt64
        // SAFETY: `trampoline` is the entry trampoline this JIT generated (a C-convention function
        // of three pointer arguments); `entry` is the start of a block generated for this CPU's
        // state layout and RAM. The generated code touches only the state (through the pointer
        // below, valid for the duration of the call), RAM at offsets it has checked against the
        // RAM size, the data area and the code-line map at checked indexes, and its own stack
        // frame. Its pages are read-execute for the whole call.
        let function = unsafeBitCast(base + trampoline, to: Trampoline.self)
        let result = withUnsafeMutablePointer(to: &state) { pointer in
            function(UnsafeMutableRawPointer(pointer), data.address, UnsafeRawPointer(base + entry))
        }
        return JITExit(result)
    }
}
