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

/// A small deterministic pseudo-random generator (SplitMix64) for fuzz-style tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
