import KVM
import MachineCore

extension X86Machine {
    /// SHA-256 over everything two replicas in the same state share and nothing host-dependent:
    /// guest RAM; RAX-R15, RIP, RFLAGS; CR0, CR3, CR4, EFER; the CS/DS/ES/FS/GS/SS/TR
    /// selectors and the FS/GS bases; every device's state; the virtual clock (boundary time and
    /// progress), progress and the RDRAND generator.
    public func stateDigest() throws -> StateDigest {
        try stateDigest(ram: try memoryDigest.digest())
    }

    /// `stateDigest()` with every page of RAM hashed again.
    public func fullStateDigest() throws -> StateDigest {
        try stateDigest(ram: MemoryDigest.recomputed(memory))
    }

    func stateDigest(ram: StateDigest) throws -> StateDigest {
        let registers: Registers
        let sregs: SpecialRegisters
        do {
            registers = try vcpu.registers()
            sregs = try vcpu.specialRegisters()
        } catch { throw X86Error.kvm(error) }
        return stateDigest(ram: ram, registers: registers, sregs: sregs, devices: devices.encodedStates())
    }

    /// The state digest from the vCPU's registers and the devices' encoded states already read
    /// (a snapshot has them: it need not ask KVM again or encode the devices twice).
    func stateDigest(ram: StateDigest, registers: Registers, sregs: SpecialRegisters,
                     devices deviceStates: [(String, [UInt8])]) -> StateDigest {
        var hasher = StateHasher()
        hasher.add("ram", ram.bytes)
        for number in 0..<16 { hasher.add("gpr\(number)", registers[generalPurpose: number]) }
        hasher.add("rip", registers.rip)
        hasher.add("rflags", registers.rflags)
        hasher.add("cr0", sregs.cr0)
        hasher.add("cr3", sregs.cr3)
        hasher.add("cr4", sregs.cr4)
        hasher.add("efer", sregs.efer)
        for (name, segment) in [("cs", sregs.cs), ("ds", sregs.ds), ("es", sregs.es), ("fs", sregs.fs),
                                ("gs", sregs.gs), ("ss", sregs.ss), ("tr", sregs.tr)] {
            hasher.add(name, UInt64(segment.selector))
        }
        hasher.add("fs.base", sregs.fs.base)
        hasher.add("gs.base", sregs.gs.base)
        for (name, bytes) in deviceStates { hasher.add(name, bytes) }
        let clockState = clock.state
        hasher.add("clock.base-time", clockState.baseTime.nanoseconds)
        hasher.add("clock.base-progress", clockState.baseProgress)
        hasher.add("progress", progress)
        hasher.add("random", random.state)
        return hasher.finalize()
    }
}
