import KVM
import MachineCore

extension X86Machine {
    /// The general-purpose registers, RIP and RFLAGS (`struct kvm_regs`).
    public var injectableRegisters: [(name: String, bits: Int)] {
        Self.registerPaths.map { ($0.name, 64) }
    }

    private static var registerPaths: [(name: String, path: WritableKeyPath<Registers, UInt64>)] { [
        ("rax", \.rax), ("rbx", \.rbx), ("rcx", \.rcx), ("rdx", \.rdx),
        ("rsi", \.rsi), ("rdi", \.rdi), ("rsp", \.rsp), ("rbp", \.rbp),
        ("r8", \.r8), ("r9", \.r9), ("r10", \.r10), ("r11", \.r11),
        ("r12", \.r12), ("r13", \.r13), ("r14", \.r14), ("r15", \.r15),
        ("rip", \.rip), ("rflags", \.rflags),
    ] }

    public func flipBit(ofRegister name: String, bit: Int) throws -> (before: UInt64, after: UInt64) {
        guard let path = Self.registerPaths.first(where: { $0.name == name })?.path, (0..<64).contains(bit) else {
            throw SnapshotError.unsupported("no x86 register \(name.prefix(16)) bit \(bit)")
        }
        // The exit the vCPU stopped at must be complete (a port read's value stored, RIP past
        // the instruction), or KVM would finish it over the flipped register.
        if finalStop == nil { try completeLastExit() }
        do {
            var registers = try vcpu.registers()
            let before = registers[keyPath: path]
            registers[keyPath: path] = before ^ (1 << UInt64(bit))
            try vcpu.setRegisters(registers)
            return (before, registers[keyPath: path])
        } catch {
            throw X86Error.kvm(error)
        }
    }
}
