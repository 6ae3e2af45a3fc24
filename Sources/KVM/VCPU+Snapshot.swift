extension VCPU {
    /// The MSRs of `KVMSystem.msrIndexList()` this vCPU can read (computed once: KVM_GET_MSRS
    /// stops at the first unreadable MSR, which is then left out).
    public func snapshotMSRIndices() throws(KVMError) -> [UInt32] {
        if let readableMSRs { return readableMSRs }
        var remaining = try vm.system.msrIndexList()
        var readable: [UInt32] = []
        while !remaining.isEmpty {
            let read = try msrs(remaining)
            readable += read.map(\.index)
            // read.count < remaining.count: remaining[read.count] is unreadable; skip it.
            remaining = Array(remaining.dropFirst(read.count + 1))
        }
        readableMSRs = readable
        return readable
    }

    /// Captures all vCPU state KVM holds. Take it while the vCPU is stopped (between `run()`
    /// calls, after completing any pending IN/MMIO read).
    public func snapshot() throws(KVMError) -> VCPUSnapshot {
        let indices = try snapshotMSRIndices()
        let hasXSAVE = stateExtensions.xsave
        let hasXCRS = stateExtensions.xcrs
        return VCPUSnapshot(
            registers: try registers(),
            specialRegisters: try specialRegisters(),
            fpu: try fpu(),
            xsave: hasXSAVE ? try xsave() : nil,
            extendedControlRegisters: hasXCRS ? try extendedControlRegisters() : [],
            msrs: try msrs(indices),
            debugRegisters: try debugRegisters(),
            events: try events(),
            mpState: try mpState())
    }

    /// Restores `snapshot` into this vCPU (the same one or a fresh one in another VM) and
    /// returns the MSR indices KVM refused to set (on the PVM host `0x4b564d06`,
    /// MSR_KVM_ASYNC_PF_INT, which is harmless).
    ///
    /// The order is the one that worked on the PVM host: SREGS, MP_STATE, REGS, XCRS, XSAVE (or
    /// FPU), MSRS, DEBUGREGS, VCPU_EVENTS (with `VALID_SHADOW | VALID_NMI_PENDING` so the
    /// interrupt shadow and NMI state come back too).
    @discardableResult
    public func restore(_ snapshot: VCPUSnapshot) throws(KVMError) -> [UInt32] {
        try setSpecialRegisters(snapshot.specialRegisters)
        try setMPState(snapshot.mpState)
        try setRegisters(snapshot.registers)
        if !snapshot.extendedControlRegisters.isEmpty {
            try setExtendedControlRegisters(snapshot.extendedControlRegisters)
        }
        if let xsave = snapshot.xsave {
            try setXSAVE(xsave)
        } else {
            try setFPU(snapshot.fpu)
        }
        var refused: [UInt32] = []
        var remaining = snapshot.msrs
        while !remaining.isEmpty {
            let accepted = try setMSRs(remaining)
            if accepted < remaining.count { refused.append(remaining[accepted].index) }
            remaining = Array(remaining.dropFirst(accepted + 1))
        }
        try setDebugRegisters(snapshot.debugRegisters)
        var events = snapshot.events
        events.flags |= VCPUEvents.validShadow | VCPUEvents.validNMIPending
        try setEvents(events)
        return refused
    }
}
