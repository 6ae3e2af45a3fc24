import TestSupport

/// A generated user-mode test program: random register values, a body of random instructions
/// from the integer subset (every condition, carry/borrow, divide step, nullification, forward
/// branches with and without `,n`, loads and stores in every addressing form), then an epilogue
/// that writes the 2 KiB data area to stdout and exits. Trap-raising forms (ADDO, SUBT, ADDIT ...)
/// are left out: under qemu-user a trap ends the process with a signal.
struct RandomProgram {
    /// Registers the body never writes: r20 (syscall number), r21/r23/r24 (word/byte/halfword
    /// bases into the data area), r22 (an index, a multiple of 4 in 0...28), r25, r31.
    static let reserved: Set<Int> = [20, 21, 22, 23, 24, 25, 31]
    static let dataSize = 2048

    enum Kind: CaseIterable { case arithmetic, immediate, shift, memory, branch }

    let seed: UInt64
    private(set) var code: [UInt32] = []
    private(set) var data: [UInt8] = []
    /// Word index of the first and one past the last body instruction.
    private(set) var bodyRange: Range<Int> = 0..<0
    private var rng: SplitMix64

    init(seed: UInt64, length: Int, kinds: [Kind] = Kind.allCases) {
        self.seed = seed
        rng = SplitMix64(seed: seed)
        data = (0..<Self.dataSize).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for r in 1..<32 where r != 20 {
            code += Encoder.load(UInt32.random(in: 0...UInt32.max, using: &rng), into: r)
        }
        resetBases()
        code.append(Encoder.mtsar(Int.random(in: 1...19, using: &rng)))
        let start = code.count
        var generated = 0
        while generated < length {
            if generated % 16 == 15 { resetBases() }
            let remaining = length - generated
            let kind = kinds.randomElement(using: &rng)!
            let words = instruction(kind, remaining: remaining)
            code += words
            generated += words.count
        }
        bodyRange = start..<code.count
        code += Array(repeating: Encoder.nop, count: 4)
        code += Encoder.load(MinimalELF.dataAddress, into: 25)
        code += [Encoder.ldo(base: 0, t: 24, displacement: Int32(Self.dataSize)),
                 Encoder.ldo(base: 0, t: 26, displacement: 1),
                 Encoder.gateway, Encoder.ldo(base: 0, t: 20, displacement: 4),   // write(1, data, 2048)
                 Encoder.ldo(base: 0, t: 26, displacement: 0),
                 Encoder.gateway, Encoder.ldo(base: 0, t: 20, displacement: 1)]   // exit(0)
    }

    var elf: [UInt8] { MinimalELF.make(code: code, data: data) }

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

    /// Points the bases back into the middle of the data area and picks a new index.
    private mutating func resetBases() {
        let base = MinimalELF.dataAddress
        code += Encoder.load(base + 1024, into: 21)
        code += Encoder.load(base + 1024 + UInt32.random(in: 0...3, using: &rng), into: 23)
        code += Encoder.load(base + 1024 + 2 * UInt32.random(in: 0...7, using: &rng), into: 24)
        code.append(Encoder.ldo(base: 0, t: 22, displacement: 4 * Int32.random(in: 0...7, using: &rng)))
    }

    private mutating func instruction(_ kind: Kind, remaining: Int) -> [UInt32] {
        switch kind {
        case .arithmetic: return [arithmetic()]
        case .immediate: return [immediate()]
        case .shift: return [shift()]
        case .memory: return [memory()]
        case .branch: return remaining > 6 ? [branch()] : [arithmetic()]
        }
    }

    static let arithmeticExtensions: [UInt32] = [
        0x00, 0x08, 0x09, 0x0A, 0x0E, 0x11, 0x22, 0x26,              // logical, unit, DS, COMCLR
        0x18, 0x19, 0x1A, 0x1B, 0x28, 0x29, 0x2A, 0x2B, 0x1C, 0x10, 0x14,  // add/sub families
    ]

    /// Left out (QEMU 7.2 bugs, documented in docs/parisc.md): DCOR/IDCOR (QEMU takes the digit
    /// carries from the wrong bits) and DS with t = r2 (QEMU computes V from the new GR[t]).
    private mutating func arithmetic() -> UInt32 {
        let ext = Self.arithmeticExtensions.randomElement(using: &rng)!
        let r2 = src()
        var t = chance(0.05) ? 0 : dest()
        while ext == 0x11 && t == r2 { t = dest() }
        return Encoder.arithmetic(ext, r1: src(), r2: r2, t: t, c: bits(3), f: bits(1))
    }

