import MachineCore
import PARISC
import Testing

/// One row of the per-instruction table: an instruction word (assembled with
/// hppa-linux-gnu-as 2.40; the assembly is in `assembly`), the state before, and the state after
/// exactly one counted instruction.
///
/// The instruction sits at 0x1000 (IAOQ 0x1000/0x1004 plus the privilege level), data at 0x2000,
/// and IVA = 0x4000 with NOPs in every vector. A trapping instruction is not counted, so the
/// counted instruction is then the NOP at the vector: a trap row expects IAOQ front =
/// IVA + 32·n + 4, IIAOQ = the trapping instruction, IIR = its word and IPSW = the PSW before.
struct InstructionCase: Sendable, CustomTestStringConvertible {
    var word: UInt32
    var assembly: String
    // Before.
    var gr: [Int: UInt32] = [:]
    var memory: [UInt32: UInt32] = [:]
    var sar: UInt32 = 0
    var carryBorrow: UInt32 = 0
    var divideV = false
    var privilege: UInt32 = 0
    var system: UInt32 = PSW.q
    var spaces: [Int: UInt32] = [:]
    var cr: [Int: UInt32] = [:]
    var eirr: UInt32 = 0
    var cr0: UInt32?
    // After.
    var expectGR: [Int: UInt32] = [:]
    var expectMemory: [UInt32: UInt32] = [:]
    var nullifies = false
    var back: UInt32?
    var trap: Int?
    var expectCarryBorrow: UInt32?
    var expectV: Bool?
    var expectSystem: UInt32?
    var expectSAR: UInt32?
    var expectSpaces: [Int: UInt32] = [:]
    var expectCR: [Int: UInt32] = [:]
    var expectEIRR: UInt32?
    var iasqBack: UInt32?
    var stop: PARISCStop = .budgetExhausted

    var testDescription: String { assembly }

    static let codeAddress: UInt32 = 0x1000
    static let vectors: UInt32 = 0x4000
    static let nop: UInt32 = 0x0800_0240   // or r0,r0,r0

    /// Builds the machine state, runs one counted instruction and checks every expectation.
    func check() throws {
        let memory = try GuestMemory(size: 1 << 20)
        let cpu = PARISCCPU(memory: memory)
        try memory.store(word, at: GuestAddress(UInt64(Self.codeAddress)), order: .big)
        try memory.store(Self.nop, at: GuestAddress(UInt64(Self.codeAddress + 4)), order: .big)
        for n in 0..<32 {
            for i in 0..<8 {
                try memory.store(Self.nop, at: GuestAddress(UInt64(Self.vectors + UInt32(32 * n + 4 * i))),
                                 order: .big)
            }
        }
        for (address, value) in self.memory {
            try memory.store(value, at: GuestAddress(UInt64(address)), order: .big)
        }
        var state = PARISCCPUState()
        state.iaoqFront = Self.codeAddress | privilege
        state.iaoqBack = (Self.codeAddress + 4) | privilege
        state.psw = system | carryBorrow << 8 | (divideV ? PSW.v : 0)
        state[cr: 14] = Self.vectors
        state[cr: 11] = sar
        for (i, v) in gr { state[gr: i] = v }
        for (i, v) in spaces { state[sr: i] = v }
        for (i, v) in cr { state[cr: i] = v }
        cpu.state = state
        cpu.externalInterruptRequests = eirr
        if let cr0 { cpu.recoveryCounter = cr0 }
        let pswBefore = cpu.state.psw

        let result = try cpu.run(budget: 1)
        #expect(result == stop, "stop")
        let after = cpu.state

        var expectedGR = gr
        for (i, v) in expectGR { expectedGR[i] = v }
        for i in 0..<32 {
            #expect(after[gr: i] == (i == 0 ? 0 : expectedGR[i] ?? 0), "GR\(i)")
        }
        for (address, value) in expectMemory {
            #expect(try memory.load(UInt32.self, at: GuestAddress(UInt64(address)), order: .big) == value,
                    "memory at \(address)")
        }
        if let n = trap {
            let vector = Self.vectors + 32 * UInt32(n)
            #expect(after.iaoqFront == vector + 4, "IAOQ front after the trap and one vector NOP")
            #expect(after.iaoqBack == vector + 8, "IAOQ back")
            #expect(after[cr: 18] == Self.codeAddress | privilege, "IIAOQ front")
            #expect(after.iiaoqBack == (Self.codeAddress + 4) | privilege, "IIAOQ back")
            #expect(after[cr: 22] == pswBefore, "IPSW")
            #expect(after.psw == 0, "PSW cleared")
            if [8, 9, 10, 11, 12, 13, 15, 22, 28].contains(n) {
                #expect(after[cr: 19] == word, "IIR")
            }
        } else if stop == .budgetExhausted {
            #expect(after.iaoqFront == (Self.codeAddress + 4) | privilege, "IAOQ front")
            #expect(after.iaoqBack == back ?? (Self.codeAddress + 8) | privilege, "IAOQ back")
            #expect(after.nullifyNext == nullifies, "PSW N (nullify next)")
        }
        if let cb = expectCarryBorrow { #expect(after.carryBorrowBits == cb, "PSW C/B") }
        if let v = expectV { #expect(after.divideStepV == v, "PSW V") }
        if let system = expectSystem {
            #expect(after.pswOther & PSW.systemMask == system, "PSW system mask")
        }
        if let sar = expectSAR { #expect(after[cr: 11] == sar, "SAR") }
        for (i, v) in expectSpaces { #expect(after[sr: i] == v, "SR\(i)") }
        for (i, v) in expectCR { #expect(after[cr: i] == v, "CR\(i)") }
        if let eirr = expectEIRR { #expect(cpu.externalInterruptRequests == eirr, "EIRR") }
        if let space = iasqBack { #expect(after.iasqBack == space, "IASQ back") }
    }
}
