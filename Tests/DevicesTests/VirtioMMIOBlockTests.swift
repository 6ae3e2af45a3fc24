import TestSupport
import Devices
import MachineCore
import Testing

private typealias D = VirtioTestDriver

@Suite("VirtioMMIOBlock")
struct VirtioMMIOBlockTests {
    // MARK: Registers and negotiation

    @Test("identification registers, features and configuration space")
    func identification() throws {
        let d = try D()
        #expect(d.reg(D.magic) == 0x7472_6976)
        #expect(d.reg(D.version) == 2)
        #expect(d.reg(D.deviceID) == 2)
        #expect(d.reg(D.vendorID) == 0x4C4B_5354)
        d.set(D.deviceFeaturesSel, 1)
        #expect(d.reg(D.deviceFeatures) == 1, "VIRTIO_F_VERSION_1")
        d.set(D.deviceFeaturesSel, 0)
        #expect(d.reg(D.deviceFeatures) == 1 << 2 | 1 << 6 | 1 << 9, "SEG_MAX, BLK_SIZE, FLUSH")
        d.set(D.deviceFeaturesSel, 2)
        #expect(d.reg(D.deviceFeatures) == 0)
        #expect(d.reg(D.queueNumMax) == 256)
        d.set(D.queueSel, 1)
        #expect(d.reg(D.queueNumMax) == 0, "there is only one queue")
        #expect(d.reg(D.configGeneration) == 0)

        #expect(d.device.read(offset: D.config, size: 8) == 2048, "capacity")
        #expect(d.device.read(offset: D.config, size: 4) == 2048)
        #expect(d.device.read(offset: D.config + 4, size: 4) == 0)
        #expect(d.device.read(offset: D.config + 1, size: 1) == 0x08)
        #expect(d.device.read(offset: D.config + 0x0C, size: 4) == 254, "seg_max")
        #expect(d.device.read(offset: D.config + 0x14, size: 4) == 512, "blk_size")
        #expect(d.device.read(offset: D.config + 0x22, size: 2) == 1, "num_queues")
        #expect(d.device.read(offset: D.config + 0xF0, size: 4) == 0, "beyond the config space")
    }

    @Test("a big-endian CPU sees the little-endian registers through the bus")
    func bigEndianBus() throws {
        let d = try D()
        let bus = Bus(name: "mmio")
        try bus.register(d.device, name: "virtio-blk", base: 0xF000_0000,
                         length: VirtioMMIOBlock.windowSize, byteOrder: .little)
        #expect(bus.read(0xF000_0000, size: 4, cpuOrder: .big) == 0x7669_7274)
        #expect(bus.read(0xF000_0000, size: 4, cpuOrder: .little) == 0x7472_6976)
        bus.write(0xF000_0070, size: 4, value: 0x0100_0000, cpuOrder: .big)
        #expect(d.reg(D.status) == 1, "ACKNOWLEDGE, written by a big-endian CPU")
    }

    @Test("FEATURES_OK is refused without VERSION_1 or with unoffered features")
    func negotiation() throws {
        let d = try D()
        #expect(d.initialize(features: 1 << 9) == false)
        #expect(d.reg(D.status) & 0x08 == 0)
        #expect(d.initialize(features: 1 << 32 | 1 << 28) == false, "indirect descriptors are not offered")
        #expect(d.device.misbehaviorCounts[.featureNegotiation] == 2)
        #expect(d.initialize(features: 1 << 32))
        #expect(d.reg(D.status) == 0x0F)
        d.set(D.driverFeatures, 0)
        #expect(d.device.misbehaviorCounts[.featureNegotiation] == 3, "features are frozen after FEATURES_OK")
        #expect(d.device.state.driverFeatures == 1 << 32)
    }

    // MARK: Requests

