import CKVM

/// A guest write KVM buffered in the coalesced MMIO/PIO ring instead of exiting.
///
/// The corresponding C struct is `struct kvm_coalesced_mmio`.
public struct CoalescedAccess: Hashable, Sendable {
    /// The guest-physical address (or the port, for PIO).
    public var address: UInt64
    /// The bytes written (1...8).
    public var data: [UInt8]
    /// Whether this is a port write (`KVM_CAP_COALESCED_PIO`).
    public var isPIO: Bool

    /// A buffered write.
    public init(address: UInt64, data: [UInt8], isPIO: Bool) {
        self.address = address
        self.data = data
        self.isPIO = isPIO
    }
}

extension VirtualMachine {
    /// Makes guest writes to `size` bytes at `address` (a port range if `pio`) go into the
    /// coalesced ring without an exit; reads still exit. Drain the ring with
    /// `VCPU.drainCoalescedAccesses()`. The corresponding ioctl is `KVM_REGISTER_COALESCED_MMIO`.
    public func registerCoalescedMMIO(address: UInt64, size: UInt32, pio: Bool = false) throws(KVMError) {
        var zone = kvm_coalesced_mmio_zone()
        zone.addr = address
        zone.size = size
        ckvm_coalesced_mmio_zone_set_pio(&zone, pio ? 1 : 0)
        try Syscall.ioctl(fd, ckvm_KVM_REGISTER_COALESCED_MMIO, &zone, name: "KVM_REGISTER_COALESCED_MMIO")
    }

    /// Removes a zone registered with `registerCoalescedMMIO`.
    /// The corresponding ioctl is `KVM_UNREGISTER_COALESCED_MMIO`.
    public func unregisterCoalescedMMIO(address: UInt64, size: UInt32, pio: Bool = false) throws(KVMError) {
        var zone = kvm_coalesced_mmio_zone()
        zone.addr = address
        zone.size = size
        ckvm_coalesced_mmio_zone_set_pio(&zone, pio ? 1 : 0)
        try Syscall.ioctl(fd, ckvm_KVM_UNREGISTER_COALESCED_MMIO, &zone, name: "KVM_UNREGISTER_COALESCED_MMIO")
    }
}

extension VCPU {
    /// Takes every buffered write out of the VM's coalesced MMIO/PIO ring, oldest first.
    ///
    /// The ring is page `KVM_CAP_COALESCED_MMIO` (2 on x86) of the vCPU mapping (looked up once,
    /// when the vCPU is created), a
    /// `struct kvm_coalesced_mmio_ring`; the kernel produces at `last`, this consumes at `first`.
    /// Call it on the vCPU thread at an exit, before handling the exit (the writes happened
    /// before it).
    public func drainCoalescedAccesses() -> [CoalescedAccess] {
        let page = coalescedRingPage
        guard page > 0 else { return [] }
        let entrySize = MemoryLayout<kvm_coalesced_mmio>.stride
        let header = MemoryLayout<kvm_coalesced_mmio_ring>.size
        let capacity = UInt32((4096 - header) / entrySize)
        // SAFETY: the ring page lies inside the vCPU mapping (checked in init); `first` and
        // `last` are the ring's first two u32 fields; entries are read only at indices <
        // capacity, which fit in the page; the mapping outlives this call.
        let ring = UnsafeMutableRawPointer(kvmRun) + page * 4096
        let firstPointer = ring.assumingMemoryBound(to: UInt32.self)
        let lastPointer = (ring + 4).assumingMemoryBound(to: UInt32.self)
        var first = ckvm_load_acquire_u32(firstPointer)
        let last = ckvm_load_acquire_u32(lastPointer)
        // Indices outside the ring are not the kernel's: leave them alone rather than loop.
        guard first != last, first < capacity, last < capacity else { return [] }
        var accesses: [CoalescedAccess] = []
        while first != last {
            // SAFETY: `first` < capacity, so the entry lies inside the ring page (see above).
            let entry = (ring + header + Int(first) * entrySize).assumingMemoryBound(to: kvm_coalesced_mmio.self)
            let length = min(Int(entry.pointee.len), 8)
            let data = withUnsafeBytes(of: entry.pointee.data) { Array($0.prefix(length)) }
            accesses.append(CoalescedAccess(
                address: entry.pointee.phys_addr, data: data, isPIO: ckvm_coalesced_mmio_pio(entry) != 0))
            first = (first + 1) % capacity
            ckvm_store_release_u32(firstPointer, first)
        }
        return accesses
    }
}
