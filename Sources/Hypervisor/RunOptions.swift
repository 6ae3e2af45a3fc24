import MachineCore
import PARISC

/// Which engine runs a guest.
public enum EngineKind: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// KVM (x86 guests).
    case kvm
    /// Lockstep's PA-RISC emulator.
    case emulator

    public var description: String { rawValue }

    /// The engine that runs guests of `architecture`.
    public static func native(for architecture: GuestArchitecture) -> EngineKind {
        switch architecture {
        case .x86_64: .kvm
        case .parisc: .emulator
        }
    }
}

/// The epoch clock requested on the command line.
public enum EpochClockChoice: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The best clock the engine and host support.
    case auto
    case specific(EpochClock)

    public init?(argument: String) {
        if argument == "auto" { self = .auto; return }
        guard let clock = EpochClock(rawValue: argument) else { return nil }
        self = .specific(clock)
    }

    public var description: String {
        switch self {
        case .auto: "auto"
        case .specific(let clock): clock.rawValue
        }
    }
}

/// Everything that configures a run of a guest. Primary and backup must agree on all of it
/// except the host paths (checked in the replication handshake).
public struct RunOptions: Hashable, Sendable, Codable {
    public var guestPath: String
    /// Guest RAM in bytes.
    public var memorySize: UInt64
    /// The guest's command line (Lockstep appends its device announcements).
    public var commandLine: String
    /// The disk image backing the virtio block device, if any.
    public var diskPath: String?
    public var clockMode: ClockMode
    public var epochClock: EpochClockChoice
    /// Units of the epoch clock per epoch; nil for the engine's default.
    public var epochLength: UInt64?
    /// nil: chosen from the ELF's machine type.
    public var engine: EngineKind?
    /// When the disk's writes count as done (host-side only: replicas may differ).
    public var diskCache: DiskCacheMode
    /// x86: let KVM buffer the writes Lockstep defers (virtio QueueNotify and InterruptACK, the
    /// 8259's EOI) in its coalesced MMIO/PIO ring instead of exiting for each (host-side only:
    /// the guest sees the same run either way, so replicas may differ).
    public var coalescedWrites: Bool
    /// How the PA-RISC emulator runs guest code; nil: the fastest engine this host runs. Not part
    /// of the pair's configuration check: every emulator engine gives the same results.
    public var emulator: PARISCEngine?

    public static let defaultMemorySize: UInt64 = 64 << 20

    public init(guestPath: String, memorySize: UInt64 = RunOptions.defaultMemorySize,
                commandLine: String = "", diskPath: String? = nil,
                clockMode: ClockMode = .deterministic, epochClock: EpochClockChoice = .auto,
                epochLength: UInt64? = nil, engine: EngineKind? = nil, diskCache: DiskCacheMode = .default,
                coalescedWrites: Bool = true, emulator: PARISCEngine? = nil)
    {
        self.guestPath = guestPath
        self.memorySize = memorySize
        self.commandLine = commandLine
        self.diskPath = diskPath
        self.clockMode = clockMode
        self.epochClock = epochClock
        self.epochLength = epochLength
        self.engine = engine
        self.diskCache = diskCache
        self.coalescedWrites = coalescedWrites
        self.emulator = emulator
    }
}
