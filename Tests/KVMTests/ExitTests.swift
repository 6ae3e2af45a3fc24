import KVM
import Testing

@Suite("vCPU exits", .serialized, .enabled(if: KVMHost.available, "needs a usable /dev/kvm"))
struct ExitTests {
    @Test("OUT and IN exit with their data; an IN is completed before the next run; HLT")
    func portIO() throws {
        let guest = try RealModeGuest(code: [
            0xB0, 0x42,        // mov $0x42, %al
            0xE6, 0x10,        // out %al, $0x10
            0xE4, 0x11,        // in $0x11, %al
            0xE6, 0x12,        // out %al, $0x12
            0xB8, 0x34, 0x12,  // mov $0x1234, %ax
            0xBA, 0xF8, 0x03,  // mov $0x3f8, %dx
            0xEF,              // out %ax, %dx
            0xED,              // in %dx, %ax
            0xE7, 0x13,        // out %ax, $0x13
            0xF4,              // hlt
        ])
        let vcpu = guest.vcpu
        #expect(try guest.runToExit() == .ioOut(port: 0x10, size: 1, count: 1, data: [0x42]))
        #expect(try guest.runToExit() == .ioIn(port: 0x11, size: 1, count: 1))
        vcpu.completeIOIn(value: 0x99)
        #expect(try guest.runToExit() == .ioOut(port: 0x12, size: 1, count: 1, data: [0x99]))
        #expect(try guest.runToExit() == .ioOut(port: 0x3F8, size: 2, count: 1, data: [0x34, 0x12]))
        #expect(try guest.runToExit() == .ioIn(port: 0x3F8, size: 2, count: 1))
        vcpu.completeIOIn([0xCD, 0xAB])
        #expect(try guest.runToExit() == .ioOut(port: 0x13, size: 2, count: 1, data: [0xCD, 0xAB]))
        #expect(try guest.runToExit() == .hlt)
        #expect(vcpu.lastExit == .hlt)
        #expect(try vcpu.registers().rip == UInt64(RealModeGuest.codeAddress + 19))
    }

    @Test("MMIO writes and reads of unbacked guest-physical memory exit with address and data")
    func mmio() throws {
        let guest = try RealModeGuest(code: [
            0xB8, 0x00, 0x20,                    // mov $0x2000, %ax
            0x8E, 0xD8,                          // mov %ax, %ds      (DS base 0x20000: no slot)
            0xC7, 0x06, 0x10, 0x00, 0xEF, 0xBE,  // movw $0xBEEF, (0x10)
            0xA1, 0x20, 0x00,                    // mov (0x20), %ax
            0xE7, 0x10,                          // out %ax, $0x10
            0xF4,                                // hlt
        ])
        #expect(try guest.runToExit() == .mmioWrite(address: 0x20010, data: [0xEF, 0xBE]))
        #expect(try guest.runToExit() == .mmioRead(address: 0x20020, size: 2))
        guest.vcpu.completeMMIORead(value: 0x1234)
        #expect(try guest.runToExit() == .ioOut(port: 0x10, size: 2, count: 1, data: [0x34, 0x12]))
        #expect(try guest.runToExit() == .hlt)
    }

    @Test("a store to a read-only slot exits as an MMIO write and leaves the memory unchanged")
    func readOnlySlot() throws {
        let guest = try RealModeGuest(code: [
            0xB8, 0x00, 0x20,                    // mov $0x2000, %ax
            0x8E, 0xD8,                          // mov %ax, %ds
            0xC6, 0x06, 0x05, 0x00, 0x99,        // movb $0x99, (0x5)   (guest-physical 0x20005)
            0xA0, 0x05, 0x00,                    // mov (0x5), %al
            0xE6, 0x10,                          // out %al, $0x10
            0xF4,                                // hlt
        ])
        #expect(guest.system.checkExtension(.readonlyMemory) > 0)
        let rom = try HostMemory(size: 0x1000)
        rom.write([0x5A], at: 5)
        try guest.vm.setUserMemoryRegion(slot: 1, guestPhysicalAddress: 0x20000, memory: rom, flags: .readOnly)
        #expect(try guest.runToExit() == .mmioWrite(address: 0x20005, data: [0x99]))
        #expect(try guest.runToExit() == .ioOut(port: 0x10, size: 1, count: 1, data: [0x5A]))
        #expect(rom.read(at: 5, count: 1) == [0x5A])
    }

