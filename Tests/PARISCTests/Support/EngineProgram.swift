import MachineCore
@testable import PARISC
import TestSupport

/// A generated system-mode program for comparing the engines with each other (the interpreter is
/// the reference): random instructions of the whole subset — traps included (overflow, condition,
/// break, illegal, unaligned and faulting accesses, FP), nullification, forward branches of every
/// kind, counted loops (backward branches), calls and returns (BL/BV), BLR tables, stores into
/// the program's own code, device stores that raise external interrupts, PSW changes (SSM/RSM
/// of I and R), CR16/CR0 reads, the idle hint — under the recovery counter, with handlers that
/// count each interruption, skip the trapping instruction and return.
///
/// Layout (512 KiB of RAM): vectors at IVA 0x4000, the body at 0x10000, subroutines after it,
/// data at 0x40000; IO_EIR at 0xfffb0000 on the bus.
struct EngineProgram {
    static let ramSize: UInt64 = 512 << 10
    static let iva: UInt32 = 0x4000
    static let codeBase: UInt32 = 0x10000
    static let dataBase: UInt32 = 0x40000
    static let dataSize = 4096
    static let ioEIR: UInt32 = 0xFFFB_0000

    /// Registers the body never writes at random: r2 (return pointer), r17 (a word to store into
    /// code), r18 (a code address), r19 (IO_EIR), r20 (the outer loop's counter), r21/r23/r24
    /// (word/byte/halfword data bases), r22 (an index), r25 (loop counter), r26 (BLR index),
    /// r28 (interruption count).
    static let reserved: Set<Int> = [2, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 28]
    /// Instruction words a program may store into its own code.
    static let codePool: [UInt32] = [
        Encoder.nop, 0xB463_0002, 0xB484_0002, Encoder.arithmetic(0x0A, r1: 3, r2: 4, t: 5),
        Encoder.arithmetic(0x18, r1: 6, r2: 7, t: 8, c: 1, f: 1), 0x0024_6005, 0x1C00_0000,
    ]

    let seed: UInt64
    private(set) var code: [UInt32] = []
    private(set) var subroutines: [[UInt32]] = []
    private(set) var data: [UInt8] = []
    /// The recovery counter value the handler of interruption 3 reloads.
    private(set) var recoveryReload: UInt32 = 0
    private var rng: SplitMix64

    init(seed: UInt64, length: Int) {
        self.seed = seed
        rng = SplitMix64(seed: seed)
        recoveryReload = UInt32.random(in: 1...300, using: &rng)
        data = (0..<Self.dataSize).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let subroutineCount = 3
        for _ in 0..<subroutineCount { subroutines.append(makeSubroutine()) }
        for r in 1..<32 where !Self.reserved.contains(r) {
            code += Encoder.load(UInt32.random(in: 0...UInt32.max, using: &rng), into: r)
        }
        code += Encoder.load(Self.ioEIR, into: 19)
        code += [Encoder.ldo(base: 0, t: 26, displacement: Int32.random(in: 0...2, using: &rng)),
                 Encoder.ldo(base: 0, t: 28, displacement: 0),
                 Encoder.ldo(base: 0, t: 20, displacement: Int32.random(in: 10...40, using: &rng))]
        let bodyStart = code.count
        resetBases()
        while code.count < length {
            body(remaining: length - code.count)
        }
        // The body runs again until r20 counts down to 0: nop; addib,= -1,r20,halt; nop;
        // b,l body,r0; nop; halt.
        code += [Encoder.nop,
                 Encoder.conditionalBranch(0x29, r2: 20, r1OrImmediate: Encoder.lowSign(-1, bits: 5), c: 1,
                                           nullify: false, displacement: 8),
                 Encoder.nop]
        let here = Self.codeBase + UInt32(4 * code.count)
        let start = Self.codeBase + UInt32(4 * bodyStart)
        code += [Encoder.branchLink(t: 0, displacement: Int32(bitPattern: start &- (here &+ 8)), nullify: false),
                 Encoder.nop, Self.halt]
    }

    static let halt: UInt32 = 0xFFFD_EAD0

    /// Where subroutine `i` starts.
    func subroutineAddress(_ i: Int) -> UInt32 {
        var address = Self.codeBase + UInt32(4 * (maximumLength + 16))
        for k in 0..<i { address += UInt32(4 * subroutines[k].count) }
        return address
    }

