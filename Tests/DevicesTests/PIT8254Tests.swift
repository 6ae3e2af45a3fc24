import Devices
import MachineCore
import Testing

/// The PIT on a probe's IRQ 0, driven by the machine's real virtual clock.
private final class Rig {
    let probe = LineProbe()
    let clock = makeClock()
    let pit: PIT8254
    let speaker: PIT8254.SpeakerPort

    init(state: PIT8254.State = PIT8254.State()) {
        pit = PIT8254(interrupt: probe.line(0), time: clock, state: state)
        speaker = pit.speakerPort
    }

    /// Moves virtual time to the instant input-clock tick `tick` happens.
    func at(tick: UInt64) { clock.set(PIT8254.time(ofTick: tick)) }
    func time(_ tick: UInt64) -> VirtualTime { PIT8254.time(ofTick: tick) }

    func outb(_ offset: UInt64, _ value: UInt8) { pit.write(offset: offset, size: 1, value: UInt64(value)) }
    func inb(_ offset: UInt64) -> UInt8 { UInt8(pit.read(offset: offset, size: 1)) }

    /// Control word, then a lobyte/hibyte count.
    func program(channel: UInt64, control: UInt8, count: UInt16) {
        outb(3, control)
        outb(channel, UInt8(count & 0xFF))
        outb(channel, UInt8(count >> 8))
    }

    /// Counter latch command, then LSB and MSB.
    func latchedCount(_ channel: UInt64) -> UInt16 {
        outb(3, UInt8(channel) << 6)
        let low = inb(channel)
        return UInt16(low) | UInt16(inb(channel)) << 8
    }

    /// Read-back of channel `channel`'s status byte.
    func status(_ channel: UInt64) -> UInt8 {
        outb(3, 0xE0 | (2 << UInt8(channel)))
        return inb(channel)
    }

    func update(tick: UInt64) { pit.update(now: time(tick)) }
    var edges: Int { probe.edges(0) }
    var irq: Bool { probe.level(0) }
}

@Suite("PIT8254")
struct PIT8254Tests {
    @Test("virtual time and the 1.193182 MHz input clock")
    func tickConversion() {
        #expect(PIT8254.tick(at: VirtualTime(nanoseconds: 1_000_000_000)) == 1_193_182)
        #expect(PIT8254.time(ofTick: 1_193_182) == VirtualTime(nanoseconds: 1_000_000_000))
        for tick: UInt64 in [1, 2, 999, 65536, 1_193_181, 123_456_789_012] {
            let time = PIT8254.time(ofTick: tick)
            #expect(PIT8254.tick(at: time) == tick)
            #expect(PIT8254.tick(at: VirtualTime(nanoseconds: time.nanoseconds - 1)) == tick - 1)
        }
        #expect(PIT8254.tick(at: VirtualTime(nanoseconds: .max)) == 22_010_322_987_356_910)
        #expect(PIT8254.time(ofTick: .max) == VirtualTime(nanoseconds: .max), "saturates")
    }

    @Test("mode 2: the counter runs N..1 and reloads; OUT rises every N clocks")
    func mode2Counts() {
        let rig = Rig()
        rig.program(channel: 0, control: 0x34, count: 1000)
        #expect(rig.latchedCount(0) == 1000)
        for (tick, expected): (UInt64, UInt16) in [(1, 999), (999, 1), (1000, 1000), (1500, 500), (2999, 1)] {
            rig.at(tick: tick)
            #expect(rig.latchedCount(0) == expected, "tick \(tick)")
        }
        rig.at(tick: 3998)
        #expect(rig.status(0) & 0x80 == 0x80, "OUT high")
        rig.at(tick: 3999)
        #expect(rig.status(0) & 0x80 == 0, "OUT low for one clock at count 1")
        rig.at(tick: 4000)
        #expect(rig.status(0) == 0xB4, "OUT high, lobyte/hibyte, mode 2, binary")
    }

