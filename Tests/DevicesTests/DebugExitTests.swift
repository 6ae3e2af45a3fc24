import Devices
import MachineCore
import Testing

@Suite("DebugExit")
struct DebugExitTests {
    /// (value, access size, expected status)
    static let cases: [(UInt64, Int, Int32)] = [
        (0, 4, 1),
        (0x31, 4, 0x63),
        (0x10000, 4, 0x20001),
        (0x1FF, 1, 0x1FF),  // a byte write keeps only 0xFF
        (0x12345, 2, 0x468B),  // a word write keeps only 0x2345
        (0x8000_0000, 4, 1),  // bit 31 shifts out of the 32-bit status
        (0x7FFF_FFFF, 4, -1),
    ]

    @Test("a write of v requests exit status (v << 1) | 1", arguments: cases)
    func status(value: UInt64, size: Int, expected: Int32) {
        let device = DebugExit()
        #expect(device.exitStatus == nil)
        device.write(offset: 0, size: size, value: value)
        #expect(device.exitStatus == expected)
    }

    @Test("x86: port 0xF4 on the port bus")
    func portBus() throws {
        let device = DebugExit()
        let bus = Bus(name: "pio")
        try bus.register(device, name: "debug-exit", base: 0xF4, length: 4)
        #expect(bus.write(0xF4, size: 4, value: 0x10, cpuOrder: .little))
        #expect(device.exitStatus == 0x21)
    }

    @Test("PA-RISC: a big-endian 32-bit MMIO register with the same semantics")
    func bigEndianMMIO() throws {
        let device = DebugExit()
        let bus = Bus(name: "mmio")
        try bus.register(device, name: "debug-exit", base: 0xFFF8_0000, length: 4, byteOrder: .big)
        #expect(bus.write(0xFFF8_0000, size: 4, value: 0x0000_0002, cpuOrder: .big))
        #expect(device.exitStatus == 5)
        #expect(bus.read(0xFFF8_0000, size: 4, cpuOrder: .big) == 0)
    }

    @Test("the first exit request wins; reads return 0; the state round-trips")
    func firstWins() throws {
        let device = DebugExit()
        #expect(device.read(offset: 0, size: 4) == 0)
        device.write(offset: 0, size: 4, value: 3)
        device.write(offset: 0, size: 4, value: 9)
        #expect(device.exitStatus == 7)
        #expect(device.misbehaviorCounts[.repeatedExit] == 1)
        #expect(device.misbehaviorCounts[.read] == 1)
        let copy = DebugExit(state: try roundTrip(device.state))
        #expect(copy.exitStatus == 7)
        #expect(copy.state == device.state)
        #expect(DebugExit(state: try roundTrip(DebugExit().state)).exitStatus == nil)
    }
}
