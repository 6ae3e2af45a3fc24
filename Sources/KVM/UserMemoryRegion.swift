import CKVM

/// Flags of a memory slot. The corresponding C constants are `KVM_MEM_*`.
public struct MemoryRegionFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `KVM_MEM_LOG_DIRTY_PAGES`: track guest writes for `VirtualMachine.dirtyLog(slot:)`.
    public static let logDirtyPages = MemoryRegionFlags(rawValue: UInt32(KVM_MEM_LOG_DIRTY_PAGES))
    /// `KVM_MEM_READONLY`: guest writes exit as MMIO writes and leave memory unchanged.
    public static let readOnly = MemoryRegionFlags(rawValue: UInt32(KVM_MEM_READONLY))
}

/// A guest-physical range backed by host memory.
///
/// The corresponding C struct is `struct kvm_userspace_memory_region`.
public struct UserMemoryRegion: Hashable, Sendable {
    /// The slot number (0 ..< `Capability.memorySlots`).
    public var slot: UInt32
    /// The `KVM_MEM_*` flags.
    public var flags: MemoryRegionFlags
    /// The guest-physical address of the first byte (page aligned).
    public var guestPhysicalAddress: UInt64
    /// The size in bytes (a multiple of the page size; 0 deletes the slot).
    public var size: UInt64
    /// The host virtual address of the backing memory (page aligned).
    public var userspaceAddress: UInt64

    /// A region of `size` bytes at `guestPhysicalAddress`, backed at `userspaceAddress`.
    public init(
        slot: UInt32, guestPhysicalAddress: UInt64, size: UInt64, userspaceAddress: UInt64,
        flags: MemoryRegionFlags = []
    ) {
        self.slot = slot
        self.flags = flags
        self.guestPhysicalAddress = guestPhysicalAddress
        self.size = size
        self.userspaceAddress = userspaceAddress
    }

    /// The number of 4 KiB pages in the slot.
    public var pageCount: Int { Int((size + 4095) / 4096) }

    var c: kvm_userspace_memory_region {
        kvm_userspace_memory_region(
            slot: slot, flags: flags.rawValue, guest_phys_addr: guestPhysicalAddress,
            memory_size: size, userspace_addr: userspaceAddress)
    }
}
