import CKVM

/// One CPUID leaf as KVM presents it to a guest.
///
/// The corresponding C struct is `struct kvm_cpuid_entry2`.
public struct CPUIDEntry: Hashable, Sendable, Codable {
    /// The leaf (EAX input).
    public var function: UInt32
    /// The subleaf (ECX input), meaningful when `flags` has `KVM_CPUID_FLAG_SIGNIFCANT_INDEX`.
    public var index: UInt32
    /// `KVM_CPUID_FLAG_*`.
    public var flags: UInt32
    /// The EAX output.
    public var eax: UInt32
    /// The EBX output.
    public var ebx: UInt32
    /// The ECX output.
    public var ecx: UInt32
    /// The EDX output.
    public var edx: UInt32

    /// A leaf with the given outputs.
    public init(
        function: UInt32, index: UInt32 = 0, flags: UInt32 = 0,
        eax: UInt32 = 0, ebx: UInt32 = 0, ecx: UInt32 = 0, edx: UInt32 = 0
    ) {
        self.function = function
        self.index = index
        self.flags = flags
        self.eax = eax
        self.ebx = ebx
        self.ecx = ecx
        self.edx = edx
    }

    init(_ c: kvm_cpuid_entry2) {
        self.init(
            function: c.function, index: c.index, flags: c.flags,
            eax: c.eax, ebx: c.ebx, ecx: c.ecx, edx: c.edx)
    }

    var c: kvm_cpuid_entry2 {
        var entry = kvm_cpuid_entry2()
        entry.function = function
        entry.index = index
        entry.flags = flags
        entry.eax = eax
        entry.ebx = ebx
        entry.ecx = ecx
        entry.edx = edx
        return entry
    }

    static let headerSize = MemoryLayout<kvm_cpuid2>.size
    static let entrySize = MemoryLayout<kvm_cpuid_entry2>.stride

    /// Runs `body` on a `struct kvm_cpuid2` with room for `capacity` entries (nent = capacity,
    /// or `entries` if given), then decodes the entries the kernel left there.
    static func withCPUID2Buffer(
        capacity: Int, entries: [CPUIDEntry]? = nil,
        _ body: (UnsafeMutableRawPointer) throws(KVMError) -> Int32
    ) throws(KVMError) -> [CPUIDEntry] {
        let count = entries?.count ?? capacity
        let size = headerSize + entrySize * count
        // SAFETY: allocated with the size and alignment of the header plus `count` entries and
        // freed by the defer below; every access below stays inside it.
        let buffer = UnsafeMutableRawPointer.allocate(
            byteCount: size, alignment: MemoryLayout<kvm_cpuid2>.alignment)
        defer { buffer.deallocate() }
        // SAFETY: `buffer` has `size` bytes: the kvm_cpuid2 header then `count` entries, which is
        // what nent tells the kernel. It is freed after the ioctl returns.
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        buffer.storeBytes(of: UInt32(count), as: UInt32.self)
        if let entries {
            for (i, entry) in entries.enumerated() {
                buffer.storeBytes(of: entry.c, toByteOffset: headerSize + i * entrySize, as: kvm_cpuid_entry2.self)
            }
        }
        _ = try body(buffer)
        // SAFETY: nent is clamped to `count`, so every entry read lies inside `buffer`.
        let filled = min(Int(buffer.load(as: UInt32.self)), count)
        return (0..<filled).map { i in
            CPUIDEntry(buffer.load(fromByteOffset: headerSize + i * entrySize, as: kvm_cpuid_entry2.self))
        }
    }
}
