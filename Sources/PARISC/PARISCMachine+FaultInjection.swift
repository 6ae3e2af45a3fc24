import MachineCore

extension PARISCMachine {
    /// General registers GR1...GR31 (GR0 is hard-wired to zero).
    public var injectableRegisters: [(name: String, bits: Int)] {
        (1...31).map { ("gr\($0)", 32) }
    }

    public func flipBit(ofRegister name: String, bit: Int) throws -> (before: UInt64, after: UInt64) {
        guard name.hasPrefix("gr"), let index = Int(name.dropFirst(2)), (1...31).contains(index),
              (0..<32).contains(bit)
        else {
            throw SnapshotError.unsupported("no PA-RISC register \(name.prefix(16)) bit \(bit)")
        }
        let before = cpu.state[gr: index]
        cpu.state[gr: index] = before ^ (1 << UInt32(bit))
        return (UInt64(before), UInt64(cpu.state[gr: index]))
    }
}
