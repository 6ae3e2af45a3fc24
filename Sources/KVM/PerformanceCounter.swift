import CKVM

#if canImport(Glibc)
import Glibc
#endif

/// A Linux perf event counter of the calling thread: a probe of whether the host has a PMU, and
/// the counter of the `pmu` epoch clock (retired conditional branches, with an overflow that
/// signals the vCPU thread). On the PVM host every hardware event fails with ENOENT (there is no
/// `cpu` event source); software events work.
///
/// The corresponding system call is `perf_event_open` (perf_event_open(2), "Overflow handling"
/// for the signal). Owns the event fd (closed in `deinit`).
public final class PerformanceCounter {
    /// Which event to count.
    public enum Event: Hashable, Sendable, CustomStringConvertible {
        /// `PERF_COUNT_HW_INSTRUCTIONS`: retired instructions.
        case instructions
        /// `PERF_COUNT_HW_BRANCH_INSTRUCTIONS`: retired branches.
        case branchInstructions
        /// `PERF_COUNT_HW_CPU_CYCLES`.
        case cpuCycles
        /// `PERF_TYPE_RAW` with this config (e.g. 0xC0 AMD retired instructions).
        case raw(UInt64)
        /// `PERF_COUNT_SW_TASK_CLOCK`: task clock in ns (always available; a control).
        case taskClock
        /// `PERF_COUNT_SW_CONTEXT_SWITCHES`.
        case contextSwitches

        var typeAndConfig: (UInt32, UInt64) {
            switch self {
            case .instructions: (PERF_TYPE_HARDWARE.rawValue, UInt64(PERF_COUNT_HW_INSTRUCTIONS.rawValue))
            case .branchInstructions: (PERF_TYPE_HARDWARE.rawValue, UInt64(PERF_COUNT_HW_BRANCH_INSTRUCTIONS.rawValue))
            case .cpuCycles: (PERF_TYPE_HARDWARE.rawValue, UInt64(PERF_COUNT_HW_CPU_CYCLES.rawValue))
            case .raw(let config): (PERF_TYPE_RAW.rawValue, config)
            case .taskClock: (PERF_TYPE_SOFTWARE.rawValue, UInt64(PERF_COUNT_SW_TASK_CLOCK.rawValue))
            case .contextSwitches: (PERF_TYPE_SOFTWARE.rawValue, UInt64(PERF_COUNT_SW_CONTEXT_SWITCHES.rawValue))
            }
        }

        /// Whether this event needs a hardware PMU.
        public var isHardware: Bool {
            switch self {
            case .instructions, .branchInstructions, .cpuCycles, .raw: true
            case .taskClock, .contextSwitches: false
            }
        }

        public var description: String {
            switch self {
            case .instructions: "instructions"
            case .branchInstructions: "branch-instructions"
            case .cpuCycles: "cpu-cycles"
            case .raw(let config): "raw 0x\(String(config, radix: 16))"
            case .taskClock: "task-clock"
            case .contextSwitches: "context-switches"
            }
        }
    }

