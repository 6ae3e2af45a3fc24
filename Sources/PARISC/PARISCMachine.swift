import Devices
import Foundation
import Loader
import Logging
import MachineCore

/// A PA-RISC 1.1 machine on Lockstep's emulator: the CPU, RAM, and the platform of
/// `qemu-system-hppa -kernel` (QEMU 7.2, B160L) as a tiny kernel sees it — the LASI 16550 UART and
/// LASI interrupt controller, IO_EIR, the interval timer, the HALT word — plus Lockstep's
/// virtio-mmio block device and debug-exit register (addresses in `PARISCPlatform`).
///
/// The epoch clock is the instruction count with the recovery counter's rule (completed,
/// non-nullified instructions); it is the hypervisor's own counter, separate from the guest's CR0.
/// Virtual time advances 1 ns per counted instruction; CR16 reads ns / 4.
public final class PARISCMachine: Machine {
    /// How the machine is set up. Primary and backup must use equal configurations, except for
    /// the engine (every engine gives the same results).
    public struct Configuration: Equatable, Sendable {
        /// Guest RAM in bytes (16 MiB ... 3 GiB, a multiple of 4 KiB).
        public var memorySize: UInt64
        /// The kernel command line; Lockstep appends its device announcements.
        public var commandLine: String
        /// The virtio-mmio block device, if a disk is attached.
        public var disk: VirtioMMIOBlock.Configuration?
        /// Log2 of the interpreter's predecoded-instruction cache size.
        public var decodeCacheBits: Int
        /// How guest code runs (by default the fastest engine this host can run).
        public var engine: PARISCEngine

        /// A configuration (by default 64 MiB, no command line, no disk, the fastest engine).
        public init(memorySize: UInt64 = PARISCPlatform.defaultMemorySize, commandLine: String = "",
                    disk: VirtioMMIOBlock.Configuration? = nil, decodeCacheBits: Int = 16,
                    engine: PARISCEngine = .fastestAvailable)
        {
            self.memorySize = memorySize
            self.commandLine = commandLine
            self.disk = disk
            self.decodeCacheBits = decodeCacheBits
            self.engine = engine
        }

        /// The command line the guest sees: the device announcements, then the configured one
        /// (first, so that a guest that truncates a long command line still finds them).
        public var effectiveCommandLine: String {
            var tokens: [String] = []
            if disk != nil { tokens.append(PARISCPlatform.virtioAnnouncement) }
            tokens.append(PARISCPlatform.debugExitAnnouncement)
            if !commandLine.isEmpty { tokens.append(commandLine) }
            return tokens.joined(separator: " ")
        }
    }

    /// How the machine was set up.
    public let configuration: Configuration
    /// The CPU (registers, interruptions, recovery counter, interval timer).
    public let cpu: PARISCCPU
    /// Guest RAM at physical 0.
    public let memory: GuestMemory
    /// Pages written (every emulator store and host write marks the memory's write map).
    public let dirtyPages: DirtyPageTracker
    /// The incremental digest of RAM.
    public let memoryDigest: MemoryDigest
    /// The MMIO bus with every device window (see `PARISCPlatform`).
    public let bus: Bus
    /// The LASI 16550 UART at 0xffd05800.
    public let uart: UART16550
    /// The LASI interrupt controller at 0xffd00000.
    public let lasi: LASIInterruptController
    /// The virtio-mmio block device at 0xf1000000, when a disk is configured.
    public let virtio: VirtioMMIOBlock?
    /// The debug-exit register at 0xf1001000.
    public let debugExit: DebugExit
    let environment: any GuestEnvironment
    let logger = Logger(label: "lockstep.parisc.machine")

