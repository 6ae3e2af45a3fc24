import MachineCore
import PARISC
import Testing

/// Interruptions, external interrupts, the interval timer and the "no handler" stops.
@Suite("PA-RISC interruptions and interval timer")
struct InterruptionTests {
    static let start = CodeImage.start

    @Test("a pending unmasked external interrupt is taken before the next instruction")
    func externalInterrupt() throws {
        let image = try CodeImage()
        try image.place(Array(repeating: Words.addi1r3, count: 10), at: Self.start)
        try image.vector(4, [Words.halt])
        image.cpu.state.psw = PSW.q | PSW.i
        image.cpu.state[cr: 15] = 0x2000_0000
        #expect(try image.cpu.run(budget: 3) == .budgetExhausted)
        image.cpu.raiseExternalInterrupt(bit: 2)
        #expect(image.cpu.externalInterruptRequests == 0x2000_0000)
        #expect(try image.cpu.run(budget: 5) == .halted)
        let state = image.cpu.state
        #expect(state[gr: 3] == 3)
        #expect(state[cr: 18] == Self.start + 12, "IIAOQ front = the next instruction")
        #expect(state.iiaoqBack == Self.start + 16)
        #expect(state[cr: 22] == PSW.q | PSW.i, "IPSW")
        #expect(state.psw == 0, "PSW cleared: I, Q, R off")
    }

    @Test("masked (EIEM) or disabled (PSW I) interrupts stay pending",
          arguments: [(PSW.q | PSW.i, 0 as UInt32), (PSW.q, 0x8000_0000 as UInt32)])
    func masked(psw: UInt32, eiem: UInt32) throws {
        let image = try CodeImage()
        try image.place(Array(repeating: Words.addi1r3, count: 10), at: Self.start)
        try image.vector(4, [Words.halt])
        image.cpu.state.psw = psw
        image.cpu.state[cr: 15] = eiem
        image.cpu.externalInterruptRequests = 0x8000_0000
        #expect(try image.cpu.run(budget: 5) == .budgetExhausted)
        #expect(image.cpu.state[gr: 3] == 5)
        #expect(image.cpu.externalInterruptRequests == 0x8000_0000)
    }

    @Test("SSM I with an interrupt pending: taken right after the SSM")
    func enableTakesPending() throws {
        let image = try CodeImage()
        try image.place([Words.ssmI, Words.addi1r3], at: Self.start)
        try image.vector(4, [Words.halt])
        image.cpu.state[cr: 15] = 0x8000_0000
        image.cpu.externalInterruptRequests = 0x8000_0000
        #expect(try image.cpu.run(budget: 10) == .halted)
        #expect(image.cpu.state[cr: 18] == Self.start + 4)
        #expect(image.cpu.state[gr: 3] == 0)
    }

    @Test("diag 100 is the idle hint only with I set and nothing unmasked pending")
    func idleHint() throws {
        let image = try CodeImage()
        try image.place([Words.diagIdle, Words.addi1r3], at: Self.start)
        image.cpu.state.psw = PSW.q | PSW.i
        #expect(try image.cpu.run(budget: 10) == .idle)
        #expect(image.cpu.progress == 1)
        #expect(image.cpu.state.iaoqFront == Self.start + 4)
    }

    @Test("CR16 reads virtual time / 4 through the environment")
    func intervalTimerRead() throws {
        let image = try CodeImage()
        try image.place(Array(repeating: Words.addi1r3, count: 100) + [Words.mfctlCR16r7, Words.halt],
                        at: Self.start)
        let environment = RecordingEnvironment()
        image.cpu.environment = environment
        #expect(try image.cpu.run(budget: 1000) == .halted)
        #expect(image.cpu.state[gr: 7] == 25, "100 instructions = 100 ns = 25 ticks")
        #expect(environment.reads == [25])
        environment.override = 0x1_2345_6789
        image.cpu.state.iaoqFront = Self.start + 400
        image.cpu.state.iaoqBack = Self.start + 404
        #expect(try image.cpu.run(budget: 1000) == .halted)
        #expect(image.cpu.state[gr: 7] == 0x2345_6789, "the environment's value (low 32 bits) wins")
    }

    @Test("a refused CR16 read stops the run with the environment's error")
    func refusedRead() throws {
        let image = try CodeImage()
        try image.place([Words.mfctlCR16r7], at: Self.start)
        let environment = RecordingEnvironment()
        environment.refuse = true
        image.cpu.environment = environment
        #expect(throws: EnvironmentError.self) { try image.cpu.run(budget: 10) }
        #expect(image.cpu.state.iaoqFront == Self.start, "the MFCTL did not complete")
    }

    @Test("MTCTL CR16 arms the comparator; the match sets EIRR bit 0 at a boundary")
    func comparator() throws {
        let image = try CodeImage()
        try image.place([Words.mtctlR8CR16, Words.halt], at: Self.start)
        image.cpu.state[gr: 8] = 1000
        #expect(try image.cpu.run(budget: 10) == .halted)
        #expect(image.cpu.timerDeadline == VirtualTime(nanoseconds: 4000))
        image.cpu.setTime(VirtualTime(nanoseconds: 3999))
        #expect(image.cpu.externalInterruptRequests == 0)
        image.cpu.setTime(VirtualTime(nanoseconds: 4000))
        #expect(image.cpu.externalInterruptRequests == 0x8000_0000)
        #expect(image.cpu.timerDeadline == nil, "one match per comparator write")
    }

