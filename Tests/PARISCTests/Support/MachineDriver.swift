import Devices
import Foundation
import Loader
import MachineCore
import PARISC

/// The environment of an unreplicated test run: console output is collected, the disk is an
/// in-memory image whose requests complete at the next boundary, CR16 reads are the machine's
/// own values (recorded).
final class TestEnvironment: GuestEnvironment {
    var console: [UInt8] = []
    var disk: [UInt8]
    var pendingInput: [UInt8] = []
    private var completions: [BoundaryEvent] = []
    var timerReads = 0

    init(diskSectors: Int = 0) { disk = [UInt8](repeating: 0, count: diskSectors * 512) }

    var output: String { String(decoding: console, as: UTF8.self) }

    func environmentValue(_ read: EnvironmentRead, proposed: UInt64) throws(EnvironmentError) -> UInt64 {
        timerReads += 1
        return proposed
    }

    func consoleOutput(_ bytes: [UInt8]) { console += bytes }

    func submitBlockRequest(_ request: BlockRequest) {
        let start = Int(request.sector) * 512
        let completion: BlockCompletion
        switch request.kind {
        case .read:
            if start + request.length <= disk.count {
                completion = BlockCompletion(id: request.id, status: .ok,
                                             data: Array(disk[start..<start + request.length]))
            } else {
                completion = BlockCompletion(id: request.id, status: .ioError)
            }
        case .write:
            if start + request.data.count <= disk.count {
                disk.replaceSubrange(start..<start + request.data.count, with: request.data)
                completion = BlockCompletion(id: request.id, status: .ok)
            } else {
                completion = BlockCompletion(id: request.id, status: .ioError)
            }
        case .flush:
            completion = BlockCompletion(id: request.id, status: .ok)
        case .getID:
            completion = BlockCompletion(id: request.id, status: .ok,
                                         data: Array("test-disk".utf8) + [UInt8](repeating: 0, count: 11))
        }
        completions.append(.blockCompletion(completion))
    }

    /// The events for a boundary: at most `consoleRoom` bytes of input (what the UART can take,
    /// `Machine.consoleInputRoom`; the rest waits), then the disk completions.
    func takeEvents(consoleRoom: Int) -> [BoundaryEvent] {
        var events: [BoundaryEvent] = []
        let input = Array(pendingInput.prefix(consoleRoom))
        if !input.isEmpty {
            events.append(.consoleInput(input))
            pendingInput.removeFirst(input.count)
        }
        events += completions
        completions = []
        return events
    }
}

/// Drives a machine like the hypervisor's unreplicated loop in deterministic-clock mode: runs
/// epochs, applies buffered events at every boundary, and when the guest idles warps virtual
/// time to the next timer deadline.
struct MachineDriver {
    /// The guests' build directory (scripts/build-guests).
    static let guests = Toolchain.repository.appendingPathComponent("guests/build/parisc")

    /// The path of guest `name`, building the guests first if needed; nil if it cannot be built.
    static func guest(_ name: String) -> String? {
        let path = guests.appendingPathComponent("\(name).elf").path
        if !FileManager.default.fileExists(atPath: path), Toolchain.hasCompiler {
            _ = try? Toolchain.run("/usr/bin/make",
                                   ["-s", "-C", Toolchain.repository.appendingPathComponent("guests").path,
                                    "-j2"], timeout: 300)
        }
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    static var guestsAvailable: Bool { guest("hello") != nil }

    let machine: PARISCMachine
    let environment: TestEnvironment

    init(guest name: String, commandLine: String = "", diskSectors: Int? = nil,
         memorySize: UInt64 = 64 << 20, engine: PARISCEngine = UserModeProcess.defaultEngine) throws
    {
        guard let path = Self.guest(name) else { throw Toolchain.ToolError(description: "no guest \(name)") }
        environment = TestEnvironment(diskSectors: diskSectors ?? 0)
        let disk = diskSectors.map { VirtioMMIOBlock.Configuration(capacity: UInt64($0)) }
        machine = try PARISCMachine(
            image: try ELFImage.load(contentsOf: path),
            configuration: .init(memorySize: memorySize, commandLine: commandLine, disk: disk, engine: engine),
            environment: environment)
    }

    /// Runs until the guest exits or crashes (or `limit` instructions). `input` is typed on the
    /// console at the first boundary after `inputAfter` instructions. `boundary` sees the
    /// machine after every run.
    func run(epoch: UInt64 = 100_000, limit: UInt64 = 2_000_000_000, input: [UInt8] = [],
             inputAfter: UInt64 = 0, boundary: (PARISCMachine, MachineStop) throws -> Void = { _, _ in })
        throws -> MachineStop
    {
        var inputSent = input.isEmpty
        while machine.progress < limit {
            let stop = try machine.run(budget: epoch)
            try boundary(machine, stop)
            switch stop {
            case .exited, .crashed:
                return stop
            case .epochEnd, .idle:
                if !inputSent && machine.progress >= inputAfter {
                    environment.pendingInput = input
                    inputSent = true
                }
                var time = machine.clock.now
                if stop == .idle, environment.pendingInput.isEmpty || machine.consoleInputRoom == 0,
                   machine.outstandingBlockRequests.isEmpty
                {
                    guard let deadline = machine.nextTimerDeadline else {
                        if inputSent { return .crashed(reason: "idle with nothing to wait for") }
                        continue
                    }
                    time = max(time, deadline)
                }
                try machine.applyBoundary(time: time, events: environment.takeEvents(consoleRoom: machine.consoleInputRoom))
            }
        }
        return .crashed(reason: "instruction limit reached")
    }
}
