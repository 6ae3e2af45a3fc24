/// The instruction set a guest is built for.
public enum GuestArchitecture: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// x86-64 (Multiboot v1 ELF32 or ELF64 kernels), run on KVM.
    case x86_64
    /// PA-RISC 1.1 (ELF32 hppa kernels), run on Lockstep's emulator.
    case parisc

    public var description: String { rawValue }
}

/// What cuts a machine's execution into epochs that end at the same instruction on every replica.
public enum EpochClock: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// PA-RISC recovery counter (CR0, PSW.R, interruption 3): counts non-nullified instructions.
    case recoveryCounter = "recovery-counter"
    /// x86 KVM single-stepping: one exit per guest instruction (only at CPL0 on some hosts).
    case singleStep = "single-step"
    /// x86 counter-driven epochs counted by KVM's `insn_emulation` statistic, which counts every
    /// instruction of code KVM interprets (CPL0 guests on the PVM host): runs free, then reaches
    /// the exact count by single-steps.
    case emulationCounter = "emulation-counter"
    /// x86 counter-driven epochs counted in retired conditional branches by the host PMU, with
    /// the counter's overflow programmed early by its skid, then single-steps (needs a host PMU).
    case performanceCounter = "pmu"
    /// x86 deterministic VM exits (port I/O, MMIO, HLT, trapped environment instructions): an
    /// epoch is a number of such exits; interrupt latency is bounded by how often the guest exits.
    case deterministicExits = "exits"

    public var description: String { rawValue }

    /// The unit `Machine.progress` counts in with this clock.
    public var unit: String {
        switch self {
        case .recoveryCounter, .singleStep, .emulationCounter: "instructions"
        case .performanceCounter: "branches"
        case .deterministicExits: "exits"
        }
    }
}

/// Why `Machine.run(budget:)` returned.
public enum MachineStop: Hashable, Sendable, CustomStringConvertible {
    /// The epoch clock spent the whole budget: an epoch boundary.
    case epochEnd
    /// The guest is waiting for an interrupt (x86 HLT with interrupts enabled, the PA-RISC wait
    /// hint). This ends the epoch early, at the same instruction on every replica.
    case idle
    /// The guest asked to stop. `status` is the value it wrote to its debug-exit register (QEMU's
    /// isa-debug-exit would make QEMU exit with `(status << 1) | 1`), or 0 for a halt or clean
    /// shutdown; `lockstep run` exits with it.
    case exited(status: Int32)
    /// The guest crashed (triple fault, an interruption with no handler, ...). The reason is one
    /// line for the user.
    case crashed(reason: String)

    public var description: String {
        switch self {
        case .epochEnd: "epoch end"
        case .idle: "idle"
        case .exited(let status): "exited with status \(status)"
        case .crashed(let reason): "crashed: \(reason)"
        }
    }
}

/// A virtual machine as the hypervisor and the replication layer drive it, whatever the engine.
///
/// All calls come from one thread (the machine's own, never Swift's cooperative pool). The
/// machine calls its `GuestEnvironment` for every environment instruction, console output and
/// disk request; asynchronous inputs reach it only through `applyBoundary`.
public protocol Machine: AnyObject {
    /// The guest's instruction set.
    var architecture: GuestArchitecture { get }
    /// The epoch clock this machine runs with.
    var epochClock: EpochClock { get }
    /// Units of the epoch clock (see `EpochClock.unit`) executed since the machine was created.
    var progress: UInt64 { get }
    /// The machine's virtual clock.
    var clock: VirtualClock { get }
    /// The earliest virtual time at which a guest timer will raise an interrupt, if one is armed.
    var nextTimerDeadline: VirtualTime? { get }
    /// Disk requests submitted and not yet completed (for uncertain completions at a failover).
    var outstandingBlockRequests: [BlockRequestID] { get }
    /// How many bytes of console input the next boundary may deliver (the console UART's
    /// `receiveRoom`, QEMU's `can_receive`): the host keeps the rest until the guest has read
    /// some, so input is never lost. A function of the machine's state, so the same on every
    /// replica at the same boundary.
    var consoleInputRoom: Int { get }

    /// Runs the guest until it has made `budget` more units of progress, or stops earlier.
    /// The instruction that idles, exits or crashes counts as progress, so a backup replaying to
    /// the same progress stops at the same instruction. An `EnvironmentError` thrown by the
    /// environment propagates unchanged.
    func run(budget: UInt64) throws -> MachineStop

    /// At an epoch boundary: sets virtual time, applies `events` in order and evaluates timers,
    /// so that interrupts become pending for delivery from here on.
    func applyBoundary(time: VirtualTime, events: [BoundaryEvent]) throws

    /// A digest of everything that must be equal on two replicas in the same state: guest RAM,
    /// CPU registers and device state. RAM is hashed incrementally (`MemoryDigest`): only the
    /// pages written since the previous call are hashed again.
    func stateDigest() throws -> StateDigest

    /// The same value as `stateDigest()`, with every page of RAM hashed again instead of taken
    /// from the cache (to check the cache; slow for large RAM).
    func fullStateDigest() throws -> StateDigest

    /// Guest RAM.
    var memory: GuestMemory { get }
    /// Which pages of RAM were written, for any number of consumers (the RAM digest is one).
    var dirtyPages: DirtyPageTracker { get }
    /// The incremental digest of RAM (which also knows the pages that are not zero).
    var memoryDigest: MemoryDigest { get }

    /// The machine's state at an epoch boundary, everything but RAM: CPU, devices, virtual time
    /// and progress (see `MachineSnapshot` for the file that adds RAM and identity). Call it only
    /// between `applyBoundary` and the next `run`. On KVM this first completes the exit the vCPU
    /// stopped at (a port or MMIO read whose value KVM has not stored yet), so the machine's
    /// registers are final; that changes nothing the guest can see.
    func captureState() throws -> MachineState

    /// Puts `state` into this machine, which was built from the same image and configuration
    /// and whose RAM already holds the snapshot's pages (a fresh machine, or one that ran on and
    /// goes back: output comparison's rollback). Every field is checked first (it may
    /// come from a file or the network); the state digest afterwards must equal the one
    /// recorded at capture, or this throws. A machine that threw is unusable.
    func restoreState(_ state: MachineState) throws

    /// The registers `flipBit(ofRegister:bit:)` can reach, by their lowercase names, each with
    /// its width in bits (fault injection).
    var injectableRegisters: [(name: String, bits: Int)] { get }

    /// Flips bit `bit` of register `name` (one of `injectableRegisters`) at an epoch boundary:
    /// a soft error, for fault injection only. Returns the register's value before and after.
    func flipBit(ofRegister name: String, bit: Int) throws -> (before: UInt64, after: UInt64)
}
