import PARISC
import Testing

/// The recovery counter (CR0) exactly as the manual defines it: with PSW R = 1 it counts down
/// once per completed, non-nullified instruction; when its most significant bit becomes 1,
/// interruption 3 is taken before the next instruction, with IIAOQ = that instruction and its
/// successor. Lockstep's own epoch counter (`progress`) uses the same rule whatever PSW R is.
@Suite("PA-RISC recovery counter and epochs")
struct RecoveryCounterTests {
    static let start = CodeImage.start

    @Test("CR0 = N - 1 traps after exactly N instructions", arguments: [1, 2, 37, 1000])
    func exactCount(n: Int) throws {
        let image = try CodeImage()
        try image.place(Array(repeating: Words.addi1r3, count: 1100) + [Words.halt], at: Self.start)
        try image.vector(3, [Words.halt])
        image.cpu.state.psw = PSW.q | PSW.r
        image.cpu.recoveryCounter = UInt32(n - 1)
        #expect(try image.cpu.run(budget: 10_000) == .halted)
        let state = image.cpu.state
        #expect(state[gr: 3] == UInt32(n), "instructions completed before the trap")
        #expect(state[cr: 18] == Self.start + 4 * UInt32(n), "IIAOQ front = the next instruction")
        #expect(state.iiaoqBack == Self.start + 4 * UInt32(n) + 4, "IIAOQ back = its successor")
        #expect(state[cr: 22] == PSW.q | PSW.r, "IPSW")
        #expect(state.iaoqFront == CodeImage.vectors + 3 * 32 + 4, "vector 3 ran its HALT")
        #expect(image.cpu.recoveryCounter == 0xFFFF_FFFF, "CR0 at the trap")
        #expect(image.cpu.progress == UInt64(n) + 1, "epoch progress: N + the handler's HALT")
    }

    @Test("nullified instructions are not counted; the trap before one keeps IPSW N")
    func nullifiedNotCounted() throws {
        let image = try CodeImage()
        try image.place(Array(repeating: [Words.cmpclrAlways, Words.addi1r4], count: 50).flatMap { $0 },
                        at: Self.start)
        try image.vector(3, [Words.halt])
        image.cpu.state.psw = PSW.q | PSW.r
        image.cpu.recoveryCounter = 9
        #expect(try image.cpu.run(budget: 1000) == .halted)
        let state = image.cpu.state
        #expect(state[gr: 4] == 0, "every addi was nullified")
        #expect(state[cr: 18] == Self.start + 8 * 9 + 4, "trap before the 10th (nullified) addi")
        #expect(state[cr: 22] & PSW.n != 0, "IPSW N: the instruction stays nullified after RFI")
        #expect(image.cpu.progress == 11)
    }

    @Test("a trap before a delay slot: IIAOQ = the delay slot and the branch target")
    func delaySlot() throws {
        let image = try CodeImage()
        try image.place([Words.branch256, Words.nop], at: Self.start)
        try image.place([Words.nop], at: Self.start + 0x100)
        try image.vector(3, [Words.halt])
        image.cpu.state.psw = PSW.q | PSW.r
        image.cpu.recoveryCounter = 0
        #expect(try image.cpu.run(budget: 100) == .halted)
        #expect(image.cpu.state[cr: 18] == Self.start + 4)
        #expect(image.cpu.state.iiaoqBack == Self.start + 0x100)
    }

    @Test("the recovery counter trap has priority over a pending external interrupt")
    func priorityOverExternal() throws {
        let image = try CodeImage()
        try image.place([Words.addi1r3], at: Self.start)
        try image.vector(3, [Words.halt])
        try image.vector(4, [Words.halt])
        image.cpu.state.psw = PSW.q | PSW.r | PSW.i
        image.cpu.state[cr: 15] = 0x8000_0000
        image.cpu.externalInterruptRequests = 0x8000_0000
        image.cpu.recoveryCounter = 0xFFFF_FFFF
        #expect(try image.cpu.run(budget: 100) == .halted)
        #expect(image.cpu.state.iaoqFront == CodeImage.vectors + 3 * 32 + 4, "interruption 3 won")
        #expect(image.cpu.externalInterruptRequests == 0x8000_0000, "the external one stays pending")
        #expect(image.cpu.state[gr: 3] == 0)
    }

    @Test("both due after the same instruction: 3 before 4")
    func bothDueTogether() throws {
        let image = try CodeImage()
        try image.place([Words.mtctlR1EIEM, Words.addi1r3], at: Self.start)
        try image.vector(3, [Words.halt])
        try image.vector(4, [Words.halt])
        image.cpu.state.psw = PSW.q | PSW.r | PSW.i
        image.cpu.state[gr: 1] = 0x8000_0000
        image.cpu.externalInterruptRequests = 0x8000_0000
        image.cpu.recoveryCounter = 0
        #expect(try image.cpu.run(budget: 100) == .halted)
        #expect(image.cpu.state.iaoqFront == CodeImage.vectors + 3 * 32 + 4)
        #expect(image.cpu.state[cr: 18] == Self.start + 4)
    }

