import KVM
import MachineCore

extension X86Machine {
    /// Simulates the original instruction of a rewritten site whose trap just exited, and
    /// resumes the guest at `next` (the instruction after the original one).
    ///
    /// - RDTSC: EDX:EAX = the environment's `.timestampCounter` value (proposed: the virtual TSC,
    ///   virtual nanoseconds at 1 GHz). RDTSCP: the same, and ECX = 0 (IA32_TSC_AUX).
    /// - CPUID: EAX, EBX, ECX, EDX from `cpuidTable` for leaf EAX, subleaf ECX.
    /// - RDRAND/RDSEED: the environment's `.randomNumber` value (proposed: `DeterministicRandom`),
    ///   truncated to the destination's width, CF = 1 and OF/SF/ZF/AF/PF = 0.
    /// - RDPID: the destination = 0 (IA32_TSC_AUX).
    ///
    /// 32-bit results zero-extend into the 64-bit registers, as in 64-bit mode.
    func simulate(_ site: PatchSite, resumingAt next: UInt64) throws {
        statistics.environmentInstructions += 1
        var r: Registers
        do { r = try vcpu.registers() } catch { throw X86Error.kvm(error) }
        switch site.instruction {
        case .rdtsc, .rdtscp:
            let tsc = try environmentValue(.timestampCounter, proposed: virtualTSC)
            r.rax = tsc & 0xFFFF_FFFF
            r.rdx = tsc >> 32
            if site.instruction == .rdtscp { r.rcx = 0 }
        case .cpuid:
            let result = cpuidTable.lookup(leaf: UInt32(truncatingIfNeeded: r.rax),
                                           subleaf: UInt32(truncatingIfNeeded: r.rcx))
            r.rax = UInt64(result.eax)
            r.rbx = UInt64(result.ebx)
            r.rcx = UInt64(result.ecx)
            r.rdx = UInt64(result.edx)
        case .rdrand(let operand), .rdseed(let operand):
            let value = try environmentValue(.randomNumber, proposed: random.next())
            let (register, width) = operand.destination(longMode: try inLongMode())
            r.write(value, toRegister: register, width: width)
            // CF = 1; OF, SF, ZF, AF, PF = 0.
            r.rflags = r.rflags & ~UInt64(0x8D5) | 0x1
        case .rdpid(let operand):
            let longMode = try inLongMode()
            let (register, _) = operand.destination(longMode: longMode)
            r.write(0, toRegister: register, width: longMode ? 8 : 4)
        }
        r.rip = next
        do { try vcpu.setRegisters(r) } catch { throw X86Error.kvm(error) }
    }

    /// Whether the vCPU executes 64-bit code now (EFER.LMA and CS.L).
    func inLongMode() throws -> Bool {
        do {
            let sregs = try vcpu.specialRegisters()
            return sregs.efer & 0x400 != 0 && sregs.cs.l
        } catch { throw X86Error.kvm(error) }
    }
}

extension Registers {
    /// General-purpose register `number` (0 = RAX, 1 = RCX, 2 = RDX, 3 = RBX, 4 = RSP, 5 = RBP,
    /// 6 = RSI, 7 = RDI, 8-15 = R8-R15: the x86 encoding order).
    subscript(generalPurpose number: Int) -> UInt64 {
        get {
            switch number & 15 {
            case 0: rax
            case 1: rcx
            case 2: rdx
            case 3: rbx
            case 4: rsp
            case 5: rbp
            case 6: rsi
            case 7: rdi
            case 8: r8
            case 9: r9
            case 10: r10
            case 11: r11
            case 12: r12
            case 13: r13
            case 14: r14
            default: r15
            }
        }
        set {
            switch number & 15 {
            case 0: rax = newValue
            case 1: rcx = newValue
            case 2: rdx = newValue
            case 3: rbx = newValue
            case 4: rsp = newValue
            case 5: rbp = newValue
            case 6: rsi = newValue
            case 7: rdi = newValue
            case 8: r8 = newValue
            case 9: r9 = newValue
            case 10: r10 = newValue
            case 11: r11 = newValue
            case 12: r12 = newValue
            case 13: r13 = newValue
            case 14: r14 = newValue
            default: r15 = newValue
            }
        }
    }

    /// Writes `value` to a register as an instruction with a `width`-byte destination does:
    /// 8 bytes replace it, 4 bytes zero-extend, 2 bytes keep the upper 48 bits.
    mutating func write(_ value: UInt64, toRegister number: Int, width: Int) {
        switch width {
        case 8: self[generalPurpose: number] = value
        case 2: self[generalPurpose: number] = self[generalPurpose: number] & ~0xFFFF | value & 0xFFFF
        default: self[generalPurpose: number] = value & 0xFFFF_FFFF
        }
    }
}
