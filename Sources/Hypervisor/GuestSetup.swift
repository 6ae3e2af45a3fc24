import Foundation
import Loader
import MachineCore
import PARISC
import X86

/// Why a run cannot start. Each description is one line for the user.
public enum SetupError: Error, Equatable, Sendable, CustomStringConvertible {
    case image(LoaderError)
    /// The ELF file is a program for an operating system (it names a program interpreter), not
    /// a kernel.
    case userProgram(path: String, interpreter: String)
    case disk(HostDiskError)
    case engineMismatch(engine: EngineKind, architecture: GuestArchitecture)
    /// `--emulator` given for a guest that does not run on the emulator.
    case emulatorOption(PARISCEngine, engine: EngineKind)
    case memorySize(UInt64, architecture: GuestArchitecture, range: ClosedRange<UInt64>)
    case epochClockMismatch(EpochClock, engine: EngineKind)
    case epochLength
    /// The host cannot do what was asked (no /dev/kvm, no PMU, ...).
    case hostUnavailable(String)

    public var description: String {
        switch self {
        case .image(let e): e.description
        case .userProgram(let path, let interpreter):
            "\(path): a program for an operating system (it asks for the interpreter \(interpreter)), not a guest kernel: Lockstep runs kernels (Multiboot or bare ELF64 on x86, qemu-system-hppa -kernel images on PA-RISC; see guests/README.md)"
        case .disk(let e): e.description
        case .engineMismatch(let engine, let architecture):
            switch engine {
            case .kvm: "KVM runs x86 guests, and this is a \(architecture) guest (use --engine emulator)"
            case .emulator: "the emulator runs PA-RISC guests, and this is an \(architecture) guest (use --engine kvm)"
            }
        case .emulatorOption(let emulator, let engine):
            "--emulator \(emulator) chooses how the PA-RISC emulator runs, and this guest runs on \(engine)"
        case .memorySize(let size, let architecture, let range):
            "--memory \(SizeParser.describe(size)) is not usable for this \(architecture) guest: give a multiple of 4 KiB from \(SizeParser.describe(range.lowerBound)) to \(SizeParser.describe(range.upperBound)) (a bare number is in MiB, as QEMU's -m)"
        case .epochClockMismatch(let clock, let engine):
            "the \(clock) epoch clock is not available on the \(engine) engine (\(engine == .kvm ? "use exits, single-step, emulation-counter or pmu" : "use recovery-counter"))"
        case .epochLength: "the epoch length must be at least 1"
        case .hostUnavailable(let why): why
        }
    }
}

/// Everything resolved before a machine is created: the parsed image and the checked options.
public struct GuestSetup: Sendable {
    public let options: RunOptions
    public let image: ELFImage
    public let architecture: GuestArchitecture
    public let engine: EngineKind
    public let epochClock: EpochClock
    public let epochLength: UInt64
    /// Sectors of the disk image, if there is one.
    public let diskSectors: UInt64?

    /// The guest RAM sizes each architecture's platform accepts.
    public static func memoryRange(for architecture: GuestArchitecture) -> ClosedRange<UInt64> {
        switch architecture {
        case .x86_64: (4 << 20)...(3 << 30)
        case .parisc: (16 << 20)...(3 << 30)
        }
    }

