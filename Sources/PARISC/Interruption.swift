/// A PA-RISC 1.1 interruption, by its architected number (the vector is IVA + 32 * number).
///
/// PA-RISC 1.1 Architecture and Instruction Set Reference Manual, chapter "Interruptions".
public enum Interruption: Hashable, Sendable, CustomStringConvertible {
    /// 1: high-priority machine check (group 1).
    case highPriorityMachineCheck
    /// 2: power failure (group 2).
    case powerFail
    /// 3: recovery counter trap (group 2): CR0 bit 0 became 1 while PSW R = 1.
    case recoveryCounter
    /// 4: external interrupt (group 2): EIRR & EIEM is non-zero while PSW I = 1.
    case externalInterrupt
    /// 5: low-priority machine check (group 2).
    case lowPriorityMachineCheck
    /// 6: instruction TLB miss / instruction page fault. Lockstep raises it for an instruction
    /// fetch outside RAM.
    case instructionFault
    /// 7: instruction memory protection.
    case instructionProtection
    /// 8: illegal instruction (also every unimplemented opcode).
    case illegalInstruction
    /// 9: break instruction.
    case breakInstruction
    /// 10: privileged operation (a privileged instruction at PL > 0).
    case privilegedOperation
    /// 11: privileged register (a privileged control/space register at PL > 0).
    case privilegedRegister
    /// 12: overflow trap (ADDO, SUBO, ADDIO ... with signed overflow).
    case overflow
    /// 13: conditional trap (ADDIT, SUBT, UADDCMT whose condition is true).
    case conditional
    /// 14: assist exception.
    case assistException
    /// 15: data TLB miss / data page fault. Lockstep raises it for a data access outside RAM
    /// and outside every device window.
    case dataFault
    /// 18: data memory protection.
    case dataProtection
    /// 22: assist emulation trap: a coprocessor (floating-point) or special-function unit
    /// instruction, which this CPU does not have.
    case assistEmulation
    /// 28: unaligned data reference.
    case unalignedData
    /// Any other architected number.
    case unsupported(Int)

    /// The architected interruption number.
    public var number: Int {
        switch self {
        case .highPriorityMachineCheck: 1
        case .powerFail: 2
        case .recoveryCounter: 3
        case .externalInterrupt: 4
        case .lowPriorityMachineCheck: 5
        case .instructionFault: 6
        case .instructionProtection: 7
        case .illegalInstruction: 8
        case .breakInstruction: 9
        case .privilegedOperation: 10
        case .privilegedRegister: 11
        case .overflow: 12
        case .conditional: 13
        case .assistException: 14
        case .dataFault: 15
        case .dataProtection: 18
        case .assistEmulation: 22
        case .unalignedData: 28
        case .unsupported(let n): n
        }
    }

    /// The interruption group: 1 (HPMC), 2 (between instructions: power fail, recovery
    /// counter, external, LPMC) or 3 (faults and traps caused by an instruction).
    public var group: Int {
        switch self {
        case .highPriorityMachineCheck: 1
        case .powerFail, .recoveryCounter, .externalInterrupt, .lowPriorityMachineCheck: 2
        case .instructionFault, .instructionProtection, .illegalInstruction, .breakInstruction,
             .privilegedOperation, .privilegedRegister, .overflow, .conditional,
             .assistException, .dataFault, .dataProtection, .assistEmulation, .unalignedData,
             .unsupported:
            3
        }
    }

    /// Whether the interruption saves the instruction word in IIR (the traps an instruction
    /// causes, as QEMU and the manual do).
    var setsIIR: Bool {
        switch self {
        case .illegalInstruction, .breakInstruction, .privilegedOperation, .privilegedRegister,
             .overflow, .conditional, .assistException, .dataFault, .dataProtection,
             .assistEmulation, .unalignedData:
            true
        case .highPriorityMachineCheck, .powerFail, .recoveryCounter, .externalInterrupt,
             .lowPriorityMachineCheck, .instructionFault, .instructionProtection, .unsupported:
            false
        }
    }

    /// Whether the interruption records the faulting data address in ISR/IOR.
    var setsDataAddress: Bool {
        switch self {
        case .dataFault, .dataProtection, .unalignedData: true
        case .highPriorityMachineCheck, .powerFail, .recoveryCounter, .externalInterrupt,
             .lowPriorityMachineCheck, .instructionFault, .instructionProtection,
             .illegalInstruction, .breakInstruction, .privilegedOperation, .privilegedRegister,
             .overflow, .conditional, .assistException, .assistEmulation, .unsupported:
            false
        }
    }

    public var description: String {
        switch self {
        case .highPriorityMachineCheck: "high-priority machine check (1)"
        case .powerFail: "power failure (2)"
        case .recoveryCounter: "recovery counter trap (3)"
        case .externalInterrupt: "external interrupt (4)"
        case .lowPriorityMachineCheck: "low-priority machine check (5)"
        case .instructionFault: "instruction fetch fault (6)"
        case .instructionProtection: "instruction memory protection trap (7)"
        case .illegalInstruction: "illegal instruction (8)"
        case .breakInstruction: "break instruction (9)"
        case .privilegedOperation: "privileged operation (10)"
        case .privilegedRegister: "privileged register (11)"
        case .overflow: "overflow trap (12)"
        case .conditional: "conditional trap (13)"
        case .assistException: "assist exception (14)"
        case .dataFault: "data fault (15)"
        case .dataProtection: "data memory protection trap (18)"
        case .assistEmulation: "assist emulation trap (22)"
        case .unalignedData: "unaligned data reference (28)"
        case .unsupported(let n): "interruption \(n)"
        }
    }
}
