import Logging
import MachineCore

/// Why `PARISCCPU.run(until:)` returned.
public enum PARISCStop: Hashable, Sendable, CustomStringConvertible {
    /// The progress counter reached the requested value: an epoch boundary.
    case budgetExhausted
    /// The guest executed the idle hint `diag 0x100` with PSW I = 1 and no unmasked interrupt
    /// pending: it waits for an interrupt.
    case idle
    /// The guest executed QEMU's HALT word 0xfffdead0.
    case halted
    /// A device (the debug-exit register) asked to stop with this exit status.
    case exited(status: Int32)
    /// User-mode harness only: the guest branched to the Linux syscall gateway (address 0x100).
    /// The instruction queue points at the gateway; the harness performs the call and resumes.
    case systemCall
    /// The guest cannot continue (an interruption with no handler, an interruption storm).
    case crashed(reason: String)

    public var description: String {
        switch self {
        case .budgetExhausted: "budget exhausted"
        case .idle: "idle"
        case .halted: "halted"
        case .exited(let status): "exited with status \(status)"
        case .systemCall: "system call"
        case .crashed(let reason): "crashed: \(reason)"
        }
    }
}

/// The PA-RISC 1.1 integer CPU: registers, instruction address queues, interruptions, the
/// recovery counter, the interval timer and the external interrupt registers, running guest code
/// from a `GuestMemory` at physical address 0 with devices on an MMIO `Bus`.
///
/// Real mode only (PSW D/C are stored and ignored): addresses are physical, space registers are
/// stored but do not take part in addressing. The corresponding QEMU model is `target/hppa`.
public final class PARISCCPU {
    /// How the CPU is set up.
    public struct Configuration: Sendable {
        /// Make address 0x100 the Linux syscall gateway: reaching it stops the run with
        /// `.systemCall` (for running user-mode programs like `qemu-hppa` does).
        public var linuxGateway = false
        /// Log2 of the number of entries of the interpreter's predecoded-instruction cache (the
        /// other engines keep a small one for the instructions they interpret).
        public var decodeCacheBits = 16
        /// How guest code runs; an engine this host cannot run is replaced by the fastest one
        /// that it can (`PARISCCPU.engine` tells which).
        public var engine: PARISCEngine

        /// A configuration; the defaults are the system-mode CPU on the fastest engine.
        public init(linuxGateway: Bool = false, decodeCacheBits: Int = 16,
                    engine: PARISCEngine = .fastestAvailable)
        {
            self.linuxGateway = linuxGateway
            self.decodeCacheBits = decodeCacheBits
            self.engine = engine
        }
    }

    /// The architectural state (read and written between runs).
    public var state = PARISCCPUState()
    /// Guest RAM, at physical address 0.
    public let memory: GuestMemory
    /// Devices outside RAM (MMIO, big-endian CPU).
    public let bus: Bus
    /// How the CPU was set up.
    public let configuration: Configuration
    /// Counted instructions (completed and not nullified) since the CPU was created: the epoch
    /// clock, counted with the same rule as the recovery counter but whatever PSW R is.
    public internal(set) var progress: UInt64 = 0
    /// Virtual time: 1 ns per counted instruction between the times the hypervisor sets.
    public private(set) lazy var clock = VirtualClock(nanosecondsPerUnit: 1) { [unowned self] in
        self.progress
    }
    /// Where CR16 reads go (an environment instruction); nil reads the model's value directly.
    public weak var environment: (any GuestEnvironment)?

    /// CR23, EIRR: pending external interrupts (bit 0, the most significant, is the timer).
    public var externalInterruptRequests: UInt32 = 0
    /// A stop a device requested during the last MMIO access (debug exit).
    var requestedStop: PARISCStop?
    /// When the interval timer comparator will match, if armed.
    public private(set) var timerDeadline: VirtualTime?

    var decodeCache: [DecodeCacheEntry]
    /// The engine and its translations.
    let core: EngineCore
    let logger = Logger(label: "lockstep.parisc.cpu")

    /// The engine running guest code.
    public var engine: PARISCEngine { core.engine }
    /// The lines of RAM translated code was made from (nil for the interpreter).
    var codeLines: CodeLineMap? { core.codeLines }

    /// Creates a CPU over `memory` (which must start at guest-physical 0) and `bus`.
    public init(memory: GuestMemory, bus: Bus = Bus(name: "mmio"),
                configuration: Configuration = Configuration())
    {
        precondition(memory.base.rawValue == 0, "PA-RISC RAM starts at physical address 0")
        self.memory = memory
        self.bus = bus
        self.configuration = configuration
        core = Self.makeCore(PARISCEngine.resolved(configuration.engine), memory: memory,
                             linuxGateway: configuration.linuxGateway)
        let bits = core.engine == .interpreter ? max(4, min(configuration.decodeCacheBits, 22)) : 12
        decodeCache = [DecodeCacheEntry](repeating: .empty, count: 1 << bits)
    }

