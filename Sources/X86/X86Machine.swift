import Foundation
import KVM
import Loader
import Logging
import MachineCore

/// An x86 guest on KVM: one vCPU, RAM at guest-physical 0, Lockstep's devices in user space.
///
/// The platform (docs/architecture.md, "x86"): a Multiboot v1 or ELF64 kernel (`BootLoader`),
/// COM1, the 8259 pair, the 8254 PIT, isa-debug-exit, POST port and, with a disk, a virtio-mmio
/// block device (`X86Devices`). There is no in-kernel irqchip or PIT: interrupts come from the
/// user-space 8259 and are injected with `KVM_INTERRUPT` only at deterministic exits where the
/// vCPU can take them, so they land at the same instruction on every replica.
///
/// Environment instructions (RDTSC, RDTSCP, CPUID, RDRAND, RDSEED, RDPID) are rewritten at load
/// time into `out %al,$0xe7` (`EnvironmentPatcher`) and simulated here when that OUT exits; TSC
/// MSR reads exit through an MSR filter. Their values come from the `GuestEnvironment`.
///
/// Create it on the thread that will run it (the vCPU is confined to one thread).
public final class X86Machine: Machine {
    /// The KVM device to use unless told otherwise: `LOCKSTEP_KVM_DEVICE`, else `/dev/kvm`.
    public static var defaultKVMPath: String {
        ProcessInfo.processInfo.environment["LOCKSTEP_KVM_DEVICE"] ?? "/dev/kvm"
    }

    /// The epoch clock `--epoch-clock auto` picks for an x86 guest: `pmu` where the host PMU
    /// offers this CPU's retired-conditional-branch counter (counter-driven epochs at every
    /// privilege level, faster than single-stepping), else `exits`. The `emulation-counter`
    /// clock is never picked: it counts only CPL0 code, and whether a guest stays at CPL0 is
    /// known only once it runs (`lockstep doctor` recommends it for ring0 guests).
    public static func automaticEpochClock() -> EpochClock {
        if case .available = CounterAvailability.branchCounter() { return .performanceCounter }
        return .deterministicExits
    }

    /// Counters of what the machine did (diagnostics and benchmarks; not replicated state).
    public struct Statistics: Hashable, Sendable, Codable {
        /// `KVM_RUN` calls.
        public var runs: UInt64 = 0
        /// Port I/O exits (the trap port included).
        public var portIO: UInt64 = 0
        /// MMIO exits.
        public var mmio: UInt64 = 0
        /// HLT exits.
        public var halts: UInt64 = 0
        /// Simulated environment instructions (trap-port exits from a known site).
        public var environmentInstructions: UInt64 = 0
        /// RDMSR/WRMSR exits.
        public var msrAccesses: UInt64 = 0
        /// Single-step exits.
        public var steps: UInt64 = 0
        /// Counter-driven clocks: runs with the counter's overflow armed.
        public var freeRuns: UInt64 = 0
        /// Counter-driven clocks: runs bounded by an interrupt window (one emulation batch).
        public var boundedRuns: UInt64 = 0
        /// Counter-driven clocks: the most units one bounded run advanced the count.
        public var largestBoundedRun: UInt64 = 0
        /// Counter-driven clocks: free runs the overflow (or the kick timer) ended.
        public var overflows: UInt64 = 0
        /// Counter-driven clocks: how late each overflow arrived past its armed count.
        public var overflowSkids = SkidHistogram()
        /// Interrupts injected with `KVM_INTERRUPT`.
        public var interruptsInjected: UInt64 = 0
        /// `KVM_RUN` returns that were kicks or other non-deterministic exits (never counted).
        public var interrupted: UInt64 = 0
        /// Writes to deferred registers applied (`DeferredWrites`), buffered or exited.
        public var deferredWrites: UInt64 = 0
        /// Of those, the ones KVM buffered in its coalesced ring (no exit).
        public var coalescedWrites: UInt64 = 0
    }

    public let architecture = GuestArchitecture.x86_64
    public let epochClock: EpochClock
    public var progress: UInt64 { counter.value }
    public let clock: VirtualClock
    /// The PIT's next IRQ 0 edge, unless IRQ 0 is masked at the master 8259: a masked timer
    /// cannot wake an idle guest (a guest that never programs the PIT leaves the BIOS's 18.2 Hz
    /// counter running with IRQ 0 masked).
    public var nextTimerDeadline: VirtualTime? {
        guard devices.pic.state.master.imr & (1 << UInt8(X86Platform.pitIRQ)) == 0 else { return nil }
        return devices.pit.nextDeadline(after: clock.now)
    }
    public var outstandingBlockRequests: [BlockRequestID] { devices.virtio?.outstandingRequests ?? [] }
    public var consoleInputRoom: Int { devices.uart.receiveRoom }