    /// Checks `options` and loads the guest image.
    public init(_ options: RunOptions) throws(SetupError) {
        let image: ELFImage
        do { image = try ELFImage.load(contentsOf: options.guestPath) } catch { throw .image(error) }
        guard let architecture = image.machine.architecture else {
            throw .image(.unsupportedMachine(path: options.guestPath, machine: image.machine.description))
        }
        if let interpreter = Self.programInterpreter(in: image.fileBytes) {
            throw .userProgram(path: options.guestPath, interpreter: interpreter)
        }
        let engine = options.engine ?? EngineKind.native(for: architecture)
        guard engine == EngineKind.native(for: architecture) else {
            throw .engineMismatch(engine: engine, architecture: architecture)
        }
        if let emulator = options.emulator {
            guard engine == .emulator else { throw .emulatorOption(emulator, engine: engine) }
            if let reason = emulator.unavailableReason { throw .hostUnavailable("--emulator \(emulator): \(reason)") }
        }
        let range = Self.memoryRange(for: architecture)
        guard range.contains(options.memorySize), options.memorySize % GuestMemory.pageSize == 0 else {
            throw .memorySize(options.memorySize, architecture: architecture, range: range)
        }
        let clock: EpochClock
        switch options.epochClock {
        case .auto:
            clock = engine == .kvm ? X86Machine.automaticEpochClock() : .recoveryCounter
        case .specific(let requested):
            let valid: Bool = switch requested {
            case .recoveryCounter: engine == .emulator
            case .singleStep, .emulationCounter, .performanceCounter, .deterministicExits: engine == .kvm
            }
            guard valid else { throw .epochClockMismatch(requested, engine: engine) }
            clock = requested
        }
        let length = options.epochLength ?? clock.defaultEpochLength
        guard length > 0 else { throw .epochLength }
        var sectors: UInt64?
        if let path = options.diskPath {
            do { sectors = try HostDisk.inspect(path: path) } catch { throw .disk(error) }
        }
        self.options = options
        self.image = image
        self.architecture = architecture
        self.engine = engine
        self.epochClock = clock
        self.epochLength = length
        self.diskSectors = sectors
    }

    /// What a snapshot of this run is a snapshot of, and what a snapshot must have been taken
    /// with to continue in this run: the image's SHA-256 and every setting that shapes the
    /// machine or its epochs (host paths excluded, as in the replication handshake).
    public var snapshotIdentity: SnapshotIdentity {
        SnapshotIdentity(
            architecture: architecture, imageDigest: StateDigest.of(image.fileBytes),
            configuration: [
                .init("engine", engine.rawValue),
                .init("memory", String(options.memorySize)),
                .init("cmdline", options.commandLine),
                .init("disk-sectors", diskSectors.map(String.init) ?? "none"),
                .init("clock", options.clockMode.rawValue),
                .init("epoch-clock", epochClock.rawValue),
                .init("epoch-length", String(epochLength)),
            ])
    }

    /// Opens the disk image with the run's cache mode, locked for `sharing` (`ImageLock`).
    public func openDisk(sharing: ImageSharing = .exclusive) throws(SetupError) -> HostDisk? {
        guard let path = options.diskPath else { return nil }
        do { return try HostDisk(path: path, cache: options.diskCache, sharing: sharing) } catch { throw .disk(error) }
    }
}

extension GuestSetup {
    /// The program interpreter an ELF file names (its PT_INTERP segment), if it names one: what
    /// an operating system's programs have and kernels do not. Reads only within `bytes`.
    static func programInterpreter(in bytes: [UInt8]) -> String? {
        guard bytes.count >= 52, bytes[0..<4] == [0x7F, 0x45, 0x4C, 0x46] else { return nil }
        let is64 = bytes[4] == 2
        let little = bytes[5] == 1
        func word(_ offset: Int, _ size: Int) -> Int? {
            guard offset >= 0, size <= 8, offset <= bytes.count - size else { return nil }
            var value: UInt64 = 0
            for i in 0..<size {
                let byte = UInt64(bytes[offset + (little ? size - 1 - i : i)])
                value = value << 8 | byte
            }
            return value <= UInt64(Int.max) ? Int(value) : nil
        }
        guard let tableOffset = word(is64 ? 0x20 : 0x1C, is64 ? 8 : 4),
              let entrySize = word(is64 ? 0x36 : 0x2A, 2), let count = word(is64 ? 0x38 : 0x2C, 2),
              entrySize >= (is64 ? 0x38 : 0x20)
        else { return nil }
        for index in 0..<count {
            let (entry, overflow) = tableOffset.addingReportingOverflow(index * entrySize)
            guard !overflow, let type = word(entry, 4) else { return nil }
            guard type == 3 else { continue }  // PT_INTERP
            guard let offset = word(entry + (is64 ? 0x08 : 0x04), is64 ? 8 : 4),
                  let size = word(entry + (is64 ? 0x20 : 0x10), is64 ? 8 : 4),
                  offset <= bytes.count, size <= min(bytes.count - offset, 4096)
            else { return "an unreadable one" }
            return String(decoding: bytes[offset..<offset + size].prefix { $0 != 0 }, as: UTF8.self)
        }
        return nil
    }
}
