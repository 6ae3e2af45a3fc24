import Devices
import KVM

/// Device registers whose writes take effect at the guest's next deterministic exit instead of
/// at the writing instruction, so that KVM can buffer them in its coalesced MMIO/PIO ring
/// without an exit to user space (docs/architecture.md, "Deferred writes").
///
/// A write to a zone is applied, in guest order with every other deferred write, when the vCPU
/// next stops at a point every replica stops at: an exit to user space that is not itself a
/// deferred write (before that exit is handled), or an epoch boundary. Where the host buffered
/// it, it comes from the ring; where it did not (no `KVM_CAP_COALESCED_MMIO`/`_PIO`, a full
/// ring, an access that straddles a zone's edge, coalescing turned off), the write exits and is
/// queued here, and that exit is neither a unit of the exits clock nor an injection point. So a
/// replica whose host coalesces and one whose host does not count the same progress, inject
/// interrupts at the same instructions and apply each write at the same point.
///
/// Registers qualify when a write's only effects are device state that the guest can observe
/// only through later exits (register reads, injected interrupts) and memory the device
/// touches on the guest's behalf, which the virtio rules already forbid the driver to touch
/// until the device is done: the virtio-mmio QueueNotify and InterruptACK registers and the
/// two 8259 command ports (EOI).
struct DeferredWrites {
    /// A guest-physical (MMIO) or port range whose writes are deferred.
    struct Zone: Hashable, Sendable {
        /// Port I/O or MMIO.
        var isPIO: Bool
        /// The first address (or port).
        var address: UInt64
        /// Its length in bytes.
        var size: UInt32

        /// Whether an access of `length` bytes at `address` lies wholly inside the zone (KVM
        /// buffers only those; any other exits).
        func contains(address: UInt64, length: Int, isPIO: Bool) -> Bool {
            isPIO == self.isPIO && address >= self.address && length > 0
                && address - self.address + UInt64(length) <= UInt64(size)
        }
    }

    /// The zones of a machine with or without a disk.
    static func zones(hasDisk: Bool) -> [Zone] {
        var zones = [
            Zone(isPIO: true, address: UInt64(X86Platform.masterPICPort), size: 1),
            Zone(isPIO: true, address: UInt64(X86Platform.slavePICPort), size: 1),
        ]
        if hasDisk {
            zones.append(Zone(isPIO: false, address: X86Platform.virtioAddress + VirtioMMIOBlock.queueNotifyOffset, size: 4))
            zones.append(Zone(isPIO: false, address: X86Platform.virtioAddress + VirtioMMIOBlock.interruptACKOffset, size: 4))
        }
        return zones
    }

    let zones: [Zone]
    /// Writes taken so far and not yet applied, oldest first.
    private(set) var pending: [CoalescedAccess] = []

    init(zones: [Zone]) {
        self.zones = zones
    }

    /// The write of `exit` if it is a deferred one: a single MMIO or port write wholly inside a
    /// zone (a string OUT is not).
    func write(in exit: VCPUExit) -> CoalescedAccess? {
        switch exit {
        case .mmioWrite(let address, let data):
            guard zones.contains(where: { $0.contains(address: address, length: data.count, isPIO: false) }) else { return nil }
            return CoalescedAccess(address: address, data: data, isPIO: false)
        case .ioOut(let port, let size, let count, let data):
            guard count == 1, data.count >= size,
                  zones.contains(where: { $0.contains(address: UInt64(port), length: size, isPIO: true) })
            else { return nil }
            return CoalescedAccess(address: UInt64(port), data: Array(data.prefix(size)), isPIO: true)
        default:
            return nil
        }
    }

    /// Queues writes in the order the guest made them.
    mutating func append(_ writes: [CoalescedAccess]) {
        pending += writes
    }

    /// Takes every queued write, oldest first.
    mutating func take() -> [CoalescedAccess] {
        defer { pending.removeAll(keepingCapacity: true) }
        return pending
    }
}