    /// Guest RAM (guest-physical 0 up to its size), also KVM memory slot 0.
    public let memory: GuestMemory
    /// Pages written: host writes from the memory's write map, guest writes from KVM's dirty
    /// log of slot 0 (`X86Machine+Snapshot`).
    public let dirtyPages: DirtyPageTracker
    /// The incremental digest of RAM.
    public let memoryDigest: MemoryDigest
    /// The vCPU state the kernel was entered with.
    public let entryState: EntryState
    /// The command line the guest sees (the user's plus Lockstep's device announcements).
    public let commandLine: String
    /// The rewritten environment-instruction sites.
    public let patchSites: PatchSiteTable
    /// The CPUID table the guest sees.
    public let cpuidTable = CPUIDTable()
    /// What the machine did so far.
    public internal(set) var statistics = Statistics()
    /// Unknown ports and MMIO addresses the guest touched (each logged once).
    public internal(set) var unknownAccesses = UnknownAccessLog()
    /// How many deferred-write zones KVM buffers in its coalesced ring (0: every deferred write
    /// exits; see `DeferredWrites`).
    public let coalescedZones: Int

    let environment: any GuestEnvironment
    let system: KVMSystem
    let vm: VirtualMachine
    let vcpu: VCPU
    let devices: X86Devices
    let counter: ProgressCounter
    var random = DeterministicRandom()
    let logger = Logger(label: "lockstep.x86")
    /// Set once the guest exited or crashed: every later `run` returns it again.
    var finalStop: MachineStop?
    /// How the last `run` ended (snapshots refuse some boundaries).
    var lastStop = MachineStop.epochEnd
    /// The vCPU stopped at an exit to user space or at an epoch boundary: a point every replica
    /// stops at whatever epoch clock runs (a single-step exit inside an epoch is not), so
    /// `kvm_run`'s interrupt-window fields describe a reproducible point and an interrupt may be
    /// injected there.
    var atInjectionPoint = false
    /// Counter-driven clocks: the linear RIP where the next step starts, when known.
    var stepStart: UInt64?
    /// Counter-driven clocks: the page tables as of the last stop that was not a single-step
    /// (for looking at the next instruction before stepping it).
    var stepTranslation: AddressTranslation?
    /// The counter-driven clocks' counter (single-step, emulation-counter, pmu).
    var counterClock: CounterClock?
    /// Writes to device registers that take effect at the next deterministic exit.
    var deferredWrites: DeferredWrites
    /// Whether the vCPU could take an interrupt at the boundary where the state was last
    /// captured or restored: capturing completes the exit the vCPU stopped at, which rewrites
    /// `kvm_run`'s interrupt window, so the next entry decides on this value instead (once).
    var interruptWindowAtBoundary: Bool?

