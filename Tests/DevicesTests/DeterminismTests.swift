import TestSupport
import Devices
import MachineCore
import Testing

/// Two replicas fed the same guest accesses and boundary events must stay in the same state, and
/// no sequence of accesses (or restored state) may crash a device.
@Suite("Determinism and robustness")
struct DeterminismTests {
    @Test("UART: identical random traffic gives identical state and output; no crash")
    func uart() throws {
        var random = SplitMix64(seed: 1)
        let sinks = [ByteSink(), ByteSink()]
        let probes = [LineProbe(), LineProbe()]
        let uarts = (0..<2).map { i in
            UART16550(interrupt: probes[i].line(4), output: { sinks[i].take($0) })
        }
        var reads: [[UInt64]] = [[], []]
        for _ in 0..<20_000 {
            let op = random.next()
            let offset = op % 9
            let value = (op >> 8) & 0xFF
            let kind = (op >> 16) % 10
            for (i, uart) in uarts.enumerated() {
                switch kind {
                case 0...3: reads[i].append(uart.read(offset: offset, size: 1))
                case 4...7: uart.write(offset: offset, size: 1, value: value)
                default: uart.receive([UInt8(value), UInt8(truncatingIfNeeded: op >> 24)])
                }
            }
        }
        #expect(reads[0] == reads[1])
        #expect(sinks[0].bytes == sinks[1].bytes)
        #expect(uarts[0].state == uarts[1].state)
        #expect(probes[0].risingEdges == probes[1].risingEdges)
        #expect(probes[0].level(4) == uarts[0].state.interruptLevel)

        var odd = UART16550.State()
        odd.receiveFIFO = [UInt8](repeating: 1, count: 100)
        odd.fifoControl = 0xFF
        let restored = UART16550(interrupt: probes[0].line(4), output: { _ in }, state: odd)
        for offset: UInt64 in 0..<8 { _ = restored.read(offset: offset, size: 1) }
        restored.receive([1, 2, 3])
    }

    @Test("PIC: identical random traffic gives identical vectors and state; no crash")
    func pic() throws {
        var random = SplitMix64(seed: 2)
        let pics = [PIC8259Pair(), PIC8259Pair()]
        var results: [[UInt64]] = [[], []]
        for _ in 0..<20_000 {
            let op = random.next()
            let value = (op >> 8) & 0xFF
            let kind = (op >> 16) % 8
            for (i, pic) in pics.enumerated() {
                switch kind {
                case 0: pic.masterPorts.write(offset: op % 3, size: 1, value: value)
                case 1: pic.slavePorts.write(offset: op % 3, size: 1, value: value)
                case 2: results[i].append(pic.masterPorts.read(offset: op % 2, size: 1))
                case 3: results[i].append(pic.slavePorts.read(offset: op % 2, size: 1))
                case 4: pic.elcrPorts.write(offset: op % 3, size: 1, value: value)
                case 5: results[i].append(pic.acknowledge().map(UInt64.init) ?? 0xFFFF)
                default: pic.setLevel(value & 1 != 0, line: Int(op % 18))
                }
            }
        }
        #expect(results[0] == results[1])
        #expect(pics[0].state == pics[1].state)
    }

    @Test("PIT: identical random traffic and boundaries give identical reads, edges and state")
    func pit() throws {
        var random = SplitMix64(seed: 3)
        let clocks = [makeClock(), makeClock()]
        let probes = [LineProbe(), LineProbe()]
        let pits = (0..<2).map { PIT8254(interrupt: probes[$0].line(0), time: clocks[$0]) }
        var results: [[UInt64]] = [[], []]
        var now: UInt64 = 0
        for _ in 0..<20_000 {
            let op = random.next()
            now += op % 3 == 0 ? (op >> 40) % 100_000 : 0
            let value = (op >> 8) & 0xFF
            let kind = (op >> 16) % 10
            for i in 0..<2 {
                clocks[i].advance(toNanoseconds: now)
                switch kind {
                case 0...2: pits[i].write(offset: op % 5, size: 1, value: value)
                case 3...5: results[i].append(pits[i].read(offset: op % 5, size: 1))
                case 6: pits[i].speakerPort.write(offset: 0, size: 1, value: value)
                case 7: results[i].append(pits[i].speakerPort.read(offset: 0, size: 1))
                case 8: results[i].append(pits[i].nextDeadline(after: clocks[i].now)?.nanoseconds ?? 1)
                default: pits[i].update(now: clocks[i].now)
                }
            }
        }
        #expect(results[0] == results[1])
        #expect(probes[0].risingEdges == probes[1].risingEdges)
        #expect(pits[0].state == pits[1].state)

        // A snapshot with odd values: out-of-range ticks, a short channel list.
        var odd = PIT8254.State()
        odd.channels = [odd.channels[0]]
        odd.channels[0].counting = true
        odd.channels[0].loadTick = .max
        odd.channels[0].pausedElapsed = .max
        odd.lastEvaluatedTick = .max - 1
        let restored = PIT8254(interrupt: probes[0].line(0), time: clocks[0], state: odd)
        for offset: UInt64 in 0..<4 { _ = restored.read(offset: offset, size: 1) }
        restored.write(offset: 3, size: 1, value: 0xFE)
        restored.update(now: VirtualTime(nanoseconds: .max))
        _ = restored.nextDeadline(after: VirtualTime(nanoseconds: .max))
        #expect(restored.state.channels.count == 3)
    }

    @Test("virtio-blk: a restored state with an unvalidated queue cannot crash the device")
    func virtioOddState() throws {
        var odd = VirtioMMIOBlock.State()
        odd.status = 0x0F
        odd.queue.ready = true
        odd.queue.size = 0
        odd.outstanding = [.init(id: 5, kind: .read, head: 9, dataSegments: [.init(address: .max, length: 9)],
                                 dataLength: 9, statusAddress: .max)]
        let d = try VirtioTestDriver(state: odd)
        d.notify()
        #expect(d.reg(VirtioTestDriver.status) & 0x40 == 0x40)
        d.device.complete(BlockCompletion(id: 5, status: .ok, data: [UInt8](repeating: 0, count: 9)))
        #expect(d.device.outstandingRequests.isEmpty)
    }
}
