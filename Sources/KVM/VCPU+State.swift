import CKVM

#if canImport(Glibc)
import Glibc
#endif

extension VCPU {
    /// The general-purpose registers, RIP and RFLAGS. The corresponding ioctl is `KVM_GET_REGS`.
    public func registers() throws(KVMError) -> Registers {
        var c = kvm_regs()
        try Syscall.ioctl(fd, ckvm_KVM_GET_REGS, &c, name: "KVM_GET_REGS")
        return Registers(c)
    }

    /// Sets the general-purpose registers, RIP and RFLAGS. The corresponding ioctl is
    /// `KVM_SET_REGS`.
    public func setRegisters(_ registers: Registers) throws(KVMError) {
        var c = registers.c
        try Syscall.ioctl(fd, ckvm_KVM_SET_REGS, &c, name: "KVM_SET_REGS")
    }

    /// Segments, descriptor tables, control registers, EFER and APIC base.
    /// The corresponding ioctl is `KVM_GET_SREGS`.
    public func specialRegisters() throws(KVMError) -> SpecialRegisters {
        var c = kvm_sregs()
        try Syscall.ioctl(fd, ckvm_KVM_GET_SREGS, &c, name: "KVM_GET_SREGS")
        return SpecialRegisters(c)
    }

    /// Sets segments, descriptor tables, control registers, EFER and APIC base.
    /// The corresponding ioctl is `KVM_SET_SREGS`.
    public func setSpecialRegisters(_ registers: SpecialRegisters) throws(KVMError) {
        var c = registers.c
        try Syscall.ioctl(fd, ckvm_KVM_SET_SREGS, &c, name: "KVM_SET_SREGS")
    }

    /// The x87/SSE state in FXSAVE layout. The corresponding ioctl is `KVM_GET_FPU`.
    public func fpu() throws(KVMError) -> FPUState {
        var c = kvm_fpu()
        try Syscall.ioctl(fd, ckvm_KVM_GET_FPU, &c, name: "KVM_GET_FPU")
        return FPUState(c)
    }

    /// Sets the x87/SSE state. The corresponding ioctl is `KVM_SET_FPU`.
    ///
    /// The kernel writes the legacy FXSAVE area without marking x87/SSE in use in XSTATE_BV, so
    /// `xsave()` (and a guest that restores its state with XRSTOR) may not see the change; use
    /// `setXSAVE` to change SSE state reliably.
    public func setFPU(_ state: FPUState) throws(KVMError) {
        var c = state.c
        try Syscall.ioctl(fd, ckvm_KVM_SET_FPU, &c, name: "KVM_SET_FPU")
    }

    /// The size of this VM's XSAVE area: `KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2)` on the VM fd, or
    /// `sizeof(struct kvm_xsave)` (4096) on kernels without it.
    public var xsaveSize: Int { stateExtensions.xsaveSize }

    /// The XSAVE area. The corresponding ioctl is `KVM_GET_XSAVE2` (or `KVM_GET_XSAVE` when the
    /// kernel lacks `KVM_CAP_XSAVE2`).
    public func xsave() throws(KVMError) -> XSAVEState {
        let hasXSAVE2 = stateExtensions.xsave2
        var bytes = [UInt8](repeating: 0, count: xsaveSize)
        let fd = self.fd
        // SAFETY: `bytes` has the size KVM_CAP_XSAVE2 reports (or sizeof(struct kvm_xsave)),
        // which is what the kernel writes; the pointer lives only for the ioctl.
        let result: Result<Int32, KVMError> = bytes.withUnsafeMutableBytes { buffer in
            Result { () throws(KVMError) in
                hasXSAVE2
                    ? try Syscall.ioctl(fd, ckvm_KVM_GET_XSAVE2, buffer.baseAddress, name: "KVM_GET_XSAVE2")
                    : try Syscall.ioctl(fd, ckvm_KVM_GET_XSAVE, buffer.baseAddress, name: "KVM_GET_XSAVE")
            }
        }
        _ = try result.get()
        return XSAVEState(bytes: bytes)
    }

