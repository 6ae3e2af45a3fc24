import KVM
import Testing

@Suite("dirty page logging", .serialized, .enabled(if: KVMHost.available, "needs a usable /dev/kvm"))
struct DirtyLogTests {
    static let program: [UInt8] = [
        0xB8, 0x00, 0x03, 0x8E, 0xD8,              // mov $0x0300,%ax; mov %ax,%ds
        0xC6, 0x06, 0x00, 0x00, 0x01,              // movb $1, (0)          page 3
        0xB8, 0x00, 0x05, 0x8E, 0xD8,              // mov $0x0500,%ax; mov %ax,%ds
        0xC6, 0x06, 0x10, 0x00, 0x02,              // movb $2, (0x10)       page 5
        0xB8, 0x00, 0x09, 0x8E, 0xD8,              // mov $0x0900,%ax; mov %ax,%ds
        0xC7, 0x06, 0xFE, 0x0F, 0x03, 0x03,        // movw $0x0303, (0xFFE) page 9
        0xE6, 0x10,                                // out %al, $0x10
        0xB8, 0x00, 0x07, 0x8E, 0xD8,              // mov $0x0700,%ax; mov %ax,%ds
        0xC6, 0x06, 0x23, 0x01, 0x04,              // movb $4, (0x123)      page 7
        0xE6, 0x10,                                // out %al, $0x10
        0xF4,                                      // hlt
    ]

    @Test("the dirty log reports exactly the pages the guest wrote, and resets on each read")
    func dirtyBitmap() throws {
        let guest = try RealModeGuest(code: Self.program, slotFlags: .logDirtyPages)
        let vm = guest.vm
        // Host writes (loading the program) are not guest writes.
        #expect(try vm.dirtyLog(slot: 0).isEmpty)
        #expect(try guest.runToExit() == .ioOut(port: 0x10, size: 1, count: 1, data: [0]))
        let log = try vm.dirtyLog(slot: 0)
        #expect(log.pageCount == 16)
        #expect(log.dirtyPages == [3, 5, 9])
        #expect(try vm.dirtyLog(slot: 0).isEmpty)
        #expect(try guest.runToExit() == .ioOut(port: 0x10, size: 1, count: 1, data: [0]))
        #expect(try vm.dirtyLog(slot: 0).dirtyPages == [7])
        #expect(guest.memory.load(UInt16.self, at: 0x9FFE) == 0x0303)
    }

    @Test("with MANUAL_DIRTY_LOG_PROTECT2, reading does not reset; KVM_CLEAR_DIRTY_LOG does")
    func manualProtect() throws {
        let guest = try RealModeGuest(code: Self.program, slotFlags: .logDirtyPages) { vm in
            guard vm.checkExtension(.manualDirtyLogProtect2) > 0 else { return }
            try vm.enableCapability(.manualDirtyLogProtect2, arguments: [1])  // ENABLE, not INITIALLY_SET
        }
        try #require(guest.vm.checkExtension(.manualDirtyLogProtect2) > 0, "KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 missing")
        let vm = guest.vm
        #expect(try guest.runToExit() == .ioOut(port: 0x10, size: 1, count: 1, data: [0]))
        let log = try vm.dirtyLog(slot: 0)
        #expect(log.dirtyPages == [3, 5, 9])
        #expect(try vm.dirtyLog(slot: 0).dirtyPages == [3, 5, 9])
        try vm.clearDirtyLog(slot: 0, bitmap: DirtyBitmap(pageCount: 16, dirtyPages: [3, 5]))
        #expect(try vm.dirtyLog(slot: 0).dirtyPages == [9])
        try vm.clearDirtyLog(slot: 0, bitmap: log)
        #expect(try vm.dirtyLog(slot: 0).isEmpty)
        #expect(try guest.runToExit() == .ioOut(port: 0x10, size: 1, count: 1, data: [0]))
        #expect(try vm.dirtyLog(slot: 0).dirtyPages == [7])
    }
}
