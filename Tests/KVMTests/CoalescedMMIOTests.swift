import KVM
import Testing

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
