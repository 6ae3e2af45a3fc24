import CKVM

/// Why `KVM_RUN` returned: the decoded `kvm_run.exit_reason` and its union member.
///
/// The corresponding C constants are `KVM_EXIT_*`. Exit reasons this module does not decode are
/// `.unsupported(rawReason)`: an unknown exit is data, never a crash. Switch over it without
/// `default:` so a new case forces a review.
public enum VCPUExit: Hashable, Sendable {
    /// `KVM_EXIT_UNKNOWN`: the hardware exit reason KVM could not handle.
    case unknown(hardwareExitReason: UInt64)
    /// `KVM_EXIT_EXCEPTION`: an exception KVM passes to user space.
    case exception(vector: UInt32, errorCode: UInt32)
    /// `KVM_EXIT_IO`, direction in: the guest reads `count` items of `size` bytes from `port`.
    /// Supply the `size × count` bytes with `VCPU.completeIOIn(_:)` before the next `run()`.
    case ioIn(port: UInt16, size: Int, count: Int)
    /// `KVM_EXIT_IO`, direction out: the guest wrote `data` (`count` items of `size` bytes) to
    /// `port`.
    case ioOut(port: UInt16, size: Int, count: Int, data: [UInt8])
    /// `KVM_EXIT_HYPERCALL`: a hypercall KVM passes to user space (`KVM_CAP_EXIT_HYPERCALL`);
    /// answer with `VCPU.completeHypercall(result:)`.
    case hypercall(number: UInt64, arguments: [UInt64], longMode: Bool)
    /// `KVM_EXIT_DEBUG`: a guest-debug event (single step, breakpoint).
    case debug(DebugExit)
    /// `KVM_EXIT_HLT`: the guest executed HLT (no in-kernel irqchip).
    case hlt
    /// `KVM_EXIT_MMIO`, read: the guest reads `size` bytes at guest-physical `address`, which
    /// no memory slot backs. Supply them with `VCPU.completeMMIORead(_:)` before the next `run()`.
    case mmioRead(address: UInt64, size: Int)
    /// `KVM_EXIT_MMIO`, write: the guest wrote `data` at guest-physical `address` (unbacked or
    /// a read-only slot).
    case mmioWrite(address: UInt64, data: [UInt8])
    /// `KVM_EXIT_IRQ_WINDOW_OPEN`: the guest can take an interrupt now (after
    /// `requestInterruptWindow`).
    case irqWindowOpen
    /// `KVM_EXIT_SHUTDOWN`: the guest shut down, typically a triple fault.
    case shutdown
    /// `KVM_EXIT_FAIL_ENTRY`: the hardware refused to enter the guest (invalid state).
    case failEntry(hardwareReason: UInt64, cpu: UInt32)
    /// `KVM_RUN` returned EINTR (or `KVM_EXIT_INTR`): a kick or another signal. Not an error;
    /// the guest made no or some progress and can simply be run again.
    case interrupted
    /// `KVM_EXIT_SET_TPR`.
    case setTPR
    /// `KVM_EXIT_TPR_ACCESS`.
    case tprAccess(rip: UInt64, isWrite: Bool)
    /// `KVM_EXIT_NMI`.
    case nmi
    /// `KVM_EXIT_INTERNAL_ERROR`: KVM could not continue, e.g. an instruction its emulator
    /// does not support (`.emulation`). `data` holds the `ndata` words KVM supplied.
    case internalError(kind: InternalErrorKind, data: [UInt64])
    /// `KVM_EXIT_SYSTEM_EVENT`: shutdown, reset, crash, ... requested through the platform.
    case systemEvent(type: SystemEventType, data: [UInt64])
    /// `KVM_EXIT_IOAPIC_EOI` (split irqchip).
    case ioapicEOI(vector: UInt8)
    /// `KVM_EXIT_X86_RDMSR`: a guest RDMSR of `index` passed to user space (see
    /// `VirtualMachine.enableUserSpaceMSR`). Answer with `VCPU.completeRDMSR(value:)` or
    /// `VCPU.failMSRAccess()`.
    case rdmsr(index: UInt32, reason: MSRExitReasons)
    /// `KVM_EXIT_X86_WRMSR`: a guest WRMSR of `value` to `index` passed to user space. Accept by
    /// running again or refuse with `VCPU.failMSRAccess()`.
    case wrmsr(index: UInt32, value: UInt64, reason: MSRExitReasons)
    /// `KVM_EXIT_DIRTY_RING_FULL`: harvest the dirty ring, then run again.
    case dirtyRingFull
    /// `KVM_EXIT_AP_RESET_HOLD` (SEV-ES).
    case apResetHold
    /// `KVM_EXIT_X86_BUS_LOCK`: the guest took a bus lock (`KVM_CAP_X86_BUS_LOCK_EXIT`).
    case busLock
    /// `KVM_EXIT_NOTIFY`: the guest sat in a non-interruptible window too long.
    case notify(flags: UInt32)
    /// An exit reason this module does not decode (the raw `KVM_EXIT_*` value).
    case unsupported(UInt32)
}