    /// What the counter excludes (`perf_event_attr.exclude_*`).
    public struct Exclusions: OptionSet, Hashable, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// `exclude_kernel`.
        public static let kernel = Exclusions(rawValue: 1 << 0)
        /// `exclude_hv`.
        public static let hypervisor = Exclusions(rawValue: 1 << 1)
        /// `exclude_host`: count only while in a guest.
        public static let host = Exclusions(rawValue: 1 << 2)
        /// `exclude_guest`.
        public static let guest = Exclusions(rawValue: 1 << 3)
    }

    /// The event counted.
    public let event: Event
    /// The perf event file descriptor.
    public let fd: Int32

    /// A sampling period so long that the counter never overflows (a disarmed overflow).
    public static let disarmedPeriod: UInt64 = 1 << 60

    /// Opens a counter for `event` on the calling thread (`pid` 0, any CPU), enabled at once.
    /// With `sampling`, the event is a sampling event (`sample_period`, initially
    /// `disarmedPeriod`) whose overflows `signalOverflows(_:)` can turn into a signal.
    /// The corresponding system call is `perf_event_open`; failure gives a `KVMError` with
    /// operation `perf_event_open` and its errno (ENOENT: no such event source on this host).
    public static func open(_ event: Event, excluding exclusions: Exclusions = [], sampling: Bool = false)
        throws(KVMError) -> PerformanceCounter
    {
        var attr = perf_event_attr()
        attr.size = UInt32(MemoryLayout<perf_event_attr>.size)
        (attr.type, attr.config) = event.typeAndConfig
        attr.disabled = 0
        if sampling {
            attr.sample_period = disarmedPeriod
            attr.wakeup_events = 1
        }
        attr.exclude_kernel = exclusions.contains(.kernel) ? 1 : 0
        attr.exclude_hv = exclusions.contains(.hypervisor) ? 1 : 0
        attr.exclude_host = exclusions.contains(.host) ? 1 : 0
        attr.exclude_guest = exclusions.contains(.guest) ? 1 : 0
        let fd = ckvm_perf_event_open(&attr, 0, -1, -1, UInt(PERF_FLAG_FD_CLOEXEC))
        guard fd >= 0 else {
            throw KVMError(operation: "perf_event_open", errno: Glibc.errno, detail: event.description)
        }
        return PerformanceCounter(event: event, fd: fd)
    }

    /// Whether the host can count `event` on this thread: nil if yes, else the error
    /// (`lockstep doctor` reports it).
    public static func probe(_ event: Event, excluding exclusions: Exclusions = []) -> KVMError? {
        do {
            _ = try open(event, excluding: exclusions)
            return nil
        } catch {
            return error
        }
    }

    private init(event: Event, fd: Int32) {
        self.event = event
        self.fd = fd
    }

    deinit {
        Syscall.close(fd)
    }

    /// The current count. The corresponding call is `read(2)` on the event fd.
    public func read() throws(KVMError) -> UInt64 {
        var value: UInt64 = 0
        // SAFETY: reads exactly 8 bytes into `value`.
        let n = withUnsafeMutableBytes(of: &value) { Glibc.read(fd, $0.baseAddress, 8) }
        guard n == 8 else {
            throw KVMError(operation: "read", errno: n < 0 ? Glibc.errno : EIO, detail: "perf event \(event)")
        }
        return value
    }

    /// Resets the count to zero. The corresponding ioctl is `PERF_EVENT_IOC_RESET`.
    public func reset() throws(KVMError) {
        try Syscall.ioctl(fd, ckvm_PERF_EVENT_IOC_RESET, name: "PERF_EVENT_IOC_RESET")
    }

    /// Starts counting. The corresponding ioctl is `PERF_EVENT_IOC_ENABLE`.
    public func enable() throws(KVMError) {
        try Syscall.ioctl(fd, ckvm_PERF_EVENT_IOC_ENABLE, name: "PERF_EVENT_IOC_ENABLE")
    }

    /// Stops counting. The corresponding ioctl is `PERF_EVENT_IOC_DISABLE`.
    public func disable() throws(KVMError) {
        try Syscall.ioctl(fd, ckvm_PERF_EVENT_IOC_DISABLE, name: "PERF_EVENT_IOC_DISABLE")
    }

    /// Sets the sampling period: the counter overflows `period` events after the last overflow
    /// or reset (immediately effective since Linux 3.14). Only for a counter opened with
    /// `sampling`. The corresponding ioctl is `PERF_EVENT_IOC_PERIOD`.
    public func setPeriod(_ period: UInt64) throws(KVMError) {
        var value = max(period, 1)
        try Syscall.ioctl(fd, ckvm_PERF_EVENT_IOC_PERIOD, &value, name: "PERF_EVENT_IOC_PERIOD")
    }

    /// Makes every overflow send `signal` to the calling thread (which should be the one whose
    /// events are counted: the vCPU thread, so the signal interrupts its `KVM_RUN`).
    /// The corresponding calls are `fcntl(F_SETOWN_EX, F_OWNER_TID)`, `fcntl(F_SETSIG)` and
    /// `fcntl(F_SETFL, O_ASYNC)`, as perf_event_open(2) describes under "Overflow handling".
    public func signalOverflows(_ signal: Int32) throws(KVMError) {
        guard ckvm_fcntl_owner_this_thread(fd) == 0 else {
            throw KVMError(operation: "fcntl", errno: Glibc.errno, detail: "F_SETOWN_EX on perf event \(event)")
        }
        guard ckvm_fcntl_set_signal(fd, signal) == 0 else {
            throw KVMError(operation: "fcntl", errno: Glibc.errno, detail: "F_SETSIG on perf event \(event)")
        }
        let flags = Glibc.fcntl(fd, F_GETFL)
        guard flags >= 0, Glibc.fcntl(fd, F_SETFL, flags | O_ASYNC) == 0 else {
            throw KVMError(operation: "fcntl", errno: Glibc.errno, detail: "O_ASYNC on perf event \(event)")
        }
    }
}
