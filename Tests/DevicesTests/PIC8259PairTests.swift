import Devices
import MachineCore
import Testing

/// The PIC pair on a real port bus, as the x86 engine wires it.
private final class Rig {
    let pic: PIC8259Pair
    let bus = Bus(name: "pio")

    init(state: PIC8259Pair.State = PIC8259Pair.State()) {
        pic = PIC8259Pair(state: state)
        try! bus.register(pic.masterPorts, name: "pic-master", base: 0x20, length: 2)
        try! bus.register(pic.slavePorts, name: "pic-slave", base: 0xA0, length: 2)
        try! bus.register(pic.elcrPorts, name: "elcr", base: 0x4D0, length: 2)
    }

    func outb(_ port: UInt64, _ value: UInt8) {
        bus.write(port, size: 1, value: UInt64(value), cpuOrder: .little)
    }

    func inb(_ port: UInt64) -> UInt8 { UInt8(bus.read(port, size: 1, cpuOrder: .little) ?? 0xFF) }

    /// Linux's `init_8259A` (arch/x86/kernel/i8259.c): vectors 0x30 and 0x38.
    func linuxInit() {
        outb(0x21, 0xFF)
        outb(0xA1, 0xFF)
        outb(0x20, 0x11)
        outb(0x21, 0x30)
        outb(0x21, 0x04)
        outb(0x21, 0x01)
        outb(0xA0, 0x11)
        outb(0xA1, 0x38)
        outb(0xA1, 0x02)
        outb(0xA1, 0x01)
        outb(0x21, 0xFB)  // everything masked but the cascade
        outb(0xA1, 0xFF)
    }

    /// SeaBIOS's `pic_setup`: vectors 0x08 and 0x70.
    func biosInit(masterMask: UInt8 = 0x00, slaveMask: UInt8 = 0x00) {
        outb(0x20, 0x11)
        outb(0xA0, 0x11)
        outb(0x21, 0x08)
        outb(0xA1, 0x70)
        outb(0x21, 0x04)
        outb(0xA1, 0x02)
        outb(0x21, 0x01)
        outb(0xA1, 0x01)
        outb(0x21, masterMask)
        outb(0xA1, slaveMask)
    }

    func readISR(_ commandPort: UInt64) -> UInt8 {
        outb(commandPort, 0x0B)
        return inb(commandPort)
    }

    func readIRR(_ commandPort: UInt64) -> UInt8 {
        outb(commandPort, 0x0A)
        return inb(commandPort)
    }

    func pulse(_ line: Int) {
        pic.setLevel(false, line: line)
        pic.setLevel(true, line: line)
    }
}

@Suite("PIC8259Pair")
struct PIC8259PairTests {
    @Test("Linux init sequence: vectors 0x30/0x38, IMR, INTA and EOI")
    func linuxInitSequence() {
        let rig = Rig()
        rig.linuxInit()
        #expect(rig.pic.state.master.vectorBase == 0x30)
        #expect(rig.pic.state.slave.vectorBase == 0x38)
        #expect(rig.pic.state.master.initializationStep == .ready)
        #expect(rig.inb(0x21) == 0xFB)
        #expect(rig.inb(0xA1) == 0xFF)

        rig.pulse(0)
        #expect(rig.pic.pendingInterrupt == false, "IRQ 0 is masked")
        #expect(rig.readIRR(0x20) & 0x01 == 0x01, "but requested")
        rig.outb(0x21, 0xFA)
        #expect(rig.pic.pendingInterrupt)
        #expect(rig.pic.acknowledge() == 0x30)
        #expect(rig.readISR(0x20) == 0x01)
        #expect(rig.readIRR(0x20) & 0x01 == 0)
        #expect(rig.pic.pendingInterrupt == false)
        rig.outb(0x20, 0x20)  // non-specific EOI
        #expect(rig.readISR(0x20) == 0)
        #expect(rig.pic.acknowledge() == nil, "nothing to inject")
    }

    @Test("BIOS init sequence: vectors 0x08/0x70; the initialized() helper matches it")
    func biosInitSequence() {
        let rig = Rig()
        rig.biosInit(masterMask: 0xFB, slaveMask: 0xFF)
        #expect(rig.pic.state == PIC8259Pair.State.initialized())
        rig.outb(0x21, 0x00)
        rig.pulse(1)
        #expect(rig.pic.acknowledge() == 0x09)
    }