    /// Creates the machine and loads `image`.
    ///
    /// - Parameters:
    ///   - image: a Multiboot v1 kernel (ELF32 or ELF64) or an ELF64 kernel without Multiboot.
    ///   - memorySize: guest RAM in bytes (a multiple of 4 KiB, at least 1 MiB).
    ///   - commandLine: the user's kernel command line; with a disk, Lockstep appends
    ///     `virtio_mmio.device=512@0xfeb00000:5`.
    ///   - diskSectors: the disk's size in 512-byte sectors, or nil for no disk.
    ///   - epochClock: `exits`, `single-step` (CPL0 guests only on the PVM host),
    ///     `emulation-counter` (CPL0 guests on a host where KVM interprets CPL0 code) or `pmu`
    ///     (needs a host PMU with a known retired-conditional-branch event; refused elsewhere).
    ///   - environment: where environment values, console output and disk requests go.
    ///   - kvmPath: the KVM device.
    ///   - coalescing: let KVM buffer writes to the deferred registers (`DeferredWrites`) in its
    ///     coalesced MMIO/PIO ring where the host offers it; off, they exit. The guest sees the
    ///     same either way (progress, interrupts, results): only the cost differs.
    public init(image: ELFImage, memorySize: UInt64, commandLine: String = "",
                diskSectors: UInt64? = nil, epochClock: EpochClock = .deterministicExits,
                environment: any GuestEnvironment, kvmPath: String = X86Machine.defaultKVMPath,
                coalescing: Bool = true)
        throws(X86Error)
    {
        var branchEvent: RetiredBranchEvent?
        switch epochClock {
        case .recoveryCounter:
            throw .epochClockUnavailable(.recoveryCounter, reason: "the recovery counter is PA-RISC's (use exits, single-step, emulation-counter or pmu)")
        case .performanceCounter:
            switch CounterAvailability.branchCounter() {
            case .available(let event): branchEvent = event
            case .unavailable(let why):
                throw .epochClockUnavailable(.performanceCounter, reason: "\(why); use exits, or single-step or emulation-counter for a ring0 guest")
            }
        case .emulationCounter:
            if case .unavailable(let why) = CounterAvailability.emulationCounter(kvmPath: kvmPath) {
                throw .epochClockUnavailable(.emulationCounter, reason: "\(why); use exits or pmu")
            }
        case .singleStep, .deterministicExits:
            break
        }
        guard image.machine.architecture == .x86_64 else {
            throw .image(.unsupportedMachine(path: image.path, machine: image.machine.description))
        }
        let memory: GuestMemory
        do { memory = try GuestMemory(size: memorySize) } catch { throw .memory(error) }
        let counter = ProgressCounter()
        let clock = VirtualClock(nanosecondsPerUnit: epochClock == .deterministicExits ? 1000 : 1) {
            counter.value
        }
        do {
            system = try KVMSystem(path: kvmPath)
            vm = try system.createVM()
            try vm.setUserMemoryRegion(
                UserMemoryRegion(slot: 0, guestPhysicalAddress: 0, size: memory.size,
                                 userspaceAddress: memory.hostAddress, flags: .logDirtyPages),
                owner: memory)
            if vm.checkExtension(.exitOnEmulationFailure) > 0 {
                try vm.enableCapability(.exitOnEmulationFailure, arguments: [1])
            }
            if vm.checkExtension(.x86UserSpaceMSR) > 0, vm.checkExtension(.x86MSRFilter) > 0 {
                try vm.enableUserSpaceMSR(.filter)
                try vm.setMSRFilter(MSRFilter(ranges: [.deny([.read, .write], msr: X86Platform.tscMSR)]))
            }
            let zones = DeferredWrites.zones(hasDisk: diskSectors != nil)
            deferredWrites = DeferredWrites(zones: zones)
            coalescedZones = coalescing ? Self.registerCoalescedZones(zones, vm: vm) : 0
            vcpu = try vm.createVCPU(id: 0)
            try vcpu.setCPUID(CPUIDTable().kvmEntries(supported: try system.supportedCPUID()))
        } catch {
            throw .kvmUnavailable(error)
        }
        self.memory = memory
        dirtyPages = Self.dirtyPageTracker(memory: memory, vm: vm)
        memoryDigest = MemoryDigest(tracker: dirtyPages)
        self.counter = counter
        self.clock = clock
        self.epochClock = epochClock
        self.environment = environment
        self.commandLine = X86Platform.commandLine(user: commandLine, hasDisk: diskSectors != nil)
        entryState = try BootLoader.load(image, into: memory, commandLine: self.commandLine)
        let sites = try EnvironmentPatcher.findSites(
            in: image, excluding: BootLoader.multibootHeaderRange(in: image))
        try EnvironmentPatcher.apply(sites, to: memory)
        patchSites = PatchSiteTable(sites)
        devices = try X86Devices(memory: memory, clock: clock, diskSectors: diskSectors,
                                 environment: environment)
        do {
            var sregs = try vcpu.specialRegisters()
            entryState.apply(to: &sregs)
            try vcpu.setSpecialRegisters(sregs)
            try vcpu.setRegisters(entryState.registers)
            // IA32_TSC_AUX = 0, what RDTSCP and RDPID report.
            try vcpu.setMSRs([MSREntry(index: 0xC000_0103, value: 0)])
            // Which MSRs a snapshot reads (about 0.5 ms of probing here), found now rather than
            // while the guest waits for a live state transfer's final copy.
            _ = try vcpu.snapshotMSRIndices()
        } catch {
            throw .kvmUnavailable(error)
        }
        counterClock = try Self.makeCounterClock(epochClock, vcpu: vcpu, kvmPath: kvmPath, branchEvent: branchEvent)
        logger.debug("x86 machine: \(entryState.protocolKind) entry at \(hex(entryState.registers.rip)), \(sites.count) environment-instruction sites patched")
    }

