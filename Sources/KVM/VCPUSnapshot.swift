/// Everything KVM holds for one vCPU, captured by `VCPU.snapshot()` and put back by
/// `VCPU.restore(_:)`. Guest RAM is not included: it belongs to the memory owner.
///
/// The corresponding ioctls are `KVM_GET_REGS`, `KVM_GET_SREGS`, `KVM_GET_FPU`,
/// `KVM_GET_XSAVE2`, `KVM_GET_XCRS`, `KVM_GET_MSRS`, `KVM_GET_DEBUGREGS`,
/// `KVM_GET_VCPU_EVENTS` and `KVM_GET_MP_STATE`, and their `SET` counterparts.
public struct VCPUSnapshot: Hashable, Sendable, Codable {
    /// `KVM_GET_REGS`.
    public var registers: Registers
    /// `KVM_GET_SREGS`.
    public var specialRegisters: SpecialRegisters
    /// The FXSAVE-layout view; informational when `xsave` is present. `restore` writes XSAVE
    /// only: `KVM_SET_FPU` fills the legacy area without marking x87/SSE in use in XSTATE_BV
    /// (measured on this kernel), so XSAVE is the state the guest actually gets.
    public var fpu: FPUState
    /// `KVM_GET_XSAVE2`; nil without `KVM_CAP_XSAVE`.
    public var xsave: XSAVEState?
    /// `KVM_GET_XCRS`; empty without `KVM_CAP_XCRS`.
    public var extendedControlRegisters: [ExtendedControlRegister]
    /// Every MSR of `KVMSystem.msrIndexList()` that this vCPU can read.
    public var msrs: [MSREntry]
    /// `KVM_GET_DEBUGREGS`.
    public var debugRegisters: DebugRegisters
    /// `KVM_GET_VCPU_EVENTS`.
    public var events: VCPUEvents
    /// `KVM_GET_MP_STATE`.
    public var mpState: MPState

    /// A snapshot from its parts.
    public init(
        registers: Registers, specialRegisters: SpecialRegisters, fpu: FPUState, xsave: XSAVEState?,
        extendedControlRegisters: [ExtendedControlRegister], msrs: [MSREntry],
        debugRegisters: DebugRegisters, events: VCPUEvents, mpState: MPState
    ) {
        self.registers = registers
        self.specialRegisters = specialRegisters
        self.fpu = fpu
        self.xsave = xsave
        self.extendedControlRegisters = extendedControlRegisters
        self.msrs = msrs
        self.debugRegisters = debugRegisters
        self.events = events
        self.mpState = mpState
    }
}
