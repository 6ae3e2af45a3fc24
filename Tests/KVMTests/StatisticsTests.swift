import KVM
import Testing

@Suite("binary statistics", .serialized, .enabled(if: KVMHost.available, "needs a usable /dev/kvm"))
struct StatisticsTests {
    /// Runs `1: dec %cx; jnz 1b; out %al,$0x10; hlt` with CX = `iterations` and returns how much
    /// `insn_emulation` grew until the OUT exit.
    func emulatedInstructions(iterations: UInt64) throws -> UInt64? {
        let guest = try RealModeGuest(code: [0x49, 0x75, 0xFD, 0xE6, 0x10, 0xF4])
        var regs = try guest.vcpu.registers()
        regs.rcx = iterations
        try guest.vcpu.setRegisters(regs)
        let stats = try guest.vcpu.statistics()
        guard let before = try stats.value(named: "insn_emulation") else { return nil }
        #expect(try guest.runToExit() == .ioOut(port: 0x10, size: 1, count: 1, data: [0]))
        let after = try #require(try stats.value(named: "insn_emulation"))
        return after - before
    }

    @Test("the vCPU stats fd has descriptors and insn_emulation counts emulated instructions")
    func insnEmulation() throws {
        let guest = try RealModeGuest(code: [0xF4])
        let stats = try guest.vcpu.statistics()
        #expect(!stats.descriptors.isEmpty)
        #expect(stats.descriptor(named: "exits") != nil)
        #expect(try stats.value(named: "no_such_statistic") == nil)
        let vmStats = try guest.vm.statistics()
        #expect(!vmStats.descriptors.isEmpty)
        print("KVMTests: vCPU stats id \(stats.id), \(stats.descriptors.count) descriptors; VM \(vmStats.descriptors.count)")

        let exitsBefore = try #require(try stats.value(named: "exits"))
        #expect(try guest.runToExit() == .hlt)
        #expect(try #require(try stats.value(named: "exits")) > exitsBefore)

        guard let short = try emulatedInstructions(iterations: 100) else {
            print("KVMTests: this KVM has no insn_emulation statistic; skipping the count check")
            return
        }
        print("KVMTests: insn_emulation grew by \(short) for 100 iterations")
        guard short > 0 else {
            print("KVMTests: this KVM runs real mode natively (insn_emulation stayed 0); skipping the exact count")
            return
        }
        let long = try #require(try emulatedInstructions(iterations: 1000))
        // Every real-mode instruction is emulated on the PVM host: 2 per iteration (dec, jnz)
        // plus the OUT that exits.
        #expect(short == 2 * 100 + 1)
        #expect(long == 2 * 1000 + 1)
    }
}
