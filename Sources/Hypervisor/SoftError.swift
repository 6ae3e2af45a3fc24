import Loader
import MachineCore

/// Which replica of a replicated run a soft error is injected into. In an unreplicated `run`
/// the one machine is the primary.
public enum FaultReplica: Hashable, Sendable, CustomStringConvertible {
    case primary
    /// Backup number n, from 1 (`backup` is `backup1`).
    case backup(Int)

    public var description: String {
        switch self {
        case .primary: "primary"
        case .backup(let n): n == 1 ? "backup" : "backup\(n)"
        }
    }
}

/// The bit a soft error flips.
public enum SoftErrorTarget: Hashable, Sendable {
    /// Bit `bit` of a register, by its name in `Machine.injectableRegisters`.
    case register(name: String, bit: Int)
    /// Bit `bit` counted from the byte at `address` (bit 8 is bit 0 of the next byte).
    case memory(GuestAddress, bit: Int)
    /// Bit `bit` counted from `offset` bytes into the guest ELF's symbol `name`.
    case symbol(name: String, offset: UInt64, bit: Int)
}

/// One injected soft error (`--inject-fault REPLICA:EPOCH:TARGET`): at the boundary before
/// epoch `epoch` runs (epoch 0: before the first instruction), one bit of one replica's state
/// flips. Only ever injected where asked.
public struct SoftError: Hashable, Sendable, CustomStringConvertible {
    public var replica: FaultReplica
    public var epoch: UInt64
    public var target: SoftErrorTarget

    /// The most bits past a memory address or symbol a target may name.
    public static let maximumBit = 63

    public init(replica: FaultReplica, epoch: UInt64, target: SoftErrorTarget) {
        self.replica = replica
        self.epoch = epoch
        self.target = target
    }

    /// The accepted form, for error lines and help.
    public static let syntax = "REPLICA:EPOCH:TARGET, REPLICA primary, backup or backupN, TARGET reg:NAME:BIT, mem:ADDRESS:BIT or sym:SYMBOL[+OFFSET]:BIT (BIT 0-63)"