    @Test("read: submitted as a BlockRequest, completed into guest memory with status and used ring")
    func read() throws {
        let d = try D()
        #expect(d.initialize())
        let r = d.read(sector: 5, length: 1024)
        d.notify()
        #expect(d.submitted == [BlockRequest(id: 1, kind: .read, sector: 5, length: 1024)])
        #expect(d.device.outstandingRequests == [1])
        #expect(d.takeUsed().isEmpty)
        #expect(d.status(of: r) == 0xFF)
        #expect(d.irq == false)

        let data = (0..<1024).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        d.device.complete(BlockCompletion(id: 1, status: .ok, data: data))
        #expect(d.bytes(at: r.data, count: 1024) == data)
        #expect(d.status(of: r) == 0)
        let used = d.takeUsed()
        #expect(used.count == 1)
        #expect(used.first?.id == UInt32(r.head))
        #expect(used.first?.length == 1025, "data plus the status byte")
        #expect(d.irq)
        #expect(d.acknowledgeInterrupt() == 1)
        #expect(d.irq == false)
        #expect(d.device.outstandingRequests.isEmpty)
    }

    @Test("write: the data is captured at submission; completion writes status and len 1")
    func write() throws {
        let d = try D()
        d.initialize()
        let data = (0..<1536).map { UInt8(truncatingIfNeeded: $0 ^ 0x5A) }
        let r = d.write(sector: 100, data: data)
        d.notify()
        d.poke([UInt8](repeating: 0, count: 1536), at: r.data)  // the guest reuses its buffer
        #expect(d.submitted == [BlockRequest(id: 1, kind: .write, sector: 100, length: 1536, data: data)])
        d.device.complete(BlockCompletion(id: 1, status: .ok))
        #expect(d.status(of: r) == 0)
        #expect(d.takeUsed().map(\.length) == [1])
        #expect(d.irq)
    }

    @Test("flush is submitted; GET_ID is answered by the device with its serial")
    func flushAndGetID() throws {
        let d = try D()
        d.initialize()
        let f = d.flush()
        let g = d.getID()
        d.notify()
        #expect(d.submitted == [BlockRequest(id: 1, kind: .flush, sector: 0, length: 0)])
        #expect(d.bytes(at: g.data, count: 20) == Array("lockstep-disk".utf8) + [0, 0, 0, 0, 0, 0, 0])
        #expect(d.status(of: g) == 0)
        #expect(d.takeUsed().map(\.length) == [21])
        #expect(d.irq, "the immediate completion interrupts")
        d.acknowledgeInterrupt()
        d.device.complete(BlockCompletion(id: 1, status: .ok))
        #expect(d.status(of: f) == 0)
        #expect(d.takeUsed().map(\.id) == [UInt32(f.head)])
    }

    @Test("GET_ID goes to the backend when the device has no serial")
    func getIDFromBackend() throws {
        let d = try D(configuration: .init(capacity: 2048, serial: nil))
        d.initialize()
        let g = d.getID()
        d.notify()
        #expect(d.submitted == [BlockRequest(id: 1, kind: .getID, sector: 0, length: 20)])
        d.device.complete(BlockCompletion(id: 1, status: .ok, data: Array("disk-0".utf8)))
        #expect(d.bytes(at: g.data, count: 20) == Array("disk-0".utf8) + [UInt8](repeating: 0, count: 14))
        #expect(d.takeUsed().map(\.length) == [21])
    }

    @Test("out-of-order completions fill the used ring in completion order")
    func outOfOrder() throws {
        let d = try D()
        d.initialize()
        let requests = (0..<3).map { d.read(sector: UInt64($0), length: 512) }
        d.notify()
        #expect(d.device.outstandingRequests == [1, 2, 3])
        for id: BlockRequestID in [3, 1, 2] {
            d.device.complete(BlockCompletion(id: id, status: .ok, data: [UInt8](repeating: UInt8(id), count: 512)))
        }
        #expect(d.takeUsed().map(\.id) == [2, 0, 1].map { UInt32(requests[$0].head) })
        for (i, r) in requests.enumerated() {
            #expect(d.bytes(at: r.data, count: 512) == [UInt8](repeating: UInt8(i + 1), count: 512))
        }
        #expect(d.device.outstandingRequests.isEmpty)
    }

