import Loader
import MachineCore

/// Finds the environment instructions in a guest image and rewrites each into a trap.
///
/// KVM does not exit on RDTSC, RDTSCP, RDRAND or RDSEED, and CPUID at CPL3 returns the raw host
/// values on the PVM host, so none of them can be intercepted at run time. Instead, at load time,
/// every such instruction found in the image's code is rewritten into `out %al,$0xe7` (E6 E7)
/// padded with NOPs to the original length; the engine then simulates the original instruction
/// when the OUT exits to user space (`X86Machine`). Rewriting is a pure function of the image, so
/// every replica's RAM is identical after loading.
///
/// Where the sweep looks (all in 64-bit mode, with Capstone):
/// - each `STT_FUNC` symbol with a size, over that size;
/// - the rest of each executable section (the gaps between functions: assembly code), linearly
///   from the start of the gap and again from every other symbol (label) inside it, so that a
///   label re-synchronises the sweep after data or padding;
/// - executable `PT_LOAD` segments when the image has no executable sections;
/// - never the Multiboot header (it is data in `.text`).
///
/// 32-bit code (the Multiboot entry stub) is swept in 64-bit mode too. The environment
/// instructions have the same encoding in both modes; the one difference that matters is that
/// 0x40-0x4F is a REX prefix in 64-bit code and an INC/DEC in 32-bit code. So when a site has a
/// REX byte, the prefixes up to and including it are kept and only the bytes from the 0x0F opcode
/// on are rewritten: in 64-bit code they become (ignored) prefixes of the OUT, in 32-bit code they
/// stay the INC/DEC they were. The operand width of RDRAND/RDSEED/RDPID is resolved from the
/// mode at the trap (`EnvironmentInstruction.RegisterOperand`).
///
/// Limits (see docs/architecture.md): code that is not in the image at load time (generated,
/// decompressed, loaded from disk), code the sweep mis-synchronises on (data inside a function),
/// and self-modifying code are not patched; LOCK-prefixed forms (#UD) and F2/F3-prefixed
/// RDRAND/RDSEED (not those instructions) are left alone.
public enum EnvironmentPatcher {
    /// The port of the trap instruction, `out %al,$0xe7`.
    public static let trapPort: UInt8 = 0xE7

    /// A stretch of guest code to sweep.
    struct Stretch: Hashable {
        /// The virtual address of the first byte.
        var address: UInt64
        /// The guest-physical address of the first byte.
        var physicalAddress: UInt64
        var bytes: ArraySlice<UInt8>
    }

    /// Every environment instruction in `image`'s code, sorted by address, without overlaps.
    /// `excluding` are virtual address ranges never to sweep (the Multiboot header).
    public static func findSites(in image: ELFImage, excluding: [Range<UInt64>] = [])
        throws(X86Error) -> [PatchSite]
    {
        let disassembler = try Disassembler()
        var sites: [PatchSite] = []
        for stretch in plan(image, excluding: excluding) {
            sites += findSites(in: stretch, disassembler: disassembler)
        }
        return deduplicated(sites)
    }

    /// Every environment instruction in `bytes`, which lie at virtual `address` and
    /// guest-physical `physicalAddress` (one linear sweep from the first byte).
    public static func findSites(inCode bytes: [UInt8], at address: UInt64,
                                 physicalAddress: UInt64? = nil) throws(X86Error) -> [PatchSite]
    {
        let disassembler = try Disassembler()
        let stretch = Stretch(address: address, physicalAddress: physicalAddress ?? address,
                              bytes: bytes[...])
        return deduplicated(findSites(in: stretch, disassembler: disassembler))
    }

    /// Writes every site's patched bytes into guest memory.
    public static func apply(_ sites: [PatchSite], to memory: GuestMemory) throws(X86Error) {
        for site in sites {
            do {
                try memory.write(site.patchedBytes, at: GuestAddress(site.physicalAddress))
            } catch {
                throw .layout("cannot patch the \(site.instruction) at \(hex(site.address)): \(error)")
            }
        }
    }

