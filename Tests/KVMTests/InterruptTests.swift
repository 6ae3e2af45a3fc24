import KVM
import Testing

@Suite("interrupt injection without an irqchip", .serialized, .enabled(if: KVMHost.available, "needs a usable /dev/kvm"))
struct InterruptTests {
    static let program: [UInt8] = [
        0xFB,              // 0x00 sti
        0x90,              // 0x01 nop
        0xE6, 0x10,        // 0x02 out %al, $0x10     <- inject here
        0xB9, 0x32, 0x00,  // 0x04 mov $50, %cx
        0xE2, 0xFE,        // 0x07 1: loop 1b
        0xE6, 0x12,        // 0x09 out %al, $0x12
        0xF4,              // 0x0b hlt
    ] + [UInt8](repeating: 0, count: 0x40 - 0x0C) + [
        0xB0, 0x20,        // 0x40 handler: mov $0x20, %al
        0xE6, 0x11,        // 0x42 out %al, $0x11
        0xCF,              // 0x44 iret
    ] + [UInt8](repeating: 0, count: 0x50 - 0x45) + [
        0xB0, 0x02,        // 0x50 NMI handler: mov $0x02, %al
        0xE6, 0x11,        // 0x52 out %al, $0x11
        0xCF,              // 0x54 iret
    ]

    @Test("KVM_INTERRUPT at an exit with IF=1 enters the real-mode IVT handler at the next run")
    func injectAtExit() throws {
        let guest = try RealModeGuest(code: Self.program)
        guest.setInterruptVector(0x20, codeOffset: 0x40)
        let vcpu = guest.vcpu
        #expect(try guest.runToExit() == .ioOut(port: 0x10, size: 1, count: 1, data: [0]))
        #expect(vcpu.interruptFlag)
        #expect(vcpu.readyForInterruptInjection)
        #expect(vcpu.canInjectInterrupt)
        try vcpu.interrupt(vector: 0x20)
        #expect(try guest.runToExit() == .ioOut(port: 0x11, size: 1, count: 1, data: [0x20]))
        // The interrupt frame (IP, CS, FLAGS) holds the instruction after the OUT.
        let sp = Int(try vcpu.registers().rsp)
        #expect(guest.memory.load(UInt16.self, at: sp) == UInt16(RealModeGuest.codeAddress + 4))
        #expect(guest.memory.load(UInt16.self, at: sp + 2) == 0)
        #expect(try guest.runToExit() == .ioOut(port: 0x12, size: 1, count: 1, data: [0x20]))
        #expect(try guest.runToExit() == .hlt)
    }

    @Test("with IF=0 injection is not possible; the interrupt window opens after STI")
    func interruptWindow() throws {
        let guest = try RealModeGuest(code: [
            0xFA,              // cli
            0xE6, 0x10,        // out %al, $0x10
            0xFB,              // sti
            0xB9, 0xB8, 0x0B,  // mov $3000, %cx
            0xE2, 0xFE,        // 1: loop 1b
            0xE6, 0x12,        // out %al, $0x12
            0xF4,              // hlt
        ] + [UInt8](repeating: 0, count: 0x40 - 12) + [0xB0, 0x20, 0xE6, 0x11, 0xCF])
        guest.setInterruptVector(0x20, codeOffset: 0x40)
        let vcpu = guest.vcpu
        #expect(try guest.runToExit() == .ioOut(port: 0x10, size: 1, count: 1, data: [0]))
        #expect(!vcpu.interruptFlag)
        #expect(!vcpu.canInjectInterrupt)
        vcpu.requestInterruptWindow = true
        #expect(vcpu.requestInterruptWindow)
        #expect(try guest.runToExit() == .irqWindowOpen)
        #expect(vcpu.canInjectInterrupt)
        vcpu.requestInterruptWindow = false
        try vcpu.interrupt(vector: 0x20)
        #expect(try guest.runToExit() == .ioOut(port: 0x11, size: 1, count: 1, data: [0x20]))
        let cx = try vcpu.registers().rcx & 0xFFFF
        #expect(cx > 0 && cx < 3000)  // taken inside the loop
        #expect(try guest.runToExit() == .ioOut(port: 0x12, size: 1, count: 1, data: [0x20]))
    }

    @Test("KVM_NMI enters vector 2")
    func nmi() throws {
        let guest = try RealModeGuest(code: Self.program)
        guest.setInterruptVector(2, codeOffset: 0x50)
        #expect(try guest.runToExit() == .ioOut(port: 0x10, size: 1, count: 1, data: [0]))
        try guest.vcpu.nmi()
        #expect(try guest.runToExit() == .ioOut(port: 0x11, size: 1, count: 1, data: [0x02]))
    }
}