    /// Sets the XSAVE area (which must be `xsaveSize` bytes, as `xsave()` returns it).
    /// The corresponding ioctl is `KVM_SET_XSAVE`.
    public func setXSAVE(_ state: XSAVEState) throws(KVMError) {
        var bytes = state.bytes
        let size = xsaveSize
        guard bytes.count == size else {
            throw KVMError(operation: "KVM_SET_XSAVE", errno: EINVAL, detail: "\(bytes.count)-byte area, KVM expects \(size)")
        }
        let fd = self.fd
        // SAFETY: `bytes` has exactly the size the kernel reads (checked above); the pointer
        // lives only for the ioctl.
        let result: Result<Int32, KVMError> = bytes.withUnsafeMutableBytes { buffer in
            Result { () throws(KVMError) in
                try Syscall.ioctl(fd, ckvm_KVM_SET_XSAVE, buffer.baseAddress, name: "KVM_SET_XSAVE")
            }
        }
        _ = try result.get()
    }

    /// The extended control registers (XCR0). The corresponding ioctl is `KVM_GET_XCRS`.
    public func extendedControlRegisters() throws(KVMError) -> [ExtendedControlRegister] {
        var c = kvm_xcrs()
        try Syscall.ioctl(fd, ckvm_KVM_GET_XCRS, &c, name: "KVM_GET_XCRS")
        let count = min(Int(c.nr_xcrs), Int(KVM_MAX_XCRS))
        // SAFETY: xcrs is a C array of KVM_MAX_XCRS kvm_xcr and `count` <= KVM_MAX_XCRS.
        return withUnsafeBytes(of: &c.xcrs) { raw in
            (0..<count).map { i in
                let xcr = raw.load(fromByteOffset: i * MemoryLayout<kvm_xcr>.stride, as: kvm_xcr.self)
                return ExtendedControlRegister(index: xcr.xcr, value: xcr.value)
            }
        }
    }

    /// Sets extended control registers (e.g. XCR0 = 7 for x87+SSE+AVX).
    /// The corresponding ioctl is `KVM_SET_XCRS`.
    public func setExtendedControlRegisters(_ registers: [ExtendedControlRegister]) throws(KVMError) {
        guard registers.count <= Int(KVM_MAX_XCRS) else {
            throw KVMError(operation: "KVM_SET_XCRS", errno: EINVAL, detail: "at most \(KVM_MAX_XCRS) XCRs")
        }
        var c = kvm_xcrs()
        c.nr_xcrs = UInt32(registers.count)
        // SAFETY: xcrs is a C array of KVM_MAX_XCRS kvm_xcr and registers.count <= KVM_MAX_XCRS
        // (checked above).
        withUnsafeMutableBytes(of: &c.xcrs) { raw in
            for (i, register) in registers.enumerated() {
                var xcr = kvm_xcr()
                xcr.xcr = register.index
                xcr.value = register.value
                raw.storeBytes(of: xcr, toByteOffset: i * MemoryLayout<kvm_xcr>.stride, as: kvm_xcr.self)
            }
        }
        try Syscall.ioctl(fd, ckvm_KVM_SET_XCRS, &c, name: "KVM_SET_XCRS")
    }

