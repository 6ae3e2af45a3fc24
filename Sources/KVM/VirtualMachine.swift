import CKVM

#if canImport(Glibc)
import Glibc
#endif

/// A KVM virtual machine: the VM file descriptor.
///
/// The second level of the kernel's fd hierarchy, like rust-vmm's `VmFd`. Created by
/// `KVMSystem.createVM()`. Owns its fd (closed in `deinit`) and keeps alive the host memory of
/// every slot registered with an owner, so guest RAM cannot be unmapped under the VM. Each `VCPU`
/// keeps its VM alive. Not thread-safe: use it from one thread.
public final class VirtualMachine {
    /// The VM file descriptor.
    public let fd: Int32
    /// The `/dev/kvm` this VM was created from (kept open while the VM lives).
    public let system: KVMSystem
    private var regions: [UInt32: UserMemoryRegion] = [:]
    private var owners: [UInt32: AnyObject] = [:]

    init(fd: Int32, system: KVMSystem) {
        self.fd = fd
        self.system = system
    }

    deinit {
        // The owners of slot memory are released after this, when the stored properties go.
        Syscall.close(fd)
    }

    /// The value of `capability` for this VM (0 if unsupported).
    /// The corresponding ioctl is `KVM_CHECK_EXTENSION` on the VM fd.
    public func checkExtension(_ capability: Capability) -> Int32 {
        (try? Syscall.ioctl(
            fd, ckvm_KVM_CHECK_EXTENSION, UInt(capability.rawValue), name: "KVM_CHECK_EXTENSION"))
            ?? 0
    }

    /// Creates, changes (flags only) or, with size 0, deletes a memory slot.
    ///
    /// `owner` is retained until the slot is deleted or the VM is destroyed: pass the object that
    /// owns the host memory at `region.userspaceAddress` (a `HostMemory`, MachineCore's
    /// `GuestMemory`) so it cannot be unmapped while the guest can still reach it.
    /// The corresponding ioctl is `KVM_SET_USER_MEMORY_REGION`.
    public func setUserMemoryRegion(_ region: UserMemoryRegion, owner: AnyObject?) throws(KVMError) {
        var c = region.c
        try Syscall.ioctl(
            fd, ckvm_KVM_SET_USER_MEMORY_REGION, &c, name: "KVM_SET_USER_MEMORY_REGION",
            detail: "slot \(region.slot), guest 0x\(String(region.guestPhysicalAddress, radix: 16)), \(region.size) bytes")
        if region.size == 0 {
            regions[region.slot] = nil
            owners[region.slot] = nil
        } else {
            regions[region.slot] = region
            owners[region.slot] = owner
        }
    }

    /// Registers all of `memory` at guest-physical `guestPhysicalAddress` in `slot` and keeps
    /// `memory` alive while the slot exists. The corresponding ioctl is `KVM_SET_USER_MEMORY_REGION`.
    @discardableResult
    public func setUserMemoryRegion(
        slot: UInt32, guestPhysicalAddress: UInt64, memory: HostMemory, flags: MemoryRegionFlags = []
    ) throws(KVMError) -> UserMemoryRegion {
        let region = UserMemoryRegion(
            slot: slot, guestPhysicalAddress: guestPhysicalAddress, size: UInt64(memory.size),
            userspaceAddress: memory.hostAddress, flags: flags)
        try setUserMemoryRegion(region, owner: memory)
        return region
    }

    /// Deletes memory slot `slot` (a region of size 0) and releases its owner.
    /// The corresponding ioctl is `KVM_SET_USER_MEMORY_REGION`.
    public func deleteUserMemoryRegion(slot: UInt32) throws(KVMError) {
        guard var region = regions[slot] else {
            throw KVMError(operation: "KVM_SET_USER_MEMORY_REGION", errno: ENOENT, detail: "slot \(slot) is not in use")
        }
        region.size = 0
        region.flags = []
        try setUserMemoryRegion(region, owner: nil)
    }

    /// The memory slots registered through this object, by slot number.
    public var memoryRegions: [UInt32: UserMemoryRegion] { regions }

    /// Creates vCPU `id` and maps its `kvm_run` area.
    /// The corresponding ioctls are `KVM_CREATE_VCPU` and `KVM_GET_VCPU_MMAP_SIZE`, then `mmap`.
    public func createVCPU(id: UInt = 0) throws(KVMError) -> VCPU {
        let size = try system.vcpuMmapSize()
        let vcpuFD = try Syscall.ioctl(fd, ckvm_KVM_CREATE_VCPU, id, name: "KVM_CREATE_VCPU", detail: "vCPU \(id)")
        do {
            return try VCPU(fd: vcpuFD, id: id, mmapSize: size, vm: self)
        } catch {
            Syscall.close(vcpuFD)
            throw error
        }
    }

    /// Enables `capability` on the VM with up to four arguments.
    /// The corresponding ioctl is `KVM_ENABLE_CAP` on the VM fd.
    public func enableCapability(_ capability: Capability, arguments: [UInt64] = [], flags: UInt32 = 0) throws(KVMError) {
        var c = EnableCapability.make(capability, arguments: arguments, flags: flags)
        try Syscall.ioctl(fd, ckvm_KVM_ENABLE_CAP, &c, name: "KVM_ENABLE_CAP", detail: "capability \(capability.rawValue)")
    }

    /// The VM's binary statistics (`remote_tlb_flush`, `mmu_shadow_zapped`, ...).
    /// The corresponding ioctl is `KVM_GET_STATS_FD`.
    public func statistics() throws(KVMError) -> BinaryStatistics {
        let statsFD = try Syscall.ioctl(fd, ckvm_KVM_GET_STATS_FD, name: "KVM_GET_STATS_FD")
        return try BinaryStatistics(fd: statsFD)
    }
}

/// Builds `struct kvm_enable_cap` for VM and vCPU `KVM_ENABLE_CAP`.
enum EnableCapability {
    static func make(_ capability: Capability, arguments: [UInt64], flags: UInt32) -> kvm_enable_cap {
        precondition(arguments.count <= 4, "KVM_ENABLE_CAP takes at most 4 arguments")
        var c = kvm_enable_cap()
        c.cap = capability.rawValue
        c.flags = flags
        let padded = arguments + [UInt64](repeating: 0, count: 4 - arguments.count)
        c.args = (padded[0], padded[1], padded[2], padded[3])
        return c
    }
}