/// The data of a `KVM_EXIT_DEBUG` exit.
///
/// The corresponding C struct is `struct kvm_debug_exit_arch`.
public struct DebugExit: Hashable, Sendable {
    /// The exception vector: 1 (#DB) for single steps and hardware breakpoints, 3 (#BP) for
    /// software breakpoints.
    public var exception: UInt32
    /// The guest's linear RIP: the next instruction after a single step, the breakpoint address
    /// for a hardware execute breakpoint.
    public var pc: UInt64
    /// DR6 at the event (bit 14 BS = single step, bits 0–3 = hardware breakpoint hit).
    public var dr6: UInt64
    /// DR7 at the event.
    public var dr7: UInt64

    /// A debug exit with the given fields.
    public init(exception: UInt32, pc: UInt64, dr6: UInt64, dr7: UInt64) {
        self.exception = exception
        self.pc = pc
        self.dr6 = dr6
        self.dr7 = dr7
    }

    /// DR6.BS: the event is a single step.
    public var isSingleStep: Bool { dr6 & (1 << 14) != 0 }
    /// The hardware breakpoints (0...3) that fired, from DR6.B0–B3.
    public var hardwareBreakpointsHit: [Int] { (0..<4).filter { dr6 & (1 << UInt64($0)) != 0 } }
}

/// The sub-reason of `KVM_EXIT_INTERNAL_ERROR`.
///
/// The corresponding C constants are `KVM_INTERNAL_ERROR_*`.
public enum InternalErrorKind: Hashable, Sendable {
    /// `KVM_INTERNAL_ERROR_EMULATION`: the instruction emulator failed (INT3, INT n, RDTSCP,
    /// XGETBV, SSE at CPL0 on the PVM host).
    case emulation
    /// `KVM_INTERNAL_ERROR_SIMUL_EX`: an exception while delivering an exception.
    case simultaneousException
    /// `KVM_INTERNAL_ERROR_DELIVERY_EV`: an exit while delivering an event.
    case deliveryEvent
    /// `KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON`.
    case unexpectedExitReason
    /// A sub-reason this module does not know.
    case unsupported(UInt32)

    init(rawValue: UInt32) {
        switch Int32(bitPattern: rawValue) {
        case KVM_INTERNAL_ERROR_EMULATION: self = .emulation
        case KVM_INTERNAL_ERROR_SIMUL_EX: self = .simultaneousException
        case KVM_INTERNAL_ERROR_DELIVERY_EV: self = .deliveryEvent
        case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON: self = .unexpectedExitReason
        default: self = .unsupported(rawValue)
        }
    }
}

/// The type of a `KVM_EXIT_SYSTEM_EVENT`.
///
/// The corresponding C constants are `KVM_SYSTEM_EVENT_*`.
public enum SystemEventType: Hashable, Sendable {
    /// `KVM_SYSTEM_EVENT_SHUTDOWN`.
    case shutdown
    /// `KVM_SYSTEM_EVENT_RESET`.
    case reset
    /// `KVM_SYSTEM_EVENT_CRASH`.
    case crash
    /// `KVM_SYSTEM_EVENT_WAKEUP`.
    case wakeup
    /// `KVM_SYSTEM_EVENT_SUSPEND`.
    case suspend
    /// `KVM_SYSTEM_EVENT_SEV_TERM`.
    case sevTerminate
    /// A type this module does not know.
    case unsupported(UInt32)