    @Test("mode 0: OUT rises once at terminal count; the counter wraps")
    func mode0() {
        let rig = Rig()
        rig.at(tick: 10)
        rig.program(channel: 0, control: 0x30, count: 500)
        #expect(rig.status(0) & 0x80 == 0)
        rig.at(tick: 110)
        #expect(rig.latchedCount(0) == 400)
        #expect(rig.pit.nextDeadline(after: rig.clock.now) == rig.time(510))
        rig.update(tick: 509)
        #expect(rig.edges == 0)
        #expect(rig.irq == false)
        rig.update(tick: 510)
        #expect(rig.edges == 1)
        #expect(rig.irq)
        rig.at(tick: 511)
        #expect(rig.latchedCount(0) == 65535)
        rig.update(tick: 200_000)
        #expect(rig.edges == 1, "mode 0 fires once")
        #expect(rig.irq, "and OUT stays high")
        #expect(rig.pit.nextDeadline(after: rig.time(200_000)) == nil)
    }

    @Test("mode 3: even and odd counts, exact counter values and OUT")
    func mode3() {
        let rig = Rig()
        rig.program(channel: 0, control: 0x36, count: 10)
        var values: [UInt16] = []
        var outs: [Bool] = []
        for tick: UInt64 in 0..<12 {
            rig.at(tick: tick)
            values.append(rig.latchedCount(0))
            outs.append(rig.status(0) & 0x80 != 0)
        }
        #expect(values == [10, 8, 6, 4, 2, 10, 8, 6, 4, 2, 10, 8])
        #expect(outs == [true, true, true, true, true, false, false, false, false, false, true, true])

        rig.program(channel: 0, control: 0x36, count: 5)
        let start: UInt64 = 11
        values = []
        outs = []
        for tick in start..<start + 10 {
            rig.at(tick: tick)
            values.append(rig.latchedCount(0))
            outs.append(rig.status(0) & 0x80 != 0)
        }
        // Data sheet, odd N: high for (N+1)/2 clocks (5, 4, 2), low for (N-1)/2 (5, 2).
        #expect(values == [5, 4, 2, 5, 2, 5, 4, 2, 5, 2])
        #expect(outs == [true, true, true, false, false, true, true, true, false, false])
    }

    @Test("mode 3 drives IRQ 0 as a square wave: high half, low half, one edge per period")
    func mode3Line() {
        let rig = Rig()
        rig.program(channel: 0, control: 0x36, count: 100)
        rig.update(tick: 0)
        #expect(rig.edges == 1, "programming mode 3 raised OUT from mode 0's low power-on level")
        rig.update(tick: 49)
        #expect(rig.irq)
        rig.update(tick: 50)
        #expect(rig.irq == false)
        rig.update(tick: 99)
        #expect(rig.edges == 1)
        rig.update(tick: 100)
        #expect(rig.edges == 2)
        #expect(rig.irq)
        rig.update(tick: 1_000_075)
        #expect(rig.edges == 3, "many missed periods give one edge")
        #expect(rig.irq == false, "the line ends at OUT's level: low half")
    }

