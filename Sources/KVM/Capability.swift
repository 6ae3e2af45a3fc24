import CKVM

/// A KVM capability number, as passed to `KVM_CHECK_EXTENSION` and `KVM_ENABLE_CAP`.
///
/// The corresponding C constants are `KVM_CAP_*`. Capabilities newer than the 6.1 userspace
/// headers are numbered in CKVM (`CKVM_CAP_*`). Any other number can be built with
/// `Capability(rawValue:)`.
public struct Capability: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    init(_ value: Int32) { self.rawValue = UInt32(value) }
    init(_ value: Int) { self.rawValue = UInt32(value) }

    /// `KVM_CAP_IRQCHIP`: an in-kernel interrupt controller can be created.
    public static let irqchip = Capability(KVM_CAP_IRQCHIP)
    /// `KVM_CAP_HLT`: HLT exits to user space.
    public static let hlt = Capability(KVM_CAP_HLT)
    /// `KVM_CAP_USER_MEMORY`: `KVM_SET_USER_MEMORY_REGION` works.
    public static let userMemory = Capability(KVM_CAP_USER_MEMORY)
    /// `KVM_CAP_NR_VCPUS`: the recommended number of vCPUs.
    public static let recommendedVCPUs = Capability(KVM_CAP_NR_VCPUS)
    /// `KVM_CAP_MAX_VCPUS`: the maximum number of vCPUs.
    public static let maximumVCPUs = Capability(KVM_CAP_MAX_VCPUS)
    /// `KVM_CAP_NR_MEMSLOTS`: the number of memory slots.
    public static let memorySlots = Capability(KVM_CAP_NR_MEMSLOTS)
    /// `KVM_CAP_MP_STATE`: `KVM_GET/SET_MP_STATE`.
    public static let mpState = Capability(KVM_CAP_MP_STATE)
    /// `KVM_CAP_COALESCED_MMIO`: the page offset of the coalesced MMIO ring in the vCPU mapping.
    public static let coalescedMMIO = Capability(KVM_CAP_COALESCED_MMIO)
    /// `KVM_CAP_COALESCED_PIO`: coalesced port I/O.
    public static let coalescedPIO = Capability(KVM_CAP_COALESCED_PIO)
    /// `KVM_CAP_USER_NMI`: `KVM_NMI`.
    public static let userNMI = Capability(KVM_CAP_USER_NMI)
    /// `KVM_CAP_SET_GUEST_DEBUG`: `KVM_SET_GUEST_DEBUG`.
    public static let setGuestDebug = Capability(KVM_CAP_SET_GUEST_DEBUG)
    /// `KVM_CAP_SET_GUEST_DEBUG2`: the mask of supported `KVM_GUESTDBG_*` flags.
    public static let setGuestDebug2 = Capability(KVM_CAP_SET_GUEST_DEBUG2)
    /// `KVM_CAP_INTERNAL_ERROR_DATA`: internal-error exits carry data words.
    public static let internalErrorData = Capability(KVM_CAP_INTERNAL_ERROR_DATA)
    /// `KVM_CAP_VCPU_EVENTS`: `KVM_GET/SET_VCPU_EVENTS`.
    public static let vcpuEvents = Capability(KVM_CAP_VCPU_EVENTS)
    /// `KVM_CAP_DEBUGREGS`: `KVM_GET/SET_DEBUGREGS`.
    public static let debugRegisters = Capability(KVM_CAP_DEBUGREGS)
    /// `KVM_CAP_XSAVE`: `KVM_GET/SET_XSAVE`.
    public static let xsave = Capability(KVM_CAP_XSAVE)
    /// `KVM_CAP_XSAVE2`: `KVM_GET_XSAVE2`; the value is the XSAVE buffer size in bytes.
    public static let xsave2 = Capability(KVM_CAP_XSAVE2)
    /// `KVM_CAP_XCRS`: `KVM_GET/SET_XCRS`.
    public static let xcrs = Capability(KVM_CAP_XCRS)
    /// `KVM_CAP_GET_TSC_KHZ`: `KVM_GET_TSC_KHZ`.
    public static let getTSCKHz = Capability(KVM_CAP_GET_TSC_KHZ)
    /// `KVM_CAP_TSC_CONTROL`: `KVM_SET_TSC_KHZ` (0 on the PVM host).
    public static let tscControl = Capability(KVM_CAP_TSC_CONTROL)
    /// `KVM_CAP_IMMEDIATE_EXIT`: `kvm_run.immediate_exit`.
    public static let immediateExit = Capability(KVM_CAP_IMMEDIATE_EXIT)
    /// `KVM_CAP_SYNC_REGS`: the register sets `kvm_run.s.regs` can carry.
    public static let syncRegisters = Capability(KVM_CAP_SYNC_REGS)
    /// `KVM_CAP_READONLY_MEM`: `KVM_MEM_READONLY` slots.
    public static let readonlyMemory = Capability(KVM_CAP_READONLY_MEM)
    /// `KVM_CAP_IOEVENTFD`: `KVM_IOEVENTFD`.
    public static let ioeventfd = Capability(KVM_CAP_IOEVENTFD)
    /// `KVM_CAP_X86_USER_SPACE_MSR`: RDMSR/WRMSR exits to user space.
    public static let x86UserSpaceMSR = Capability(KVM_CAP_X86_USER_SPACE_MSR)
    /// `KVM_CAP_X86_MSR_FILTER`: `KVM_X86_SET_MSR_FILTER`.
    public static let x86MSRFilter = Capability(KVM_CAP_X86_MSR_FILTER)
    /// `KVM_CAP_EXIT_HYPERCALL`: the hypercalls that exit to user space (a bit mask).
    public static let exitHypercall = Capability(KVM_CAP_EXIT_HYPERCALL)
    /// `KVM_CAP_X86_DISABLE_EXITS`: the exits that can be disabled (a bit mask).
    public static let x86DisableExits = Capability(KVM_CAP_X86_DISABLE_EXITS)
    /// `KVM_CAP_EXCEPTION_PAYLOAD`: exception payloads in vCPU events.
    public static let exceptionPayload = Capability(KVM_CAP_EXCEPTION_PAYLOAD)
    /// `KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2`: `KVM_CLEAR_DIRTY_LOG` (value: supported flags).
    public static let manualDirtyLogProtect2 = Capability(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2)
    /// `KVM_CAP_DIRTY_LOG_RING`: the dirty ring (value: maximum ring size in bytes).
    public static let dirtyLogRing = Capability(KVM_CAP_DIRTY_LOG_RING)
    /// `KVM_CAP_DIRTY_LOG_RING_ACQ_REL`: the dirty ring with acquire/release ordering.
    public static let dirtyLogRingAcquireRelease = Capability(KVM_CAP_DIRTY_LOG_RING_ACQ_REL)
    /// `KVM_CAP_BINARY_STATS_FD`: `KVM_GET_STATS_FD`.
    public static let binaryStatsFD = Capability(KVM_CAP_BINARY_STATS_FD)
    /// `KVM_CAP_EXIT_ON_EMULATION_FAILURE`: emulation failures carry the instruction bytes.
    public static let exitOnEmulationFailure = Capability(KVM_CAP_EXIT_ON_EMULATION_FAILURE)
    /// `KVM_CAP_X86_TRIPLE_FAULT_EVENT`: triple faults in vCPU events.
    public static let x86TripleFaultEvent = Capability(KVM_CAP_X86_TRIPLE_FAULT_EVENT)
    /// `KVM_CAP_PMU_CAPABILITY`: guest PMU control (0 on the PVM host: no PMU).
    public static let pmuCapability = Capability(KVM_CAP_PMU_CAPABILITY)
    /// `KVM_CAP_PMU_EVENT_FILTER`: `KVM_SET_PMU_EVENT_FILTER`.
    public static let pmuEventFilter = Capability(KVM_CAP_PMU_EVENT_FILTER)
    /// `KVM_CAP_NESTED_STATE`: nested virtualization state (0 on the PVM host).
    public static let nestedState = Capability(KVM_CAP_NESTED_STATE)
    /// `KVM_CAP_VM_TSC_CONTROL`: VM-wide `KVM_SET_TSC_KHZ`/`KVM_GET_TSC_KHZ`.
    public static let vmTSCControl = Capability(KVM_CAP_VM_TSC_CONTROL)
    /// `KVM_CAP_USER_MEMORY2` (231, newer than these headers): `KVM_SET_USER_MEMORY_REGION2`.
    public static let userMemory2 = Capability(CKVM_CAP_USER_MEMORY2)
    /// `KVM_CAP_GUEST_MEMFD` (234, newer than these headers).
    public static let guestMemfd = Capability(CKVM_CAP_GUEST_MEMFD)
    /// `KVM_CAP_VM_TYPES` (235, newer than these headers): a mask of supported VM types.
    public static let vmTypes = Capability(CKVM_CAP_VM_TYPES)
    /// `KVM_CAP_X86_GUEST_MODE` (238, newer than these headers).
    public static let x86GuestMode = Capability(CKVM_CAP_X86_GUEST_MODE)

    public var description: String { "capability \(rawValue)" }
}