    static func findSites(in stretch: Stretch, disassembler: Disassembler) -> [PatchSite] {
        let ids: Set<UInt32> = [Disassembler.rdtsc, Disassembler.rdtscp, Disassembler.cpuid,
                                Disassembler.rdrand, Disassembler.rdseed]
        return disassembler.sweep(stretch.bytes, at: stretch.address, keeping: ids).compactMap {
            site(for: $0.bytes, at: $0.address,
                 physicalAddress: stretch.physicalAddress &+ ($0.address &- stretch.address))
        }
    }

    /// The legacy prefixes (they mean the same in 32-bit and 64-bit code).
    static let legacyPrefixes: Set<UInt8> = [0xF0, 0xF2, 0xF3, 0x2E, 0x36, 0x3E, 0x26, 0x64, 0x65,
                                             0x66, 0x67]

    /// Classifies one decoded instruction from its bytes; nil if it is not a site Lockstep
    /// rewrites (LOCK prefix, F2/F3 on RDRAND/RDSEED, memory operand, unexpected encoding).
    static func site(for bytes: [UInt8], at address: UInt64, physicalAddress: UInt64) -> PatchSite? {
        var index = 0
        var prefixes: [UInt8] = []
        while index < bytes.count, legacyPrefixes.contains(bytes[index]) {
            prefixes.append(bytes[index])
            index += 1
        }
        var rex: UInt8?
        if index < bytes.count, bytes[index] & 0xF0 == 0x40 {
            rex = bytes[index]
            index += 1
        }
        guard !prefixes.contains(0xF0), index < bytes.count, bytes[index] == 0x0F else { return nil }
        let opcode = Array(bytes[(index + 1)...])
        let instruction: EnvironmentInstruction
        switch opcode.first {
        case 0x31 where opcode.count == 1:
            instruction = .rdtsc
        case 0xA2 where opcode.count == 1:
            instruction = .cpuid
        case 0x01 where opcode == [0x01, 0xF9]:
            instruction = .rdtscp
        case 0xC7 where opcode.count == 2 && opcode[1] >> 6 == 0b11:
            let modrm = opcode[1]
            let reg = (modrm >> 3) & 7
            // The last of F2/F3 is the mandatory prefix, if any.
            let mandatory = prefixes.last { $0 == 0xF2 || $0 == 0xF3 }
            let operand = EnvironmentInstruction.RegisterOperand(
                rm: modrm & 7, rex: rex, operandSizePrefix: prefixes.contains(0x66))
            switch (reg, mandatory) {
            case (6, nil): instruction = .rdrand(operand)
            case (7, nil): instruction = .rdseed(operand)
            case (7, 0xF3): instruction = .rdpid(operand)
            default: return nil
            }
        default:
            return nil
        }
        return PatchSite(instruction: instruction, address: address, physicalAddress: physicalAddress,
                         originalBytes: bytes, trapOffset: rex == nil ? 0 : index)
    }

    /// Sorted by address; a site overlapping an earlier one (two sweeps that decoded the same
    /// bytes differently) is dropped, and exact duplicates (aliased symbols) are merged.
    static func deduplicated(_ sites: [PatchSite]) -> [PatchSite] {
        var result: [PatchSite] = []
        for site in sites.sorted(by: { ($0.address, $0.length) < ($1.address, $1.length) }) {
            if let last = result.last, site.address < last.nextInstruction { continue }
            result.append(site)
        }
        return result
    }