    init(rawValue: UInt32) {
        switch Int32(bitPattern: rawValue) {
        case KVM_SYSTEM_EVENT_SHUTDOWN: self = .shutdown
        case KVM_SYSTEM_EVENT_RESET: self = .reset
        case KVM_SYSTEM_EVENT_CRASH: self = .crash
        case KVM_SYSTEM_EVENT_WAKEUP: self = .wakeup
        case KVM_SYSTEM_EVENT_SUSPEND: self = .suspend
        case KVM_SYSTEM_EVENT_SEV_TERM: self = .sevTerminate
        default: self = .unsupported(rawValue)
        }
    }
}

extension VCPUExit {
    /// Decodes the exit in the `kvm_run` at `run`, whose mapping is `mappingSize` bytes.
    ///
    /// SAFETY: callers pass the live vCPU mapping or a buffer of at least sizeof(kvm_run)
    /// bytes; the CKVM accessors read single fields of it, and the PIO data area is clipped to
    /// `mappingSize`.
    static func decode(_ run: UnsafeMutablePointer<kvm_run>, mappingSize: Int) -> VCPUExit {
        let reason = ckvm_run_exit_reason(run)
        switch Int32(bitPattern: reason) {
        case KVM_EXIT_UNKNOWN:
            return .unknown(hardwareExitReason: ckvm_run_hw_exit_reason(run))
        case KVM_EXIT_EXCEPTION:
            return .exception(vector: ckvm_run_ex_exception(run), errorCode: ckvm_run_ex_error_code(run))
        case KVM_EXIT_IO:
            let port = ckvm_run_io_port(run)
            let size = Int(ckvm_run_io_size(run))
            let count = Int(ckvm_run_io_count(run))
            if Int32(ckvm_run_io_direction(run)) == KVM_EXIT_IO_IN {
                return .ioIn(port: port, size: size, count: count)
            }
            return .ioOut(port: port, size: size, count: count, data: ioData(run, mappingSize: mappingSize))
        case KVM_EXIT_HYPERCALL:
            return .hypercall(
                number: ckvm_run_hypercall_nr(run),
                arguments: (0..<6).map { ckvm_run_hypercall_arg(run, UInt32($0)) },
                longMode: ckvm_run_hypercall_longmode(run) != 0)
        case KVM_EXIT_DEBUG:
            return .debug(DebugExit(
                exception: ckvm_run_debug_exception(run), pc: ckvm_run_debug_pc(run),
                dr6: ckvm_run_debug_dr6(run), dr7: ckvm_run_debug_dr7(run)))
        case KVM_EXIT_HLT:
            return .hlt
        case KVM_EXIT_MMIO:
            let address = ckvm_run_mmio_phys_addr(run)
            let length = min(Int(ckvm_run_mmio_len(run)), 8)
            if ckvm_run_mmio_is_write(run) == 0 { return .mmioRead(address: address, size: length) }
            // SAFETY: mmio.data is an 8-byte array inside kvm_run and `length` <= 8.
            let data = Array(UnsafeBufferPointer(start: ckvm_run_mmio_data(run), count: length))
            return .mmioWrite(address: address, data: data)
        case KVM_EXIT_IRQ_WINDOW_OPEN:
            return .irqWindowOpen
        case KVM_EXIT_SHUTDOWN:
            return .shutdown
        case KVM_EXIT_FAIL_ENTRY:
            return .failEntry(hardwareReason: ckvm_run_fail_entry_reason(run), cpu: ckvm_run_fail_entry_cpu(run))
        case KVM_EXIT_INTR:
            return .interrupted
        case KVM_EXIT_SET_TPR:
            return .setTPR
        case KVM_EXIT_TPR_ACCESS:
            return .tprAccess(rip: ckvm_run_tpr_access_rip(run), isWrite: ckvm_run_tpr_access_is_write(run) != 0)
        case KVM_EXIT_NMI:
            return .nmi
        case KVM_EXIT_INTERNAL_ERROR:
            let count = min(Int(ckvm_run_internal_ndata(run)), 16)
            return .internalError(
                kind: InternalErrorKind(rawValue: ckvm_run_internal_suberror(run)),
                data: (0..<count).map { ckvm_run_internal_data(run, UInt32($0)) })
        case KVM_EXIT_SYSTEM_EVENT:
            let count = min(Int(ckvm_run_system_event_ndata(run)), 16)
            return .systemEvent(
                type: SystemEventType(rawValue: ckvm_run_system_event_type(run)),
                data: (0..<count).map { ckvm_run_system_event_data(run, UInt32($0)) })
        case KVM_EXIT_IOAPIC_EOI:
            return .ioapicEOI(vector: ckvm_run_eoi_vector(run))
        case KVM_EXIT_X86_RDMSR:
            return .rdmsr(index: ckvm_run_msr_index(run), reason: MSRExitReasons(rawValue: ckvm_run_msr_reason(run)))
        case KVM_EXIT_X86_WRMSR:
            return .wrmsr(
                index: ckvm_run_msr_index(run), value: ckvm_run_msr_data(run),
                reason: MSRExitReasons(rawValue: ckvm_run_msr_reason(run)))
        case KVM_EXIT_DIRTY_RING_FULL:
            return .dirtyRingFull
        case KVM_EXIT_AP_RESET_HOLD:
            return .apResetHold
        case KVM_EXIT_X86_BUS_LOCK:
            return .busLock
        case KVM_EXIT_NOTIFY:
            return .notify(flags: ckvm_run_notify_flags(run))
        default:
            return .unsupported(reason)
        }
    }

