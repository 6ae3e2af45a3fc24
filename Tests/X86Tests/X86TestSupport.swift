import Foundation
import KVM
import Loader
import MachineCore
import Testing
@testable import X86

/// Whether this host can run the KVM tests; prints the reason once when it cannot.
enum Host {
    static let kvmUnavailabilityReason: String? = KVMSystem.unavailabilityReason(path: X86Machine.defaultKVMPath)

    /// True if KVM is usable; the first time it is not, prints why.
    static let hasKVM: Bool = {
        if let reason = kvmUnavailabilityReason {
            print("X86Tests: skipping every test that needs KVM: \(reason)")
            return false
        }
        return true
    }()

    /// True if KVM is usable and the bundled x86 guests are built; prints why not, once.
    static let hasGuests: Bool = {
        guard hasKVM else { return false }
        let missing = ["hello", "ticks", "cpu", "disk", "echo"].filter {
            !FileManager.default.fileExists(atPath: Guests.path($0))
        }
        if !missing.isEmpty {
            print("X86Tests: skipping the guest tests: \(missing.joined(separator: ", ")) not built (run scripts/build-guests)")
            return false
        }
        return true
    }()
}

/// The bundled guests (scripts/build-guests).
enum Guests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static func path(_ name: String) -> String {
        root.appendingPathComponent("guests/build/x86/\(name).elf").path
    }

    static func image(_ name: String) throws -> ELFImage {
        try ELFImage.load(contentsOf: path(name))
    }
}

/// A `GuestEnvironment` that records everything: console output, the environment values it
/// returned, disk requests (performed on a temporary file at once, completed at the next
/// boundary).
final class RecordingEnvironment: GuestEnvironment {
    private(set) var output: [UInt8] = []
    private(set) var values: [(read: EnvironmentRead, value: UInt64)] = []
    private(set) var requests: [BlockRequest] = []
    private var completions: [BoundaryEvent] = []
    /// Turns the machine's proposal into the value the guest sees (identity by default).
    var answer: (EnvironmentRead, UInt64) -> UInt64 = { $1 }
    let disk: TemporaryDisk?

    init(disk: TemporaryDisk? = nil) { self.disk = disk }

    func environmentValue(_ read: EnvironmentRead, proposed: UInt64) throws(EnvironmentError) -> UInt64 {
        let value = answer(read, proposed)
        values.append((read, value))
        return value
    }

    func consoleOutput(_ bytes: [UInt8]) { output += bytes }

    func submitBlockRequest(_ request: BlockRequest) {
        requests.append(request)
        let completion = disk?.perform(request) ?? BlockCompletion(id: request.id, status: .ioError)
        completions.append(.blockCompletion(completion))
    }

    var text: String { String(decoding: output, as: UTF8.self) }

    func takeCompletions() -> [BoundaryEvent] {
        defer { completions.removeAll() }
        return completions
    }
}

/// A fresh disk image in a temporary file, removed in deinit.
final class TemporaryDisk {
    let url: URL
    let sectors: UInt64

    init(sectors: UInt64) throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("lockstep-x86-test-\(getpid())-\(UUID().uuidString).img")
        self.sectors = sectors
        try Data(count: Int(sectors * 512)).write(to: url)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    var contents: [UInt8] { (try? [UInt8](Data(contentsOf: url))) ?? [] }

    func perform(_ request: BlockRequest) -> BlockCompletion {
        guard let handle = try? FileHandle(forUpdating: url) else {
            return BlockCompletion(id: request.id, status: .ioError)
        }
        defer { try? handle.close() }
        do {
            switch request.kind {
            case .read:
                try handle.seek(toOffset: request.sector * 512)
                let data = try handle.read(upToCount: request.length) ?? Data()
                return BlockCompletion(id: request.id, status: .ok, data: [UInt8](data))
            case .write:
                try handle.seek(toOffset: request.sector * 512)
                try handle.write(contentsOf: Data(request.data))
                return BlockCompletion(id: request.id, status: .ok)
            case .flush:
                try handle.synchronize()
                return BlockCompletion(id: request.id, status: .ok)
            case .getID:
                return BlockCompletion(id: request.id, status: .ok,
                                       data: Array("lockstep-test".utf8) + [UInt8](repeating: 0, count: 7))
            }
        } catch {
            return BlockCompletion(id: request.id, status: .ioError)
        }
    }
}

