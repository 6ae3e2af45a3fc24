import KVM
import Loader
import MachineCore

/// Why the x86 engine could not create or run a machine. Each description is one line.
public enum X86Error: Error, Sendable, CustomStringConvertible {
    /// /dev/kvm is missing, unusable, or a KVM call failed while setting the machine up.
    case kvmUnavailable(KVMError)
    /// A KVM call failed while the machine was running.
    case kvm(KVMError)
    /// The guest image cannot be loaded.
    case image(LoaderError)
    /// Guest RAM could not be reserved.
    case memory(GuestMemoryError)
    /// The image does not fit the platform (segments over Lockstep's boot structures, an entry
    /// point above 4 GiB for a 32-bit entry, ...).
    case layout(String)
    /// Capstone failed.
    case disassembler(String)
    /// The requested epoch clock cannot work on this host (no PMU, ...).
    case epochClockUnavailable(EpochClock, reason: String)
    /// The epoch clock (single-step or emulation-counter on the PVM host) saw the guest at CPL3,
    /// where this host neither single-steps nor counts instructions.
    case needsCPL0(EpochClock, rip: UInt64)
    /// A counter-driven clock ran past the point where the epoch had to end (its overflow came
    /// later than the skid it was armed early by): `reached` units where `target` was due, after
    /// the run `after` (nil: nothing ran).
    case counterOvershoot(EpochClock, target: UInt64, reached: UInt64, after: CounterRun?)

    /// Whether this is a limit of the host (exit status 68) rather than a failure.
    public var isHostLimitation: Bool {
        switch self {
        case .kvmUnavailable, .epochClockUnavailable, .needsCPL0: true
        case .kvm, .image, .memory, .layout, .disassembler, .counterOvershoot: false
        }
    }

    public var description: String {
        switch self {
        case .kvmUnavailable(let e): "KVM is not available: \(e)"
        case .kvm(let e): "KVM failed: \(e)"
        case .image(let e): e.description
        case .memory(let e): e.description
        case .layout(let why): why
        case .disassembler(let why): "Capstone: \(why)"
        case .epochClockUnavailable(let clock, let reason):
            "the \(clock) epoch clock is not available on this host: \(reason)"
        case .needsCPL0(let clock, let rip):
            "the \(clock) epoch clock needs a guest that runs at CPL0 (this host neither single-steps nor counts CPL3 code), but the guest ran at CPL3 (RIP \(hex(rip))); add ring0 to its command line or use --epoch-clock exits"
        case .counterOvershoot(let clock, let target, let reached, let after):
            "the \(clock) epoch clock ran past the end of an epoch (to \(reached) \(clock.unit) where the epoch ended at \(target)"
                + (after.map { ", after \($0)" } ?? "") + "): the vCPU stopped later than the clock's margin allows"
        }
    }
}
