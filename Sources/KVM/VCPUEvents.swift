import CKVM

/// Pending and in-flight exceptions, interrupts, NMIs and SMIs of a vCPU, and the interrupt
/// shadow.
///
/// The corresponding C struct is `struct kvm_vcpu_events` (`KVM_GET_VCPU_EVENTS` /
/// `KVM_SET_VCPU_EVENTS`). `flags` holds `KVM_VCPUEVENT_VALID_*` and says which fields
/// `KVM_SET_VCPU_EVENTS` takes.
public struct VCPUEvents: Hashable, Sendable, Codable {
    /// `KVM_VCPUEVENT_VALID_NMI_PENDING`.
    public static let validNMIPending: UInt32 = UInt32(KVM_VCPUEVENT_VALID_NMI_PENDING)
    /// `KVM_VCPUEVENT_VALID_SIPI_VECTOR`.
    public static let validSIPIVector: UInt32 = UInt32(KVM_VCPUEVENT_VALID_SIPI_VECTOR)
    /// `KVM_VCPUEVENT_VALID_SHADOW`.
    public static let validShadow: UInt32 = UInt32(KVM_VCPUEVENT_VALID_SHADOW)
    /// `KVM_VCPUEVENT_VALID_SMM`.
    public static let validSMM: UInt32 = UInt32(KVM_VCPUEVENT_VALID_SMM)
    /// `KVM_VCPUEVENT_VALID_PAYLOAD`.
    public static let validPayload: UInt32 = UInt32(KVM_VCPUEVENT_VALID_PAYLOAD)
    /// `KVM_VCPUEVENT_VALID_TRIPLE_FAULT`.
    public static let validTripleFault: UInt32 = UInt32(KVM_VCPUEVENT_VALID_TRIPLE_FAULT)

    /// An exception being delivered or pending.
    public struct Exception: Hashable, Sendable, Codable {
        /// Being delivered now.
        public var injected = false
        /// The vector (0...31).
        public var number: UInt8 = 0
        /// The exception pushes `errorCode`.
        public var hasErrorCode = false
        /// Pending (not yet delivered).
        public var pending = false
        /// The error code.
        public var errorCode: UInt32 = 0
        /// Nothing pending.
        public init() {}
    }
    /// An external interrupt being delivered.
    public struct Interrupt: Hashable, Sendable, Codable {
        /// Being delivered now.
        public var injected = false
        /// The vector.
        public var number: UInt8 = 0
        /// A software interrupt (INT n).
        public var soft = false
        /// The interrupt shadow (after STI or MOV SS): `KVM_X86_SHADOW_INT_*`.
        public var shadow: UInt8 = 0
        /// Nothing pending.
        public init() {}
    }
    /// The NMI state.
    public struct NMI: Hashable, Sendable, Codable {
        /// Being delivered now.
        public var injected = false
        /// Pending (not yet delivered).
        public var pending = false
        /// NMIs are blocked (inside an NMI handler).
        public var masked = false
        /// Nothing pending.
        public init() {}
    }
    /// The SMM state.
    public struct SMI: Hashable, Sendable, Codable {
        /// The vCPU is in SMM.
        public var smm = false
        /// Pending (not yet delivered).
        public var pending = false
        /// SMM was entered inside an NMI handler.
        public var smmInsideNMI = false
        /// An INIT is latched.
        public var latchedInit = false
        /// Nothing pending.
        public init() {}
    }

    /// The exception state.
    public var exception = Exception()
    /// The external interrupt state and interrupt shadow.
    public var interrupt = Interrupt()
    /// The NMI state.
    public var nmi = NMI()
    /// The SIPI vector.
    public var sipiVector: UInt32 = 0
    /// `KVM_VCPUEVENT_VALID_*`: which fields are valid.
    public var flags: UInt32 = 0
    /// The SMM state.
    public var smi = SMI()
    /// A triple fault is pending (`KVM_CAP_X86_TRIPLE_FAULT_EVENT`).
    public var tripleFaultPending = false
    /// The exception carries `exceptionPayload` (CR2 or DR6).
    public var exceptionHasPayload = false
    /// The payload of the pending exception.
    public var exceptionPayload: UInt64 = 0

    /// Nothing pending.
    public init() {}

    init(_ c: kvm_vcpu_events) {
        exception.injected = c.exception.injected != 0
        exception.number = c.exception.nr
        exception.hasErrorCode = c.exception.has_error_code != 0
        exception.pending = c.exception.pending != 0
        exception.errorCode = c.exception.error_code
        interrupt.injected = c.interrupt.injected != 0
        interrupt.number = c.interrupt.nr
        interrupt.soft = c.interrupt.soft != 0
        interrupt.shadow = c.interrupt.shadow
        nmi.injected = c.nmi.injected != 0
        nmi.pending = c.nmi.pending != 0
        nmi.masked = c.nmi.masked != 0
        sipiVector = c.sipi_vector
        flags = c.flags
        smi.smm = c.smi.smm != 0
        smi.pending = c.smi.pending != 0
        smi.smmInsideNMI = c.smi.smm_inside_nmi != 0
        smi.latchedInit = c.smi.latched_init != 0
        tripleFaultPending = c.triple_fault.pending != 0
        exceptionHasPayload = c.exception_has_payload != 0
        exceptionPayload = c.exception_payload
    }

    var c: kvm_vcpu_events {
        var c = kvm_vcpu_events()
        c.exception.injected = exception.injected ? 1 : 0
        c.exception.nr = exception.number
        c.exception.has_error_code = exception.hasErrorCode ? 1 : 0
        c.exception.pending = exception.pending ? 1 : 0
        c.exception.error_code = exception.errorCode
        c.interrupt.injected = interrupt.injected ? 1 : 0
        c.interrupt.nr = interrupt.number
        c.interrupt.soft = interrupt.soft ? 1 : 0
        c.interrupt.shadow = interrupt.shadow
        c.nmi.injected = nmi.injected ? 1 : 0
        c.nmi.pending = nmi.pending ? 1 : 0
        c.nmi.masked = nmi.masked ? 1 : 0
        c.sipi_vector = sipiVector
        c.flags = flags
        c.smi.smm = smi.smm ? 1 : 0
        c.smi.pending = smi.pending ? 1 : 0
        c.smi.smm_inside_nmi = smi.smmInsideNMI ? 1 : 0
        c.smi.latched_init = smi.latchedInit ? 1 : 0
        c.triple_fault.pending = tripleFaultPending ? 1 : 0
        c.exception_has_payload = exceptionHasPayload ? 1 : 0
        c.exception_payload = exceptionPayload
        return c
    }
}
