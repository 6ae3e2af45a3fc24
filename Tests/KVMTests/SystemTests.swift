import KVM
import Testing

@Suite("KVM system, VM and vCPU", .serialized, .enabled(if: KVMHost.available, "needs a usable /dev/kvm"))
struct SystemTests {
    @Test("API version is 12 and the capabilities Lockstep relies on are present")
    func apiVersionAndCapabilities() throws {
        let system = try KVMSystem()
        #expect(system.apiVersion == 12)
        #expect(system.checkExtension(.userMemory) == 1)
        #expect(system.checkExtension(.immediateExit) > 0)
        #expect(system.checkExtension(.setGuestDebug) > 0)
        #expect(system.checkExtension(.vcpuEvents) > 0)
        #expect(system.checkExtension(.debugRegisters) > 0)
        #expect(system.checkExtension(.memorySlots) > 0)
        // An unknown capability number is 0, not an error.
        #expect(system.checkExtension(Capability(rawValue: 0xFFFF)) == 0)
        #expect(try system.vcpuMmapSize() >= 4096)

        let cpuid = try system.supportedCPUID()
        #expect(cpuid.contains { $0.function == 0 })
        // Leaf 0x40000000 is KVM's signature "KVMKVMKVM\0\0\0" in EBX, ECX, EDX.
        let signature = try #require(cpuid.first { $0.function == 0x4000_0000 })
        let bytes = [signature.ebx, signature.ecx, signature.edx].flatMap { word in
            (0..<4).map { UInt8(truncatingIfNeeded: word >> (8 * $0)) }
        }
        #expect(String(decoding: bytes.prefix(9), as: UTF8.self) == "KVMKVMKVM")

        let msrs = try system.msrIndexList()
        #expect(!msrs.isEmpty)
        #expect(msrs.contains(0x10))  // IA32_TSC
        print("KVMTests: \(cpuid.count) CPUID leaves, \(msrs.count) MSRs in the index list")
    }

    @Test("a VM with a memory slot and a vCPU; registers round-trip through KVM")
    func vmSlotAndVCPU() throws {
        let system = try KVMSystem()
        let vm = try system.createVM()
        #expect(vm.checkExtension(.userMemory) == 1)
        let memory = try HostMemory(size: 0x10000)
        let region = try vm.setUserMemoryRegion(slot: 0, guestPhysicalAddress: 0, memory: memory)
        #expect(vm.memoryRegions[0] == region)
        #expect(region.pageCount == 16)
        let vcpu = try vm.createVCPU(id: 0)
        #expect(vcpu.mmapSize == (try system.vcpuMmapSize()))

        var regs = Registers()
        regs.rax = 0x1111_2222_3333_4444
        regs.r15 = 0xFEDC_BA98_7654_3210
        regs.rip = 0x1234
        regs.rsp = 0x8000
        regs.rflags = 0x202
        try vcpu.setRegisters(regs)
        #expect(try vcpu.registers() == regs)

        var sregs = try vcpu.specialRegisters()
        sregs.cs = .realMode(selector: 0x100, code: true)
        sregs.idt = DescriptorTable(base: 0, limit: 0x3FF)
        try vcpu.setSpecialRegisters(sregs)
        let back = try vcpu.specialRegisters()
        #expect(back.cs.base == 0x1000 && back.cs.selector == 0x100)
        #expect(back.idt == sregs.idt)

        let cpuid = try system.supportedCPUID()
        try vcpu.setCPUID(cpuid)
        // KVM_GET_CPUID2 returns the table KVM uses, which it adjusts (on the PVM host leaves
        // 1, 7 and 0xD differ from what was set); KVM's own leaves come back unchanged.
        let readBack = try vcpu.cpuid()
        print("KVMTests: KVM_SET_CPUID2 \(cpuid.count) leaves, KVM_GET_CPUID2 \(readBack.count) leaves, "
              + "\(Set(readBack).symmetricDifference(Set(cpuid)).count) entries differ")
        #expect(readBack.first { $0.function == 0x4000_0000 } == cpuid.first { $0.function == 0x4000_0000 })
        #expect(readBack.first { $0.function == 0 } == cpuid.first { $0.function == 0 })
        #expect(try vcpu.tscKHz() > 0)
        #expect(try vcpu.mpState() == .runnable)

        try vm.deleteUserMemoryRegion(slot: 0)
        #expect(vm.memoryRegions.isEmpty)
    }
}
