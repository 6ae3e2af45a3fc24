import Devices
import MachineCore

/// A small virtio-mmio block driver, written from the virtio 1.2 specification, that drives the
/// device only through its registers and real split-virtqueue structures in real guest memory:
/// what a guest kernel's driver does.
final class VirtioTestDriver {
    // Register offsets (virtio 1.2 section 4.2.2).
    static let magic: UInt64 = 0x000, version: UInt64 = 0x004, deviceID: UInt64 = 0x008
    static let vendorID: UInt64 = 0x00c, deviceFeatures: UInt64 = 0x010
    static let deviceFeaturesSel: UInt64 = 0x014, driverFeatures: UInt64 = 0x020
    static let driverFeaturesSel: UInt64 = 0x024, queueSel: UInt64 = 0x030
    static let queueNumMax: UInt64 = 0x034, queueNum: UInt64 = 0x038, queueReady: UInt64 = 0x044
    static let queueNotify: UInt64 = 0x050, interruptStatus: UInt64 = 0x060
    static let interruptACK: UInt64 = 0x064, status: UInt64 = 0x070
    static let queueDescLow: UInt64 = 0x080, queueDescHigh: UInt64 = 0x084
    static let queueDriverLow: UInt64 = 0x090, queueDriverHigh: UInt64 = 0x094
    static let queueDeviceLow: UInt64 = 0x0a0, queueDeviceHigh: UInt64 = 0x0a4
    static let configGeneration: UInt64 = 0x0fc, config: UInt64 = 0x100

    // Ring layout in guest RAM.
    static let descriptorTable: UInt64 = 0x1000
    static let availableRing: UInt64 = 0x3000
    static let usedRing: UInt64 = 0x4000
    static let bufferBase: UInt64 = 0x10000

    /// A chain element as the driver describes it.
    struct Part {
        var address: UInt64
        var length: UInt32
        var writable: Bool
    }

    /// A request the driver placed on the ring.
    struct Request {
        var head: UInt16
        var data: UInt64
        var status: UInt64
    }

    let memory: GuestMemory
    let probe = LineProbe()
    let device: VirtioMMIOBlock
    private(set) var submitted: [BlockRequest] = []
    let queueSize: UInt16
    private(set) var availableIndex: UInt16 = 0
    private(set) var seenUsed: UInt16 = 0
    private var nextDescriptor: UInt16 = 0
    private var nextBuffer = bufferBase

    init(
        configuration: VirtioMMIOBlock.Configuration = .init(capacity: 2048),
        memory: GuestMemory? = nil, queueSize: UInt16 = 16,
        state: VirtioMMIOBlock.State = .init()
    ) throws {
        let memory = try memory ?? GuestMemory(size: 1 << 20)
        self.memory = memory
        self.queueSize = queueSize
        let box = SubmitBox()
        device = VirtioMMIOBlock(configuration: configuration, memory: memory,
                                 interrupt: probe.line(5),
                                 submit: { box.driver?.submitted.append($0) }, state: state)
        box.driver = self
    }

    private final class SubmitBox {
        weak var driver: VirtioTestDriver?
    }

    // MARK: Registers

    func reg(_ offset: UInt64) -> UInt32 { UInt32(device.read(offset: offset, size: 4)) }
    func set(_ offset: UInt64, _ value: UInt32) { device.write(offset: offset, size: 4, value: UInt64(value)) }
    var irq: Bool { probe.level(5) }

    /// Device initialization as Linux's virtio_mmio and virtio core do it (virtio 1.2 3.1.1).
    /// Returns whether the device accepted the features.
    @discardableResult
    func initialize(features: UInt64? = nil, ready: Bool = true) -> Bool {
        set(Self.status, 0)
        set(Self.status, 1)  // ACKNOWLEDGE
        set(Self.status, 3)  // DRIVER
        set(Self.deviceFeaturesSel, 1)
        var offered = UInt64(reg(Self.deviceFeatures)) << 32
        set(Self.deviceFeaturesSel, 0)
        offered |= UInt64(reg(Self.deviceFeatures))
        let accepted = features ?? offered
        set(Self.driverFeaturesSel, 1)
        set(Self.driverFeatures, UInt32(truncatingIfNeeded: accepted >> 32))
        set(Self.driverFeaturesSel, 0)
        set(Self.driverFeatures, UInt32(truncatingIfNeeded: accepted))
        set(Self.status, 0x0B)  // FEATURES_OK
        guard reg(Self.status) & 0x08 != 0 else {
            set(Self.status, 0x83)  // FAILED
            return false
        }
        setUpQueue()
        if ready {
            set(Self.queueReady, 1)
            set(Self.status, 0x0F)  // DRIVER_OK
        }
        return true
    }

    func setUpQueue() {
        try! memory.fill(0, at: GuestAddress(Self.descriptorTable), count: 0x4000)
        set(Self.queueSel, 0)
        precondition(reg(Self.queueReady) == 0)
        precondition(reg(Self.queueNumMax) >= UInt32(queueSize))
        set(Self.queueNum, UInt32(queueSize))
        set(Self.queueDescLow, UInt32(Self.descriptorTable))
        set(Self.queueDescHigh, 0)
        set(Self.queueDriverLow, UInt32(Self.availableRing))
        set(Self.queueDriverHigh, 0)
        set(Self.queueDeviceLow, UInt32(Self.usedRing))
        set(Self.queueDeviceHigh, 0)
        availableIndex = 0
        seenUsed = 0
        nextDescriptor = 0
    }