    private mutating func immediate() -> UInt32 {
        switch bits(3) {
        case 0, 1: return Encoder.immediate11(0x2D, r: src(), t: dest(), immediate: im(11), c: bits(3), f: bits(1))
        case 2: return Encoder.immediate11(0x25, r: src(), t: dest(), immediate: im(11), c: bits(3), f: bits(1))
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
            return Encoder.deposit(ext: ext, t: dest(), source: source, position: position,
                                   length: length, c: c)
        }
    }

    private mutating func memory() -> UInt32 {
        // size: 0 byte (base r23), 1 halfword (r24), 2 word (r21).
        let size = Int.random(in: 0...2, using: &rng)
        let base = [23, 24, 21][size]
        let unit = Int32(1 << size)
        let load = chance(0.5)
        switch bits(2) {
        case 0:                                               // long displacement
            let displacement = Int32.random(in: -64...63, using: &rng) * unit
            return load
                ? Encoder.memoryLong(0x10 + UInt32(size), base: base, register: dest(), displacement: displacement)
                : Encoder.memoryLong(0x18 + UInt32(size), base: base, register: src(), displacement: displacement)
        case 1:                                               // short displacement, maybe modify
            let displacement = Int32.random(in: (-16 / unit)...(15 / unit), using: &rng) * unit
            let modify = chance(0.5), before = chance(0.5)
            if !load && size == 0 && chance(0.25) {
                return Encoder.shortStore(ext4: 12, base: 23, displacement: displacement, source: src(),
                                          modify: modify, before: before)     // STBYS
            }
            return load
                ? Encoder.shortLoad(ext4: UInt32(size), base: base, displacement: displacement, t: dest(),
                                    modify: modify, before: before)
                : Encoder.shortStore(ext4: 8 + UInt32(size), base: base, displacement: displacement,
                                     source: src(), modify: modify, before: before)
        case 2:                                               // indexed load (r22)
            let scaled = chance(0.5)
            return Encoder.indexedLoad(ext4: UInt32(size), base: base, index: 22, t: dest(),
                                       scaled: scaled, modify: !scaled && chance(0.5))
        default:                                              // LDWM / STWM
            let displacement = Int32.random(in: -2...2, using: &rng) * 4
            return load
                ? Encoder.memoryLong(0x13, base: 21, register: dest(), displacement: displacement)
                : Encoder.memoryLong(0x1B, base: 21, register: src(), displacement: displacement)
        }
    }

    private mutating func branch() -> UInt32 {
        let skip = Int32.random(in: 0...3, using: &rng)
        let displacement = 4 * skip                          // forward: skips `skip` after the slot
        let nullify = chance(0.5)
        let c = bits(3)
        switch bits(3) {
        case 0:
            return Encoder.conditionalBranch(chance(0.5) ? 0x20 : 0x22, r2: src(), r1OrImmediate: UInt32(src()),
                                             c: c, nullify: nullify, displacement: displacement)
        case 1:
            return Encoder.conditionalBranch(chance(0.5) ? 0x21 : 0x23, r2: src(),
                                             r1OrImmediate: Encoder.lowSign(im(5), bits: 5),
                                             c: c, nullify: nullify, displacement: displacement)
        case 2:
            return Encoder.conditionalBranch(chance(0.5) ? 0x28 : 0x2A, r2: dest(), r1OrImmediate: UInt32(src()),
                                             c: c, nullify: nullify, displacement: displacement)
        case 3:
            return Encoder.conditionalBranch(chance(0.5) ? 0x29 : 0x2B, r2: dest(),
                                             r1OrImmediate: Encoder.lowSign(im(5), bits: 5),
                                             c: c, nullify: nullify, displacement: displacement)
        case 4:
            return Encoder.conditionalBranch(0x32, r2: dest(), r1OrImmediate: UInt32(src()), c: c,
                                             nullify: nullify, displacement: displacement)
        case 5:
            return Encoder.conditionalBranch(0x33, r2: dest(), r1OrImmediate: Encoder.lowSign(im(5), bits: 5),
                                             c: c, nullify: nullify, displacement: displacement)
        case 6:
            return Encoder.branchOnBit(r: src(), position: bits(5), variable: chance(0.3),
                                       branchIfClear: chance(0.5), nullify: nullify, displacement: displacement)
        default:
            return Encoder.branchLink(t: chance(0.5) ? 0 : dest(), displacement: displacement, nullify: nullify)
        }
    }
}
