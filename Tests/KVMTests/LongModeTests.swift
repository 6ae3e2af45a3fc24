import KVM
import Testing

@Suite("64-bit guests", .serialized, .enabled(if: KVMHost.available, "needs a usable /dev/kvm"))
struct LongModeTests {
    @Test("special registers set up 64-bit long mode at CPL0 with identity paging")
    func longModeCPL0() throws {
        let guest = try RealModeGuest(code: [
            0x48, 0xB8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,  // mov $0x1122334455667788, %rax
            0xE7, 0x10,                                                  // out %eax, $0x10
            0x48, 0x89, 0x04, 0x25, 0x00, 0x80, 0x00, 0x00,              // mov %rax, 0x8000
            0xF4,                                                        // hlt
        ], memorySize: 0x20_0000)
        // PML4 at 0x2000 -> PDPT at 0x3000 -> PD at 0x4000 with one 2 MiB page at 0 (P|RW|PS).
        guest.memory.store(UInt64(0x3000 | 0x3), at: 0x2000)
        guest.memory.store(UInt64(0x4000 | 0x3), at: 0x3000)
        guest.memory.store(UInt64(0x0 | 0x83), at: 0x4000)

        var sregs = try guest.vcpu.specialRegisters()
        sregs.cr3 = 0x2000
        sregs.cr4 = 0x20                 // PAE
        sregs.cr0 = 0x8000_0031          // PG | NE | ET | PE
        sregs.efer = 0x500               // LME | LMA
        sregs.cs = Segment(base: 0, limit: 0xFFFF_FFFF, selector: 0x8, type: 0xB, l: true, g: true)
        let data = Segment(base: 0, limit: 0xFFFF_FFFF, selector: 0x10, type: 0x3, db: true, g: true)
        sregs.ds = data; sregs.es = data; sregs.fs = data; sregs.gs = data; sregs.ss = data
        try guest.vcpu.setSpecialRegisters(sregs)
        let back = try guest.vcpu.specialRegisters()
        #expect(back.cs.l && back.efer & 0x400 != 0)

        #expect(try guest.runToExit() == .ioOut(port: 0x10, size: 4, count: 1, data: [0x88, 0x77, 0x66, 0x55]))
        #expect(try guest.vcpu.registers().rax == 0x1122_3344_5566_7788)
        #expect(try guest.runToExit() == .hlt)
        #expect(guest.memory.load(UInt64.self, at: 0x8000) == 0x1122_3344_5566_7788)
    }
}
