/// A device register file on a bus: reads and writes at an offset into the device's window.
///
/// Values are in the device's own register byte order (see `Bus.register`). A read may have side
/// effects (popping a FIFO); a device never sees a host file descriptor, thread or wall clock.
/// The corresponding shape in rust-vmm's vm-superio is `read(offset)` / `write(offset, value)`.
public protocol BusDevice: AnyObject {
    /// Reads `size` bytes (1, 2, 4 or 8) at `offset` into the device's window.
    func read(offset: UInt64, size: Int) -> UInt64
    /// Writes the low `size` bytes of `value` at `offset` into the device's window.
    func write(offset: UInt64, size: Int, value: UInt64)
}

/// Why a device could not be placed on a bus.
public enum BusError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The new window overlaps the window of an already registered device.
    case overlap(name: String, existing: String, base: UInt64)
    /// The window is empty or wraps around the address space.
    case invalidWindow(name: String, base: UInt64, length: UInt64)

    public var description: String {
        switch self {
        case .overlap(let name, let existing, let base):
            return "device \(name) at 0x\(String(base, radix: 16)) overlaps device \(existing)"
        case .invalidWindow(let name, let base, let length):
            return "device \(name) has an invalid window of \(length) bytes at 0x\(String(base, radix: 16))"
        }
    }
}

/// One address space of devices: the x86 port-I/O space, or an MMIO space.
///
/// The vCPU loop only routes: an exit's address is looked up here and the access is forwarded to
/// the device with the offset into its window, converted to the device's register byte order.
public final class Bus {
    /// A registered device window.
    public struct Mapping {
        public let name: String
        public let base: UInt64
        public let length: UInt64
        public let byteOrder: ByteOrder
        public let device: any BusDevice

        @inlinable func contains(_ address: UInt64) -> Bool {
            address >= base && address - base < length
        }
    }

    /// The name of this bus, for messages ("pio", "mmio").
    public let name: String
    /// The windows, sorted by base address.
    public private(set) var mappings: [Mapping] = []

    public init(name: String) { self.name = name }

    /// Places `device` at `[base, base+length)`; its registers use `byteOrder`.
    public func register(
        _ device: any BusDevice, name: String, base: UInt64, length: UInt64,
        byteOrder: ByteOrder = .little
    ) throws(BusError) {
        guard length > 0, base.addingReportingOverflow(length - 1).overflow == false else {
            throw .invalidWindow(name: name, base: base, length: length)
        }
        // Inclusive last addresses: a window may end at the very top of the address space.
        let last = base + (length - 1)
        for m in mappings where base <= m.base + (m.length - 1) && m.base <= last {
            throw .overlap(name: name, existing: m.name, base: base)
        }
        mappings.append(Mapping(name: name, base: base, length: length, byteOrder: byteOrder,
                                device: device))
        mappings.sort { $0.base < $1.base }
    }

    /// The window that contains `address`, if any.
    @inlinable public func mapping(at address: UInt64) -> Mapping? {
        for m in mappings where m.contains(address) { return m }
        return nil
    }

    /// Reads `size` bytes at `address` for a CPU of byte order `cpuOrder`.
    /// Returns nil if no device is there (the caller decides what the guest sees, usually all ones).
    public func read(_ address: UInt64, size: Int, cpuOrder: ByteOrder) -> UInt64? {
        guard let m = mapping(at: address) else { return nil }
        let value = m.device.read(offset: address - m.base, size: size)
        return m.byteOrder.convert(value, size: size, to: cpuOrder)
    }

    /// Writes `size` bytes of `value` at `address` for a CPU of byte order `cpuOrder`.
    /// Returns false if no device is there.
    @discardableResult
    public func write(_ address: UInt64, size: Int, value: UInt64, cpuOrder: ByteOrder) -> Bool {
        guard let m = mapping(at: address) else { return false }
        m.device.write(offset: address - m.base, size: size,
                       value: cpuOrder.convert(value, size: size, to: m.byteOrder))
        return true
    }
}