    @Test("deadlines and IRQ edges in mode 2 at about 1 kHz")
    func deadlines() {
        let rig = Rig()
        #expect(rig.pit.nextDeadline(after: .zero) == nil, "counter 0 is not programmed")
        rig.program(channel: 0, control: 0x34, count: 1193)
        #expect(rig.pit.nextDeadline(after: .zero) == .zero,
                "the control word raised OUT from mode 0's low power-on level: an edge is due")
        rig.update(tick: 0)
        #expect(rig.edges == 1)
        #expect(rig.pit.nextDeadline(after: .zero) == rig.time(1193))
        rig.update(tick: 1191)
        #expect(rig.edges == 1)
        #expect(rig.irq, "mode 2 OUT idles high")
        rig.update(tick: 1192)
        #expect(rig.irq == false, "and is low for the one clock at count 1")
        rig.update(tick: 1193)
        #expect(rig.edges == 2)
        #expect(rig.pit.nextDeadline(after: rig.time(1193)) == rig.time(2386))
        #expect(rig.pit.nextDeadline(after: rig.time(2000)) == rig.time(2386))
        #expect(rig.pit.nextDeadline(after: rig.time(2386)) == rig.time(2386),
                "an edge not yet delivered by update(now:) is due at once")
        rig.update(tick: 11_935)
        #expect(rig.edges == 3)
        #expect(rig.pit.nextDeadline(after: rig.time(11_935)) == rig.time(11_930 + 1193))

        // Warping an idle guest: jump to each deadline in turn.
        var now = rig.time(11_935)
        for _ in 0..<5 {
            guard let next = rig.pit.nextDeadline(after: now) else { break }
            now = next
            rig.pit.update(now: now)
        }
        #expect(rig.edges == 8)
        #expect(now == rig.time(1193 * 15))
    }

    @Test("reprogramming that raises OUT is an edge, delivered at the next boundary")
    func reprogrammingEdge() {
        let rig = Rig()
        rig.program(channel: 0, control: 0x30, count: 60000)
        rig.update(tick: 10)
        #expect(rig.irq == false)
        rig.at(tick: 20)
        rig.outb(3, 0x34)  // mode 2: OUT goes high at once
        #expect(rig.edges == 0, "the line only moves in update(now:)")
        #expect(rig.pit.nextDeadline(after: rig.time(20)) == rig.time(20))
        rig.update(tick: 30)
        #expect(rig.edges == 1)
        #expect(rig.irq)
    }

    @Test("access modes: lobyte only, hibyte only, and alternating unlatched word reads")
    func accessModes() {
        let rig = Rig()
        rig.outb(3, 0x54)  // counter 1, lobyte, mode 2
        rig.outb(1, 200)
        rig.at(tick: 50)
        #expect(rig.inb(1) == 150)
        #expect(rig.inb(1) == 150, "lobyte mode reads the LSB every time")
        rig.outb(3, 0x64)  // counter 1, hibyte, mode 2
        rig.outb(1, 0x12)
        #expect(rig.pit.state.channels[1].countRegister == 0x1200)
        rig.at(tick: 50 + 0x100)
        #expect(rig.inb(1) == 0x11)
        rig.outb(3, 0x74)
        rig.outb(1, 0x34)
        rig.outb(1, 0x12)
        rig.at(tick: 50 + 0x100 + 0x10)
        #expect(rig.inb(1) == 0x24)
        #expect(rig.inb(1) == 0x12)
        #expect(rig.inb(1) == 0x24)
    }

    @Test("counter latch holds the value; read-back latches status and count")
    func latchAndReadBack() {
        let rig = Rig()
        rig.outb(3, 0x34)
        #expect(rig.status(0) & 0x40 == 0x40, "null count until a count is written")
        rig.outb(0, 0x00)
        rig.outb(0, 0x10)  // 4096
        rig.at(tick: 96)
        rig.outb(3, 0x00)  // latch counter 0
        rig.at(tick: 1000)
        rig.outb(3, 0x00)  // ignored: the first latch is unread
        #expect(rig.inb(0) == 0xA0)
        #expect(rig.inb(0) == 0x0F, "4000 = 0x0FA0 latched at tick 96")

        rig.outb(3, 0xC2)  // read-back counter 0: count and status
        rig.at(tick: 2000)
        #expect(rig.inb(0) == 0xB4, "status comes first")
        let low = rig.inb(0)
        let high = rig.inb(0)
        #expect(UInt16(low) | UInt16(high) << 8 == 4096 - 1000)
        rig.outb(3, 0xE2)  // read-back: status only
        #expect(rig.inb(0) == 0xB4)
        rig.outb(3, 0xD2)  // read-back: count only
        #expect(UInt16(rig.inb(0)) | UInt16(rig.inb(0)) << 8 == 4096 - 2000)
    }

    @Test("BCD counting")
    func bcd() {
        let rig = Rig()
        rig.program(channel: 0, control: 0x35, count: 0x1000)  // mode 2, BCD 1000
        rig.at(tick: 1)
        #expect(rig.latchedCount(0) == 0x0999)
        rig.at(tick: 1001)
        #expect(rig.latchedCount(0) == 0x0999)
        rig.update(tick: 1001)
        #expect(rig.pit.nextDeadline(after: rig.time(1001)) == rig.time(2000))
        rig.program(channel: 0, control: 0x31, count: 0)  // mode 0, BCD 10000
        rig.at(tick: 1002)
        #expect(rig.latchedCount(0) == 0x9999)
        rig.program(channel: 0, control: 0x31, count: 0xFFFF)
        #expect(rig.pit.misbehaviorCounts[.invalidBCD] == 1)
        _ = rig.latchedCount(0)
    }

    @Test("counter 2 through port 0x61: the gate holds the count, OUT2 appears in bit 5")
    func speakerPort() {
        let rig = Rig()
        rig.program(channel: 2, control: 0xB0, count: 100)  // mode 0, gate low
        rig.at(tick: 500)
        #expect(rig.latchedCount(2) == 100, "a low gate holds mode 0")
        #expect(rig.speaker.read(offset: 0, size: 1) & 0x21 == 0)
        rig.speaker.write(offset: 0, size: 1, value: 0x03)
        #expect(rig.speaker.read(offset: 0, size: 1) & 0x03 == 0x03)
        rig.at(tick: 560)
        #expect(rig.latchedCount(2) == 40)
        rig.speaker.write(offset: 0, size: 1, value: 0x00)
        rig.at(tick: 700)
        #expect(rig.latchedCount(2) == 40, "paused again")
        rig.speaker.write(offset: 0, size: 1, value: 0x01)
        rig.at(tick: 739)
        #expect(rig.speaker.read(offset: 0, size: 1) & 0x20 == 0)
        rig.at(tick: 740)
        #expect(rig.speaker.read(offset: 0, size: 1) & 0x20 == 0x20, "OUT2 high at terminal count")
        #expect(rig.edges == 0, "counter 2 does not drive IRQ 0")

        rig.clock.advance(toNanoseconds: 15_085 * 1001)
        let odd = rig.speaker.read(offset: 0, size: 1) & 0x10
        rig.clock.advance(toNanoseconds: 15_085 * 1002)
        #expect(rig.speaker.read(offset: 0, size: 1) & 0x10 != odd, "the refresh bit toggles")
    }

    @Test("the BIOS-initialized state ticks at 18.2 Hz from time zero")
    func biosInitialized() {
        let rig = Rig(state: .initialized())
        #expect(rig.pit.nextDeadline(after: .zero) == rig.time(65536))
        rig.update(tick: 65535)
        #expect(rig.edges == 0, "no programming edge is replayed")
        rig.update(tick: 65536)
        #expect(rig.edges == 1)
        rig.at(tick: 65536 + 36)
        #expect(rig.latchedCount(0) == 65500)
        #expect(rig.status(0) == 0xB4)
    }

    @Test("modes 1, 4 and 5 start on load (gate high) and strobe or time out")
    func otherModes() {
        let rig = Rig()
        rig.program(channel: 0, control: 0x38, count: 100)  // mode 4
        rig.update(tick: 100)
        #expect(rig.irq == false, "OUT low for one clock at terminal count")
        rig.update(tick: 101)
        #expect(rig.irq)
        let edges = rig.edges
        rig.update(tick: 5000)
        #expect(rig.edges == edges)

        rig.at(tick: 6000)
        rig.program(channel: 0, control: 0x32, count: 50)  // mode 1
        #expect(rig.status(0) & 0x80 == 0)
        #expect(rig.pit.nextDeadline(after: rig.time(6000)) == rig.time(6050))
    }

    @Test("bad ports and illegal counts are ignored or handled, and counted")
    func misbehaviour() {
        let rig = Rig()
        #expect(rig.inb(3) == 0)
        #expect(rig.pit.read(offset: 9, size: 1) == 0xFF)
        rig.pit.write(offset: 9, size: 1, value: 0)
        rig.program(channel: 0, control: 0x34, count: 1)
        #expect(rig.pit.misbehaviorCounts[.illegalCount] == 1)
        rig.update(tick: 100)
        #expect(rig.pit.nextDeadline(after: rig.time(100)) == nil)
        rig.pit.write(offset: 0, size: 2, value: 0x1234)
        #expect(rig.pit.misbehaviorCounts[.wideAccess] == 1)
    }

    @Test("state round trip: a restored PIT continues exactly like the original")
    func stateRoundTrip() throws {
        let original = Rig(state: .initialized())
        original.outb(3, 0xB6)
        original.outb(2, 0x34)
        original.outb(2, 0x12)
        original.update(tick: 70_000)
        original.outb(3, 0x00)
        _ = original.inb(0)

        let copy = Rig(state: try roundTrip(original.pit.state))
        #expect(copy.pit.state == original.pit.state)
        var reads: [[UInt8]] = [[], []]
        for (index, rig) in [original, copy].enumerated() {
            let edgesBefore = rig.edges
            defer { reads[index].append(UInt8(rig.edges - edgesBefore)) }
            rig.at(tick: 300_000)
            reads[index].append(rig.inb(0))
            reads[index] += [rig.inb(2), rig.inb(2)]
            rig.update(tick: 300_000)
            reads[index].append(rig.irq ? 1 : 0)
        }
        #expect(reads[0] == reads[1])
        #expect(original.pit.nextDeadline(after: original.time(300_000))
                == copy.pit.nextDeadline(after: copy.time(300_000)))
        #expect(original.pit.state == copy.pit.state)
    }
}
