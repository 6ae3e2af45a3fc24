import KVM
import Testing

/// Whether this host can run the KVM tests; prints the reason once when it cannot.
enum KVMHost {
    static let unavailabilityReason: String? = KVMSystem.unavailabilityReason()

    /// True if KVM is usable; the first time it is not, prints why.
    static let available: Bool = {
        if let reason = unavailabilityReason {
            print("KVMTests: skipping every test that needs KVM: \(reason)")
            return false
        }
        return true
    }()
}

/// A one-vCPU VM in real mode at CPL0 with RAM at guest-physical 0, code at 0x1000 (CS = 0,
/// IP = 0x1000), stack at 0x7000, and the IVT at 0 for interrupt tests.
///
/// On the PVM host real mode is interpreted by KVM's emulator (~500 ns/instruction), which is
/// fine for these short programs.
final class RealModeGuest {
    static let codeAddress = 0x1000
    static let stackTop: UInt64 = 0x7000

    let system: KVMSystem
    let vm: VirtualMachine
    let vcpu: VCPU
    let memory: HostMemory

    init(code: [UInt8], memorySize: Int = 0x10000, slotFlags: MemoryRegionFlags = [],
         configureVM: (VirtualMachine) throws -> Void = { _ in }) throws {
        system = try KVMSystem()
        vm = try system.createVM()
        try configureVM(vm)
        memory = try HostMemory(size: memorySize)
        try vm.setUserMemoryRegion(slot: 0, guestPhysicalAddress: 0, memory: memory, flags: slotFlags)
        vcpu = try vm.createVCPU(id: 0)
        try vcpu.setCPUID(try system.supportedCPUID())
        memory.write(code, at: Self.codeAddress)
        try Self.enterRealMode(vcpu)
    }

    static func enterRealMode(_ vcpu: VCPU) throws {
        var sregs = try vcpu.specialRegisters()
        sregs.cs = .realMode(selector: 0, code: true)
        sregs.ds = .realMode(selector: 0)
        sregs.es = .realMode(selector: 0)
        sregs.fs = .realMode(selector: 0)
        sregs.gs = .realMode(selector: 0)
        sregs.ss = .realMode(selector: 0)
        try vcpu.setSpecialRegisters(sregs)
        var regs = Registers()
        regs.rip = UInt64(codeAddress)
        regs.rsp = stackTop
        try vcpu.setRegisters(regs)
    }

    /// Points real-mode interrupt vector `vector` at `0000:(codeAddress + offset)`.
    func setInterruptVector(_ vector: Int, codeOffset: Int) {
        memory.store(UInt16(Self.codeAddress + codeOffset), at: vector * 4)
        memory.store(UInt16(0), at: vector * 4 + 2)
    }

    /// Runs until an exit that is not `.interrupted` (a stray signal), at most `limit` times.
    func runToExit(limit: Int = 100) throws -> VCPUExit {
        for _ in 0..<limit {
            let exit = try vcpu.run()
            if exit != .interrupted { return exit }
        }
        return .interrupted
    }
}
