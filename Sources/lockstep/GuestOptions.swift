import ArgumentParser
import Hypervisor
import MachineCore
import PARISC

/// The options every command that runs a guest takes.
struct GuestOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Guest RAM: a size in MiB, or with a suffix (B, K, M, G), as QEMU's -m takes it: 64, 512M, 1G.",
                               valueName: "size"))
    var memory: String = "64M"

    @Option(help: ArgumentHelp("The guest's command line (Lockstep puts its device announcements first).", valueName: "text"))
    var cmdline: String = ""

    @Option(help: ArgumentHelp("A raw disk image for the guest's virtio block device (default: none).", valueName: "file"))
    var disk: String?

    @Option(name: .customLong("disk-cache"),
            help: ArgumentHelp("When a disk write is done: writethrough (durable), writeback (durable at the guest's flush) or unsafe, QEMU's cache= modes.",
                               valueName: "mode"))
    var diskCache: String = DiskCacheMode.default.rawValue

    @Option(help: ArgumentHelp("Virtual time: deterministic (from guest progress) or host (the host's clock at each boundary).",
                               valueName: "mode"))
    var clock: String = "deterministic"

    @Option(name: .customLong("epoch-clock"),
            help: ArgumentHelp("What ends epochs: recovery-counter (PA-RISC), single-step, pmu or exits (x86), or auto: recovery-counter on PA-RISC, exits on x86.",
                               valueName: "clock"))
    var epochClock: String = "auto"

    @Option(name: .customLong("epoch-length"),
            help: ArgumentHelp("Units of the epoch clock (instructions, or exits) per epoch (default: \(EpochClock.allCases.map { "\($0.defaultEpochLength) for \($0.rawValue)" }.joined(separator: ", "))).",
                               valueName: "n"))
    var epochLength: String?

    @Option(help: ArgumentHelp("Force the engine: kvm or emulator (default: from the ELF's machine type).", valueName: "engine"))
    var engine: String?

    @Flag(name: .customLong("coalesced-writes"), inversion: .prefixedNo,
          help: "x86: KVM buffers writes to the virtio notify and 8259 EOI registers without exits where it can (off: each exits; the guest sees the same run).")
    var coalescedWrites = true
    @Option(help: "How the PA-RISC emulator runs guest code: jit, threaded (block cache) or interpreter (default: the fastest this host runs).")
    var emulator: String?

    @OptionGroup var log: LogOptions

    @Argument(help: "The guest kernel (ELF).")
    var guest: String

    /// The checked options.
    func runOptions() throws -> RunOptions {
        guard let size = SizeParser.bytes(memory) else {
            throw CLIFailure("--memory \(memory): not a size: give MiB (64) or a size with a unit (512M, 1G)", status: ExitStatus.usage)
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
        var args = ["--memory", memory, "--cmdline", cmdline, "--clock", clock, "--epoch-clock", epochClock] + log.arguments
        if let disk { args += ["--disk", disk, "--disk-cache", diskCache] }
        if let epochLength { args += ["--epoch-length", epochLength] }
        if let engine { args += ["--engine", engine] }
        if !coalescedWrites { args.append("--no-coalesced-writes") }
        if let emulator { args += ["--emulator", emulator] }
        return args + ["--", guest]
    }
}
