import CKVM

#if canImport(Glibc)
import Glibc
#endif

/// The process-wide installation of the kick signal handler (done once, lazily).
private let kickHandlerInstallation: Int32 = {
    ckvm_install_kick_handler(VCPU.kickSignal) == 0 ? 0 : Glibc.errno
}()

/// A virtual CPU: the vCPU file descriptor and its shared `kvm_run` mapping.
///
/// The third level of the kernel's fd hierarchy, like rust-vmm's `VcpuFd`. Created by
/// `VirtualMachine.createVCPU(id:)`. Owns its fd and mapping (released in `deinit`) and keeps its
/// VM alive. Not thread-safe: a vCPU is confined to the one thread that runs it, which in the
/// engine is a dedicated thread (never Swift's cooperative pool, since `run()` blocks). Other
/// threads stop it through its Sendable `kicker`.
public final class VCPU {
    /// The signal used to kick vCPU threads out of `KVM_RUN` (SIGUSR1, as in QEMU). Lockstep
    /// installs its handler process-wide; nothing else in the process may use this signal.
    public static let kickSignal: Int32 = SIGUSR1

    /// The vCPU file descriptor.
    public let fd: Int32
    /// The vCPU id given to `KVM_CREATE_VCPU`.
    public let id: UInt
    /// The VM this vCPU belongs to.
    public let vm: VirtualMachine
    /// The size of the `kvm_run` mapping (`KVM_GET_VCPU_MMAP_SIZE`).
    public let mmapSize: Int
    let kvmRun: UnsafeMutablePointer<kvm_run>
    /// The page of the mapping that holds the coalesced MMIO/PIO ring (`KVM_CAP_COALESCED_MMIO`),
    /// or 0 where KVM has none.
    let coalescedRingPage: Int
    let kickState = KickState()
    /// The last exit `run()` returned, for checking completions.
    public private(set) var lastExit: VCPUExit?
    /// The guest-debug configuration last set with `setGuestDebug(_:)`.
    public internal(set) var guestDebug = GuestDebug.disabled
    var readableMSRs: [UInt32]?
    /// What `KVM_CHECK_EXTENSION` says about the state ioctls, asked once: it cannot change for
    /// a VM, and a snapshot taken while the guest waits should not ask again.
    lazy var stateExtensions = StateExtensions(vm: vm)
    private var signalUnblockedOn: pthread_t?

