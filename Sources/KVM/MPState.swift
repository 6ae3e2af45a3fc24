import CKVM

/// The multiprocessing state of a vCPU.
///
/// The corresponding C constants are `KVM_MP_STATE_*` (`KVM_GET_MP_STATE` / `KVM_SET_MP_STATE`).
public enum MPState: Hashable, Sendable, Codable {
    /// `KVM_MP_STATE_RUNNABLE`.
    case runnable
    /// `KVM_MP_STATE_UNINITIALIZED`: an AP waiting for INIT.
    case uninitialized
    /// `KVM_MP_STATE_INIT_RECEIVED`.
    case initReceived
    /// `KVM_MP_STATE_HALTED`: HLT with an in-kernel LAPIC.
    case halted
    /// `KVM_MP_STATE_SIPI_RECEIVED`.
    case sipiReceived
    /// `KVM_MP_STATE_STOPPED` (s390).
    case stopped
    /// `KVM_MP_STATE_CHECK_STOP` (s390).
    case checkStop
    /// `KVM_MP_STATE_OPERATING` (s390).
    case operating
    /// `KVM_MP_STATE_LOAD` (s390).
    case load
    /// `KVM_MP_STATE_AP_RESET_HOLD` (SEV-ES).
    case apResetHold
    /// `KVM_MP_STATE_SUSPENDED`.
    case suspended
    /// A state this module does not know.
    case unsupported(UInt32)

    /// Decodes a `KVM_MP_STATE_*` value.
    public init(rawValue: UInt32) {
        switch Int32(bitPattern: rawValue) {
        case KVM_MP_STATE_RUNNABLE: self = .runnable
        case KVM_MP_STATE_UNINITIALIZED: self = .uninitialized
        case KVM_MP_STATE_INIT_RECEIVED: self = .initReceived
        case KVM_MP_STATE_HALTED: self = .halted
        case KVM_MP_STATE_SIPI_RECEIVED: self = .sipiReceived
        case KVM_MP_STATE_STOPPED: self = .stopped
        case KVM_MP_STATE_CHECK_STOP: self = .checkStop
        case KVM_MP_STATE_OPERATING: self = .operating
        case KVM_MP_STATE_LOAD: self = .load
        case KVM_MP_STATE_AP_RESET_HOLD: self = .apResetHold
        case KVM_MP_STATE_SUSPENDED: self = .suspended
        default: self = .unsupported(rawValue)
        }
    }

    /// The `KVM_MP_STATE_*` value.
    public var rawValue: UInt32 {
        switch self {
        case .runnable: UInt32(KVM_MP_STATE_RUNNABLE)
        case .uninitialized: UInt32(KVM_MP_STATE_UNINITIALIZED)
        case .initReceived: UInt32(KVM_MP_STATE_INIT_RECEIVED)
        case .halted: UInt32(KVM_MP_STATE_HALTED)
        case .sipiReceived: UInt32(KVM_MP_STATE_SIPI_RECEIVED)
        case .stopped: UInt32(KVM_MP_STATE_STOPPED)
        case .checkStop: UInt32(KVM_MP_STATE_CHECK_STOP)
        case .operating: UInt32(KVM_MP_STATE_OPERATING)
        case .load: UInt32(KVM_MP_STATE_LOAD)
        case .apResetHold: UInt32(KVM_MP_STATE_AP_RESET_HOLD)
        case .suspended: UInt32(KVM_MP_STATE_SUSPENDED)
        case .unsupported(let raw): raw
        }
    }
}