    /// Runs `body` on a `struct kvm_msrs` holding `entries`, returns the ioctl result and the
    /// entries as the kernel left them.
    private func withMSRBuffer(
        _ entries: [MSREntry], _ body: (UnsafeMutableRawPointer) throws(KVMError) -> Int32
    ) throws(KVMError) -> (Int32, [MSREntry]) {
        let header = MemoryLayout<kvm_msrs>.size
        let stride = MemoryLayout<kvm_msr_entry>.stride
        let size = header + stride * entries.count
        // SAFETY: sized for the header and every entry, freed by the defer below.
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: MemoryLayout<kvm_msrs>.alignment)
        defer { buffer.deallocate() }
        // SAFETY: `buffer` holds the kvm_msrs header and `entries.count` kvm_msr_entry, which is
        // what nmsrs tells the kernel; it is freed after the ioctl.
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        buffer.storeBytes(of: UInt32(entries.count), as: UInt32.self)
        for (i, entry) in entries.enumerated() {
            var e = kvm_msr_entry()
            e.index = entry.index
            e.data = entry.value
            buffer.storeBytes(of: e, toByteOffset: header + i * stride, as: kvm_msr_entry.self)
        }
        let result = try body(buffer)
        // SAFETY: entries are read back at the offsets they were written to, inside `buffer`.
        let out = (0..<entries.count).map { i in
            let e = buffer.load(fromByteOffset: header + i * stride, as: kvm_msr_entry.self)
            return MSREntry(index: e.index, value: e.data)
        }
        return (result, out)
    }

    /// Reads the MSRs `indices`. KVM stops at the first MSR it cannot read, so the result holds
    /// the readable prefix of `indices`. The corresponding ioctl is `KVM_GET_MSRS`.
    public func msrs(_ indices: [UInt32]) throws(KVMError) -> [MSREntry] {
        if indices.isEmpty { return [] }
        let fd = self.fd
        let (count, entries) = try withMSRBuffer(indices.map { MSREntry(index: $0, value: 0) }) { pointer throws(KVMError) in
            try Syscall.ioctl(fd, ckvm_KVM_GET_MSRS, pointer, name: "KVM_GET_MSRS")
        }
        return Array(entries.prefix(Int(count)))
    }

    /// Writes `entries` in order and returns how many KVM accepted (it stops at the first one it
    /// refuses). The corresponding ioctl is `KVM_SET_MSRS`.
    @discardableResult
    public func setMSRs(_ entries: [MSREntry]) throws(KVMError) -> Int {
        if entries.isEmpty { return 0 }
        let fd = self.fd
        let (count, _) = try withMSRBuffer(entries) { pointer throws(KVMError) in
            try Syscall.ioctl(fd, ckvm_KVM_SET_MSRS, pointer, name: "KVM_SET_MSRS")
        }
        return Int(count)
    }

    /// The guest's debug registers DR0–DR3, DR6, DR7. The corresponding ioctl is
    /// `KVM_GET_DEBUGREGS`.
    public func debugRegisters() throws(KVMError) -> DebugRegisters {
        var c = kvm_debugregs()
        try Syscall.ioctl(fd, ckvm_KVM_GET_DEBUGREGS, &c, name: "KVM_GET_DEBUGREGS")
        return DebugRegisters(c)
    }

    /// Sets the guest's debug registers. The corresponding ioctl is `KVM_SET_DEBUGREGS`.
    public func setDebugRegisters(_ registers: DebugRegisters) throws(KVMError) {
        var c = registers.c
        try Syscall.ioctl(fd, ckvm_KVM_SET_DEBUGREGS, &c, name: "KVM_SET_DEBUGREGS")
    }

    /// Pending exceptions, interrupts, NMIs and the interrupt shadow. The corresponding ioctl is
    /// `KVM_GET_VCPU_EVENTS`.
    public func events() throws(KVMError) -> VCPUEvents {
        var c = kvm_vcpu_events()
        try Syscall.ioctl(fd, ckvm_KVM_GET_VCPU_EVENTS, &c, name: "KVM_GET_VCPU_EVENTS")
        return VCPUEvents(c)
    }

    /// Sets pending events (the fields `events.flags` marks valid). The corresponding ioctl is
    /// `KVM_SET_VCPU_EVENTS`.
    public func setEvents(_ events: VCPUEvents) throws(KVMError) {
        var c = events.c
        try Syscall.ioctl(fd, ckvm_KVM_SET_VCPU_EVENTS, &c, name: "KVM_SET_VCPU_EVENTS")
    }

    /// The multiprocessing state. The corresponding ioctl is `KVM_GET_MP_STATE`.
    public func mpState() throws(KVMError) -> MPState {
        var c = kvm_mp_state()
        try Syscall.ioctl(fd, ckvm_KVM_GET_MP_STATE, &c, name: "KVM_GET_MP_STATE")
        return MPState(rawValue: c.mp_state)
    }

    /// Sets the multiprocessing state. The corresponding ioctl is `KVM_SET_MP_STATE`.
    public func setMPState(_ state: MPState) throws(KVMError) {
        var c = kvm_mp_state(mp_state: state.rawValue)
        try Syscall.ioctl(fd, ckvm_KVM_SET_MP_STATE, &c, name: "KVM_SET_MP_STATE")
    }
}

/// The `KVM_CHECK_EXTENSION` answers the vCPU state ioctls depend on.
struct StateExtensions {
    /// `KVM_CAP_XSAVE`, `KVM_CAP_XSAVE2` (whose value is the XSAVE area's size) and `KVM_CAP_XCRS`.
    let xsave: Bool
    let xsave2: Bool
    let xcrs: Bool
    /// `KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2)`, or `sizeof(struct kvm_xsave)` (4096) on kernels
    /// without it.
    let xsaveSize: Int

    init(vm: VirtualMachine) {
        let xsave2Size = Int(vm.checkExtension(.xsave2))
        xsave = vm.checkExtension(.xsave) > 0
        xsave2 = xsave2Size > 0
        xcrs = vm.checkExtension(.xcrs) > 0
        xsaveSize = max(xsave2Size, MemoryLayout<kvm_xsave>.size)
    }
}
