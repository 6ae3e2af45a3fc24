import KVM

/// The CPUID results every Lockstep x86 guest sees, whatever the host CPU: a fixed table in code,
/// so a primary and a backup on different CPUs answer alike.
///
/// Patched CPUID sites are answered from `lookup(leaf:subleaf:)`; the same table, with its
/// feature bits intersected with what KVM supports, is loaded with `KVM_SET_CPUID2` for CPUID
/// instructions KVM executes itself (unpatched ones at CPL0, where KVM's emulator reads that
/// table) and so KVM's checks (EFER.LME needs LM, CR4 bits need their features) agree with it.
///
/// The choices:
/// - Vendor "GenuineIntel" (leaves 0x15/0x16 are Intel's); family 6, model 0x3A, stepping 9.
/// - Features: the x86-64-v2 baseline that every x86-64 host of the last 15 years executes
///   natively at CPL3 (FPU, TSC, MSR, PAE, CX8, CMOV, PAT, PSE, PGE, CLFLUSH, MMX, FXSR,
///   SSE/SSE2/SSE3/SSSE3/SSE4.1/SSE4.2, CX16, POPCNT, LAHF/SAHF, SYSCALL, NX, LM) plus the
///   invariant TSC. KVM's emulator runs CPL0 code on the PVM host and cannot execute SSE at all,
///   so CPL0 guest code must stay integer-only regardless.
/// - Left out on purpose: the hypervisor bit and KVM's paravirtual leaves (no kvmclock), RDRAND,
///   RDSEED, RDTSCP, RDPID, XSAVE/AVX, MONITOR, x2APIC/APIC and TSC-deadline (there is no local
///   APIC), VMX, PCID, SMEP/SMAP, 1 GiB pages.
/// - The TSC runs at 1 GHz (virtual nanoseconds): leaf 0x15 says crystal 1 GHz × 1/1, leaf 0x16
///   base and maximum 1000 MHz.
/// - APIC ID 0 and one logical processor in leaf 1 (the host's APIC ID would leak otherwise).
/// - A leaf above the basic or extended range returns the highest basic leaf, as Intel CPUs do.
public struct CPUIDTable: Sendable {
    /// The four result registers of one CPUID.
    public struct Result: Hashable, Sendable, CustomStringConvertible {
        public var eax: UInt32, ebx: UInt32, ecx: UInt32, edx: UInt32

        public init(eax: UInt32 = 0, ebx: UInt32 = 0, ecx: UInt32 = 0, edx: UInt32 = 0) {
            self.eax = eax; self.ebx = ebx; self.ecx = ecx; self.edx = edx
        }

        public var description: String {
            [eax, ebx, ecx, edx].map { "0x" + String($0, radix: 16) }.joined(separator: " ")
        }
    }

    /// The highest basic leaf.
    public static let maximumBasicLeaf: UInt32 = 0x16
    /// The highest extended leaf.
    public static let maximumExtendedLeaf: UInt32 = 0x8000_0008
    /// The vendor string of leaf 0.
    public static let vendor = "GenuineIntel"
    /// The brand string of leaves 0x80000002-4.
    public static let brand = "Lockstep virtual CPU @ 1.00GHz"
    /// The TSC frequency the table advertises (the virtual TSC counts nanoseconds).
    public static let tscHz: UInt32 = 1_000_000_000

    /// Leaf 1 EDX: FPU, PSE, TSC, MSR, PAE, CX8, PGE, CMOV, PAT, CLFSH, MMX, FXSR, SSE, SSE2.
    public static let leaf1EDX: UInt32 = bits(0, 3, 4, 5, 6, 8, 13, 15, 16, 19, 23, 24, 25, 26)
    /// Leaf 1 ECX: SSE3, SSSE3, CX16, SSE4.1, SSE4.2, POPCNT (no hypervisor bit 31, no RDRAND 30).
    public static let leaf1ECX: UInt32 = bits(0, 9, 13, 19, 20, 23)
    /// Leaf 0x80000001 EDX: SYSCALL, NX, LM (no RDTSCP 27, no 1 GiB pages 26).
    public static let extendedEDX: UInt32 = bits(11, 20, 29)
    /// Leaf 0x80000001 ECX: LAHF/SAHF in 64-bit mode.
    public static let extendedECX: UInt32 = bits(0)
    /// Leaf 0x80000007 EDX: invariant TSC.
    public static let powerManagementEDX: UInt32 = bits(8)