    /// Parses `REPLICA:EPOCH:TARGET` strictly: every part must be well formed and in range.
    public init(parsing text: String) throws(SoftErrorSyntaxError) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 5 else { throw SoftErrorSyntaxError(text, "expected \(Self.syntax)") }
        let replica: FaultReplica
        switch parts[0] {
        case "primary": replica = .primary
        case "backup": replica = .backup(1)
        case let name where name.hasPrefix("backup"):
            guard let n = Self.decimal(name.dropFirst(6)), (1...16).contains(n) else {
                throw SoftErrorSyntaxError(text, "the replica must be primary, backup or backup1 to backup16")
            }
            replica = .backup(Int(n))
        default:
            throw SoftErrorSyntaxError(text, "the replica must be primary, backup or backupN")
        }
        guard let epoch = Self.decimal(Substring(parts[1])) else {
            throw SoftErrorSyntaxError(text, "the epoch must be a decimal number")
        }
        guard let bit = Self.decimal(Substring(parts[4])), bit <= UInt64(Self.maximumBit) else {
            throw SoftErrorSyntaxError(text, "the bit must be a decimal number from 0 to \(Self.maximumBit)")
        }
        let where_ = parts[3]
        let target: SoftErrorTarget
        switch parts[2] {
        case "reg":
            guard !where_.isEmpty, where_.count <= 16, where_.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
                throw SoftErrorSyntaxError(text, "reg: needs a register name such as rax or gr3")
            }
            target = .register(name: where_.lowercased(), bit: Int(bit))
        case "mem":
            guard let address = Self.address(where_) else {
                throw SoftErrorSyntaxError(text, "mem: needs a guest-physical address (decimal or 0x hexadecimal)")
            }
            target = .memory(GuestAddress(address), bit: Int(bit))
        case "sym":
            let pieces = where_.split(separator: "+", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(pieces[0])
            guard !name.isEmpty, name.count <= 128,
                  name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ".") })
            else {
                throw SoftErrorSyntaxError(text, "sym: needs a symbol name of the guest ELF")
            }
            var offset: UInt64 = 0
            if pieces.count == 2 {
                guard let value = Self.address(String(pieces[1])) else {
                    throw SoftErrorSyntaxError(text, "the offset after + must be a number")
                }
                offset = value
            }
            target = .symbol(name: name, offset: offset, bit: Int(bit))
        default:
            throw SoftErrorSyntaxError(text, "the target must be reg:, mem: or sym:")
        }
        self.init(replica: replica, epoch: epoch, target: target)
    }

    public var description: String {
        let target = switch target {
        case .register(let name, let bit): "reg:\(name):\(bit)"
        case .memory(let address, let bit): "mem:\(address):\(bit)"
        case .symbol(let name, let offset, let bit): offset == 0 ? "sym:\(name):\(bit)" : "sym:\(name)+\(offset):\(bit)"
        }
        return "\(replica):\(epoch):\(target)"
    }

    private static func decimal(_ text: Substring) -> UInt64? {
        guard !text.isEmpty, text.count <= 20, text.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return UInt64(text)
    }

    private static func address(_ text: String) -> UInt64? {
        if text.hasPrefix("0x") || text.hasPrefix("0X") {
            let digits = text.dropFirst(2)
            guard !digits.isEmpty, digits.count <= 16 else { return nil }
            return UInt64(digits, radix: 16)
        }
        return decimal(Substring(text))
    }

    /// Checks the target against the guest before the run starts: the symbol exists and the bit
    /// lies inside RAM and inside the symbol; a register name the engine knows.
    public func check(machine: any Machine, image: ELFImage) throws(SoftErrorSyntaxError) {
        _ = try resolve(machine: machine, image: image)
    }

    private enum Resolved {
        case register(String, Int)
        case byte(GuestAddress, Int)
    }

    private func resolve(machine: any Machine, image: ELFImage) throws(SoftErrorSyntaxError) -> Resolved {
        switch target {
        case .register(let name, let bit):
            guard let register = machine.injectableRegisters.first(where: { $0.name == name }) else {
                let names = machine.injectableRegisters.map(\.name)
                throw SoftErrorSyntaxError(description, "no register \(name) on \(machine.architecture) (\(names.first ?? "")...\(names.last ?? ""))")
            }
            guard bit < register.bits else {
                throw SoftErrorSyntaxError(description, "\(name) has \(register.bits) bits")
            }
            return .register(name, bit)
        case .memory(let address, let bit):
            guard let byte = address.advanced(by: UInt64(bit / 8)), machine.memory.contains(byte) else {
                throw SoftErrorSyntaxError(description, "\(address) is outside guest RAM")
            }
            return .byte(byte, bit % 8)
        case .symbol(let name, let offset, let bit):
            guard let symbol = image.symbol(named: name) else {
                throw SoftErrorSyntaxError(description, "the guest has no symbol \(name)")
            }
            let (byteOffset, overflow) = offset.addingReportingOverflow(UInt64(bit / 8))
            guard !overflow, symbol.size == 0 || byteOffset < symbol.size else {
                throw SoftErrorSyntaxError(description, "\(name) has \(symbol.size) bytes")
            }
            // A symbol's value is a virtual address: the segment holding it says where it lies.
            let (virtual, wrapped) = symbol.value.addingReportingOverflow(byteOffset)
            guard !wrapped,
                  let segment = image.segments.first(where: {
                      virtual >= $0.virtualAddress && virtual - $0.virtualAddress < $0.memorySize
                  }),
                  let physical = GuestAddress(segment.physicalAddress).advanced(by: virtual - segment.virtualAddress),
                  machine.memory.contains(physical)
            else {
                throw SoftErrorSyntaxError(description, "\(name) is not in a loaded segment inside guest RAM")
            }
            return .byte(physical, bit % 8)
        }
    }

    /// Flips the bit in `machine`, which must be at an epoch boundary. Returns one line saying
    /// what changed.
    public func inject(into machine: any Machine, image: ELFImage) throws -> String {
        switch try resolve(machine: machine, image: image) {
        case .register(let name, let bit):
            let (before, after) = try machine.flipBit(ofRegister: name, bit: bit)
            return "fault injection: flipped bit \(bit) of \(name) at epoch \(epoch) (0x\(String(before, radix: 16)) -> 0x\(String(after, radix: 16)))"
        case .byte(let address, let bit):
            let before = try machine.memory.read(at: address, count: 1)[0]
            let after = before ^ UInt8(1 << bit)
            try machine.memory.write([after], at: address)
            return "fault injection: flipped bit \(bit) of the byte at \(address) at epoch \(epoch) (0x\(String(before, radix: 16)) -> 0x\(String(after, radix: 16)))"
        }
    }
}

/// A `--inject-fault` value that cannot be used: one line.
public struct SoftErrorSyntaxError: Error, Sendable, CustomStringConvertible {
    public let description: String

    init(_ text: String, _ reason: String) {
        description = "--inject-fault \(text.prefix(200)): \(reason)"
    }
}
