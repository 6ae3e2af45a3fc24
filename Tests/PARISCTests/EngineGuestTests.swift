import Foundation
import MachineCore
import PARISC
import Testing

/// Every bundled guest on every engine: the same console output, the same stop, and the same
/// machine state digest (RAM, every register, the devices, the clock) and the same written pages
/// (the dirty-page write map) at every epoch boundary as on the interpreter. Epoch lengths are odd so that boundaries fall inside blocks.
@Suite("PA-RISC engines on the bundled guests",
       .enabled(if: MachineDriver.guestsAvailable, "guests/build/parisc is missing and cannot be built (hppa-linux-gnu-gcc)"))
struct EngineGuestTests {
    struct Scenario: CustomStringConvertible, Sendable {
        var guest: String
        var commandLine = ""
        var diskSectors: Int?
        var input: [UInt8] = []
        var epoch: UInt64

        var description: String { "\(guest) \(commandLine)" }
    }

    static let scenarios: [Scenario] = [
        Scenario(guest: "hello", epoch: 997),
        Scenario(guest: "cpu", commandLine: "rounds=1 seed=5", epoch: 65_537),
        Scenario(guest: "ticks", commandLine: "hz=1000 ticks=3", epoch: 7919),
        Scenario(guest: "echo", input: Array("hello\r\nabc\nquit\n".utf8), epoch: 20_011),
        Scenario(guest: "disk", commandLine: "blocks=16 seed=3", diskSectors: 64, epoch: 10_007),
        Scenario(guest: "trap", commandLine: "trap=break", epoch: 4099),
        Scenario(guest: "trap", commandLine: "trap=ill", epoch: 4099),
    ]

    struct Trace: Equatable {
        var boundaries: [String] = []
        var output = ""
        var stop = ""
    }

    static func trace(_ s: Scenario, engine: PARISCEngine) throws -> Trace {
        let driver = try MachineDriver(guest: s.guest, commandLine: s.commandLine, diskSectors: s.diskSectors,
                                       memorySize: 16 << 20, engine: engine)
        #expect(driver.machine.cpu.engine == engine)
        var trace = Trace()
        // The pages written in each epoch (the JIT marks the write map from generated stores).
        let written = try driver.machine.dirtyPages.register()
        let stop = try driver.run(epoch: s.epoch, limit: 50_000_000, input: s.input, inputAfter: 0) { machine, stop in
            let pages = try machine.dirtyPages.take(for: written).pages
            trace.boundaries.append("\(machine.progress) \(stop) \(try machine.stateDigest()) written \(pages)")
        }
        trace.output = driver.environment.output
        trace.stop = "\(stop)"
        return trace
    }

    @Test("same output, stop, state digest and written pages at every boundary as the interpreter", arguments: scenarios)
    func guest(_ scenario: Scenario) throws {
        let reference = try Self.trace(scenario, engine: .interpreter)
        #expect(reference.stop.hasPrefix("exited"), "the reference run: \(reference.stop)")
        for engine in PARISCEngine.allCases where engine != .interpreter && engine.unavailableReason == nil {
            let other = try Self.trace(scenario, engine: engine)
            #expect(other.output == reference.output, "\(engine): console output")
            #expect(other.stop == reference.stop, "\(engine): stop")
            let first = Array(zip(other.boundaries, reference.boundaries)).firstIndex { $0 != $1 }
            #expect(other.boundaries.count == reference.boundaries.count && first == nil,
                    "\(engine): boundary \(first ?? -1): \(first.map { other.boundaries[$0] } ?? "-") vs \(first.map { reference.boundaries[$0] } ?? "-")")
        }
    }
}
