import CCapstone

/// One instruction found by a linear sweep: where it is, how long it is and what Capstone called it.
struct DecodedInstruction: Hashable, Sendable {
    /// The guest address of the first byte (prefixes included).
    let address: UInt64
    /// The instruction's bytes.
    let bytes: [UInt8]
    /// Capstone's `x86_insn` id (`X86_INS_RDTSC`, ...).
    let id: UInt32
}

/// A Capstone x86-64 disassembler (Debian's libcapstone), used for linear sweeps of guest code.
///
/// Owns its Capstone handle and instruction buffer and releases them in `deinit`. The
/// corresponding C calls are `cs_open(CS_ARCH_X86, CS_MODE_64)`, `cs_malloc`, `cs_disasm_iter`,
/// `cs_free` and `cs_close`. This file is the one place in the X86 module that hands pointers to a
/// C library (Capstone reads the code through a pointer), as the Loader does for libelf.
final class Disassembler {
    private var handle: csh = 0
    private let instruction: UnsafeMutablePointer<cs_insn>

    /// Capstone's ids of the environment instructions the patcher looks for.
    static let rdtsc = X86_INS_RDTSC.rawValue
    static let rdtscp = X86_INS_RDTSCP.rawValue
    static let cpuid = X86_INS_CPUID.rawValue
    static let rdrand = X86_INS_RDRAND.rawValue
    static let rdseed = X86_INS_RDSEED.rawValue

    /// Opens Capstone for x86 in 64-bit mode.
    init() throws(X86Error) {
        var h: csh = 0
        let status = cs_open(CS_ARCH_X86, CS_MODE_64, &h)
        guard status == CS_ERR_OK else {
            throw .disassembler("cs_open failed: \(String(cString: cs_strerror(status)))")
        }
        // SAFETY: cs_malloc returns a cs_insn buffer owned by this handle (detail is off, so no
        // detail block); it is released with cs_free before cs_close in deinit.
        guard let buffer = cs_malloc(h) else {
            cs_close(&h)
            throw .disassembler("cs_malloc failed")
        }
        handle = h
        instruction = buffer
    }

    deinit {
        // SAFETY: `instruction` came from cs_malloc(handle) and is freed once, before the handle.
        cs_free(instruction, 1)
        cs_close(&handle)
    }

    /// Decodes `bytes` (which start at guest address `address`) from the first byte to the last,
    /// one instruction after another. Where Capstone finds no valid instruction the sweep skips one
    /// byte and tries again. Returns the instructions whose id is in `ids`.
    func sweep(_ bytes: ArraySlice<UInt8>, at address: UInt64, keeping ids: Set<UInt32>)
        -> [DecodedInstruction]
    {
        var found: [DecodedInstruction] = []
        let contiguous = Array(bytes)
        contiguous.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            var offset = 0
            while offset < buffer.count {
                // SAFETY: `code` points into `buffer` at `offset` < count, with `remaining` bytes
                // left; cs_disasm_iter reads at most `remaining` bytes and writes only into the
                // cs_insn buffer this handle owns. The pointer does not escape the closure.
                var code: UnsafePointer<UInt8>? = base + offset
                var remaining = buffer.count - offset
                var pc = address &+ UInt64(offset)
                if cs_disasm_iter(handle, &code, &remaining, &pc, instruction) {
                    let size = Int(instruction.pointee.size)
                    let id = instruction.pointee.id
                    if ids.contains(id) {
                        found.append(DecodedInstruction(
                            address: address &+ UInt64(offset),
                            bytes: Array(buffer[offset..<offset + size]), id: id))
                    }
                    offset += max(size, 1)
                } else {
                    offset += 1
                }
            }
        }
        return found
    }
}
