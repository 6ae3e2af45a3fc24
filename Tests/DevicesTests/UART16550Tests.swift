import Devices
import MachineCore
import Testing

/// Register offsets, as a guest driver names them.
private enum R {
    static let rbr: UInt64 = 0, thr: UInt64 = 0, dll: UInt64 = 0
    static let ier: UInt64 = 1, dlm: UInt64 = 1
    static let iir: UInt64 = 2, fcr: UInt64 = 2
    static let lcr: UInt64 = 3, mcr: UInt64 = 4, lsr: UInt64 = 5, msr: UInt64 = 6, scr: UInt64 = 7
}

/// A UART wired to a probe on IRQ 4 and a byte sink, driven through byte accesses.
private final class Rig {
    let probe = LineProbe()
    let sink = ByteSink()
    let uart: UART16550

    init(state: UART16550.State = UART16550.State()) {
        let sink = self.sink
        uart = UART16550(interrupt: probe.line(4), output: { sink.take($0) }, state: state)
    }

    func rd(_ offset: UInt64) -> UInt8 { UInt8(uart.read(offset: offset, size: 1)) }
    func wr(_ offset: UInt64, _ value: UInt8) { uart.write(offset: offset, size: 1, value: UInt64(value)) }
    var irq: Bool { probe.level(4) }

    /// Reads RBR while LSR.DR is set.
    func drain() -> [UInt8] {
        var bytes: [UInt8] = []
        while rd(R.lsr) & 0x01 != 0 { bytes.append(rd(R.rbr)) }
        return bytes
    }
}

@Suite("UART16550")
struct UART16550Tests {
    @Test("reset values of the registers")
    func resetValues() {
        let rig = Rig()
        #expect(rig.rd(R.iir) == 0x01)
        #expect(rig.rd(R.lsr) == 0x60)
        #expect(rig.rd(R.msr) == 0xB0)
        #expect(rig.rd(R.ier) == 0)
        #expect(rig.rd(R.lcr) == 0)
        #expect(rig.rd(R.mcr) == 0)
        #expect(rig.irq == false)
    }

    @Test("THR bytes go to the output sink in order; DLAB redirects offsets 0 and 1")
    func output() {
        let rig = Rig()
        for byte in Array("hello\n".utf8) { rig.wr(R.thr, byte) }
        #expect(rig.sink.string == "hello\n")
        #expect(rig.sink.calls == 6)

        rig.wr(R.lcr, 0x83)  // DLAB, 8N1
        rig.wr(R.dll, 0x01)
        rig.wr(R.dlm, 0x02)
        #expect(rig.rd(R.dll) == 0x01)
        #expect(rig.rd(R.dlm) == 0x02)
        #expect(rig.sink.bytes.count == 6, "a DLL write is not a transmission")
        rig.wr(R.lcr, 0x03)
        #expect(rig.rd(R.ier) == 0, "IER was not touched by the DLM write")
        #expect(rig.uart.state.divisorLatch == 0x0201)
        rig.wr(R.thr, UInt8(ascii: "!"))
        #expect(rig.sink.string == "hello\n!")
    }

    @Test("enabling the FIFOs keeps the byte waiting in the holding register; disabling or FCR's clear bit clears")
    func enablingTheFIFOsKeepsTheHeldByte() {
        let rig = Rig()
        #expect(rig.uart.receiveRoom == 1, "before any setup: the holding register")
        rig.uart.receive([0x41])
        rig.wr(R.fcr, 0x01)
        #expect(rig.uart.receiveRoom == 15)
        rig.uart.receive([0x42])
        #expect(rig.drain() == [0x41, 0x42])

        rig.uart.receive([0x43])
        rig.wr(R.fcr, 0x00)
        #expect(rig.drain() == [], "disabling the FIFOs clears them")
        rig.uart.receive([0x44])
        rig.wr(R.fcr, 0x03)
        #expect(rig.drain() == [], "enabling with the clear bit clears")
    }

    @Test("received bytes set LSR.DR and are read from RBR in order")
    func input() {
        let rig = Rig()
        #expect(rig.rd(R.lsr) & 0x01 == 0)
        #expect(rig.uart.receiveRoom == 1, "without FIFOs: the holding register")
        rig.uart.receive(Array("h".utf8))
        #expect(rig.uart.receiveRoom == 0)
        #expect(rig.rd(R.lsr) & 0x01 == 0x01)
        #expect(rig.rd(R.rbr) == UInt8(ascii: "h"))
        #expect(rig.uart.receiveRoom == 1)
        rig.uart.receive(Array("i".utf8))
        #expect(rig.rd(R.rbr) == UInt8(ascii: "i"))
        #expect(rig.rd(R.lsr) & 0x01 == 0)
        #expect(rig.rd(R.rbr) == UInt8(ascii: "i"), "without FIFOs an empty RBR reads its last byte")
    }