    /// Builds the machine and loads `image` as QEMU's `-kernel` would (see `PARISCMachine+Boot`).
    public init(image: ELFImage, configuration: Configuration = Configuration(),
                environment: any GuestEnvironment) throws(PARISCMachineError)
    {
        guard PARISCPlatform.memoryRange.contains(configuration.memorySize),
              configuration.memorySize % GuestMemory.pageSize == 0
        else { throw .memorySize(configuration.memorySize) }
        let memory: GuestMemory
        do { memory = try GuestMemory(size: configuration.memorySize) } catch { throw .memory(error) }
        let bus = Bus(name: "mmio")
        let cpu = PARISCCPU(memory: memory, bus: bus,
                            configuration: .init(decodeCacheBits: configuration.decodeCacheBits,
                                                 engine: configuration.engine))
        cpu.environment = environment
        self.configuration = configuration
        self.memory = memory
        dirtyPages = DirtyPageTracker(memory: memory)
        memoryDigest = MemoryDigest(tracker: dirtyPages)
        self.bus = bus
        self.cpu = cpu
        self.environment = environment

        let lasi = LASIInterruptController { [unowned bus] address, value in
            bus.write(UInt64(address), size: 4, value: UInt64(value), cpuOrder: .big)
        }
        self.lasi = lasi
        uart = UART16550(
            interrupt: InterruptLine(controller: lasi, number: PARISCPlatform.uartLASIInterrupt),
            output: { [unowned environment] bytes in environment.consoleOutput(bytes) })
        if let disk = configuration.disk {
            virtio = VirtioMMIOBlock(
                configuration: disk, memory: memory,
                interrupt: InterruptLine(controller: ExternalInterruptLines(cpu: cpu),
                                         number: PARISCPlatform.virtioEIRRBit),
                submit: { [unowned environment] request in environment.submitBlockRequest(request) })
        } else {
            virtio = nil
        }
        debugExit = DebugExit()
        try registerDevices()
        try boot(image)
    }

    /// The machine for a hypervisor run: `diskSectors` attaches a virtio-mmio block device of that
    /// many 512-byte sectors. (The counterpart of `X86Machine`'s initializer.)
    public convenience init(image: ELFImage, memorySize: UInt64, commandLine: String,
                            diskSectors: UInt64?, engine: PARISCEngine = .fastestAvailable,
                            environment: any GuestEnvironment)
        throws(PARISCMachineError)
    {
        try self.init(image: image,
                      configuration: Configuration(
                          memorySize: memorySize, commandLine: commandLine,
                          disk: diskSectors.map { VirtioMMIOBlock.Configuration(capacity: $0) },
                          engine: engine),
                      environment: environment)
    }

    /// Places every device on the MMIO bus.
    private func registerDevices() throws(PARISCMachineError) {
        let uart = self.uart, lasi = self.lasi, cpu = self.cpu, debugExit = self.debugExit
        let reRaise = { [unowned uart, unowned lasi] in
            // QEMU's serial model re-raises its IRQ on every register update while an interrupt
            // condition holds, and LASI signals the CPU again each time.
            if uart.pendingInterrupt != nil {
                lasi.setLevel(true, line: PARISCPlatform.uartLASIInterrupt)
            }
        }
        var windows: [(any BusDevice, String, UInt64, UInt64, ByteOrder)] = [
            (BusDeviceAdapter(lasi), "lasi", PARISCPlatform.lasiBase, PARISCPlatform.lasiLength, .big),
            (BusDeviceAdapter(lasi, offsetBase: 0xC000), "lasi-control",
             PARISCPlatform.lasiControlBase, PARISCPlatform.lasiControlLength, .big),
            (BusDeviceAdapter(uart, afterAccess: reRaise), "uart", PARISCPlatform.uartBase,
             PARISCPlatform.uartLength, .big),
            (IOExternalInterruptRegister(cpu: cpu), "io-eir", PARISCPlatform.ioEIRBase,
             PARISCPlatform.ioEIRLength, .big),
            (BusDeviceAdapter(debugExit, afterAccess: { [unowned debugExit, unowned cpu] in
                if let status = debugExit.guestStatus { cpu.requestStop(.exited(status: status)) }
            }), "debug-exit", PARISCPlatform.debugExitBase, PARISCPlatform.debugExitLength, .big),
        ]
        if let virtio {
            // The device may write guest memory (status bytes, used ring) during the access.
            windows.append((BusDeviceAdapter(virtio, afterAccess: { [unowned cpu] in
                cpu.invalidateTranslations()
            }), "virtio-blk", PARISCPlatform.virtioBase, PARISCPlatform.virtioLength, .little))
        }
        for (device, name, base, length, order) in windows {
            do {
                try bus.register(device, name: name, base: base, length: length, byteOrder: order)
            } catch {
                preconditionFailure("PA-RISC platform layout is inconsistent: \(error)")
            }
        }
    }