    /// The engine's core; one whose memory cannot be set up falls back to the next simpler one.
    private static func makeCore(_ engine: PARISCEngine, memory: GuestMemory, linuxGateway: Bool) -> EngineCore {
        let logger = Logger(label: "lockstep.parisc.cpu")
        switch engine {
        case .interpreter:
            return .interpreter
        case .threaded:
            do {
                return .threaded(try BlockCache(memory: memory, linuxGateway: linuxGateway))
            } catch {
                logger.warning("\(error); using the interpreter")
                return .interpreter
            }
        case .jit:
            do {
                return .jit(try JITCore(memory: memory, linuxGateway: linuxGateway))
            } catch {
                logger.warning("\(error); using the interpreter")
                return .interpreter
            }
        }
    }

    // MARK: Running

    /// Runs until `progress` reaches `end` (an epoch boundary) or the guest stops earlier.
    /// Throws the environment's error if a CR16 read is refused (a diverged backup).
    public func run(until end: UInt64) throws(EnvironmentError) -> PARISCStop {
        var interpreter = Interpreter(cpu: self)
        let stop: PARISCStop
        switch core {
        case .interpreter: stop = interpreter.run(until: end, core: InterpreterCore())
        case .threaded(let cache): stop = interpreter.run(until: end, core: cache)
        case .jit(let jit): stop = interpreter.run(until: end, core: jit)
        }
        interpreter.finish(into: self)
        if let error = interpreter.environmentError { throw error }
        return stop
    }

    /// Runs `budget` more counted instructions (or stops earlier). A budget beyond the end of
    /// the 64-bit count runs to its end.
    public func run(budget: UInt64) throws(EnvironmentError) -> PARISCStop {
        let (end, overflow) = progress.addingReportingOverflow(budget)
        return try run(until: overflow ? .max : end)
    }

    /// CR0, the guest's recovery counter, as the guest reads it now (MFCTL CR0); setting it is
    /// MTCTL CR0 between instructions.
    public var recoveryCounter: UInt32 {
        get { state.recoveryCounter(atProgress: progress) }
        set {
            state.recoveryCounter = newValue
            state.recoveryCounterBase = progress
        }
    }

    // MARK: External interrupts and timer

    /// Sets EIRR bit `bit` (0 = most significant). What IO_EIR does for a store of `bit`.
    public func raiseExternalInterrupt(bit: Int) {
        externalInterruptRequests |= 0x8000_0000 >> UInt32(bit & 31)
    }

    /// Asks the CPU to stop after the current instruction (used by the debug-exit device).
    public func requestStop(_ stop: PARISCStop) { requestedStop = stop }

    /// Sets virtual time (at an epoch boundary) and evaluates the interval timer: if the
    /// comparator has matched, EIRR bit 0 is set.
    public func setTime(_ time: VirtualTime) {
        clock.set(time)
        evaluateTimer()
    }

    /// Sets EIRR bit 0 if the comparator deadline has passed (called at epoch boundaries).
    public func evaluateTimer() {
        guard let deadline = timerDeadline, clock.now >= deadline else { return }
        timerDeadline = nil
        raiseExternalInterrupt(bit: 0)
    }

    /// The interval timer counter as the model computes it: virtual ns / 4 (250 MHz, like QEMU).
    public var intervalTimerTicks: UInt64 { clock.now.nanoseconds >> 2 }

    /// MFCTL CR16: the counter, through the environment (an environment instruction).
    func readIntervalTimer(atProgress p: UInt64) throws(EnvironmentError) -> UInt32 {
        progress = p
        let proposed = intervalTimerTicks
        let value = try environment?.environmentValue(.intervalTimer, proposed: proposed) ?? proposed
        return UInt32(truncatingIfNeeded: value)
    }

    /// MTCTL CR16: arms the comparator. As QEMU does, the deadline is the next time the low 32
    /// bits of the counter equal `value`, at least 1 µs ahead (else one wrap later).
    func writeIntervalTimerComparator(_ value: UInt32, atProgress p: UInt64) {
        progress = p
        let now = clock.now.nanoseconds
        var deadline = (now & ~((1 << 34) - 1)) | UInt64(value) << 2
        if deadline < now &+ 1000 { deadline &+= 1 << 34 }
        timerDeadline = VirtualTime(nanoseconds: deadline)
    }

    /// Forgets every predecoded and translated instruction: the entry point for whoever wrote
    /// guest memory behind the CPU's back (DMA by a device, a reloaded image, a restored
    /// snapshot). Safe to call from a device during a run: the engine drops its translations
    /// before the next instruction.
    public func invalidateTranslations() {
        for i in decodeCache.indices { decodeCache[i] = .empty }
        decodeCacheInvalidated = true
        core.invalidate()
    }

    /// The same as `invalidateTranslations()` (its older name).
    public func invalidateDecodeCache() { invalidateTranslations() }

    /// Set by `invalidateTranslations`; the running interpreter clears it and its cache.
    var decodeCacheInvalidated = false

    /// Restores the timer state from a snapshot (tests and state transfer).
    func restoreTimer(deadline: VirtualTime?) { timerDeadline = deadline }
}

/// One slot of the predecoded-instruction cache: the word address it holds and its decoding.
struct DecodeCacheEntry: Sendable {
    /// The physical address of the cached instruction, or 1 (never a word address) when empty.
    var tag: UInt32
    var instruction: DecodedInstruction

    static let empty = DecodeCacheEntry(tag: 1, instruction: .illegal)
}
