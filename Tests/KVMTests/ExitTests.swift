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

    @Test("an unknown exit reason decodes to .unsupported(raw); a synthetic IO page decodes like a live one")
    func unsupportedExitReason() {
        var page = [UInt8](repeating: 0, count: 4096)
        let reasonOffset = VCPUExit.exitReasonOffset
        #expect(reasonOffset == 8)  // struct kvm_run ABI
        func setReason(_ raw: UInt32) {
            for i in 0..<4 { page[reasonOffset + i] = UInt8(truncatingIfNeeded: raw >> (8 * UInt32(i))) }
        }
        setReason(0xDEAD)
        #expect(VCPUExit.decode(kvmRun: page) == .unsupported(0xDEAD))
        setReason(41)  // past every KVM_EXIT_* this module knows
        #expect(VCPUExit.decode(kvmRun: page) == .unsupported(41))

        // KVM_EXIT_IO (2): the union starts at byte 32: direction, size, port, count, data_offset.
        setReason(2)
        page[32] = 1                        // KVM_EXIT_IO_OUT
        page[33] = 1                        // size
        page[34] = 0xF8; page[35] = 0x03    // port 0x3F8
        page[36] = 2                        // count
        page[40] = 0x00; page[41] = 0x08    // data_offset 0x800
        page[0x800] = 0x48; page[0x801] = 0x69
        #expect(VCPUExit.decode(kvmRun: page) == .ioOut(port: 0x3F8, size: 1, count: 2, data: [0x48, 0x69]))

        // KVM_EXIT_HLT (5) and KVM_EXIT_SHUTDOWN (8) carry no data.
        setReason(5)
        #expect(VCPUExit.decode(kvmRun: page) == .hlt)
        setReason(8)
        #expect(VCPUExit.decode(kvmRun: page) == .shutdown)
    }
}

@Suite("coalesced MMIO", .serialized, .enabled(if: KVMHost.available, "needs a usable /dev/kvm"))
struct CoalescedMMIOTests {
    @Test("writes to a coalesced zone are buffered without exits and drained in order; reads exit")
    func coalescedWrites() throws {
        let guest = try RealModeGuest(code: [
            0xB8, 0x00, 0x30,                    // mov $0x3000, %ax
            0x8E, 0xD8,                          // mov %ax, %ds          (DS base 0x30000)
            0xC6, 0x06, 0x00, 0x00, 0x11,        // movb $0x11, (0)
            0xC7, 0x06, 0x04, 0x00, 0x22, 0x33,  // movw $0x3322, (4)
            0xC6, 0x06, 0x08, 0x00, 0x44,        // movb $0x44, (8)
            0xA0, 0x0C, 0x00,                    // mov (0xC), %al        (a read: exits)
            0xE6, 0x10,                          // out %al, $0x10
            0xF4,                                // hlt
        ])
        try #require(guest.vm.checkExtension(.coalescedMMIO) > 0, "KVM_CAP_COALESCED_MMIO missing")
        try guest.vm.registerCoalescedMMIO(address: 0x30000, size: 0x1000)
        #expect(guest.vcpu.drainCoalescedAccesses().isEmpty)
        #expect(try guest.runToExit() == .mmioRead(address: 0x3000C, size: 1))
        #expect(guest.vcpu.drainCoalescedAccesses() == [
            CoalescedAccess(address: 0x30000, data: [0x11], isPIO: false),
            CoalescedAccess(address: 0x30004, data: [0x22, 0x33], isPIO: false),
            CoalescedAccess(address: 0x30008, data: [0x44], isPIO: false),
        ])
        #expect(guest.vcpu.drainCoalescedAccesses().isEmpty)
        guest.vcpu.completeMMIORead(value: 0x5A)
        #expect(try guest.runToExit() == .ioOut(port: 0x10, size: 1, count: 1, data: [0x5A]))
        try guest.vm.unregisterCoalescedMMIO(address: 0x30000, size: 0x1000)
    }
}