    @Test("bytes beyond the room are lost to an overrun (only a faulty host sends them)")
    func overrun() {
        let rig = Rig()
        rig.uart.receive([1, 2, 3])
        #expect(rig.uart.state.receiveFIFO == [1])
        #expect(rig.rd(R.lsr) & 0x03 == 0x03, "DR and OE")
        #expect(rig.rd(R.lsr) & 0x02 == 0, "reading LSR cleared OE")
        #expect(rig.drain() == [1])
        #expect(rig.uart.misbehaviorCounts[.receiverOverrun] == 1)
    }

    @Test("FIFO mode: a 16-byte FIFO, IIR bits 6-7, the room follows the guest's reads")
    func fifo() {
        let rig = Rig()
        rig.wr(R.fcr, 0x07)  // enable, clear both
        #expect(rig.rd(R.iir) == 0xC1)
        #expect(rig.uart.receiveRoom == 16)
        let input = (0..<16).map { UInt8($0) }
        rig.uart.receive(input)
        #expect(rig.uart.receiveRoom == 0)
        #expect(rig.rd(R.rbr) == 0)
        #expect(rig.uart.receiveRoom == 1)
        #expect(rig.drain() == Array(input.dropFirst()))
        #expect(rig.uart.receiveRoom == 16)
        #expect(rig.rd(R.rbr) == 0, "an empty FIFO reads 0")
        #expect(rig.rd(R.lsr) & 0x02 == 0, "no overrun")
    }

