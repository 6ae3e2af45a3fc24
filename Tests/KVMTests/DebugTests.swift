import KVM
import Testing

@Suite("guest debug", .serialized, .enabled(if: KVMHost.available, "needs a usable /dev/kvm"))
struct DebugTests {
    /// mov $5,%cx; 1: dec %cx; jnz 1b; out %al,$0x10; hlt
    static let loop: [UInt8] = [0xB9, 0x05, 0x00, 0x49, 0x75, 0xFD, 0xE6, 0x10, 0xF4]

    /// Single-steps `loop` until its OUT exit and returns the RIPs the steps reported.
    func stepLoop() throws -> [UInt64] {
        let guest = try RealModeGuest(code: Self.loop)
        try guest.vcpu.setGuestDebug(.singleStep)
        var pcs: [UInt64] = []
        for _ in 0..<100 {
            let exit = try guest.runToExit()
            guard case .debug(let debug) = exit else {
                #expect(exit == .ioOut(port: 0x10, size: 1, count: 1, data: [0]))
                return pcs
            }
            #expect(debug.exception == 1)
            #expect(debug.isSingleStep)
            pcs.append(debug.pc)
        }
        Issue.record("the single-stepped loop did not reach its OUT")
        return pcs
    }

    @Test("single-stepping counts instructions exactly and repeatably")
    func singleStepCount() throws {
        let first = try stepLoop()
        // mov, then 5 × (dec, jnz): 11 single-step exits, each reporting the next RIP; the OUT
        // then exits to user space instead of stepping.
        let base = UInt64(RealModeGuest.codeAddress)
        let expected: [UInt64] = [base + 3] + Array(repeating: [base + 4, base + 3], count: 4).flatMap { $0 }
            + [base + 4, base + 6]
        #expect(first == expected)
        #expect(try stepLoop() == first)
    }

    @Test("a hardware execute breakpoint at CPL0 fires once per pass; stepping over re-arms it")
    func hardwareBreakpoint() throws {
        let guest = try RealModeGuest(code: [
            0xB9, 0x03, 0x00,  // mov $3, %cx
            0x31, 0xC0,        // xor %ax, %ax
            0x40,              // 1: inc %ax      <- breakpoint (offset 5)
            0x49,              // dec %cx
            0x75, 0xFC,        // jnz 1b
            0xE7, 0x10,        // out %ax, $0x10
            0xF4,              // hlt
        ])
        let site = UInt64(RealModeGuest.codeAddress + 5)
        try guest.vcpu.setGuestDebug(.hardwareBreakpoints([HardwareBreakpoint(address: site)]))
        var hits = 0
        var end: VCPUExit?
        for _ in 0..<20 {
            let exit = try guest.runToExit()
            guard case .debug(let debug) = exit else {
                end = exit
                break
            }
            #expect(debug.pc == site)
            #expect(debug.hardwareBreakpointsHit == [0])
            #expect(try guest.vcpu.registers().rax == UInt64(hits))
            hits += 1
            let step = try guest.vcpu.stepOverHardwareBreakpoint()
            guard case .debug(let stepped) = step else {
                Issue.record("stepping over the breakpoint gave \(step)")
                return
            }
            #expect(stepped.pc == site + 1)
        }
        #expect(hits == 3)
        #expect(end == .ioOut(port: 0x10, size: 2, count: 1, data: [3, 0]))
        #expect(guest.vcpu.guestDebug.control.contains(.useHardwareBreakpoints))
    }
}