    @Test("the ring wraps: many requests through a 4-entry queue")
    func ringWraps() throws {
        let d = try D(queueSize: 4)
        d.initialize()
        for round in 0..<40 {
            let r = d.read(sector: UInt64(round), length: 512)
            d.notify()
            let id = BlockRequestID(round + 1)
            #expect(d.device.outstandingRequests == [id])
            d.device.complete(BlockCompletion(id: id, status: .ok, data: [UInt8](repeating: UInt8(round), count: 512)))
            #expect(d.takeUsed().map(\.id) == [UInt32(r.head)])
            #expect(d.bytes(at: r.data, count: 512).allSatisfy { $0 == UInt8(round) })
        }
    }

    @Test("any framing: header and data in one descriptor, data and status in another")
    func framing() throws {
        let d = try D()
        d.initialize()
        let block = d.allocate(16 + 512)
        try d.memory.store(UInt32(1), at: GuestAddress(block), order: .little)
        try d.memory.store(UInt64(7), at: GuestAddress(block + 8), order: .little)
        d.poke([UInt8](repeating: 0xC3, count: 512), at: block + 16)
        let status = d.allocate(1, fill: 0xFF)
        d.add([.init(address: block, length: 528, writable: false),
               .init(address: status, length: 1, writable: true)])
        let header = d.header(type: 0, sector: 9)
        let tail = d.allocate(512 + 1, fill: 0xFF)
        d.add([.init(address: header, length: 16, writable: false),
               .init(address: tail, length: 513, writable: true)])
        d.notify()
        #expect(d.submitted == [
            BlockRequest(id: 1, kind: .write, sector: 7, length: 512, data: [UInt8](repeating: 0xC3, count: 512)),
            BlockRequest(id: 2, kind: .read, sector: 9, length: 512),
        ])
        d.device.complete(BlockCompletion(id: 2, status: .ok, data: [UInt8](repeating: 0x11, count: 512)))
        #expect(d.bytes(at: tail, count: 513) == [UInt8](repeating: 0x11, count: 512) + [0])
        #expect(d.takeUsed().map(\.length) == [513])
    }

    // MARK: Bad input

    @Test("a data buffer outside RAM completes with IOERR at once")
    func bufferOutsideRAM() throws {
        let d = try D()
        d.initialize()
        let header = d.header(type: 0, sector: 0)
        let status = d.allocate(1, fill: 0xFF)
        d.add([.init(address: header, length: 16, writable: false),
               .init(address: 0xFFFF_0000, length: 512, writable: true),
               .init(address: status, length: 1, writable: true)])
        d.notify()
        #expect(d.submitted.isEmpty)
        #expect(d.bytes(at: status, count: 1) == [1], "VIRTIO_BLK_S_IOERR")
        #expect(d.takeUsed().map(\.length) == [1])
        #expect(d.irq)
        #expect(d.device.misbehaviorCounts[.badRequest] == 1)
        #expect(d.reg(D.status) & 0x40 == 0, "the device keeps working")
    }

    @Test("a status byte outside RAM sets DEVICE_NEEDS_RESET; a reset recovers")
    func statusOutsideRAM() throws {
        let d = try D()
        d.initialize()
        let header = d.header(type: 0, sector: 0)
        let data = d.allocate(512)
        d.add([.init(address: header, length: 16, writable: false),
               .init(address: data, length: 512, writable: true),
               .init(address: 0x10_0000, length: 1, writable: true)])  // one past the end of RAM
        d.notify()
        #expect(d.reg(D.status) & 0x40 == 0x40)
        #expect(d.reg(D.interruptStatus) == 2, "configuration change interrupt")
        #expect(d.irq)
        #expect(d.takeUsed().isEmpty)
        #expect(d.submitted.isEmpty)

        _ = d.read(sector: 1, length: 512)
        d.notify()
        #expect(d.submitted.isEmpty, "the device ignores the queue until reset")
        #expect(d.device.misbehaviorCounts[.notifyIgnored] == 1)

        #expect(d.initialize())
        #expect(d.irq == false, "reset lowered the line")
        _ = d.read(sector: 1, length: 512)
        d.notify()
        #expect(d.submitted == [BlockRequest(id: 1, kind: .read, sector: 1, length: 512)])
    }

    @Test("a descriptor loop sets DEVICE_NEEDS_RESET without hanging")
    func descriptorLoop() throws {
        let d = try D()
        d.initialize()
        let header = d.header(type: 0, sector: 0)
        let data = d.allocate(512)
        d.writeDescriptor(0, address: header, length: 16, flags: 1, next: 1)
        d.writeDescriptor(1, address: data, length: 512, flags: 1 | 2, next: 0)
        d.publish(head: 0)
        d.notify()
        #expect(d.reg(D.status) & 0x40 == 0x40)
        #expect(d.device.misbehaviorCounts[.brokenChain] == 1)
    }

    @Test("chain indices beyond the queue and a runaway available index set DEVICE_NEEDS_RESET")
    func badIndices() throws {
        let d = try D()
        d.initialize()
        d.publish(head: 16)
        d.notify()
        #expect(d.reg(D.status) & 0x40 == 0x40, "head index 16 in a 16-entry queue")

        d.initialize()
        let header = d.header(type: 0, sector: 0)
        d.writeDescriptor(0, address: header, length: 16, flags: 1, next: 99)
        d.publish(head: 0)
        d.notify()
        #expect(d.reg(D.status) & 0x40 == 0x40, "next index 99")

        d.initialize()
        d.store16(1000, at: D.availableRing + 2)
        d.notify()
        #expect(d.reg(D.status) & 0x40 == 0x40, "1000 entries in a 16-entry queue")
        #expect(d.submitted.isEmpty)

        d.initialize()
        d.writeDescriptor(0, address: header, length: 16, flags: 4, next: 0)
        d.publish(head: 0)
        d.notify()
        #expect(d.reg(D.status) & 0x40 == 0x40, "indirect descriptors were not offered")
    }

    /// (type, sector, data length, data device-writable, expected status)
    static let badRequestCases: [(UInt32, UInt64, Int, Bool, UInt8)] = [
        (0, 2047, 1024, true, 1),  // runs past the capacity
        (0, 2048, 512, true, 1),  // starts at the capacity
        (0, .max, 512, true, 1),  // sector arithmetic would overflow
        (0, 0, 100, true, 1),  // not a whole sector
        (0, 0, 512, false, 1),  // read data the device cannot write
        (1, 0, 512, true, 1),  // write data the device cannot read
        (1, 4000, 512, false, 1),  // write past the capacity
        (99, 0, 0, true, 2),  // unknown type
        (11, 0, 16, false, 2),  // discard, not offered
    ]

    @Test("bad requests complete with IOERR or UNSUPP and never reach the backend",
          arguments: badRequestCases)
    func badRequests(type: UInt32, sector: UInt64, length: Int, writable: Bool, expected: UInt8) throws {
        let d = try D()
        d.initialize()
        let r = d.request(type: type, sector: sector, dataLength: length, writable: writable)
        d.notify()
        #expect(d.submitted.isEmpty)
        #expect(d.status(of: r) == expected)
        #expect(d.takeUsed().map(\.length) == [1])
        #expect(d.reg(D.status) & 0x40 == 0)
    }

    @Test("seg_max, the request size limit and a short header: IOERR")
    func limits() throws {
        let d = try D(configuration: .init(capacity: 1 << 20, queueSizeMax: 8, maxRequestBytes: 4096),
                      queueSize: 8)
        d.initialize()
        #expect(d.device.read(offset: D.config + 0x0C, size: 4) == 6, "seg_max")
        // Six data segments in a full 8-entry chain: at the limit.
        let header = d.header(type: 0, sector: 0)
        var parts = [D.Part(address: header, length: 16, writable: false)]
        for _ in 0..<6 { parts.append(.init(address: d.allocate(512), length: 512, writable: true)) }
        parts.append(.init(address: d.allocate(1, fill: 0xFF), length: 1, writable: true))
        d.add(parts)
        d.notify()
        #expect(d.submitted.map(\.length) == [3072])
        d.device.complete(BlockCompletion(id: 1, status: .ok, data: [UInt8](repeating: 1, count: 3072)))
        #expect(d.takeUsed().map(\.length) == [3073])

        // Seven: the header shares its descriptor with the first data segment.
        let combined = d.allocate(16 + 512)
        try d.memory.store(UInt32(1), at: GuestAddress(combined), order: .little)
        parts = [.init(address: combined, length: 528, writable: false)]
        for _ in 0..<6 { parts.append(.init(address: d.allocate(512), length: 512, writable: false)) }
        let status = d.allocate(1, fill: 0xFF)
        parts.append(.init(address: status, length: 1, writable: true))
        d.add(parts)
        d.notify()
        #expect(d.submitted.count == 1)
        #expect(d.bytes(at: status, count: 1) == [1])

        let big = d.read(sector: 0, length: 8192)
        d.notify()
        #expect(d.status(of: big) == 1, "8 KiB is over the 4 KiB limit")

        let shortHeader = d.allocate(8)
        let shortStatus = d.allocate(1, fill: 0xFF)
        d.add([.init(address: shortHeader, length: 8, writable: false),
               .init(address: shortStatus, length: 1, writable: true)])
        d.notify()
        #expect(d.bytes(at: shortStatus, count: 1) == [1])
        #expect(d.submitted.count == 1)
        #expect(d.reg(D.status) & 0x40 == 0)
    }

    @Test("writes to read-only registers, reads of write-only ones, bad sizes: ignored and counted")
    func registerMisuse() throws {
        let d = try D()
        d.set(D.magic, 0)
        d.set(D.interruptStatus, 0xFFFF)
        d.set(D.queueNumMax, 1)
        #expect(d.reg(D.magic) == 0x7472_6976)
        #expect(d.reg(D.interruptStatus) == 0)
        #expect(d.reg(D.queueNumMax) == 256)
        #expect(d.device.misbehaviorCounts[.writeToReadOnlyRegister] == 3)
        #expect(d.reg(D.queueNotify) == 0)
        #expect(d.device.misbehaviorCounts[.readOfWriteOnlyRegister] == 1)
        #expect(d.device.read(offset: D.magic, size: 1) == 0)
        d.device.write(offset: D.status, size: 2, value: 1)
        #expect(d.reg(D.status) == 0)
        #expect(d.device.misbehaviorCounts[.badAccessSize] == 2)
        d.device.write(offset: D.config, size: 8, value: 0)
        #expect(d.device.read(offset: D.config, size: 8) == 2048)
        #expect(d.reg(0x040) == 0, "legacy QueuePFN")
        #expect(d.reg(0x0F0) == 0, "a hole in the register map")
        #expect(d.device.misbehaviorCounts[.legacyRegister] == 1)
        #expect(d.device.misbehaviorCounts[.unknownRegister] == 1)
        #expect(d.reg(0x0B0) == 0xFFFF_FFFF, "no shared memory region")
    }

    @Test("queue notify before the queue is ready or before DRIVER_OK is ignored")
    func notifyBeforeReady() throws {
        let d = try D()
        #expect(d.initialize(ready: false))
        _ = d.read(sector: 3, length: 512)
        d.notify()
        #expect(d.submitted.isEmpty)
        d.set(D.queueReady, 1)
        d.notify()
        #expect(d.submitted.isEmpty, "no DRIVER_OK yet")
        #expect(d.device.misbehaviorCounts[.notifyIgnored] == 2)
        d.set(D.status, 0x0F)
        d.notify()
        #expect(d.submitted == [BlockRequest(id: 1, kind: .read, sector: 3, length: 512)],
                "the entry waited in the available ring")
        d.set(D.queueNum, 8)
        #expect(d.device.misbehaviorCounts[.queueRegisterWhileReady] == 1)
        #expect(d.device.state.queue.size == 16)
        d.set(D.queueNotify, 1)
        #expect(d.device.misbehaviorCounts[.unknownQueue] == 1)
    }

    @Test("an invalid queue size or rings outside RAM set DEVICE_NEEDS_RESET on QueueReady")
    func invalidQueue() throws {
        for (size, ring) in [(UInt32(3), UInt64(0x1000)), (512, 0x1000), (0, 0x1000), (16, 0xFFFF_F000)] {
            let d = try D()
            d.initialize(ready: false)
            d.set(D.queueNum, size)
            d.set(D.queueDeviceLow, UInt32(truncatingIfNeeded: ring))
            d.set(D.queueReady, 1)
            #expect(d.reg(D.queueReady) == 0)
            #expect(d.reg(D.status) & 0x40 == 0x40, "size \(size), used ring 0x\(String(ring, radix: 16))")
        }
    }

    @Test("a read-only disk offers VIRTIO_BLK_F_RO and fails writes")
    func readOnly() throws {
        let d = try D(configuration: .init(capacity: 64, readOnly: true))
        d.set(D.deviceFeaturesSel, 0)
        #expect(d.reg(D.deviceFeatures) & (1 << 5) != 0)
        d.initialize()
        let w = d.write(sector: 0, data: [UInt8](repeating: 1, count: 512))
        let r = d.read(sector: 0, length: 512)
        d.notify()
        #expect(d.status(of: w) == 1)
        #expect(d.submitted == [BlockRequest(id: 1, kind: .read, sector: 0, length: 512)])
        _ = r
    }

    @Test("reset abandons outstanding requests; stale completions are ignored; ids keep counting")
    func resetWithOutstanding() throws {
        let d = try D()
        d.initialize()
        let r = d.read(sector: 0, length: 512)
        d.notify()
        #expect(d.device.outstandingRequests == [1])
        d.set(D.status, 0)
        #expect(d.device.outstandingRequests.isEmpty)
        d.device.complete(BlockCompletion(id: 1, status: .ok, data: [UInt8](repeating: 9, count: 512)))
        #expect(d.status(of: r) == 0xFF, "nothing was written")
        #expect(d.device.misbehaviorCounts[.unknownCompletion] == 1)
        d.initialize()
        _ = d.read(sector: 0, length: 512)
        d.notify()
        #expect(d.submitted.last?.id == 2)
    }

    @Test("a successful read completion with the wrong length becomes IOERR")
    func shortCompletion() throws {
        let d = try D()
        d.initialize()
        let r = d.read(sector: 0, length: 1024)
        d.notify()
        d.device.complete(BlockCompletion(id: 1, status: .ok, data: [1, 2, 3]))
        #expect(d.status(of: r) == 1)
        #expect(d.takeUsed().map(\.length) == [1])
        #expect(d.bytes(at: r.data, count: 4) == [0xAA, 0xAA, 0xAA, 0xAA])
        let r2 = d.read(sector: 0, length: 512)
        d.notify()
        d.device.complete(BlockCompletion(id: 2, status: .ioError))
        #expect(d.status(of: r2) == 1, "an uncertain completion after failover")
    }

    @Test("VIRTQ_AVAIL_F_NO_INTERRUPT suppresses the used-buffer interrupt")
    func noInterrupt() throws {
        let d = try D()
        d.initialize()
        d.store16(1, at: D.availableRing)
        _ = d.read(sector: 0, length: 512)
        d.notify()
        d.device.complete(BlockCompletion(id: 1, status: .ok, data: [UInt8](repeating: 0, count: 512)))
        #expect(d.takeUsed().count == 1)
        #expect(d.irq == false)
        d.store16(0, at: D.availableRing)
        _ = d.read(sector: 0, length: 512)
        d.notify()
        d.device.complete(BlockCompletion(id: 2, status: .ok, data: [UInt8](repeating: 0, count: 512)))
        #expect(d.irq)
    }

    // MARK: State

    @Test("state round trip: a restored device on a copy of RAM completes exactly like the original")
    func stateRoundTrip() throws {
        let a = try D()
        a.initialize()
        _ = a.read(sector: 2, length: 512)
        _ = a.write(sector: 3, data: [UInt8](repeating: 4, count: 512))
        a.notify()
        let memory = try GuestMemory(size: a.memory.size)
        try memory.write(a.memory.read(at: GuestAddress(0), count: Int(a.memory.size)), at: GuestAddress(0))
        let b = try D(memory: memory, state: try roundTrip(a.device.state))
        #expect(b.device.state == a.device.state)
        #expect(b.device.outstandingRequests == [1, 2])
        for driver in [a, b] {
            driver.device.complete(BlockCompletion(id: 2, status: .ok))
            driver.device.complete(BlockCompletion(id: 1, status: .ok, data: [UInt8](repeating: 8, count: 512)))
        }
        #expect(MemoryDigest.recomputed(a.memory) == MemoryDigest.recomputed(b.memory))
        #expect(a.device.state == b.device.state)
    }

    @Test("fuzz: mutated requests and register writes never crash the device")
    func fuzz() throws {
        var random = SplitMix64(seed: 0x10C5_7E9)
        let d = try D(queueSize: 8)
        d.initialize()
        for iteration in 0..<600 {
            if iteration % 25 == 0 || d.reg(D.status) & 0x40 != 0 { d.initialize() }
            d.resetBuffers()
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                let type: UInt32 = [0, 1, 4, 8, UInt32(truncatingIfNeeded: random.next())][Int(random.next() % 5)]
                let sector = random.next() % 4 == 0 ? random.next() : random.next() % 2100
                let length = [0, 512, 1024, 100, 4096][Int(random.next() % 5)]
                _ = d.request(type: type, sector: sector, dataLength: length,
                              writable: random.next() % 4 != 0)
            }
            // Corrupt some descriptor fields, as a buggy or hostile driver would.
            for _ in 0..<Int(random.next() % 3) {
                let entry = GuestAddress(D.descriptorTable + 16 * (random.next() % 8))
                switch random.next() % 4 {
                case 0: try d.memory.store(random.next() % 3 == 0 ? random.next() : random.next() % 0x11_0000, at: entry, order: .little)
                case 1: try d.memory.store(UInt32(truncatingIfNeeded: random.next() % 5000), at: entry.advanced(by: 8)!, order: .little)
                case 2: try d.memory.store(UInt16(truncatingIfNeeded: random.next() % 8), at: entry.advanced(by: 12)!, order: .little)
                default: try d.memory.store(UInt16(truncatingIfNeeded: random.next() % 10), at: entry.advanced(by: 14)!, order: .little)
                }
            }
            if random.next() % 10 == 0 { d.publish(head: UInt16(truncatingIfNeeded: random.next() % 10)) }
            d.notify()
            if random.next() % 5 == 0 {
                d.device.write(offset: (random.next() % 0x120) & ~3, size: 4, value: random.next())
            }
            for id in d.device.outstandingRequests where random.next() % 3 != 0 {
                let status: BlockStatus = [.ok, .ok, .ioError, .unsupported][Int(random.next() % 4)]
                let count = random.next() % 4 == 0 ? Int(random.next() % 5000) : 4096
                d.device.complete(BlockCompletion(id: id, status: status,
                                                  data: [UInt8](repeating: 7, count: count)))
            }
            _ = d.takeUsed()
            d.acknowledgeInterrupt()
        }
        for request in d.submitted {
            switch request.kind {
            case .read, .write:
                #expect(request.length % 512 == 0)
                #expect(request.length > 0)
                #expect(request.sector + UInt64(request.length / 512) <= 2048)
            case .flush:
                #expect(request.length == 0)
            case .getID:
                Issue.record("GET_ID is answered by the device when it has a serial")
            }
        }
        // The run reached every path: submissions, immediate errors and broken chains.
        #expect(d.submitted.count > 50)
        #expect((d.device.misbehaviorCounts[.badRequest] ?? 0) > 10)
        #expect((d.device.misbehaviorCounts[.unsupportedRequest] ?? 0) > 10)
        #expect((d.device.misbehaviorCounts[.brokenChain] ?? 0) > 10)
        print("virtio-blk fuzz: \(d.submitted.count) requests submitted;",
              d.device.misbehaviorCounts.map { "\($0.key.rawValue)=\($0.value)" }.sorted().joined(separator: " "))
    }
}