    @Test("fully nested priorities: lower IRQ first, higher ones nest, lower ones wait for EOI")
    func priorities() {
        let rig = Rig()
        rig.biosInit()
        rig.pulse(3)
        rig.pulse(1)
        #expect(rig.pic.acknowledge() == 0x09)
        #expect(rig.pic.pendingInterrupt == false, "IRQ 3 waits while IRQ 1 is in service")
        rig.pulse(0)
        #expect(rig.pic.acknowledge() == 0x08, "IRQ 0 outranks IRQ 1 and nests")
        #expect(rig.readISR(0x20) == 0x03)
        rig.outb(0x20, 0x20)  // EOI for IRQ 0, the highest in service
        #expect(rig.readISR(0x20) == 0x02)
        #expect(rig.pic.pendingInterrupt == false)
        rig.outb(0x20, 0x61)  // specific EOI for IRQ 1
        #expect(rig.readISR(0x20) == 0)
        #expect(rig.pic.acknowledge() == 0x0B)
        rig.outb(0x20, 0x63)
        #expect(rig.readISR(0x20) == 0)
    }

    @Test("masking holds a request in IRR until unmasked")
    func masking() {
        let rig = Rig()
        rig.biosInit(masterMask: 0x10)
        rig.pulse(4)
        #expect(rig.pic.pendingInterrupt == false)
        rig.outb(0x21, 0x00)
        #expect(rig.pic.acknowledge() == 0x0C)
    }

    @Test("cascade: a slave IRQ arrives through IR2 with the slave's vector; both chips need EOI")
    func cascade() {
        let rig = Rig()
        rig.linuxInit()
        rig.outb(0xA1, 0xEF)  // unmask IRQ 12
        rig.pic.setLevel(true, line: 12)
        #expect(rig.readIRR(0x20) & 0x04 == 0x04)
        #expect(rig.pic.acknowledge() == 0x3C)
        #expect(rig.readISR(0x20) == 0x04)
        #expect(rig.readISR(0xA0) == 0x10)
        rig.pic.setLevel(false, line: 12)
        rig.pic.setLevel(true, line: 12)
        #expect(rig.pic.pendingInterrupt == false, "the slave's IRQ 12 is in service")
        rig.outb(0xA0, 0x20)
        rig.outb(0x20, 0x20)
        #expect(rig.pic.acknowledge() == 0x3C, "the second edge was latched and is delivered now")
    }

    @Test("spurious IRQ 15: the slave request vanished after the master latched the cascade")
    func spuriousSlave() {
        let rig = Rig()
        rig.linuxInit()
        rig.outb(0xA1, 0x00)
        rig.pic.setLevel(true, line: 9)
        rig.outb(0xA1, 0x02)  // the driver masks IRQ 9 before the CPU takes the interrupt
        #expect(rig.pic.pendingInterrupt, "the master's IR2 edge is latched")
        #expect(rig.pic.acknowledge() == 0x3F, "slave base + 7")
        #expect(rig.readISR(0x20) == 0x04, "the master's cascade is in service")
        #expect(rig.readISR(0xA0) == 0x00, "the slave has nothing in service")
        rig.outb(0x20, 0x20)
        #expect(rig.readISR(0x20) == 0)
        #expect(rig.pic.pendingInterrupt == false)
    }

    @Test("edge triggering needs a new rising edge; level triggering (ELCR) follows the line")
    func edgeAndLevel() {
        let rig = Rig()
        rig.biosInit()
        rig.pic.setLevel(true, line: 5)
        #expect(rig.pic.acknowledge() == 0x0D)
        rig.outb(0x20, 0x20)
        rig.pic.setLevel(true, line: 5)
        #expect(rig.pic.pendingInterrupt == false, "still high: no new edge")
        rig.pic.setLevel(false, line: 5)
        #expect(rig.pic.pendingInterrupt == false)
        rig.pic.setLevel(true, line: 5)
        #expect(rig.pic.acknowledge() == 0x0D)
        rig.outb(0x20, 0x20)

        rig.outb(0x4D1, 0xFF)
        #expect(rig.inb(0x4D1) == 0xDE, "IRQ 8 and 13 cannot be level-triggered")
        rig.outb(0x4D0, 0x08)
        rig.outb(0x4D0, 0x08 | 0x07)
        #expect(rig.inb(0x4D0) == 0x08, "IRQ 0-2 cannot be level-triggered")
        rig.pic.setLevel(true, line: 3)
        #expect(rig.pic.acknowledge() == 0x0B)
        rig.outb(0x20, 0x20)
        #expect(rig.pic.acknowledge() == 0x0B, "a held level requests again after EOI")
        rig.outb(0x20, 0x20)
        rig.pic.setLevel(false, line: 3)
        #expect(rig.pic.pendingInterrupt == false, "lowering a level input withdraws it")
    }

    @Test("ICW1.LTIM makes every input of a chip level-triggered")
    func levelTriggeredMode() {
        let rig = Rig()
        rig.outb(0x20, 0x19)
        rig.outb(0x21, 0x20)
        rig.outb(0x21, 0x04)
        rig.outb(0x21, 0x01)
        rig.pic.setLevel(true, line: 0)
        #expect(rig.pic.acknowledge() == 0x20)
        rig.outb(0x20, 0x20)
        #expect(rig.pic.acknowledge() == 0x20)
    }