/// The result of running a guest to its end.
struct GuestResult: Sendable {
    let stop: MachineStop
    let output: String
    let epochs: Int
    let progress: UInt64
    let digest: StateDigest
    let values: [UInt64]
    let unknownAccesses: Set<UnknownAccessLog.Location>
    let statistics: X86Machine.Statistics
    /// (progress, virtual time in ns, RIP) at every epoch boundary.
    let boundaries: [[UInt64]]
}

/// Runs `body` on a thread of its own (a vCPU must not block Swift's cooperative pool, and is
/// confined to the thread that created it).
func onMachineThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.stackSize = 16 << 20
        thread.start()
    }
}

/// Drives a machine the way an unreplicated deterministic run does: epochs of `epochLength`,
/// at each boundary the finished disk requests and what `input` typed for the output so far, as
/// much of it as the UART has room for (`Machine.consoleInputRoom`; the rest waits for a later
/// boundary); an idle guest warps virtual time to its next timer. Stops when the guest exits or
/// crashes, or after `maxEpochs`.
func drive(_ machine: X86Machine, _ environment: RecordingEnvironment, epochLength: UInt64 = 16,
           maxEpochs: Int = 200_000, input: (String) -> [UInt8]? = { _ in nil }) throws -> GuestResult
{
    var epochs = 0
    var stop = MachineStop.epochEnd
    var boundaries: [[UInt64]] = []
    var typed: [UInt8] = []
    while epochs < maxEpochs {
        stop = try machine.run(budget: epochLength)
        epochs += 1
        if case .exited = stop { break }
        if case .crashed = stop { break }
        var events = environment.takeCompletions()
        if let bytes = input(environment.text) { typed += bytes }
        let delivered = Array(typed.prefix(machine.consoleInputRoom))
        if !delivered.isEmpty {
            events.append(.consoleInput(delivered))
            typed.removeFirst(delivered.count)
        }
        var time = machine.clock.now
        if stop == .idle, events.isEmpty {
            guard let deadline = machine.nextTimerDeadline else {
                throw Failure("the guest idles with nothing to wake it; output so far: \(environment.text)")
            }
            time = max(time, deadline)
        }
        try machine.applyBoundary(time: time, events: events)
        boundaries.append([machine.progress, machine.clock.now.nanoseconds, try machine.registers().rip])
    }
    return GuestResult(stop: stop, output: environment.text, epochs: epochs, progress: machine.progress,
                       digest: try machine.stateDigest(), values: environment.values.map(\.value),
                       unknownAccesses: machine.unknownAccesses.locations, statistics: machine.statistics,
                       boundaries: boundaries)
}

/// Creates a machine for a bundled guest and runs it to its end, on a machine thread.
func runGuest(_ name: String, commandLine: String = "", epochClock: EpochClock = .deterministicExits,
              epochLength: UInt64 = 16, maxEpochs: Int = 200_000, diskSectors: UInt64? = nil,
              memorySize: UInt64 = 64 << 20, coalescing: Bool = true,
              input: @escaping @Sendable (String) -> [UInt8]? = { _ in nil },
              answer: @escaping @Sendable (EnvironmentRead, UInt64) -> UInt64 = { $1 },
              inspectDisk: @escaping @Sendable ([UInt8]) -> Void = { _ in }) async throws -> GuestResult
{
    try await onMachineThread {
        let disk = try diskSectors.map { try TemporaryDisk(sectors: $0) }
        let environment = RecordingEnvironment(disk: disk)
        environment.answer = answer
        let machine = try X86Machine(image: try Guests.image(name), memorySize: memorySize,
                                     commandLine: commandLine, diskSectors: diskSectors,
                                     epochClock: epochClock, environment: environment, coalescing: coalescing)
        let result = try drive(machine, environment, epochLength: epochLength, maxEpochs: maxEpochs, input: input)
        if let disk { inspectDisk(disk.contents) }
        return result
    }
}