    @Test("a budget beyond the end of the 64-bit count runs to the end, not zero instructions")
    func budgetPastTheEndOfTheCount() throws {
        let image = try CodeImage()
        try image.place(Array(repeating: Words.addi1r3, count: 5) + [Words.halt], at: Self.start)
        #expect(try image.cpu.run(budget: 1) == .budgetExhausted)
        #expect(try image.cpu.run(budget: .max) == .halted)
        #expect(image.cpu.state[gr: 3] == 5)
    }

    @Test("RFI with R still set and CR0 still negative re-traps at once (RFI is not counted)")
    func reTrap() throws {
        let image = try CodeImage()
        try image.place(Array(repeating: Words.addi1r3, count: 10), at: Self.start)
        try image.vector(3, [Words.addi1r5, Words.rfi])
        image.cpu.state.psw = PSW.q | PSW.r
        image.cpu.recoveryCounter = 0xFFFF_FFFF
        #expect(try image.cpu.run(budget: 100) == .budgetExhausted)
        #expect(image.cpu.state[gr: 5] == 50, "50 traps of two handler instructions each")
        #expect(image.cpu.state[gr: 3] == 0, "the interrupted program never advanced")
        #expect(image.cpu.state[cr: 18] == Self.start)
    }

    @Test("a handler that reloads CR0 gets an exact epoch every time")
    func reload() throws {
        let image = try CodeImage()
        try image.place(Array(repeating: Words.addi1r3, count: 1000), at: Self.start)
        try image.vector(3, [Words.addi1r5, Words.mtctlR6CR0, Words.rfi])
        image.cpu.state.psw = PSW.q | PSW.r
        image.cpu.state[gr: 6] = 9
        image.cpu.recoveryCounter = 9
        // Each epoch: 10 program instructions + 3 handler instructions (RFI runs with R = 0).
        #expect(try image.cpu.run(budget: 130) == .budgetExhausted)
        #expect(image.cpu.state[gr: 3] == 100)
        #expect(image.cpu.state[gr: 5] == 10)
    }

    @Test("SSM setting R is not counted; the instructions after it are")
    func ssmNotCounted() throws {
        let image = try CodeImage()
        try image.place([Words.ssmR] + Array(repeating: Words.addi1r3, count: 20), at: Self.start)
        try image.vector(3, [Words.halt])
        image.cpu.recoveryCounter = 4
        #expect(try image.cpu.run(budget: 100) == .halted)
        #expect(image.cpu.state[gr: 3] == 5)
        #expect(image.cpu.state[cr: 18] == Self.start + 4 + 4 * 5)
    }

    @Test("MTCTL CR0 with R set: the written value holds after the MTCTL")
    func mtctlWhileCounting() throws {
        let image = try CodeImage()
        try image.place([Words.mtctlR6CR0] + Array(repeating: Words.addi1r3, count: 20), at: Self.start)
        try image.vector(3, [Words.halt])
        image.cpu.state.psw = PSW.q | PSW.r
        image.cpu.state[gr: 6] = 2
        image.cpu.recoveryCounter = 1000
        #expect(try image.cpu.run(budget: 100) == .halted)
        #expect(image.cpu.state[gr: 3] == 3)
    }

    @Test("MFCTL CR0 reads the count down so far")
    func mfctl() throws {
        let image = try CodeImage()
        try image.place(Array(repeating: Words.addi1r3, count: 5) + [Words.mfctlCR0r11, Words.halt],
                        at: Self.start)
        image.cpu.state.psw = PSW.q | PSW.r
        image.cpu.recoveryCounter = 100
        #expect(try image.cpu.run(budget: 100) == .halted)
        #expect(image.cpu.state[gr: 11] == 95)
        #expect(image.cpu.recoveryCounter == 93, "the MFCTL and the HALT counted too")
    }

    @Test("an instruction that traps is not counted")
    func trapNotCounted() throws {
        let image = try CodeImage()
        try image.place([Words.breakWord], at: Self.start)
        try image.vector(9, [Words.halt])
        image.cpu.state.psw = PSW.q | PSW.r
        image.cpu.recoveryCounter = 5
        #expect(try image.cpu.run(budget: 100) == .halted)
        #expect(image.cpu.recoveryCounter == 5, "neither the BREAK nor the handler (R = 0) counted")
        #expect(image.cpu.progress == 1, "only the handler's HALT made progress")
    }

    @Test("run(budget:) runs exactly the budget of counted instructions, whatever PSW R is",
          arguments: [0 as UInt32, PSW.r])
    func epochBudget(r: UInt32) throws {
        let image = try CodeImage()
        try image.place(Array(repeating: [Words.cmpclrAlways, Words.addi1r4], count: 50).flatMap { $0 },
                        at: Self.start)
        image.cpu.state.psw = PSW.q | r
        image.cpu.recoveryCounter = 1000
        #expect(try image.cpu.run(budget: 10) == .budgetExhausted)
        #expect(image.cpu.progress == 10)
        #expect(image.cpu.state.iaoqFront == Self.start + 8 * 9 + 4, "stopped before the nullified addi")
        #expect(image.cpu.state.nullifyNext)
        #expect(image.cpu.recoveryCounter == (r != 0 ? 990 : 1000))
        #expect(try image.cpu.run(budget: 10) == .budgetExhausted)
        #expect(image.cpu.progress == 20)
        #expect(image.cpu.state[gr: 4] == 0)
    }
}
