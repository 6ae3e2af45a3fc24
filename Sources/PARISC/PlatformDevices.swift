import MachineCore

/// The CPU's IO_EIR register (at CPU_HPA, 0xFFFB0000): a store of n sets EIRR bit n (bit 0 is
/// the most significant), as QEMU's `io_eir_write`. Devices (LASI) and the guest itself signal
/// the CPU this way. Reads return 0.
public final class IOExternalInterruptRegister: BusDevice {
    private unowned let cpu: PARISCCPU

    public init(cpu: PARISCCPU) { self.cpu = cpu }

    public func read(offset: UInt64, size: Int) -> UInt64 { 0 }

    public func write(offset: UInt64, size: Int, value: UInt64) {
        cpu.raiseExternalInterrupt(bit: Int(value & 31))
    }
}

/// Interrupt lines wired straight to EIRR bits (line n sets EIRR bit n when raised): Lockstep's
/// virtio-mmio block device uses line 1. Lowering a line does not clear EIRR; the guest clears
/// it (write-one-to-clear) after acknowledging the device.
public final class ExternalInterruptLines: InterruptController {
    private unowned let cpu: PARISCCPU

    public init(cpu: PARISCCPU) { self.cpu = cpu }

    public func setLevel(_ level: Bool, line: Int) {
        if level { cpu.raiseExternalInterrupt(bit: line) }
    }
}

/// A device window whose offsets are shifted by `offsetBase` before they reach the device, and
/// which runs `afterAccess` after every read and write (used to re-signal a level interrupt, to
/// notice a debug-exit request, or DMA into guest memory).
final class BusDeviceAdapter: BusDevice {
    let device: any BusDevice
    let offsetBase: UInt64
    let afterAccess: () -> Void

    init(_ device: any BusDevice, offsetBase: UInt64 = 0, afterAccess: @escaping () -> Void = {}) {
        self.device = device
        self.offsetBase = offsetBase
        self.afterAccess = afterAccess
    }

    func read(offset: UInt64, size: Int) -> UInt64 {
        let value = device.read(offset: offsetBase &+ offset, size: size)
        afterAccess()
        return value
    }

    func write(offset: UInt64, size: Int, value: UInt64) {
        device.write(offset: offsetBase &+ offset, size: size, value: value)
        afterAccess()
    }
}