    @Test("automatic EOI leaves ISR clear")
    func automaticEOI() {
        let rig = Rig()
        rig.outb(0x20, 0x11)
        rig.outb(0x21, 0x08)
        rig.outb(0x21, 0x04)
        rig.outb(0x21, 0x03)  // 8086 mode, AEOI
        rig.pulse(6)
        #expect(rig.pic.acknowledge() == 0x0E)
        #expect(rig.readISR(0x20) == 0)
        rig.pulse(7)
        #expect(rig.pic.acknowledge() == 0x0F)
    }

    @Test("rotate on non-specific EOI makes the serviced IRQ the lowest priority")
    func rotation() {
        let rig = Rig()
        rig.biosInit()
        rig.pulse(0)
        #expect(rig.pic.acknowledge() == 0x08)
        rig.outb(0x20, 0xA0)  // rotate on non-specific EOI
        rig.pulse(0)
        rig.pulse(1)
        #expect(rig.pic.acknowledge() == 0x09, "IRQ 0 is now the lowest priority")
        rig.outb(0x20, 0xC4)  // set priority: IRQ 4 lowest, IRQ 5 highest
        rig.outb(0x20, 0x61)
        rig.pulse(6)
        #expect(rig.pic.acknowledge() == 0x0E, "IRQ 6 outranks IRQ 0 after the rotation")
    }

    @Test("poll command returns 0x80 | IRQ and acknowledges it")
    func poll() {
        let rig = Rig()
        rig.biosInit()
        rig.outb(0x20, 0x0C)
        #expect(rig.inb(0x20) == 0x00, "nothing requested")
        rig.pulse(2 + 1)
        rig.outb(0x20, 0x0C)
        #expect(rig.inb(0x20) == 0x83)
        #expect(rig.readISR(0x20) == 0x08)
    }

    @Test("special mask mode lets lower-priority IRQs in while a masked one is in service")
    func specialMask() {
        let rig = Rig()
        rig.biosInit()
        rig.pulse(1)
        #expect(rig.pic.acknowledge() == 0x09)
        rig.pulse(4)
        #expect(rig.pic.pendingInterrupt == false)
        rig.outb(0x21, 0x02)  // mask IRQ 1
        rig.outb(0x20, 0x68)  // OCW3: set special mask
        #expect(rig.pic.acknowledge() == 0x0C)
    }

    @Test("bad lines and registers are ignored and counted")
    func misbehaviour() {
        let rig = Rig()
        rig.biosInit()
        rig.pic.setLevel(true, line: 2)
        rig.pic.setLevel(true, line: 16)
        rig.pic.setLevel(true, line: -1)
        #expect(rig.pic.pendingInterrupt == false)
        #expect(rig.pic.misbehaviorCounts[.invalidLine] == 3)
        rig.outb(0x20, 0x20)
        #expect(rig.pic.misbehaviorCounts[.spuriousEOI] == 1)
        rig.outb(0x20, 0x40)
        #expect(rig.pic.misbehaviorCounts[.noOperation] == 1)
        #expect(rig.pic.masterPorts.read(offset: 5, size: 1) == 0xFF)
    }

    @Test("a UART on IRQ 4 interrupts through the real PIC")
    func uartThroughPIC() {
        let rig = Rig()
        rig.biosInit(masterMask: 0xEF)
        let uart = UART16550(interrupt: InterruptLine(controller: rig.pic, number: 4), output: { _ in })
        uart.write(offset: 1, size: 1, value: 0x01)  // ERBFI
        uart.receive([0x41])
        #expect(rig.pic.acknowledge() == 0x0C)
        #expect(uart.read(offset: 0, size: 1) == 0x41)
        rig.outb(0x20, 0x20)
        uart.receive([0x42])
        #expect(rig.pic.acknowledge() == 0x0C, "the line fell when RBR was read, so this is a new edge")
    }

    @Test("state round trip: a restored pair continues exactly like the original")
    func stateRoundTrip() throws {
        let original = Rig()
        original.linuxInit()
        original.outb(0x21, 0x00)
        original.outb(0xA1, 0x00)
        original.pulse(3)
        original.pic.setLevel(true, line: 10)
        _ = original.pic.acknowledge()
        original.outb(0x20, 0x0B)

        let copy = Rig(state: try roundTrip(original.pic.state))
        #expect(copy.pic.state == original.pic.state)
        for rig in [original, copy] { rig.pulse(1) }
        var vectors: [[UInt8?]] = [[], []]
        for (index, rig) in [original, copy].enumerated() {
            for _ in 0..<4 {
                vectors[index].append(rig.pic.acknowledge())
                rig.outb(0xA0, 0x20)
                rig.outb(0x20, 0x20)
            }
        }
        #expect(vectors[0] == vectors[1])
        #expect(vectors[0].compactMap { $0 } == [0x31, 0x33], "IRQ 10 was in service; then IRQ 1 and 3")
        #expect(original.pic.state == copy.pic.state)
    }
}
