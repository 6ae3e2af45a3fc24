import CKVM

extension VCPU {
    /// Queues external interrupt `vector` for delivery at the next `run()` (no in-kernel
    /// irqchip). Only valid when `canInjectInterrupt`; otherwise set `requestInterruptWindow`
    /// and wait for `.irqWindowOpen`. The corresponding ioctl is `KVM_INTERRUPT`.
    public func interrupt(vector: UInt8) throws(KVMError) {
        var c = kvm_interrupt(irq: UInt32(vector))
        try Syscall.ioctl(fd, ckvm_KVM_INTERRUPT, &c, name: "KVM_INTERRUPT", detail: "vector \(vector)")
    }

    /// Queues an NMI (guest vector 2). The corresponding ioctl is `KVM_NMI`.
    public func nmi() throws(KVMError) {
        try Syscall.ioctl(fd, ckvm_KVM_NMI, name: "KVM_NMI")
    }

    /// `kvm_run.ready_for_interrupt_injection` after the last exit: KVM can inject an interrupt
    /// at the next entry.
    public var readyForInterruptInjection: Bool { ckvm_run_ready_for_interrupt_injection(kvmRun) != 0 }

    /// `kvm_run.if_flag` after the last exit: the guest's RFLAGS.IF.
    public var interruptFlag: Bool { ckvm_run_if_flag(kvmRun) != 0 }

    /// Whether `interrupt(vector:)` may be called now (`ready_for_interrupt_injection && if_flag`).
    public var canInjectInterrupt: Bool { readyForInterruptInjection && interruptFlag }

    /// `kvm_run.request_interrupt_window`: when set, `run()` returns `.irqWindowOpen` as soon as
    /// the guest can take an interrupt (at CPL0 on the PVM host, at the next emulation batch).
    public var requestInterruptWindow: Bool {
        get { ckvm_run_request_interrupt_window(kvmRun) != 0 }
        set { ckvm_run_set_request_interrupt_window(kvmRun, newValue ? 1 : 0) }
    }

    /// `kvm_run.immediate_exit`: when set, the next `run()` returns `.interrupted` without
    /// entering the guest. Kicks set it; `run()` clears it after an EINTR.
    public var immediateExit: Bool {
        get { ckvm_run_immediate_exit(kvmRun) != 0 }
        set { ckvm_run_set_immediate_exit(kvmRun, newValue ? 1 : 0) }
    }
}
