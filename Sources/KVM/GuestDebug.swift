import CKVM

/// The `control` flags of `KVM_SET_GUEST_DEBUG`.
///
/// The corresponding C constants are `KVM_GUESTDBG_*`.
public struct GuestDebugControl: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `KVM_GUESTDBG_ENABLE`: guest debugging is on (required for every other flag).
    public static let enable = GuestDebugControl(rawValue: UInt32(KVM_GUESTDBG_ENABLE))
    /// `KVM_GUESTDBG_SINGLESTEP`: one `KVM_EXIT_DEBUG` per instruction (CPL0 only on the PVM host).
    public static let singleStep = GuestDebugControl(rawValue: UInt32(KVM_GUESTDBG_SINGLESTEP))
    /// `KVM_GUESTDBG_USE_SW_BP`: INT3 exits to user space (an emulation failure at CPL0 on the
    /// PVM host).
    public static let useSoftwareBreakpoints = GuestDebugControl(rawValue: UInt32(KVM_GUESTDBG_USE_SW_BP))
    /// `KVM_GUESTDBG_USE_HW_BP`: the debug registers in `GuestDebug.debugRegisters` are armed.
    public static let useHardwareBreakpoints = GuestDebugControl(rawValue: UInt32(KVM_GUESTDBG_USE_HW_BP))
    /// `KVM_GUESTDBG_INJECT_DB`: inject #DB into the guest.
    public static let injectDB = GuestDebugControl(rawValue: UInt32(KVM_GUESTDBG_INJECT_DB))
    /// `KVM_GUESTDBG_INJECT_BP`: inject #BP into the guest.
    public static let injectBP = GuestDebugControl(rawValue: UInt32(KVM_GUESTDBG_INJECT_BP))
    /// `KVM_GUESTDBG_BLOCKIRQ`: no interrupts while single-stepping (ignored on the PVM host).
    public static let blockIRQ = GuestDebugControl(rawValue: UInt32(KVM_GUESTDBG_BLOCKIRQ))
}

/// A host-owned hardware breakpoint (one of DR0–DR3 in `KVM_SET_GUEST_DEBUG`).
public struct HardwareBreakpoint: Hashable, Sendable {
    /// What the breakpoint watches (DR7 R/W and LEN fields).
    public enum Kind: Hashable, Sendable {
        /// An instruction fetch at `address` (R/W = 00, LEN = 00).
        case execute
        /// A data write of `length` bytes (1, 2, 4 or 8) at `address` (R/W = 01). Never fires on
        /// the PVM host.
        case write(length: Int)
        /// A data read or write of `length` bytes at `address` (R/W = 11). Never fires on the
        /// PVM host.
        case readWrite(length: Int)
    }

    /// The guest linear address.
    public var address: UInt64
    /// What the breakpoint watches.
    public var kind: Kind

    /// A breakpoint at guest linear `address` (execute by default).
    public init(address: UInt64, kind: Kind = .execute) {
        self.address = address
        self.kind = kind
    }

    /// This breakpoint's DR7 bits in slot `slot` (0...3): L<slot>, R/W<slot>, LEN<slot>.
    func dr7Bits(slot: Int) -> UInt64 {
        func lengthBits(_ length: Int) -> UInt64 {
            switch length {
            case 1: 0b00
            case 2: 0b01
            case 8: 0b10
            case 4: 0b11
            default: preconditionFailure("a data breakpoint covers 1, 2, 4 or 8 bytes, not \(length)")
            }
        }
        let (rw, len): (UInt64, UInt64) = switch kind {
        case .execute: (0b00, 0b00)
        case .write(let length): (0b01, lengthBits(length))
        case .readWrite(let length): (0b11, lengthBits(length))
        }
        let shift = UInt64(16 + 4 * slot)
        return 1 << UInt64(2 * slot) | rw << shift | len << (shift + 2)
    }
}

/// A `KVM_SET_GUEST_DEBUG` configuration: control flags and the host-owned debug registers.
///
/// The corresponding C struct is `struct kvm_guest_debug`.
public struct GuestDebug: Hashable, Sendable {
    /// The `KVM_GUESTDBG_*` flags.
    public var control: GuestDebugControl
    /// `arch.debugreg[0...7]`: DR0–DR3 addresses, [6] unused, [7] = DR7.
    public var debugRegisters: [UInt64]

    /// A configuration from raw flags and debug registers.
    public init(control: GuestDebugControl, debugRegisters: [UInt64] = Array(repeating: 0, count: 8)) {
        precondition(debugRegisters.count == 8, "kvm_guest_debug_arch has 8 debug registers")
        self.control = control
        self.debugRegisters = debugRegisters
    }

    /// Guest debugging off.
    public static let disabled = GuestDebug(control: [])
    /// Single-stepping: every instruction (at CPL0) ends in `.debug`.
    public static let singleStep = GuestDebug(control: [.enable, .singleStep])

    /// Up to four hardware breakpoints. DR7 also gets GE (bit 9), as the probes did.
    public static func hardwareBreakpoints(_ breakpoints: [HardwareBreakpoint]) -> GuestDebug {
        precondition(breakpoints.count <= 4, "x86 has 4 hardware breakpoints")
        var registers = [UInt64](repeating: 0, count: 8)
        var dr7: UInt64 = 1 << 9
        for (slot, breakpoint) in breakpoints.enumerated() {
            registers[slot] = breakpoint.address
            dr7 |= breakpoint.dr7Bits(slot: slot)
        }
        registers[7] = dr7
        return GuestDebug(control: [.enable, .useHardwareBreakpoints], debugRegisters: registers)
    }
}

extension VCPU {
    /// Configures guest debugging. The corresponding ioctl is `KVM_SET_GUEST_DEBUG`.
    public func setGuestDebug(_ debug: GuestDebug) throws(KVMError) {
        var c = kvm_guest_debug()
        c.control = debug.control.rawValue
        let r = debug.debugRegisters
        c.arch.debugreg = (r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7])
        try Syscall.ioctl(fd, ckvm_KVM_SET_GUEST_DEBUG, &c, name: "KVM_SET_GUEST_DEBUG")
        guestDebug = debug
    }

    /// Executes the instruction at a hardware execute breakpoint that just fired and re-arms the
    /// breakpoints, returning the exit of that one step (normally a single-step `.debug`; an
    /// instruction that exits to user space gives that exit instead).
    ///
    /// RFLAGS.RF is ignored on the PVM host (the breakpoint would fire forever), so this is the
    /// sequence that works there: `KVM_SET_GUEST_DEBUG(ENABLE|SINGLESTEP)`, `KVM_RUN`, then
    /// `KVM_SET_GUEST_DEBUG` with the previous configuration.
    public func stepOverHardwareBreakpoint() throws(KVMError) -> VCPUExit {
        let armed = guestDebug
        try setGuestDebug(.singleStep)
        let exit: VCPUExit
        do {
            exit = try run()
        } catch {
            try? setGuestDebug(armed)
            throw error
        }
        try setGuestDebug(armed)
        return exit
    }
}