    @Test("a large paste arrives intact when the host gives each boundary only the room")
    func largeInput() {
        let rig = Rig()
        rig.wr(R.fcr, 0x01)
        rig.wr(R.ier, 0x01)
        var host = (0..<50_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 8) }
        let expected = host
        var got: [UInt8] = []
        var boundaries = 0
        while !host.isEmpty || rig.rd(R.lsr) & 1 != 0 {
            let batch = Array(host.prefix(rig.uart.receiveRoom))
            host.removeFirst(batch.count)
            rig.uart.receive(batch)
            boundaries += 1
            // A slow guest: at most 5 bytes between boundaries.
            got += (0..<5).compactMap { _ in rig.rd(R.lsr) & 1 != 0 ? rig.rd(R.rbr) : nil }
        }
        #expect(got == expected)
        #expect(rig.uart.misbehaviorCounts[.receiverOverrun] == nil)
        #expect(boundaries == 10_000)
    }

    @Test("trigger levels select data-available vs character-timeout")
    func triggerLevels() {
        let rig = Rig()
        rig.wr(R.fcr, 0xC1)  // FIFO, trigger 14
        rig.wr(R.ier, 0x01)
        #expect(rig.uart.triggerLevel == 14)
        #expect(rig.irq == false)
        rig.uart.receive([UInt8](repeating: 0x41, count: 10))
        #expect(rig.rd(R.iir) == 0xCC, "below the trigger level: character timeout")
        #expect(rig.irq)
        rig.uart.receive([UInt8](repeating: 0x42, count: 4))
        #expect(rig.rd(R.iir) == 0xC4, "at the trigger level: received data available")
        _ = rig.rd(R.rbr)
        #expect(rig.rd(R.iir) == 0xCC)
        _ = rig.drain()
        #expect(rig.rd(R.iir) == 0xC1)
        #expect(rig.irq == false)

        for (fcr, level) in [(0x01, 1), (0x41, 4), (0x81, 8), (0xC1, 14)] as [(UInt8, Int)] {
            rig.wr(R.fcr, fcr)
            #expect(rig.uart.triggerLevel == level)
        }
        rig.wr(R.fcr, 0x81)
        rig.uart.receive([UInt8](repeating: 0, count: 16))
        #expect(rig.rd(R.iir) == 0xC4, "16 bytes in the FIFO, trigger 8")
        _ = rig.rd(R.rbr)
        #expect(rig.uart.receiveRoom == 1)
    }

    @Test("FCR clears the receive FIFO, which makes room again")
    func fifoClear() {
        let rig = Rig()
        rig.wr(R.fcr, 0x01)
        rig.wr(R.ier, 0x01)
        rig.uart.receive((1...16).map { UInt8($0) })
        rig.wr(R.fcr, 0x03)
        #expect(rig.uart.receiveRoom == 16)
        #expect(rig.drain() == [], "the 16 bytes in the FIFO were discarded")
        rig.uart.receive([9, 9])
        rig.wr(R.fcr, 0x00)  // disabling the FIFOs also clears them
        #expect(rig.rd(R.lsr) & 1 == 0)
        #expect(rig.rd(R.iir) & 0xC0 == 0)
    }

    @Test("IIR reports the highest-priority source and each source clears as specified")
    func interruptPriority() {
        let rig = Rig()
        rig.wr(R.mcr, 0x10)  // loopback: modem inputs drop, setting DCTS, DDSR, DDCD
        rig.wr(R.ier, 0x0F)
        #expect(rig.rd(R.iir) == 0x02, "THR empty once ETBEI is enabled")
        rig.wr(R.thr, 0x61)  // loops back into the one-byte holding register
        rig.wr(R.thr, 0x62)  // overrun
        #expect(rig.rd(R.iir) == 0x06, "line status first")
        #expect(rig.rd(R.lsr) == 0x63, "DR, OE, THRE, TEMT")
        #expect(rig.rd(R.lsr) == 0x61, "reading LSR cleared OE")
        #expect(rig.rd(R.iir) == 0x04, "then received data")
        #expect(rig.rd(R.rbr) == 0x61)
        #expect(rig.rd(R.iir) == 0x02, "then THR empty")
        #expect(rig.rd(R.iir) == 0x00, "reading IIR cleared THRE; then modem status")
        #expect(rig.irq)
        #expect(rig.rd(R.msr) == 0x0B, "DCTS, DDSR, DDCD; all inputs low")
        #expect(rig.rd(R.iir) == 0x01)
        #expect(rig.irq == false)
    }

    @Test("the line is level-driven and each THR write makes a new edge")
    func interruptLine() {
        let rig = Rig()
        rig.wr(R.ier, 0x01)
        rig.uart.receive([0x55])
        #expect(rig.irq)
        _ = rig.rd(R.rbr)
        #expect(rig.irq == false)

        rig.wr(R.ier, 0x02)
        #expect(rig.irq)
        #expect(rig.probe.edges(4) == 2)
        #expect(rig.rd(R.iir) == 0x02)
        #expect(rig.irq == false, "reading IIR acknowledged THRE")
        rig.wr(R.thr, 0x41)
        #expect(rig.irq)
        #expect(rig.probe.edges(4) == 3)
        rig.wr(R.thr, 0x42)
        #expect(rig.probe.edges(4) == 4, "the line dipped and rose again for an edge-triggered PIC")
        rig.wr(R.ier, 0x00)
        #expect(rig.irq == false)
        #expect(rig.uart.pendingInterrupt == nil)
    }

    @Test("loopback routes THR to RBR, MCR to MSR, and takes no host input")
    func loopback() {
        let rig = Rig()
        rig.wr(R.ier, 0x01)
        rig.uart.receive([0x10])
        _ = rig.rd(R.rbr)
        rig.wr(R.mcr, 0x1A)  // Linux's autoconfig probe: LOOP | OUT2 | RTS
        #expect(rig.rd(R.msr) & 0xF0 == 0x90, "DCD and CTS")
        rig.wr(R.mcr, 0x1F)
        #expect(rig.rd(R.msr) & 0xF0 == 0xF0)
        rig.wr(R.mcr, 0x1B)  // OUT1 falls: RI trailing edge
        #expect(rig.rd(R.msr) & 0x0F == 0x04)

        rig.wr(R.fcr, 0x01)
        #expect(rig.uart.receiveRoom == 0, "serial input is disconnected in loopback")
        for byte in Array("loop".utf8) { rig.wr(R.thr, byte) }
        #expect(rig.sink.bytes.isEmpty, "loopback output does not reach the sink")
        #expect(rig.drain() == Array("loop".utf8))
        rig.wr(R.mcr, 0x0B)
        #expect(rig.uart.receiveRoom == 16, "the host's input flows again once loopback ends")
        rig.wr(R.thr, 0x21)
        #expect(rig.sink.bytes == [0x21])
    }

    @Test("read-only and unknown registers, wide accesses: ignored and counted, never a crash")
    func misbehaviour() {
        let rig = Rig()
        rig.wr(R.scr, 0x5A)
        #expect(rig.rd(R.scr) == 0x5A)
        rig.wr(R.lsr, 0x00)
        rig.wr(R.msr, 0xFF)
        #expect(rig.rd(R.lsr) == 0x60)
        #expect(rig.rd(R.msr) == 0xB0)
        #expect(rig.uart.misbehaviorCounts[.readOnlyRegister] == 2)
        #expect(rig.uart.read(offset: 8, size: 1) == 0xFF)
        rig.uart.write(offset: 1_000_000, size: 1, value: 1)
        #expect(rig.uart.misbehaviorCounts[.unknownRegister] == 2)
        rig.uart.write(offset: R.scr, size: 4, value: 0x1234_5678)
        #expect(rig.rd(R.scr) == 0x78)
        #expect(rig.uart.misbehaviorCounts[.wideAccess] == 1)
    }

    @Test("state round trip: a restored UART continues exactly like the original")
    func stateRoundTrip() throws {
        let original = Rig()
        original.wr(R.fcr, 0x41)
        original.wr(R.ier, 0x03)
        original.wr(R.lcr, 0x03)
        original.wr(R.scr, 0x99)
        original.uart.receive((0..<16).map { UInt8($0) })
        _ = original.rd(R.rbr)

        let saved = try roundTrip(original.uart.state)
        #expect(saved == original.uart.state)
        let copy = Rig(state: saved)

        for rig in [original, copy] {
            rig.wr(R.thr, 0x7A)
            rig.uart.receive([0xEE])
        }
        #expect(original.drain() == copy.drain())
        #expect(original.rd(R.iir) == copy.rd(R.iir))
        #expect(original.sink.bytes == copy.sink.bytes)
        #expect(original.uart.state == copy.uart.state)
    }
}
