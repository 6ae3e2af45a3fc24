import KVM
import Testing

@Suite("vCPU snapshot and restore", .serialized, .enabled(if: KVMHost.available, "needs a usable /dev/kvm"))
struct SnapshotTests {
    /// A xorshift16 PRNG in BX that stores every value into a ring at 0x4000–0x4FFF, sums them
    /// in DI and writes each to port 0x10, forever.
    static let prng: [UInt8] = [
        0xBB, 0xE1, 0xAC,        // mov $0xACE1, %bx
        0xBE, 0x00, 0x40,        // mov $0x4000, %si
        0x89, 0xD8,              // 1: mov %bx, %ax
        0xC1, 0xE0, 0x07,        // shl $7, %ax
        0x31, 0xC3,              // xor %ax, %bx
        0x89, 0xD8,              // mov %bx, %ax
        0xC1, 0xE8, 0x09,        // shr $9, %ax
        0x31, 0xC3,              // xor %ax, %bx
        0x89, 0xD8,              // mov %bx, %ax
        0xC1, 0xE0, 0x08,        // shl $8, %ax
        0x31, 0xC3,              // xor %ax, %bx
        0x89, 0x1C,              // mov %bx, (%si)
        0x83, 0xC6, 0x02,        // add $2, %si
        0x81, 0xE6, 0xFF, 0x0F,  // and $0x0FFF, %si
        0x81, 0xCE, 0x00, 0x40,  // or $0x4000, %si
        0x01, 0xDF,              // add %bx, %di
        0x89, 0xD8,              // mov %bx, %ax
        0xE7, 0x10,              // out %ax, $0x10
        0xEB, 0xD6,              // jmp 1b
    ]

    struct Step: Equatable {
        var exit: VCPUExit
        var registers: Registers
    }

    func step(_ guest: RealModeGuest) throws -> Step {
        Step(exit: try guest.runToExit(), registers: try guest.vcpu.registers())
    }

    @Test("all vCPU state and RAM restored into a fresh VM continue identically; rewinding works too")
    func snapshotRestore() throws {
        let a = try RealModeGuest(code: Self.prng)
        for _ in 0..<10 { _ = try step(a) }

        // Put recognisable values into state the guest program does not touch.
        // XMM3 goes in through XSAVE with XSTATE_BV.SSE set: KVM_SET_FPU writes the legacy
        // area without marking SSE in use, so KVM_GET_XSAVE2 (and the guest) would not see it.
        let pattern: [UInt8] = (0..<16).map { UInt8($0 * 17) }
        var xsave = try a.vcpu.xsave()
        xsave.bytes.replaceSubrange(XSAVEState.xmmOffset + 3 * 16 ..< XSAVEState.xmmOffset + 4 * 16, with: pattern)
        xsave.bytes[512] |= 2  // XSTATE_BV bit 1: SSE
        try a.vcpu.setXSAVE(xsave)
        #expect(try a.vcpu.fpu().xmm[3] == pattern)
        #expect(try a.vcpu.setMSRs([MSREntry(index: 0x175, value: 0x1234_5678)]) == 1)  // IA32_SYSENTER_ESP
        var debugRegisters = try a.vcpu.debugRegisters()
        debugRegisters.db[0] = 0xDEAD_0000
        try a.vcpu.setDebugRegisters(debugRegisters)

        let snapshot = try a.vcpu.snapshot()
        let ram = a.memory.contents()
        #expect(snapshot.xsave.map { $0.xmm(3) } == pattern)
        #expect(snapshot.msrs.contains(MSREntry(index: 0x175, value: 0x1234_5678)))
        #expect(snapshot.mpState == .runnable)
        if let xsave = snapshot.xsave { #expect(xsave.bytes.count == a.vcpu.xsaveSize) }

        let b = try RealModeGuest(code: [])
        b.memory.replaceContents(with: ram)
        let refused = try b.vcpu.restore(snapshot)
        print("KVMTests: snapshot has \(snapshot.msrs.count) MSRs; KVM refused to restore \(refused.map { "0x" + String($0, radix: 16) })")
        #expect(refused.count <= 1)

        #expect(try b.vcpu.registers() == snapshot.registers)
        #expect(try b.vcpu.fpu().xmm[3] == pattern)
        #expect(try b.vcpu.xsave() == snapshot.xsave)
        #expect(try b.vcpu.msrs([0x175]) == [MSREntry(index: 0x175, value: 0x1234_5678)])
        #expect(try b.vcpu.debugRegisters().db[0] == 0xDEAD_0000)
        let restoredSpecial = try b.vcpu.specialRegisters()
        #expect(restoredSpecial.cs == snapshot.specialRegisters.cs)
        #expect(restoredSpecial.cr0 == snapshot.specialRegisters.cr0)

        var trace: [Step] = []
        for i in 0..<50 {
            let sa = try step(a), sb = try step(b)
            #expect(sa == sb, "diverged at exit \(i)")
            trace.append(sa)
        }
        #expect(a.memory.contents() == b.memory.contents())
        #expect(trace.allSatisfy { if case .ioOut(0x10, 2, 1, _) = $0.exit { true } else { false } })

        // Rewind A to the snapshot: it replays the same 50 exits.
        a.memory.replaceContents(with: ram)
        try a.vcpu.restore(snapshot)
        for i in 0..<50 {
            #expect(try step(a) == trace[i], "rewound run diverged at exit \(i)")
        }
    }

    @Test("vCPU events, MP state, XCRs and debug registers round-trip")
    func stateRoundTrip() throws {
        let guest = try RealModeGuest(code: [0xF4])
        let vcpu = guest.vcpu
        var events = try vcpu.events()
        events.interrupt.shadow = 0
        events.nmi.masked = true
        events.flags = VCPUEvents.validShadow | VCPUEvents.validNMIPending
        try vcpu.setEvents(events)
        let eventsBack = try vcpu.events()
        #expect(eventsBack.nmi.masked)
        #expect(eventsBack.exception == events.exception)

        let xcrs = try vcpu.extendedControlRegisters()
        #expect(xcrs.first { $0.index == 0 }.map { $0.value & 1 } == 1)  // XCR0.x87 is always set
        try vcpu.setExtendedControlRegisters(xcrs)
        #expect(try vcpu.extendedControlRegisters() == xcrs)

        try vcpu.setMPState(.runnable)
        #expect(try vcpu.mpState() == .runnable)
        #expect(MPState(rawValue: 77) == .unsupported(77))
        #expect(MPState(rawValue: MPState.halted.rawValue) == .halted)
    }
}