    init(fd: Int32, id: UInt, mmapSize: Int, vm: VirtualMachine) throws(KVMError) {
        if kickHandlerInstallation != 0 {
            throw KVMError(operation: "sigaction", errno: kickHandlerInstallation, detail: "installing the vCPU kick handler")
        }
        // SAFETY: maps the vCPU fd's shared kvm_run area (size from KVM_GET_VCPU_MMAP_SIZE);
        // checked for MAP_FAILED; unmapped exactly once in deinit.
        let pointer = mmap(nil, mmapSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let pointer, pointer != MAP_FAILED else {
            throw KVMError(operation: "mmap", errno: Glibc.errno, detail: "kvm_run of vCPU \(id)")
        }
        self.fd = fd
        self.id = id
        self.vm = vm
        self.mmapSize = mmapSize
        let ringPage = Int(vm.checkExtension(.coalescedMMIO))
        coalescedRingPage = ringPage > 0 && (ringPage + 1) * 4096 <= mmapSize ? ringPage : 0
        // SAFETY: the mapping starts with a struct kvm_run (the KVM ABI) and is page aligned.
        self.kvmRun = pointer.bindMemory(to: kvm_run.self, capacity: 1)
    }

    deinit {
        // SAFETY: `run` is the start of our mmapSize-byte mapping; nothing uses it after deinit.
        // A late kick signal cannot reach it: run() clears this thread's kvm_run pointer before
        // returning, and kicks only signal threads inside run().
        munmap(UnsafeMutableRawPointer(kvmRun), mmapSize)
        Syscall.close(fd)
    }

    /// A Sendable handle another thread uses to make `run()` return `.interrupted`.
    public var kicker: VCPUKicker { VCPUKicker(state: kickState) }

    /// Runs the guest until the next exit and decodes it. The corresponding ioctl is `KVM_RUN`.
    ///
    /// EINTR (a kick or another signal) is `.interrupted`, not an error. Any pending IN/MMIO-read
    /// or MSR response must have been supplied (`completeIOIn`, `completeMMIORead`, ...) before.
    public func run() throws(KVMError) -> VCPUExit {
        let thread = pthread_self()
        if signalUnblockedOn.map({ pthread_equal($0, thread) == 0 }) ?? true {
            var set = sigset_t()
            sigemptyset(&set)
            sigaddset(&set, Self.kickSignal)
            pthread_sigmask(SIG_UNBLOCK, &set, nil)
            signalUnblockedOn = thread
        }
        // The handler's pointer is set before the thread becomes kickable, so every kick signal
        // finds this kvm_run.
        ckvm_set_thread_run(kvmRun)
        guard kickState.enter() else {
            // A pending kick: honour it without entering the guest. Its signal, if it already
            // arrived, set immediate_exit; clear it so the kick is not honoured twice.
            ckvm_run_set_immediate_exit(kvmRun, 0)
            ckvm_set_thread_run(nil)
            lastExit = .interrupted
            return .interrupted
        }
        let result = ckvm_ioctl_val(fd, ckvm_KVM_RUN, 0)
        let error = Glibc.errno
        let interrupted = result < 0 && error == EINTR
        kickState.leave(interrupted: interrupted) {
            if interrupted { ckvm_run_set_immediate_exit(kvmRun, 0) }
        }
        ckvm_set_thread_run(nil)
        if result < 0 {
            guard error == EINTR else {
                lastExit = nil
                throw KVMError(operation: "KVM_RUN", errno: error, detail: "vCPU \(id)")
            }
            lastExit = .interrupted
            return .interrupted
        }
        let exit = VCPUExit.decode(kvmRun, mappingSize: mmapSize)
        lastExit = exit
        return exit
    }

    /// Supplies the data of the `.ioIn` exit `run()` just returned (`size × count` bytes,
    /// little-endian; shorter data is zero-padded). The guest receives it when it runs next.
    public func completeIOIn(_ data: [UInt8]) {
        guard case .ioIn = lastExit else {
            preconditionFailure("completeIOIn after \(String(describing: lastExit)), not after an .ioIn exit")
        }
        let range = VCPUExit.ioDataRange(kvmRun, mappingSize: mmapSize)
        // SAFETY: `range` lies inside the kvm_run mapping (ioDataRange clips it).
        let area = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(kvmRun) + range.lowerBound, count: range.count)
        for i in 0..<area.count { area[i] = i < data.count ? data[i] : 0 }
    }

    /// Supplies `value` (little-endian, truncated to the access size) for a single-item `.ioIn`.
    public func completeIOIn(value: UInt32) {
        completeIOIn(withUnsafeBytes(of: value.littleEndian) { Array($0) })
    }

    /// Supplies the data of the `.mmioRead` exit `run()` just returned (little-endian, up to 8
    /// bytes; shorter data is zero-padded). The guest receives it when it runs next.
    public func completeMMIORead(_ data: [UInt8]) {
        guard case .mmioRead(_, let size) = lastExit else {
            preconditionFailure("completeMMIORead after \(String(describing: lastExit)), not after an .mmioRead exit")
        }
        // SAFETY: mmio.data is an 8-byte array inside kvm_run; size <= 8 (decode clamps it).
        let area = UnsafeMutableBufferPointer(start: ckvm_run_mmio_data(kvmRun), count: 8)
        for i in 0..<8 { area[i] = i < min(size, data.count) ? data[i] : 0 }
    }