    @Test("a comparator less than 1 µs ahead waits for the next 2^32-tick round (as QEMU)")
    func comparatorWrap() throws {
        let image = try CodeImage()
        try image.place([Words.mtctlR8CR16, Words.halt], at: Self.start)
        image.cpu.state[gr: 8] = 100
        #expect(try image.cpu.run(budget: 10) == .halted)
        #expect(image.cpu.timerDeadline == VirtualTime(nanoseconds: 400 + (1 << 34)))
    }

    @Test("with IVA = 0 an illegal instruction stops with one line naming word, name, address")
    func noHandler() throws {
        let image = try CodeImage(iva: 0)
        try image.place([Words.addi1r3, Words.illegal], at: Self.start)
        let stop = try image.cpu.run(budget: 10)
        #expect(stop == .crashed(reason: "illegal instruction (8) at 0x00001004: instruction word "
            + "0x1c000000; no interruption handler is installed (IVA = 0)"))
    }

    @Test("with IVA = 0 a data access outside RAM and devices names the address")
    func dataFaultNoHandler() throws {
        let image = try CodeImage(iva: 0)
        try image.place([Words.ldwR9R10], at: Self.start)
        image.cpu.state[gr: 9] = 0x0020_0000
        let stop = try image.cpu.run(budget: 10)
        #expect(stop == .crashed(reason: "data fault (15) at 0x00001000: instruction word 0x0d20108a "
            + "(LDWS), data address 0x00200000 is neither RAM nor a device; no interruption "
            + "handler is installed (IVA = 0)"))
    }

    @Test("an instruction fetch outside RAM")
    func fetchFault() throws {
        let image = try CodeImage(iva: 0)
        image.cpu.state.iaoqFront = 0x0020_0000
        image.cpu.state.iaoqBack = 0x0020_0004
        let stop = try image.cpu.run(budget: 10)
        #expect(stop == .crashed(reason: "instruction fetch fault (6) at 0x00200000: instruction "
            + "fetch outside RAM; no interruption handler is installed (IVA = 0)"))
    }

    @Test("a vector that traps again without progress is an interruption storm, not a hang")
    func storm() throws {
        let image = try CodeImage()
        try image.place([Words.illegal], at: Self.start)
        try image.vector(8, [Words.illegal])
        guard case .crashed(let reason) = try image.cpu.run(budget: 10) else {
            Issue.record("expected a crash")
            return
        }
        #expect(reason.hasPrefix("interruption storm: illegal instruction (8)"))
    }

    @Test("a store to code invalidates its predecoded instruction")
    func selfModifyingCode() throws {
        let image = try CodeImage()
        // 0x1000: ldw 0(r9),r10 ; stw r10,0(r9) with r9 -> 0x1010; 0x1008: nop; 0x100c: nop;
        // 0x1010: addi 1,r3,r3 (run once first so it is cached), then replaced by addi 1,r5,r5.
        try image.place([Words.ldwR9R10, Words.stwR10R9, Words.nop, Words.nop, Words.addi1r3, Words.halt],
                        at: Self.start)
        image.cpu.state.iaoqFront = Self.start + 16
        image.cpu.state.iaoqBack = Self.start + 20
        #expect(try image.cpu.run(budget: 1) == .budgetExhausted)
        #expect(image.cpu.state[gr: 3] == 1)
        image.cpu.state.iaoqFront = Self.start
        image.cpu.state.iaoqBack = Self.start + 4
        try image.place([Words.addi1r5], at: 0x2000)
        image.cpu.state[gr: 9] = 0x2000
        #expect(try image.cpu.run(budget: 1) == .budgetExhausted)   // r10 = addi 1,r5,r5
        image.cpu.state[gr: 9] = Self.start + 16
        #expect(try image.cpu.run(budget: 10) == .halted)
        #expect(image.cpu.state[gr: 5] == 1, "the new instruction ran")
        #expect(image.cpu.state[gr: 3] == 1, "the old one did not run again")
    }
}

/// The environment boundary as a backup sees it: records each CR16 proposal and can substitute
/// the value (as a backup substitutes the primary's) or refuse (a divergence).
final class RecordingEnvironment: GuestEnvironment {
    var reads: [UInt64] = []
    var override: UInt64?
    var refuse = false
    var console: [UInt8] = []
    var requests: [BlockRequest] = []

    func environmentValue(_ read: EnvironmentRead, proposed: UInt64) throws(EnvironmentError)
        -> UInt64
    {
        if refuse { throw EnvironmentError("backup log has no \(read) value here") }
        reads.append(proposed)
        return override ?? proposed
    }

    func consoleOutput(_ bytes: [UInt8]) { console += bytes }
    func submitBlockRequest(_ request: BlockRequest) { requests.append(request) }
}
