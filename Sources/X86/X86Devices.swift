import Devices
import Foundation
import Logging
import MachineCore

/// The devices of Lockstep's x86 platform and the two buses they sit on.
///
/// Port I/O: COM1 16550 at 0x3F8 (IRQ 4), the 8259 pair at 0x20/0xA0 (+ ELCR at 0x4D0), the 8254
/// PIT at 0x40-0x43 (IRQ 0) with port B at 0x61, isa-debug-exit at 0xF4-0xF7, POST codes at 0x80.
/// MMIO: the virtio-mmio block device at 0xFEB00000 (IRQ 5) when the machine has a disk.
/// The devices are Lockstep's deterministic models (module Devices): they never see KVM.
final class X86Devices {
    let pic: PIC8259Pair
    let uart: UART16550
    let pit: PIT8254
    let debugExit: DebugExit
    let virtio: VirtioMMIOBlock?
    let ports = Bus(name: "pio")
    let mmio = Bus(name: "mmio")

    init(memory: GuestMemory, clock: any TimeSource, diskSectors: UInt64?,
         environment: any GuestEnvironment) throws(X86Error)
    {
        // The PIC and PIT start as a PC BIOS leaves them (QEMU + SeaBIOS), the state a Multiboot
        // kernel finds under QEMU: PIC vectors 0x08/0x70 with every line but the cascade masked,
        // PIT counter 0 in mode 2 at 18.2 Hz.
        let pic = PIC8259Pair(state: .initialized())
        self.pic = pic
        uart = UART16550(interrupt: InterruptLine(controller: pic, number: X86Platform.com1IRQ),
                         output: { bytes in environment.consoleOutput(bytes) })
        pit = PIT8254(interrupt: InterruptLine(controller: pic, number: X86Platform.pitIRQ), time: clock,
                       state: .initialized())
        debugExit = DebugExit()
        if let diskSectors {
            virtio = VirtioMMIOBlock(
                configuration: .init(capacity: diskSectors), memory: memory,
                interrupt: InterruptLine(controller: pic, number: X86Platform.virtioIRQ),
                submit: { request in environment.submitBlockRequest(request) })
        } else {
            virtio = nil
        }
        do {
            try ports.register(pic.masterPorts, name: "pic-master", base: UInt64(X86Platform.masterPICPort), length: 2)
            try ports.register(pic.slavePorts, name: "pic-slave", base: UInt64(X86Platform.slavePICPort), length: 2)
            try ports.register(pic.elcrPorts, name: "elcr", base: UInt64(X86Platform.elcrPort), length: 2)
            try ports.register(pit, name: "pit", base: UInt64(X86Platform.pitPort), length: 4)
            try ports.register(pit.speakerPort, name: "port-b", base: UInt64(X86Platform.speakerPort), length: 1)
            try ports.register(PostCodePort(), name: "post", base: UInt64(X86Platform.postCodePort), length: 1)
            try ports.register(debugExit, name: "debug-exit", base: UInt64(X86Platform.debugExitPort), length: 4)
            try ports.register(uart, name: "com1", base: UInt64(X86Platform.com1Port), length: 8)
            if let virtio {
                try mmio.register(virtio, name: "virtio-blk", base: X86Platform.virtioAddress,
                                  length: X86Platform.virtioWindow)
            }
        } catch {
            throw .layout("x86 platform: \(error)")
        }
    }

    /// Every device's state, encoded deterministically (sorted JSON keys), by device name.
    func encodedStates() -> [(String, [UInt8])] {
        func encode<T: Encodable>(_ value: T) -> [UInt8] { DeviceState.encoding(value) }
        var states: [(String, [UInt8])] = [
            ("pic", encode(pic.state)), ("uart", encode(uart.state)), ("pit", encode(pit.state)),
            ("debug-exit", encode(debugExit.state)),
        ]
        if let virtio { states.append(("virtio-blk", encode(virtio.state))) }
        return states
    }
}

/// Port 0x80, where PC firmware and kernels write POST codes and delays: writes are ignored,
/// reads return all ones, nothing is logged.
final class PostCodePort: BusDevice {
    func read(offset: UInt64, size: Int) -> UInt64 { allOnes(size) }
    func write(offset: UInt64, size: Int, value: UInt64) {}
}

/// All ones in `size` bytes: what a read from nowhere returns.
func allOnes(_ size: Int) -> UInt64 {
    size >= 8 ? .max : (1 << UInt64(8 * max(size, 0))) - 1
}