/// A minimal ELF image for x86 tests: one PT_LOAD segment (read, write, execute) holding `code`
/// at `address`, entry at `entry` (default `address`). ELF64 (x86-64) unless `elf32`; no sections or symbols.
func tinyELF(code: [UInt8], address: UInt64 = 0x20_0000, entry: UInt64? = nil, elf32: Bool = false)
    throws -> ELFImage
{
    var bytes: [UInt8] = []
    func u16(_ v: UInt64) { bytes += littleEndianBytes(v).prefix(2) }
    func u32(_ v: UInt64) { bytes += littleEndianBytes(v).prefix(4) }
    func u64(_ v: UInt64) { bytes += littleEndianBytes(v) }
    func word(_ v: UInt64) { elf32 ? u32(v) : u64(v) }
    let headerSize: UInt64 = elf32 ? 52 : 64
    let phSize: UInt64 = elf32 ? 32 : 56
    let codeOffset: UInt64 = 0x1000
    bytes += [0x7F, 0x45, 0x4C, 0x46, elf32 ? 1 : 2, 1, 1, 0] + [UInt8](repeating: 0, count: 8)
    u16(2); u16(elf32 ? 3 : 62); u32(1)
    word(entry ?? address); word(headerSize); word(0)
    u32(0); u16(headerSize); u16(phSize); u16(1); u16(elf32 ? 40 : 64); u16(0); u16(0)
    // PT_LOAD, flags RWX
    u32(1)
    if elf32 {
        u32(codeOffset); u32(address); u32(address); u32(UInt64(code.count)); u32(UInt64(code.count)); u32(7); u32(0x1000)
    } else {
        u32(7); u64(codeOffset); u64(address); u64(address); u64(UInt64(code.count)); u64(UInt64(code.count)); u64(0x1000)
    }
    bytes += [UInt8](repeating: 0, count: Int(codeOffset) - bytes.count)
    bytes += code
    return try ELFImage(bytes: bytes, path: "tiny.elf")
}

/// The Multiboot v1 header (flags 0) that makes `tinyELF(..., elf32: true)` a Multiboot kernel:
/// put it first in the code and enter after it.
let multibootHeader: [UInt8] = Array(littleEndianBytes(0x1BAD_B002).prefix(4)) + [0, 0, 0, 0]
    + Array(littleEndianBytes(UInt64(0x1_0000_0000 - 0x1BAD_B002)).prefix(4))

/// Runs a tiny machine-code program to its end on a machine thread.
func runProgram(_ code: [UInt8], elf32Multiboot: Bool = false, epochClock: EpochClock = .deterministicExits,
                coalescing: Bool = true,
                answer: @escaping @Sendable (EnvironmentRead, UInt64) -> UInt64 = { $1 })
    async throws -> (result: GuestResult, registers: Registers)
{
    try await onMachineThread {
        let environment = RecordingEnvironment()
        environment.answer = answer
        let image = elf32Multiboot
            ? try tinyELF(code: multibootHeader + code, address: 0x10_0000, entry: 0x10_000C, elf32: true)
            : try tinyELF(code: code)
        let machine = try X86Machine(image: image, memorySize: 16 << 20, epochClock: epochClock,
                                     environment: environment, coalescing: coalescing)
        let result = try drive(machine, environment, maxEpochs: 1000)
        return (result, try machine.registers())
    }
}
