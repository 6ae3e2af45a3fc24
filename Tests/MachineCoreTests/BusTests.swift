import Testing

@testable import MachineCore

/// A register file that records every access and answers reads from its own bytes.
private final class RecordingDevice: BusDevice {
    var registers = [UInt8](repeating: 0, count: 16)
    var accesses: [String] = []

    func read(offset: UInt64, size: Int) -> UInt64 {
        accesses.append("read \(offset)/\(size)")
        var value: UInt64 = 0
        for i in 0..<size { value |= UInt64(registers[Int(offset) + i]) << (8 * i) }
        return value
    }

    func write(offset: UInt64, size: Int, value: UInt64) {
        accesses.append("write \(offset)/\(size)")
        for i in 0..<size { registers[Int(offset) + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }
}

@Suite("ByteOrder")
struct ByteOrderTests {
    @Test func convertsBetweenOrdersBySize() {
        #expect(ByteOrder.little.convert(0x1122, size: 2, to: .big) == 0x2211)
        #expect(ByteOrder.big.convert(0x1122_3344, size: 4, to: .little) == 0x4433_2211)
        #expect(ByteOrder.big.convert(0x0102_0304_0506_0708, size: 8, to: .little)
            == 0x0807_0605_0403_0201)
        #expect(ByteOrder.little.convert(0xab, size: 1, to: .big) == 0xab)
        #expect(ByteOrder.big.convert(0x1122_3344, size: 4, to: .big) == 0x1122_3344)
        // Only the access's own bytes take part.
        #expect(ByteOrder.little.convert(0xffff_1122, size: 2, to: .big) == 0x2211)
    }
}

@Suite("Bus")
struct BusTests {
    @Test func routesAnAccessToTheDeviceWithItsOffset() throws {
        let bus = Bus(name: "pio")
        let uart = RecordingDevice()
        let exit = RecordingDevice()
        try bus.register(uart, name: "uart", base: 0x3f8, length: 8)
        try bus.register(exit, name: "debug-exit", base: 0xf4, length: 4)
        #expect(bus.mappings.map(\.name) == ["debug-exit", "uart"])

        #expect(bus.write(0x3fb, size: 1, value: 0x83, cpuOrder: .little))
        #expect(bus.read(0x3fb, size: 1, cpuOrder: .little) == 0x83)
        #expect(uart.accesses == ["write 3/1", "read 3/1"])
        #expect(bus.write(0xf4, size: 4, value: 7, cpuOrder: .little))
        #expect(exit.accesses == ["write 0/4"])
        #expect(bus.mapping(at: 0x3ff)?.name == "uart")
        #expect(bus.mapping(at: 0x400) == nil)
        #expect(bus.mapping(at: 0x3f7) == nil)
    }

    @Test func anAddressWithNoDeviceIsReportedToTheCaller() {
        let bus = Bus(name: "mmio")
        #expect(bus.read(0x1000, size: 4, cpuOrder: .big) == nil)
        #expect(bus.write(0x1000, size: 4, value: 1, cpuOrder: .big) == false)
    }

    @Test func convertsBetweenCPUAndDeviceByteOrder() throws {
        // A little-endian device (virtio-mmio) seen by a big-endian CPU (PA-RISC).
        let bus = Bus(name: "mmio")
        let device = RecordingDevice()
        try bus.register(device, name: "virtio", base: 0xf000_0000, length: 16, byteOrder: .little)
        bus.write(0xf000_0004, size: 4, value: 0x1122_3344, cpuOrder: .big)
        #expect(Array(device.registers[4..<8]) == [0x11, 0x22, 0x33, 0x44])
        #expect(bus.read(0xf000_0004, size: 4, cpuOrder: .big) == 0x1122_3344)
        #expect(bus.read(0xf000_0004, size: 2, cpuOrder: .big) == 0x1122)
        #expect(bus.read(0xf000_0004, size: 4, cpuOrder: .little) == 0x4433_2211)
    }

    @Test(arguments: [
        (UInt64(0x3f8), UInt64(8)),   // the same window
        (UInt64(0x3f0), UInt64(9)),   // ends on the first byte
        (UInt64(0x3ff), UInt64(1)),   // the last byte
        (UInt64(0x3fa), UInt64(2)),   // inside
        (UInt64(0x300), UInt64(0x200)),  // around
    ])
    func refusesOverlappingWindows(base: UInt64, length: UInt64) throws {
        let bus = Bus(name: "pio")
        try bus.register(RecordingDevice(), name: "uart", base: 0x3f8, length: 8)
        #expect(throws: BusError.overlap(name: "other", existing: "uart", base: base)) {
            try bus.register(RecordingDevice(), name: "other", base: base, length: length)
        }
        #expect(bus.mappings.count == 1)
    }

    @Test func adjacentWindowsAreAllowed() throws {
        let bus = Bus(name: "pio")
        try bus.register(RecordingDevice(), name: "a", base: 0x3f8, length: 8)
        try bus.register(RecordingDevice(), name: "b", base: 0x3f0, length: 8)
        try bus.register(RecordingDevice(), name: "c", base: 0x400, length: 8)
        #expect(bus.mappings.map(\.name) == ["b", "a", "c"])
    }

    @Test func windowsMayEndAtTheTopOfTheAddressSpace() throws {
        let bus = Bus(name: "mmio")
        let top = RecordingDevice()
        try bus.register(top, name: "top", base: UInt64.max - 15, length: 16)
        try bus.register(RecordingDevice(), name: "below", base: UInt64.max - 31, length: 16)
        #expect(throws: BusError.overlap(name: "late", existing: "top", base: UInt64.max)) {
            try bus.register(RecordingDevice(), name: "late", base: UInt64.max, length: 1)
        }
        #expect(bus.write(UInt64.max, size: 1, value: 0x5a, cpuOrder: .little))
        #expect(top.registers[15] == 0x5a)
    }

    @Test(arguments: [(UInt64(0x1000), UInt64(0)), (UInt64.max, UInt64(2)), (UInt64(2), UInt64.max)])
    func refusesEmptyOrWrappingWindows(base: UInt64, length: UInt64) {
        let bus = Bus(name: "mmio")
        #expect(throws: BusError.invalidWindow(name: "bad", base: base, length: length)) {
            try bus.register(RecordingDevice(), name: "bad", base: base, length: length)
        }
    }
}
