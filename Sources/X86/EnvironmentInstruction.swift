import MachineCore

/// An x86 instruction whose result depends on the host rather than on the guest's state, and
/// which Lockstep therefore rewrites into a trap and simulates (see `EnvironmentPatcher`).
public enum EnvironmentInstruction: Hashable, Sendable, CustomStringConvertible {
    /// RDTSC (0F 31): EDX:EAX = time-stamp counter.
    case rdtsc
    /// RDTSCP (0F 01 F9): EDX:EAX = time-stamp counter, ECX = IA32_TSC_AUX.
    case rdtscp
    /// CPUID (0F A2): EAX, EBX, ECX, EDX = the leaf EAX (subleaf ECX).
    case cpuid
    /// RDRAND r (NFx 0F C7 /6, register form): a random number, CF = 1.
    case rdrand(RegisterOperand)
    /// RDSEED r (NFx 0F C7 /7, register form): a random seed, CF = 1.
    case rdseed(RegisterOperand)
    /// RDPID r (F3 0F C7 /7, register form): IA32_TSC_AUX. Capstone 4 decodes it as RDSEED.
    case rdpid(RegisterOperand)

    /// The destination register of RDRAND, RDSEED or RDPID, with the encoding details that decide
    /// its width. The width depends on the code's mode (a REX byte is an INC/DEC instruction in
    /// 32-bit code), so it is resolved when the trap is taken.
    public struct RegisterOperand: Hashable, Sendable {
        /// ModR/M.rm: the register number without REX.B.
        public let rm: UInt8
        /// The REX byte just before the opcode, if any.
        public let rex: UInt8?
        /// A 0x66 operand-size prefix is present (before the REX byte, if any).
        public let operandSizePrefix: Bool

        /// The register number (0 = RAX ... 15 = R15) and width in bytes (2, 4 or 8) in the given
        /// mode. In 32-bit code a REX byte is a separate INC/DEC, and a 0x66 in front of it
        /// belongs to that INC/DEC.
        public func destination(longMode: Bool) -> (register: Int, width: Int) {
            if longMode, let rex {
                let register = Int(rm) | (rex & 0x1 != 0 ? 8 : 0)
                if rex & 0x8 != 0 { return (register, 8) }
                return (register, operandSizePrefix ? 2 : 4)
            }
            if rex != nil { return (Int(rm), 4) }
            return (Int(rm), operandSizePrefix ? 2 : 4)
        }
    }

    /// What the instruction reads from the environment, for `GuestEnvironment.environmentValue`;
    /// nil for CPUID and RDPID, which Lockstep answers from fixed tables.
    public var environmentRead: EnvironmentRead? {
        switch self {
        case .rdtsc, .rdtscp: .timestampCounter
        case .rdrand, .rdseed: .randomNumber
        case .cpuid, .rdpid: nil
        }
    }

    public var description: String {
        switch self {
        case .rdtsc: "rdtsc"
        case .rdtscp: "rdtscp"
        case .cpuid: "cpuid"
        case .rdrand: "rdrand"
        case .rdseed: "rdseed"
        case .rdpid: "rdpid"
        }
    }
}

/// One rewritten environment instruction in the guest image.
public struct PatchSite: Hashable, Sendable {
    /// The instruction that was there.
    public let instruction: EnvironmentInstruction
    /// The (virtual) address of the original instruction's first byte, as RIP sees it.
    public let address: UInt64
    /// Where those bytes are in guest-physical memory.
    public let physicalAddress: UInt64
    /// The original instruction bytes (prefixes included).
    public let originalBytes: [UInt8]
    /// The offset of `out %al,$0xe7` in the rewritten bytes: 0, or just after the REX byte when
    /// there is one (prefixes up to the REX byte are kept, see `EnvironmentPatcher`).
    public let trapOffset: Int

    /// The number of bytes rewritten (the original instruction's length).
    public var length: Int { originalBytes.count }

    /// The bytes the site holds after patching: the kept prefixes, `E6 E7`, then NOPs.
    public var patchedBytes: [UInt8] {
        Array(originalBytes[0..<trapOffset]) + [0xE6, EnvironmentPatcher.trapPort]
            + [UInt8](repeating: 0x90, count: length - trapOffset - 2)
    }

    /// RIP just after the `out` (where KVM leaves it once the OUT has completed).
    public var trapEnd: UInt64 { address &+ UInt64(trapOffset + 2) }

    /// The address of the instruction after the original one: RIP after simulating it.
    public var nextInstruction: UInt64 { address &+ UInt64(length) }
}