    /// The stretches of `image` to sweep (see the type's documentation).
    static func plan(_ image: ELFImage, excluding: [Range<UInt64>]) -> [Stretch] {
        struct Region { var address: UInt64; var bytes: [UInt8] }
        var regions = image.codeSections.map { Region(address: $0.address, bytes: $0.bytes) }
        if regions.isEmpty {
            regions = image.segments.filter(\.isExecutable).map {
                Region(address: $0.virtualAddress, bytes: $0.bytes)
            }
        }
        var stretches: [Stretch] = []
        for region in regions where !region.bytes.isEmpty {
            let start = region.address
            let end = start &+ UInt64(region.bytes.count)
            guard end > start else { continue }
            var intervals: [Range<UInt64>] = []
            var functions: [Range<UInt64>] = []
            for symbol in image.symbols where symbol.isFunction && symbol.size > 0 {
                let lower = max(symbol.value, start)
                let upper = min(symbol.value &+ symbol.size, end)
                if lower < upper { functions.append(lower..<upper) }
            }
            intervals += functions
            // The gaps between functions, split at every label inside them.
            let labels = Set(image.symbols.map(\.value).filter { $0 > start && $0 < end })
            var cuts = Set([start]).union(labels)
            for f in functions { cuts.insert(f.lowerBound); cuts.insert(f.upperBound) }
            let points = cuts.sorted() + [end]
            for (a, b) in zip(points, points.dropFirst()) where a < b {
                let inFunction = functions.contains { $0.contains(a) }
                if !inFunction { intervals.append(a..<b) }
            }
            for interval in intervals {
                for piece in subtract(excluding, from: interval) {
                    guard let physical = physicalAddress(of: piece.lowerBound, in: image) else { continue }
                    let lower = Int(piece.lowerBound - start)
                    let upper = Int(piece.upperBound - start)
                    stretches.append(Stretch(address: piece.lowerBound, physicalAddress: physical,
                                             bytes: region.bytes[lower..<upper]))
                }
            }
        }
        return stretches
    }

    /// `interval` minus every range in `holes`.
    static func subtract(_ holes: [Range<UInt64>], from interval: Range<UInt64>) -> [Range<UInt64>] {
        var pieces = [interval]
        for hole in holes {
            pieces = pieces.flatMap { piece -> [Range<UInt64>] in
                guard piece.overlaps(hole) else { return [piece] }
                var rest: [Range<UInt64>] = []
                if piece.lowerBound < hole.lowerBound { rest.append(piece.lowerBound..<hole.lowerBound) }
                if hole.upperBound < piece.upperBound { rest.append(hole.upperBound..<piece.upperBound) }
                return rest
            }
        }
        return pieces
    }

    /// The guest-physical address where the loader placed virtual `address` (through the
    /// PT_LOAD segment that contains it).
    static func physicalAddress(of address: UInt64, in image: ELFImage) -> UInt64? {
        for segment in image.segments
        where address >= segment.virtualAddress && address - segment.virtualAddress < segment.memorySize {
            return segment.physicalAddress &+ (address - segment.virtualAddress)
        }
        return nil
    }
}

/// The rewritten sites of a machine, looked up when the trap port is written.
public struct PatchSiteTable: Sendable {
    /// A site and the RIP to resume at after simulating it.
    public struct Match: Hashable, Sendable {
        public let site: PatchSite
        /// The address after the original instruction, in the same alias (virtual or physical)
        /// the trap was taken at.
        public let next: UInt64
    }

    /// All sites, sorted by address.
    public let sites: [PatchSite]
    private let byTrapEnd: [UInt64: Match]
    private let byStart: [UInt64: Match]

    public init(_ sites: [PatchSite]) {
        self.sites = sites.sorted { $0.address < $1.address }
        var byTrapEnd: [UInt64: Match] = [:]
        var byStart: [UInt64: Match] = [:]
        for site in self.sites {
            for base in Set([site.address, site.physicalAddress]) {
                let next = base &+ UInt64(site.length)
                byTrapEnd[base &+ UInt64(site.trapOffset + 2)] = Match(site: site, next: next)
                byStart[base] = Match(site: site, next: next)
                byStart[base &+ UInt64(site.trapOffset)] = Match(site: site, next: next)
            }
        }
        self.byTrapEnd = byTrapEnd
        self.byStart = byStart
    }

    /// The site whose trap exited with RIP = `rip`. KVM reports the RIP after the OUT once the
    /// OUT has completed (its instruction emulator does); a RIP still at the start of a site's
    /// OUT is accepted when no site's OUT ends there. Both the virtual and the physical address
    /// of a site match, so code that runs before paging maps it elsewhere is covered.
    public func site(trappedAt rip: UInt64) -> Match? {
        byTrapEnd[rip] ?? byStart[rip]
    }

    /// The number of sites.
    public var count: Int { sites.count }
}

func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
