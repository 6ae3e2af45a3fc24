import Foundation
import MachineCore

/// An interrupt controller that records what each line did: a logic analyser on the wires,
/// used where a test asserts exact line levels and edges.
final class LineProbe: InterruptController {
    private(set) var levels: [Int: Bool] = [:]
    private(set) var risingEdges: [Int: Int] = [:]
    private(set) var changes = 0

    func setLevel(_ level: Bool, line: Int) {
        if level, !(levels[line] ?? false) { risingEdges[line, default: 0] += 1 }
        levels[line] = level
        changes += 1
    }

    func level(_ line: Int) -> Bool { levels[line] ?? false }
    func edges(_ line: Int) -> Int { risingEdges[line] ?? 0 }
    func line(_ number: Int) -> InterruptLine { InterruptLine(controller: self, number: number) }
}

/// Collects the bytes a device sends to its output sink.
final class ByteSink {
    private(set) var bytes: [UInt8] = []
    private(set) var calls = 0
    func take(_ data: [UInt8]) {
        bytes += data
        calls += 1
    }
    var string: String { String(decoding: bytes, as: UTF8.self) }
}

/// The machine's real virtual clock, advanced by hand: `set` only moves forward.
func makeClock() -> VirtualClock {
    VirtualClock(nanosecondsPerUnit: 1, progress: { 0 })
}

extension VirtualClock {
    func advance(toNanoseconds ns: UInt64) { set(VirtualTime(nanoseconds: ns)) }
}

/// JSON round trip, as a snapshot or the replication channel would carry a device state.
func roundTrip<T: Codable>(_ value: T) throws -> T {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    return try JSONDecoder().decode(T.self, from: encoder.encode(value))
}

