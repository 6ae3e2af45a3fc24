import ArgumentParser
import Hypervisor
import MachineCore
import PARISC

/// The options every command that runs a guest takes.
struct GuestOptions: ParsableArguments {
    @Option(help: "Guest RAM, e.g. 64M or 1G.")
    var memory: String = "64M"

    @Option(help: "The guest's command line (Lockstep appends its device announcements).")
    var cmdline: String = ""

    @Option(help: "A raw disk image for the guest's virtio block device.")
    var disk: String?

    @Option(name: .customLong("disk-cache"),
            help: "When a disk write is done: writethrough (durable, the default), writeback (durable at the guest's flush) or unsafe.")
    var diskCache: String = DiskCacheMode.default.rawValue

    @Option(help: "Virtual time: deterministic (from guest progress) or host (the host's clock at each boundary).")
    var clock: String = "deterministic"

    @Option(name: .customLong("epoch-clock"),
            help: "What ends epochs: auto, recovery-counter (PA-RISC), single-step, pmu or exits (x86).")
    var epochClock: String = "auto"

    @Option(name: .customLong("epoch-length"),
            help: "Units of the epoch clock (instructions or exits) per epoch.")
    var epochLength: String?

    @Option(help: "Force the engine: kvm or emulator (default: from the ELF's machine type).")
    var engine: String?

    @Flag(name: .customLong("coalesced-writes"), inversion: .prefixedNo,
          help: "x86: KVM buffers writes to the virtio notify and 8259 EOI registers without exits where it can (off: each exits; the guest sees the same run).")
    var coalescedWrites = true
    @Option(help: "How the PA-RISC emulator runs guest code: jit, threaded (block cache) or interpreter (default: the fastest this host runs).")
    var emulator: String?

    @Argument(help: "The guest kernel (ELF).")
    var guest: String

    /// The checked options.
    func runOptions() throws -> RunOptions {
        guard let size = SizeParser.bytes(memory) else {
            throw CLIFailure("--memory \(memory): not a size (examples: 64M, 1G, 67108864)", status: ExitStatus.usage)
        }
        guard let clockMode = ClockMode(rawValue: clock) else {
            throw CLIFailure("--clock \(clock): expected deterministic or host", status: ExitStatus.usage)
        }
        guard let epochClockChoice = EpochClockChoice(argument: epochClock) else {
            throw CLIFailure("--epoch-clock \(epochClock): expected auto, \(EpochClock.allCases.map(\.rawValue).joined(separator: ", "))", status: ExitStatus.usage)
        }
        var length: UInt64?
        if let epochLength {
            guard let n = UInt64(epochLength), n > 0 else {
                throw CLIFailure("--epoch-length \(epochLength): expected a whole number of at least 1", status: ExitStatus.usage)
            }
            length = n
        }
        var engineKind: EngineKind?
        if let engine {
            guard let kind = EngineKind(rawValue: engine) else {
                throw CLIFailure("--engine \(engine): expected kvm or emulator", status: ExitStatus.usage)
            }
            engineKind = kind
        }
        let cache: DiskCacheMode
        switch DiskCacheMode.parse(diskCache) {
        case .success(let mode): cache = mode
        case .failure(let error): throw CLIFailure(error.description, status: ExitStatus.usage)
        }
        var emulatorEngine: PARISCEngine?
        if let emulator {
            guard let choice = PARISCEngine(rawValue: emulator) else {
                throw CLIFailure("--emulator \(emulator): expected \(PARISCEngine.allCases.map(\.rawValue).joined(separator: ", "))", status: ExitStatus.usage)
            }
            emulatorEngine = choice
        }
        return RunOptions(guestPath: guest, memorySize: size, commandLine: cmdline, diskPath: disk,
                          clockMode: clockMode, epochClock: epochClockChoice, epochLength: length,
                          engine: engineKind, diskCache: cache, coalescedWrites: coalescedWrites,
                          emulator: emulatorEngine)
    }

    /// The checked options and the loaded guest.
    func setup() throws -> GuestSetup {
        do { return try GuestSetup(try runOptions()) } catch { throw CLIFailure(error) }
    }

    /// The same options as arguments, for starting a replica process.
    var arguments: [String] {
        var args = ["--memory", memory, "--cmdline", cmdline, "--clock", clock, "--epoch-clock", epochClock]
        if let disk { args += ["--disk", disk, "--disk-cache", diskCache] }
        if let epochLength { args += ["--epoch-length", epochLength] }
        if let engine { args += ["--engine", engine] }
        if !coalescedWrites { args.append("--no-coalesced-writes") }
        if let emulator { args += ["--emulator", emulator] }
        return args + ["--", guest]
    }
}