    public func run(budget: UInt64) throws -> MachineStop {
        if let finalStop { return finalStop }
        guard budget > 0 else { return .epochEnd }
        // A budget beyond the end of the 64-bit count runs to its end.
        let (sum, overflow) = counter.value.addingReportingOverflow(budget)
        let target = overflow ? UInt64.max : sum
        let stop: MachineStop
        switch epochClock {
        case .deterministicExits: stop = try runCountingExits(until: target)
        case .singleStep, .emulationCounter, .performanceCounter: stop = try runCounting(until: target)
        case .recoveryCounter: preconditionFailure("X86Machine.init refuses the recovery-counter clock")
        }
        // A boundary (or the end) holds no deferred write: they take effect here at the latest.
        applyDeferredWrites()
        switch stop {
        case .exited, .crashed: finalStop = stop
        case .epochEnd, .idle: break
        }
        lastStop = stop
        return stop
    }

    public func applyBoundary(time: VirtualTime, events: [BoundaryEvent]) throws {
        clock.set(time)
        for event in events {
            switch event {
            case .consoleInput(let bytes):
                devices.uart.receive(bytes)
            case .blockCompletion(let completion):
                if let virtio = devices.virtio {
                    virtio.complete(completion)
                } else {
                    logger.warning("x86: a disk completion (request \(completion.id)) arrived for a machine without a disk; ignored")
                }
            }
        }
        devices.pit.update(now: clock.now)
    }
}

/// The progress counter shared by a machine and its virtual clock.
final class ProgressCounter {
    var value: UInt64 = 0
}

/// The deterministic generator behind RDRAND/RDSEED proposals: SplitMix64 from a fixed seed.
/// Its state is part of the machine's state digest.
struct DeterministicRandom: Hashable, Sendable {
    var state: UInt64 = 0x4C6F_636B_7374_6570  // "Lockstep"

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The unknown ports and MMIO addresses a guest touched. Each is logged the first time only.
public struct UnknownAccessLog: Hashable, Sendable {
    /// One unknown location.
    public struct Location: Hashable, Sendable, CustomStringConvertible {
        /// "pio" or "mmio".
        public let bus: String
        public let address: UInt64
        public var description: String { "\(bus) \(hex(address))" }
    }

    /// Every unknown location touched so far.
    public private(set) var locations: Set<Location> = []

    /// Records an access; true if it is the first one to `address` on `bus`.
    mutating func record(bus: String, address: UInt64) -> Bool {
        locations.insert(Location(bus: bus, address: address)).inserted
    }
}

extension X86Machine {
    /// The counter of a counter-driven epoch clock (nil for the others), opened on the vCPU's
    /// thread. The single-step clock counts with `insn_emulation` where KVM interprets the guest,
    /// so that its boundaries and the emulation counter's fall on the same instructions.
    static func makeCounterClock(_ epochClock: EpochClock, vcpu: VCPU, kvmPath: String,
                                 branchEvent: RetiredBranchEvent?) throws(X86Error) -> CounterClock?
    {
        func opening<T>(_ body: () throws(KVMError) -> T) throws(X86Error) -> T {
            do { return try body() } catch { throw .kvmUnavailable(error) }
        }
        switch epochClock {
        case .singleStep:
            let interprets = CounterAvailability.emulationCounter(kvmPath: kvmPath) == .available
            let emulation = interprets ? try opening { () throws(KVMError) in try EmulationCounter(vcpu: vcpu) } : nil
            let source: any CounterSource = emulation ?? StepCounter()
            return try opening { () throws(KVMError) in try CounterClock(source: source, runsFree: false) }
        case .emulationCounter:
            guard let source = try opening({ () throws(KVMError) in try EmulationCounter(vcpu: vcpu) }) else {
                throw .epochClockUnavailable(.emulationCounter, reason: "this vCPU has no insn_emulation statistic; use exits or pmu")
            }
            return try opening { () throws(KVMError) in try CounterClock(source: source, runsFree: true) }
        case .performanceCounter:
            guard let branchEvent else { preconditionFailure("X86Machine.init checks the pmu clock's event first") }
            let source = try opening { () throws(KVMError) in try BranchCounter(event: branchEvent) }
            return try opening { () throws(KVMError) in try CounterClock(source: source, runsFree: true) }
        case .deterministicExits, .recoveryCounter:
            return nil
        }
    }

    /// The vCPU's general-purpose registers, RIP and RFLAGS now (for diagnostics and tests).
    /// The corresponding ioctl is `KVM_GET_REGS`.
    public func registers() throws(X86Error) -> Registers {
        do { return try vcpu.registers() } catch { throw .kvm(error) }
    }

    /// The vCPU's segment, control and descriptor-table registers now (for diagnostics and
    /// tests). The corresponding ioctl is `KVM_GET_SREGS`.
    public func specialRegisters() throws(X86Error) -> SpecialRegisters {
        do { return try vcpu.specialRegisters() } catch { throw .kvm(error) }
    }
}