    @Test("a triple fault (an exception with no usable IDT) is a shutdown exit")
    func tripleFault() throws {
        let guest = try RealModeGuest(code: [0x0F, 0x0B])  // ud2
        // 32-bit protected mode with an empty IDT: #UD cannot be delivered -> #GP -> #DF ->
        // triple fault.
        var sregs = try guest.vcpu.specialRegisters()
        sregs.cr0 |= 1
        sregs.cs = Segment(base: 0, limit: 0xFFFF_FFFF, selector: 0x8, type: 0xB, db: true, g: true)
        for keyPath in [\SpecialRegisters.ds, \.es, \.fs, \.gs, \.ss] {
            sregs[keyPath: keyPath] = Segment(base: 0, limit: 0xFFFF_FFFF, selector: 0x10, type: 0x3, db: true, g: true)
        }
        sregs.idt = DescriptorTable(base: 0, limit: 0)
        try guest.vcpu.setSpecialRegisters(sregs)
        #expect(try guest.runToExit() == .shutdown)
    }

    @Test("RDMSR/WRMSR exit to user space for filtered and unknown MSRs; a refused access is #GP")
    func userSpaceMSR() throws {
        let guest = try RealModeGuest(code: [
            0x66, 0xB9, 0x10, 0x00, 0x00, 0x00,  // mov $0x10, %ecx        (IA32_TSC, filtered)
            0x0F, 0x32,                          // rdmsr
            0x66, 0xE7, 0x10,                    // out %eax, $0x10
            0x66, 0xB9, 0x01, 0x00, 0xDE, 0xC0,  // mov $0xC0DE0001, %ecx  (unknown)
            0x0F, 0x32,                          // rdmsr
            0x66, 0xE7, 0x11,                    // out %eax, $0x11
            0x66, 0xB8, 0xDD, 0xCC, 0xBB, 0xAA,  // mov $0xAABBCCDD, %eax
            0x66, 0xBA, 0x44, 0x33, 0x22, 0x11,  // mov $0x11223344, %edx
            0x0F, 0x30,                          // wrmsr
            0xE6, 0x12,                          // out %al, $0x12
            0x66, 0xB9, 0x02, 0x00, 0xDE, 0xC0,  // mov $0xC0DE0002, %ecx
            0x0F, 0x32,                          // rdmsr   (refused -> #GP -> vector 13)
            0xE6, 0x13,                          // out %al, $0x13 (not reached)
            0xF4,                                // hlt
        ] + [UInt8](repeating: 0, count: 15) + [
            0xB0, 0x0D,                          // 0x40: #GP handler: mov $0x0D, %al
            0xE6, 0x14,                          //       out %al, $0x14
            0xF4,                                //       hlt
        ]) { vm in
            guard vm.checkExtension(.x86UserSpaceMSR) > 0, vm.checkExtension(.x86MSRFilter) > 0 else { return }
            try vm.enableUserSpaceMSR([.unknown, .filter])
            try vm.setMSRFilter(MSRFilter(ranges: [.deny(.read, msr: 0x10)]))
        }
        try #require(guest.vm.checkExtension(.x86UserSpaceMSR) > 0, "KVM_CAP_X86_USER_SPACE_MSR missing")
        guest.setInterruptVector(13, codeOffset: 0x40)

        #expect(try guest.runToExit() == .rdmsr(index: 0x10, reason: .filter))
        guest.vcpu.completeRDMSR(value: 0x1122_3344_5566_7788)
        #expect(try guest.runToExit() == .ioOut(port: 0x10, size: 4, count: 1, data: [0x88, 0x77, 0x66, 0x55]))
        #expect(try guest.runToExit() == .rdmsr(index: 0xC0DE_0001, reason: .unknown))
        guest.vcpu.completeRDMSR(value: 0xCAFE_F00D)
        #expect(try guest.runToExit() == .ioOut(port: 0x11, size: 4, count: 1, data: [0x0D, 0xF0, 0xFE, 0xCA]))
        #expect(try guest.runToExit() == .wrmsr(index: 0xC0DE_0001, value: 0x1122_3344_AABB_CCDD, reason: .unknown))
        #expect(try guest.runToExit() == .ioOut(port: 0x12, size: 1, count: 1, data: [0xDD]))
        #expect(try guest.runToExit() == .rdmsr(index: 0xC0DE_0002, reason: .unknown))
        guest.vcpu.failMSRAccess()
        #expect(try guest.runToExit() == .ioOut(port: 0x14, size: 1, count: 1, data: [0x0D]))
    }
}