    /// The body may not grow past this (subroutines follow it).
    private var maximumLength: Int { 6000 }

    /// Writes the program into `memory` and sets up `cpu` to run it.
    func install(into memory: GuestMemory, cpu: PARISCCPU) throws {
        func place(_ words: [UInt32], at address: UInt32) throws {
            for (i, word) in words.enumerated() {
                try memory.store(word, at: GuestAddress(UInt64(address) + UInt64(4 * i)), order: .big)
            }
        }
        precondition(code.count <= maximumLength)
        try place(code, at: Self.codeBase)
        for (i, s) in subroutines.enumerated() { try place(s, at: subroutineAddress(i)) }
        try memory.write(data, at: GuestAddress(UInt64(Self.dataBase)))
        for n in 1..<32 { try place(vector(n), at: Self.iva + UInt32(32 * n)) }
        cpu.state.iaoqFront = Self.codeBase
        cpu.state.iaoqBack = Self.codeBase + 4
        cpu.state.psw = PSW.q | PSW.i | PSW.r
        cpu.state[cr: 14] = Self.iva
        cpu.state[cr: 15] = 0xFFFF_FFFF
        cpu.recoveryCounter = recoveryReload
    }

    /// The handler for interruption `n` (8 words).
    func vector(_ n: Int) -> [UInt32] {
        switch n {
        case 3:
            // Reload CR0 and return to the instruction that was about to run.
            return [Encoder.ldo(base: 0, t: 1, displacement: 0)] + Encoder.load(recoveryReload, into: 1)
                + [0x0001_1840, 0x0000_0C00, Encoder.nop, Encoder.nop, Encoder.nop]     // mtctl r1,cr0; rfi
        case 4:
            // Acknowledge every external interrupt (EIRR is write-one-to-clear).
            return [Encoder.ldo(base: 0, t: 1, displacement: -1), 0x02E1_1840, 0x0000_0C00,
                    Encoder.nop, Encoder.nop, Encoder.nop, Encoder.nop, Encoder.nop]  // mtctl r1,cr23; rfi
        default:
            // Count it and skip the interrupted instruction: IIAOQ = (back, back + 4).
            return [0xB79C_0002,                  // addi 1,r28,r28
                    0x0240_1840,                  // mtctl r0,cr18
                    0x0240_08A1,                  // mfctl cr18,r1
                    0x0241_1840,                  // mtctl r1,cr18
                    Encoder.ldo(base: 1, t: 1, displacement: 4),
                    0x0241_1840,                  // mtctl r1,cr18
                    0x0000_0C00,                  // rfi
                    Encoder.nop]
        }
    }

    // MARK: Generation

    private mutating func dest() -> Int {
        while true {
            let r = Int.random(in: 1...31, using: &rng)
            if !Self.reserved.contains(r) { return r }
        }
    }