    // MARK: Guest memory

    func allocate(_ length: Int, fill: UInt8 = 0) -> UInt64 {
        let address = nextBuffer
        nextBuffer += UInt64((length + 15) & ~15)
        try! memory.fill(fill, at: GuestAddress(address), count: length)
        return address
    }

    /// Frees every buffer (the next allocation starts again at `bufferBase`).
    func resetBuffers() { nextBuffer = Self.bufferBase }

    func bytes(at address: UInt64, count: Int) -> [UInt8] {
        try! memory.read(at: GuestAddress(address), count: count)
    }

    func poke(_ bytes: [UInt8], at address: UInt64) { try! memory.write(bytes, at: GuestAddress(address)) }

    func store16(_ value: UInt16, at address: UInt64) {
        try! memory.store(value, at: GuestAddress(address), order: .little)
    }

    func load16(_ address: UInt64) -> UInt16 { try! memory.load(UInt16.self, at: GuestAddress(address), order: .little) }
    func load32(_ address: UInt64) -> UInt32 { try! memory.load(UInt32.self, at: GuestAddress(address), order: .little) }

    /// Writes descriptor `index`.
    func writeDescriptor(_ index: UInt16, address: UInt64, length: UInt32, flags: UInt16, next: UInt16) {
        let entry = GuestAddress(Self.descriptorTable + 16 * UInt64(index))
        try! memory.store(address, at: entry, order: .little)
        try! memory.store(length, at: entry.advanced(by: 8)!, order: .little)
        try! memory.store(flags, at: entry.advanced(by: 12)!, order: .little)
        try! memory.store(next, at: entry.advanced(by: 14)!, order: .little)
    }

    /// Makes descriptor `head` available (without notifying).
    func publish(head: UInt16) {
        store16(head, at: Self.availableRing + 4 + 2 * UInt64(availableIndex % queueSize))
        availableIndex &+= 1
        store16(availableIndex, at: Self.availableRing + 2)
    }

    /// Writes `parts` as a chain of consecutive descriptors and makes it available.
    @discardableResult
    func add(_ parts: [Part]) -> UInt16 {
        let head = nextDescriptor
        for (i, part) in parts.enumerated() {
            let index = (head &+ UInt16(i)) % queueSize
            let last = i == parts.count - 1
            writeDescriptor(index, address: part.address, length: part.length,
                            flags: (last ? 0 : 1) | (part.writable ? 2 : 0),
                            next: last ? 0 : (index &+ 1) % queueSize)
        }
        nextDescriptor = (head &+ UInt16(parts.count)) % queueSize
        publish(head: head)
        return head
    }

    func notify() { set(Self.queueNotify, 0) }

    /// A 16-byte request header.
    func header(type: UInt32, sector: UInt64) -> UInt64 {
        let address = allocate(16)
        try! memory.store(type, at: GuestAddress(address), order: .little)
        try! memory.store(sector, at: GuestAddress(address + 8), order: .little)
        return address
    }

    /// Queues a request of `type` with a data buffer (device-writable for reads and GET_ID) and
    /// a status byte preset to 0xFF, in Linux's framing: header, data, status.
    func request(type: UInt32, sector: UInt64 = 0, data: [UInt8] = [], dataLength: Int = 0,
                 writable: Bool = true) -> Request {
        let header = header(type: type, sector: sector)
        let length = max(data.count, dataLength)
        let buffer = allocate(length, fill: 0xAA)
        if !data.isEmpty { poke(data, at: buffer) }
        let status = allocate(1, fill: 0xFF)
        var parts = [Part(address: header, length: 16, writable: false)]
        if length > 0 { parts.append(Part(address: buffer, length: UInt32(length), writable: writable)) }
        parts.append(Part(address: status, length: 1, writable: true))
        return Request(head: add(parts), data: buffer, status: status)
    }

    func read(sector: UInt64, length: Int) -> Request { request(type: 0, sector: sector, dataLength: length) }
    func write(sector: UInt64, data: [UInt8]) -> Request { request(type: 1, sector: sector, data: data, writable: false) }
    func flush() -> Request { request(type: 4) }
    func getID() -> Request { request(type: 8, dataLength: 20) }

    func status(of request: Request) -> UInt8 { bytes(at: request.status, count: 1)[0] }

    /// The used-ring entries the device added since the last call.
    func takeUsed() -> [(id: UInt32, length: UInt32)] {
        let index = load16(Self.usedRing + 2)
        var entries: [(id: UInt32, length: UInt32)] = []
        while seenUsed != index {
            let entry = Self.usedRing + 4 + 8 * UInt64(seenUsed % queueSize)
            entries.append((load32(entry), load32(entry + 4)))
            seenUsed &+= 1
        }
        return entries
    }

    /// Reads and acknowledges InterruptStatus, as Linux's vm_interrupt does.
    @discardableResult
    func acknowledgeInterrupt() -> UInt32 {
        let status = reg(Self.interruptStatus)
        set(Self.interruptACK, status)
        return status
    }
}