    static func bits(_ positions: Int...) -> UInt32 {
        positions.reduce(0) { $0 | 1 << UInt32($1) }
    }

    /// The table's leaves: (leaf, subleaf or nil when the subleaf does not matter) → result.
    public let leaves: [(leaf: UInt32, subleaf: UInt32?, result: Result)]

    /// The standard Lockstep table.
    public init() {
        func word(_ s: String, _ offset: Int) -> UInt32 {
            let bytes = Array(s.utf8) + [UInt8](repeating: 0, count: 64)
            return (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << (8 * UInt32($1)) }
        }
        let v = Self.vendor
        var leaves: [(UInt32, UInt32?, Result)] = [
            (0, nil, Result(eax: Self.maximumBasicLeaf, ebx: word(v, 0), ecx: word(v, 8), edx: word(v, 4))),
            // Family 6, model 0x3A, stepping 9; CLFLUSH line 8 × 8 bytes, 1 logical CPU, APIC ID 0.
            (1, nil, Result(eax: 0x0003_06A9, ebx: 0x0001_0800, ecx: Self.leaf1ECX, edx: Self.leaf1EDX)),
            // Leaf 2: AL = 1 (one iteration), no descriptors.
            (2, nil, Result(eax: 0x0000_0001)),
            (7, 0, Result()),
            (0x15, nil, Result(eax: 1, ebx: 1, ecx: Self.tscHz)),
            (0x16, nil, Result(eax: 1000, ebx: 1000, ecx: 100)),
            (0x8000_0000, nil, Result(eax: Self.maximumExtendedLeaf)),
            (0x8000_0001, nil, Result(ecx: Self.extendedECX, edx: Self.extendedEDX)),
            (0x8000_0007, nil, Result(edx: Self.powerManagementEDX)),
            // 39 physical and 48 linear address bits.
            (0x8000_0008, nil, Result(eax: 0x3027)),
        ]
        for i in 0..<3 {
            let b = Self.brand
            leaves.append((0x8000_0002 + UInt32(i), nil, Result(
                eax: word(b, 16 * i), ebx: word(b, 16 * i + 4), ecx: word(b, 16 * i + 8),
                edx: word(b, 16 * i + 12))))
        }
        self.leaves = leaves.sorted { ($0.0, $0.1 ?? 0) < ($1.0, $1.1 ?? 0) }
    }

    /// What CPUID returns for EAX = `leaf`, ECX = `subleaf`.
    public func lookup(leaf: UInt32, subleaf: UInt32) -> Result {
        let inBasic = leaf <= Self.maximumBasicLeaf
        let inExtended = leaf >= 0x8000_0000 && leaf <= Self.maximumExtendedLeaf
        let effective = inBasic || inExtended ? leaf : Self.maximumBasicLeaf
        for entry in leaves where entry.leaf == effective {
            if let s = entry.subleaf, s != subleaf { continue }
            return entry.result
        }
        return Result()
    }

    /// The table for `KVM_SET_CPUID2`: every leaf of this table, with the feature registers of
    /// leaves 1, 7, 0x80000001 and 0x80000007 ANDed with what KVM reports in `supported`
    /// (`KVM_GET_SUPPORTED_CPUID`), so KVM is never asked for a feature it lacks.
    public func kvmEntries(supported: [CPUIDEntry]) -> [CPUIDEntry] {
        let significantIndex: UInt32 = 1  // KVM_CPUID_FLAG_SIGNIFCANT_INDEX
        return leaves.map { entry in
            var r = entry.result
            let kvm = supported.first { $0.function == entry.leaf && $0.index == (entry.subleaf ?? 0) }
            switch entry.leaf {
            case 1, 7, 0x8000_0001, 0x8000_0007:
                r.ebx = entry.leaf == 7 ? r.ebx & (kvm?.ebx ?? 0) : r.ebx
                r.ecx &= kvm?.ecx ?? 0
                r.edx &= kvm?.edx ?? 0
            default:
                break
            }
            return CPUIDEntry(function: entry.leaf, index: entry.subleaf ?? 0,
                              flags: entry.subleaf == nil ? 0 : significantIndex,
                              eax: r.eax, ebx: r.ebx, ecx: r.ecx, edx: r.edx)
        }
    }
}