    private mutating func src() -> Int { Int.random(in: 0...31, using: &rng) }
    private mutating func bits(_ n: Int) -> Int { Int.random(in: 0..<(1 << n), using: &rng) }
    private mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }
    private mutating func im(_ bits: Int) -> Int32 {
        Int32.random(in: -(1 << (bits - 1))...((1 << (bits - 1)) - 1), using: &rng)
    }

    private mutating func resetBases() {
        let base = Self.dataBase + UInt32(Self.dataSize / 2)
        code += Encoder.load(base, into: 21)
        code += Encoder.load(base + UInt32.random(in: 0...3, using: &rng), into: 23)
        code += Encoder.load(base + 2 * UInt32.random(in: 0...7, using: &rng), into: 24)
        code.append(Encoder.ldo(base: 0, t: 22, displacement: 4 * Int32.random(in: 0...7, using: &rng)))
    }

    /// Appends a piece of the body.
    private mutating func body(remaining: Int) {
        if code.count % 24 == 23 { resetBases() }
        switch Int.random(in: 0..<100, using: &rng) {
        case 0..<24: code.append(arithmetic())
        case 24..<36: code.append(immediate())
        case 36..<48: code.append(shift())
        case 48..<66: code.append(memory())
        case 66..<80: code += forwardBranch()
        case 80..<84 where remaining > 40: code += loop()
        case 84..<87: code += call()
        case 87..<89: code += branchTable()
        case 89..<94: code.append(system())
        case 94..<96: code += selfModifyingStore()
        case 96..<98: code.append(Encoder.memoryLong(0x1A, base: 19, register: src(), displacement: 0))  // stw → IO_EIR
        default: code.append(trapping())
        }
    }

    static let arithmeticExtensions: [UInt32] = [
        0x00, 0x08, 0x09, 0x0A, 0x0E, 0x11, 0x22, 0x26, 0x27, 0x2E, 0x2F,
        0x18, 0x19, 0x1A, 0x1B, 0x28, 0x29, 0x2A, 0x2B, 0x38, 0x39, 0x3A, 0x3B,
        0x1C, 0x3C, 0x10, 0x30, 0x13, 0x33, 0x14, 0x34,
    ]

    private mutating func arithmetic() -> UInt32 {
        let ext = Self.arithmeticExtensions.randomElement(using: &rng)!
        return Encoder.arithmetic(ext, r1: src(), r2: src(), t: chance(0.05) ? 0 : dest(), c: bits(3), f: bits(1))
    }

    private mutating func immediate() -> UInt32 {
        switch bits(3) {
        case 0:
            return Encoder.immediate11(0x2D, r: src(), t: dest(), immediate: im(11), c: bits(3), f: bits(1),
                                       overflowTrap: chance(0.3))
        case 1:
            return Encoder.immediate11(0x2C, r: src(), t: dest(), immediate: im(11), c: bits(3), f: bits(1),
                                       overflowTrap: chance(0.3))
        case 2:
            return Encoder.immediate11(0x25, r: src(), t: dest(), immediate: im(11), c: bits(3), f: bits(1),
                                       overflowTrap: chance(0.3))
        case 3: return Encoder.immediate11(0x24, r: src(), t: dest(), immediate: im(11), c: bits(3), f: bits(1))
        case 4: return Encoder.ldo(base: src(), t: dest(), displacement: im(14))
        case 5: return Encoder.ldil(t: dest(), value: UInt32.random(in: 0...UInt32.max, using: &rng))
        case 6: return Encoder.addil(r: src(), value: UInt32.random(in: 0...UInt32.max, using: &rng))
        default: return chance(0.5) ? Encoder.mtsar(src()) : Encoder.mfsar(dest())
        }
    }

    private mutating func shift() -> UInt32 {
        let c = bits(3)
        switch bits(2) {
        case 0:
            return chance(0.3)
                ? Encoder.shiftDoubleVariable(r1: src(), r2: src(), t: dest(), c: c)
                : Encoder.shiftDouble(r1: src(), r2: src(), shift: bits(5), t: dest(), c: c)
        case 1:
            let ext = UInt32(Int.random(in: 4...7, using: &rng))
            let position = bits(5)
            let length = Int.random(in: 1...(ext >= 6 ? position + 1 : 32), using: &rng)
            return Encoder.extract(ext: ext, r: src(), position: position, length: length, t: dest(), c: c)
        default:
            let ext = UInt32(bits(3))
            let position = bits(5)
            let length = Int.random(in: 1...(ext & 2 != 0 ? 32 - (31 - position) : 32), using: &rng)
            let source = ext >= 4 ? im(5) : Int32(src())
            return Encoder.deposit(ext: ext, t: dest(), source: source, position: position, length: length, c: c)
        }
    }

    private mutating func memory() -> UInt32 {
        let size = Int.random(in: 0...2, using: &rng)
        let unit = Int32(1 << size)
        let misalign: Int32 = chance(0.04) ? 1 : 0
        let load = chance(0.5)
        if !load && chance(0.05) {
            // A store near IO_EIR: the device, or a data fault past its window.
            return Encoder.memoryLong(0x18 + UInt32(size), base: 19, register: src(),
                                      displacement: Int32.random(in: -0x1000...0x1FFF, using: &rng) * unit + misalign)
        }
        // Mostly the data bases; loads sometimes from any register (a fault, a device, or RAM).
        let base = load && chance(0.06) ? src() : [23, 24, 21][size]
        switch bits(2) {
        case 0:
            let displacement = Int32.random(in: -64...63, using: &rng) * unit + misalign
            return load
                ? Encoder.memoryLong(0x10 + UInt32(size), base: base, register: dest(), displacement: displacement)
                : Encoder.memoryLong(0x18 + UInt32(size), base: base, register: src(), displacement: displacement)
        case 1:
            let displacement = Int32.random(in: (-16 / unit)...(15 / unit), using: &rng) * unit
            let modify = chance(0.5), before = chance(0.5)
            if !load && size == 0 && chance(0.25) {
                return Encoder.shortStore(ext4: 12, base: 23, displacement: displacement, source: src(),
                                          modify: modify, before: before)
            }
            let modifiedBase = modify ? [23, 24, 21][size] : base
            return load
                ? Encoder.shortLoad(ext4: UInt32(size), base: modifiedBase, displacement: displacement, t: dest(),
                                    modify: modify, before: before)
                : Encoder.shortStore(ext4: 8 + UInt32(size), base: modifiedBase, displacement: displacement,
                                     source: src(), modify: modify, before: before)
        case 2:
            let scaled = chance(0.5)
            let modify = !scaled && chance(0.5)
            return Encoder.indexedLoad(ext4: UInt32(size), base: modify ? [23, 24, 21][size] : base, index: 22,
                                       t: dest(), scaled: scaled, modify: modify)
        default:
            let displacement = Int32.random(in: -2...2, using: &rng) * 4
            return load
                ? Encoder.memoryLong(0x13, base: 21, register: dest(), displacement: displacement)
                : Encoder.memoryLong(0x1B, base: 21, register: src(), displacement: displacement)
        }
    }

    /// A forward branch skipping 0...3 instructions after its delay slot, then filler.
    private mutating func forwardBranch() -> [UInt32] {
        let skip = Int.random(in: 0...3, using: &rng)
        let displacement = Int32(4 * skip)
        let nullify = chance(0.5)
        let c = bits(3)
        let branch: UInt32
        switch bits(3) {
        case 0:
            branch = Encoder.conditionalBranch(chance(0.5) ? 0x20 : 0x22, r2: src(), r1OrImmediate: UInt32(src()),
                                               c: c, nullify: nullify, displacement: displacement)
        case 1:
            branch = Encoder.conditionalBranch(chance(0.5) ? 0x21 : 0x23, r2: src(),
                                               r1OrImmediate: Encoder.lowSign(im(5), bits: 5),
                                               c: c, nullify: nullify, displacement: displacement)
        case 2:
            branch = Encoder.conditionalBranch(chance(0.5) ? 0x28 : 0x2A, r2: dest(), r1OrImmediate: UInt32(src()),
                                               c: c, nullify: nullify, displacement: displacement)
        case 3:
            branch = Encoder.conditionalBranch(chance(0.5) ? 0x29 : 0x2B, r2: dest(),
                                               r1OrImmediate: Encoder.lowSign(im(5), bits: 5),
                                               c: c, nullify: nullify, displacement: displacement)
        case 4:
            branch = Encoder.conditionalBranch(chance(0.5) ? 0x32 : 0x33, r2: dest(), r1OrImmediate: chance(0.5)
                                               ? UInt32(src()) : Encoder.lowSign(im(5), bits: 5),
                                               c: c, nullify: nullify, displacement: displacement)
        case 5:
            branch = Encoder.branchOnBit(r: src(), position: bits(5), variable: chance(0.3),
                                         branchIfClear: chance(0.5), nullify: nullify, displacement: displacement)
        default:
            branch = Encoder.branchLink(t: chance(0.5) ? 0 : dest(), displacement: displacement, nullify: nullify)
        }
        // The delay slot and the skipped instructions: anything but branches.
        var words = [branch]
        for _ in 0..<(1 + skip) { words.append(straight()) }
        return words
    }

    /// A non-branch instruction.
    private mutating func straight() -> UInt32 {
        switch bits(3) {
        case 0, 1: arithmetic()
        case 2: immediate()
        case 3: shift()
        case 4, 5: memory()
        case 6: system()
        default: chance(0.5) ? trapping() : Encoder.nop
        }
    }

    /// `nop; ldi n,r25; L: body; addib,<> -1,r25,L; delay` — a loop of 1...12 iterations (the
    /// nop takes a nullification meant for the ldi).
    private mutating func loop() -> [UInt32] {
        var words = [Encoder.nop, Encoder.ldo(base: 0, t: 25, displacement: Int32.random(in: 1...12, using: &rng))]
        var bodyWords: [UInt32] = []
        let length = Int.random(in: 2...10, using: &rng)
        while bodyWords.count < length {
            if chance(0.15) {
                // A forward branch inside the loop body (it may leave the loop).
                bodyWords += forwardBranch()
            } else {
                bodyWords.append(straight())
            }
        }
        words += bodyWords
        let back = -Int32(4 * (bodyWords.count + 2))   // to the word after the ldi
        words.append(Encoder.conditionalBranch(0x2B, r2: 25, r1OrImmediate: Encoder.lowSign(-1, bits: 5), c: 1,
                                               nullify: chance(0.3), displacement: back))   // addib,<> -1,r25,L
        words.append(straight())
        return words
    }

    /// `bl sub, rp` with a delay slot; the subroutine returns with BV.
    private mutating func call() -> [UInt32] {
        let target = subroutineAddress(Int.random(in: 0..<subroutines.count, using: &rng))
        // A nop first: a conditional instruction before the call nullifies the nop, not the BL.
        let here = Self.codeBase + UInt32(4 * (code.count + 1))
        let displacement = Int32(bitPattern: target &- (here &+ 8))
        return [Encoder.nop, Encoder.branchLink(t: 2, displacement: displacement, nullify: chance(0.3)), straight()]
    }

    private mutating func makeSubroutine() -> [UInt32] {
        var words: [UInt32] = []
        for _ in 0..<Int.random(in: 1...8, using: &rng) { words.append(straight()) }
        // nop (so no condition nullifies the return); bv r0(rp) or bv,n r0(rp)
        words.append(Encoder.nop)
        words.append(chance(0.5) ? 0xE840_C000 : 0xE840_C002)
        words.append(straight())
        return words
    }

    /// `blr r26,r0` into a table of three two-instruction entries.
    private mutating func branchTable() -> [UInt32] {
        var words: [UInt32] = [Encoder.nop, 0xE800_4000 | 26 << 16 | (chance(0.3) ? 2 : 0), straight()]
        for _ in 0..<6 { words.append(straight()) }
        return words
    }

    private mutating func system() -> UInt32 {
        switch bits(3) {
        case 0: return chance(0.5) ? 0x0001_0D61 : 0x0001_0E61          // ssm 1,r1 / rsm 1,r1 (PSW I)
        case 1: return chance(0.7) ? 0x0010_0D60 : 0x0010_0E60          // ssm 10 / rsm 10 (PSW R)
        case 2: return 0x0200_08A0 | UInt32(dest())                      // mfctl cr16,t
        case 3: return 0x0000_08A0 | UInt32(dest())                      // mfctl cr0,t
        case 4: return 0x01E0_08A0 | UInt32(dest())                      // mfctl cr15,t
        case 5: return chance(0.3) ? 0x1400_0100 : 0x0000_0400           // diag 100 (idle hint) / sync
        case 6: return 0x0160_08A0 | UInt32(dest())                      // mfctl cr11,t
        default: return Encoder.mtsar(src())
        }
    }

    /// Instructions that always or often trap.
    private mutating func trapping() -> UInt32 {
        switch bits(3) {
        case 0: return 0x0024_6005                                        // break
        case 1: return 0x1C00_0000                                        // illegal
        case 2: return 0x3000_0000                                        // FP (assist emulation)
        case 3: return Encoder.immediate11(0x2C, r: src(), t: dest(), immediate: im(11), c: bits(3), f: bits(1))
        case 4: return Encoder.arithmetic(0x13, r1: src(), r2: src(), t: dest(), c: bits(3), f: bits(1))
        case 5: return Encoder.memoryLong(0x12, base: src(), register: dest(), displacement: im(14))  // ldw
        default: return Encoder.arithmetic(0x38, r1: src(), r2: src(), t: dest())
        }
    }

    /// Stores a word from the pool into the program's own code (ahead of or behind this point).
    private mutating func selfModifyingStore() -> [UInt32] {
        let here = code.count
        let lowest = max(0, here - 40)
        let targetIndex = Int.random(in: lowest...(here + 40), using: &rng)
        let target = Self.codeBase + UInt32(4 * targetIndex)
        let word = Self.codePool.randomElement(using: &rng)!
        return Encoder.load(word, into: 17) + Encoder.load(target, into: 18)
            + [Encoder.memoryLong(0x1A, base: 18, register: 17, displacement: 0)]
    }
}