    /// The PIO data area of the current `KVM_EXIT_IO`: `size × count` bytes at
    /// `io.data_offset`, clipped to the mapping.
    static func ioDataRange(_ run: UnsafeMutablePointer<kvm_run>, mappingSize: Int) -> Range<Int> {
        let offset = Int(clamping: ckvm_run_io_data_offset(run))
        let length = Int(ckvm_run_io_size(run)) * Int(ckvm_run_io_count(run))
        let start = min(offset, mappingSize)
        let end = min(start + length, mappingSize)
        return start..<end
    }

    private static func ioData(_ run: UnsafeMutablePointer<kvm_run>, mappingSize: Int) -> [UInt8] {
        let range = ioDataRange(run, mappingSize: mappingSize)
        // SAFETY: `range` lies inside the `mappingSize`-byte mapping that starts at `run`.
        return Array(UnsafeRawBufferPointer(start: UnsafeRawPointer(run) + range.lowerBound, count: range.count))
    }

    /// Decodes a `kvm_run` image, as `VCPU.run()` would decode the live one.
    ///
    /// For tests and diagnostics (e.g. a logged exit page). `bytes` is padded with zeros to at
    /// least `sizeof(struct kvm_run)`.
    public static func decode(kvmRun bytes: [UInt8]) -> VCPUExit {
        let size = max(bytes.count, MemoryLayout<kvm_run>.size)
        // SAFETY: at least a whole kvm_run, freed by the defer below.
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: MemoryLayout<kvm_run>.alignment)
        defer { buffer.deallocate() }
        // SAFETY: `buffer` has `size` bytes, at least a whole kvm_run; it is zeroed, filled from
        // `bytes`, read only inside this function and freed at its end.
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        buffer.copyMemory(from: bytes, byteCount: bytes.count)
        return decode(buffer.assumingMemoryBound(to: kvm_run.self), mappingSize: size)
    }

    /// The `KVM_EXIT_*` byte offset of `exit_reason` in `struct kvm_run`, for building images
    /// for `decode(kvmRun:)`.
    public static var exitReasonOffset: Int { MemoryLayout<kvm_run>.offset(of: \kvm_run.exit_reason)! }
}