    // MARK: Machine

    /// PA-RISC 1.1.
    public var architecture: GuestArchitecture { .parisc }
    /// Epochs count completed, non-nullified instructions (the recovery counter's rule).
    public var epochClock: EpochClock { .recoveryCounter }
    /// Counted instructions since the machine was created.
    public var progress: UInt64 { cpu.progress }
    /// Virtual time: 1 ns per counted instruction between boundaries.
    public var clock: VirtualClock { cpu.clock }
    /// When the CR16 comparator will match, if armed.
    public var nextTimerDeadline: VirtualTime? { cpu.timerDeadline }
    /// Disk requests submitted by the virtio device and not yet completed.
    public var outstandingBlockRequests: [BlockRequestID] { virtio?.outstandingRequests ?? [] }
    public var consoleInputRoom: Int { uart.receiveRoom }

    /// Runs `budget` counted instructions, or stops earlier: the idle hint (`diag 0x100` with
    /// nothing pending) gives `.idle`, the HALT word `.exited(status: 0)`, a store of v to the
    /// debug-exit register `.exited(status: v)`, an unhandled interruption `.crashed`. The
    /// instruction that idles, exits or crashes counts as progress.
    public func run(budget: UInt64) throws -> MachineStop {
        switch try cpu.run(budget: budget) {
        case .budgetExhausted: return .epochEnd
        case .idle: return .idle
        case .halted: return .exited(status: 0)
        case .exited(let status): return .exited(status: status)
        case .systemCall:
            return .crashed(reason: "the guest branched to the Linux syscall gateway at 0x100")
        case .crashed(let reason): return .crashed(reason: reason)
        }
    }

    /// Sets virtual time, applies console input (to the UART) and block completions (to the
    /// virtio device) in order, then evaluates the interval timer comparator.
    public func applyBoundary(time: VirtualTime, events: [BoundaryEvent]) throws {
        cpu.clock.set(time)
        for event in events {
            switch event {
            case .consoleInput(let bytes):
                uart.receive(bytes)
                if uart.pendingInterrupt != nil {
                    lasi.setLevel(true, line: PARISCPlatform.uartLASIInterrupt)
                }
            case .blockCompletion(let completion):
                if let virtio {
                    virtio.complete(completion)
                    cpu.invalidateTranslations()
                } else {
                    logger.warning("block completion \(completion.id) without a disk; ignored")
                }
            }
        }
        cpu.evaluateTimer()
    }

    /// SHA-256 over RAM, the CPU (registers, queues, PSW, control registers, EIRR, timer) and the
    /// device states.
    public func stateDigest() throws -> StateDigest {
        stateDigest(ram: try memoryDigest.digest())
    }

    /// `stateDigest()` with every page of RAM hashed again.
    public func fullStateDigest() throws -> StateDigest {
        stateDigest(ram: MemoryDigest.recomputed(memory))
    }

    func stateDigest(ram: StateDigest) -> StateDigest {
        var hasher = StateHasher()
        hasher.add("ram", ram.bytes)
        hasher.add("cpu", cpu.digestBytes())
        hasher.add("lasi", PARISCMachine.encode(lasi.state))
        hasher.add("uart", PARISCMachine.encode(uart.state))
        hasher.add("debug-exit", PARISCMachine.encode(debugExit.state))
        if let virtio { hasher.add("virtio", PARISCMachine.encode(virtio.state)) }
        return hasher.finalize()
    }
}
