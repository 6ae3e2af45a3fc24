import Foundation
import MachineCore
@testable import PARISC
import Testing

/// The GCC torture sample (scripts/parisc/torture-sample50.txt) on every engine: the same exit,
/// output, instruction count and final state (every register and RAM) as on the interpreter.
/// scripts/difftest-parisc compares the whole suite the same way.
@Suite("PA-RISC engines on the GCC torture sample",
       .enabled(if: TortureCache.available,
                "the torture sources are not cached: run scripts/torture-parisc --sample once (needs hppa-linux-gnu-gcc and apt-get download gcc-12-source)"))
struct EngineTortureTests {
    struct Result: Equatable {
        var outcome: String
        var output: [UInt8]
        var instructions: UInt64
        var cpu: [UInt8]
        var ram: StateDigest
    }

    static func run(_ elf: String, engine: PARISCEngine) throws -> Result {
        let process = try UserModeProcess(path: elf, memorySize: 32 << 20, engine: engine)
        let outcome = try process.run(limit: 300_000_000)
        return Result(outcome: "\(outcome)", output: process.output, instructions: process.cpu.progress,
                      cpu: process.cpu.digestBytes(), ram: MemoryDigest.recomputed(process.cpu.memory))
    }

    @Test("every engine gives the interpreter's results")
    func sample() throws {
        let output = Toolchain.repository.appendingPathComponent(".build/parisc-torture-engines")
        let build = try Toolchain.run("/usr/bin/python3", [
            Toolchain.support.appendingPathComponent("torture.py").path, TortureCache.sources.path,
            TortureCache.softfp.path, output.path, "--no-run", "--jobs", "1", "--tests",
            Toolchain.support.appendingPathComponent("torture-sample50.txt").path,
        ], timeout: 900)
        #expect(build.status == 0)
        let data = try Data(contentsOf: output.appendingPathComponent("qemu.json"))
        let list = try JSONSerialization.jsonObject(with: data) as? [[String: Any]] ?? []
        let elves = list.compactMap { $0["stage"] as? String == "linked" ? $0["elf"] as? String : nil }
        var differences: [String] = [], instructions: UInt64 = 0
        for elf in elves {
            let reference = try Self.run(elf, engine: .interpreter)
            instructions += reference.instructions
            for engine in PARISCEngine.allCases where engine != .interpreter && engine.unavailableReason == nil {
                let other = try Self.run(elf, engine: engine)
                if other != reference {
                    differences.append("\(URL(fileURLWithPath: elf).lastPathComponent) on \(engine): "
                        + "\(other.outcome) after \(other.instructions) vs \(reference.outcome) after \(reference.instructions)")
                }
            }
        }
        print("engine torture: \(elves.count) tests, \(instructions) instructions each engine, \(differences.count) differences")
        #expect(elves.count >= 45)
        #expect(differences.isEmpty, "\(differences)")
    }
}