    /// Supplies `value` for an `.mmioRead` (little-endian, truncated to the access size).
    public func completeMMIORead(value: UInt64) {
        completeMMIORead(withUnsafeBytes(of: value.littleEndian) { Array($0) })
    }

    /// Answers the `.rdmsr` exit `run()` just returned with `value` (clears the error flag).
    public func completeRDMSR(value: UInt64) {
        guard case .rdmsr = lastExit else {
            preconditionFailure("completeRDMSR after \(String(describing: lastExit)), not after an .rdmsr exit")
        }
        ckvm_run_set_msr_error(kvmRun, 0)
        ckvm_run_set_msr_data(kvmRun, value)
    }

    /// Makes the `.rdmsr` or `.wrmsr` exit `run()` just returned raise #GP in the guest.
    public func failMSRAccess() {
        switch lastExit {
        case .rdmsr, .wrmsr: ckvm_run_set_msr_error(kvmRun, 1)
        default: preconditionFailure("failMSRAccess after \(String(describing: lastExit)), not after an MSR exit")
        }
    }

    /// Answers the `.hypercall` exit `run()` just returned with `result` (the guest's RAX).
    public func completeHypercall(result: UInt64) {
        guard case .hypercall = lastExit else {
            preconditionFailure("completeHypercall after \(String(describing: lastExit)), not after a .hypercall exit")
        }
        ckvm_run_set_hypercall_ret(kvmRun, result)
    }

    /// The guest TSC frequency in kHz. The corresponding ioctl is `KVM_GET_TSC_KHZ`.
    public func tscKHz() throws(KVMError) -> UInt32 {
        UInt32(try Syscall.ioctl(fd, ckvm_KVM_GET_TSC_KHZ, name: "KVM_GET_TSC_KHZ"))
    }

    /// Sets the CPUID table the guest sees (at CPL0; CPL3 CPUID is native on the PVM host).
    /// The corresponding ioctl is `KVM_SET_CPUID2`.
    public func setCPUID(_ entries: [CPUIDEntry]) throws(KVMError) {
        let fd = self.fd
        _ = try CPUIDEntry.withCPUID2Buffer(capacity: entries.count, entries: entries) { pointer throws(KVMError) in
            try Syscall.ioctl(fd, ckvm_KVM_SET_CPUID2, pointer, name: "KVM_SET_CPUID2")
        }
    }

    /// The CPUID table set with `setCPUID`. The corresponding ioctl is `KVM_GET_CPUID2`.
    public func cpuid() throws(KVMError) -> [CPUIDEntry] {
        let fd = self.fd
        return try CPUIDEntry.withCPUID2Buffer(capacity: 256) { pointer throws(KVMError) in
            try Syscall.ioctl(fd, ckvm_KVM_GET_CPUID2, pointer, name: "KVM_GET_CPUID2")
        }
    }

    /// Enables `capability` on this vCPU. The corresponding ioctl is `KVM_ENABLE_CAP` on the
    /// vCPU fd.
    public func enableCapability(_ capability: Capability, arguments: [UInt64] = [], flags: UInt32 = 0) throws(KVMError) {
        var c = EnableCapability.make(capability, arguments: arguments, flags: flags)
        try Syscall.ioctl(fd, ckvm_KVM_ENABLE_CAP, &c, name: "KVM_ENABLE_CAP", detail: "capability \(capability.rawValue)")
    }

    /// This vCPU's binary statistics (`insn_emulation`, `exits`, `io_exits`, ...).
    /// The corresponding ioctl is `KVM_GET_STATS_FD`.
    public func statistics() throws(KVMError) -> BinaryStatistics {
        let statsFD = try Syscall.ioctl(fd, ckvm_KVM_GET_STATS_FD, name: "KVM_GET_STATS_FD")
        return try BinaryStatistics(fd: statsFD)
    }
}
