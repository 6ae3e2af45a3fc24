import Logging
import MachineCore

/// A virtio 1.x block device on the virtio-mmio transport, version 2, with one split virtqueue
/// (virtio 1.2 sections 2.7, 4.2 and 5.2). x86: MMIO 0xFEB00000, 0x200 bytes, IRQ 5, announced to
/// Linux as `virtio_mmio.device=512@0xfeb00000:5`.
///
/// Registers are little-endian 32-bit (register the device with `byteOrder: .little`, also on
/// big-endian PA-RISC: the bus converts), and ring structures in guest memory are always read and
/// written little-endian. Register accesses of another size are ignored (reads give 0) and
/// logged; the configuration space (`struct virtio_blk_config`) may be read with 1-, 2-, 4- or
/// 8-byte accesses.
///
/// Offered features: VIRTIO_F_VERSION_1 (required from the driver), VIRTIO_BLK_F_SEG_MAX,
/// VIRTIO_BLK_F_BLK_SIZE (512), VIRTIO_BLK_F_FLUSH, and VIRTIO_BLK_F_RO for a read-only disk.
/// Not offered: indirect descriptors, event index, packed rings. The vendor ID defaults to
/// 0x4C4B5354 ("LKST"). The device honours VIRTQ_AVAIL_F_NO_INTERRUPT.
///
/// Requests. On a QueueNotify the device walks the new available-ring entries. Each descriptor
/// chain is split into its device-readable bytes (the 16-byte header, then write data) and its
/// device-writable bytes (read data, then the status byte, the last writable byte), however the
/// driver framed them into descriptors. Then:
/// - If the chain cannot be walked (head or next index out of range, descriptor table outside
///   RAM, a loop or chain longer than the queue, an indirect descriptor) or has no writable
///   status byte in RAM, the device sets DEVICE_NEEDS_RESET, raises a configuration-change
///   interrupt and ignores the queue until the driver resets it.
/// - If the request is malformed (readable after writable bytes, a buffer outside RAM, a short
///   header, data on the wrong side, a length that is not a multiple of 512 or larger than
///   `Configuration.maxRequestBytes`, more than seg_max data segments, sectors beyond the
///   capacity, a write to a read-only disk) it completes at once with VIRTIO_BLK_S_IOERR; an
///   unknown type completes at once with VIRTIO_BLK_S_UNSUPP.
/// - GET_ID is answered by the device itself when `Configuration.serial` is set; zero-length
///   reads and writes complete at once with VIRTIO_BLK_S_OK.
/// - Otherwise the device builds a `BlockRequest` (ids from a counter in the state, starting at
///   1), records it as outstanding and hands it to the `submit` sink. It stays outstanding until
///   `complete(_:)` is called with its id (by the machine at an epoch boundary); that writes the
///   read data, the status byte and a used-ring entry whose `len` counts the bytes written
///   (data + 1), sets InterruptStatus bit 0 and raises the line.
///
/// Writing 0 to Status resets the device: outstanding requests are abandoned (their later
/// completions are ignored) but the id counter keeps counting. The interrupt line is level:
/// high while InterruptStatus is non-zero. The counterparts are QEMU's `hw/virtio/virtio-mmio.c`
/// and `hw/block/virtio-blk.c`, and Firecracker's `devices/virtio/block`.
public final class VirtioMMIOBlock: BusDevice {
    /// The MagicValue register: "virt" in little-endian.
    public static let magicValue: UInt32 = 0x7472_6976
    /// The Version register: the modern virtio-mmio interface.
    public static let version: UInt32 = 2
    /// The DeviceID register: a block device.
    public static let deviceID: UInt32 = 2
    /// Lockstep's vendor ID, "LKST".
    public static let defaultVendorID: UInt32 = 0x4C4B_5354
    /// The size of the register window (the `512@` of Linux's `virtio_mmio.device=`).
    public static let windowSize: UInt64 = 0x200
    /// A sector: the unit of `capacity` and of request `sector` fields.
    public static let sectorSize: UInt64 = 512
    /// VIRTIO_BLK_ID_BYTES.
    public static let idLength = 20
    /// The size of `struct virtio_blk_config` up to the secure-erase fields.
    public static let configSize = 72

    /// Feature bits (virtio 1.2 sections 5.2.3 and 6).
    public struct Features: OptionSet, Hashable, Sendable, Codable {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }

        /// VIRTIO_BLK_F_SEG_MAX (2).
        public static let segmentMaximum = Features(rawValue: 1 << 2)
        /// VIRTIO_BLK_F_RO (5).
        public static let readOnly = Features(rawValue: 1 << 5)
        /// VIRTIO_BLK_F_BLK_SIZE (6).
        public static let blockSize = Features(rawValue: 1 << 6)
        /// VIRTIO_BLK_F_FLUSH (9).
        public static let flush = Features(rawValue: 1 << 9)
        /// VIRTIO_F_VERSION_1 (32).
        public static let version1 = Features(rawValue: 1 << 32)
    }

    /// Device status bits (virtio 1.2 section 2.1).
    public struct DeviceStatus: OptionSet, Hashable, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }

        /// ACKNOWLEDGE: the guest found the device.
        public static let acknowledge = DeviceStatus(rawValue: 1)
        /// DRIVER: the guest has a driver for it.
        public static let driver = DeviceStatus(rawValue: 2)
        /// DRIVER_OK: the driver is ready; the device may use the queues.
        public static let driverOK = DeviceStatus(rawValue: 4)
        /// FEATURES_OK: feature negotiation is complete (cleared by the device if refused).
        public static let featuresOK = DeviceStatus(rawValue: 8)
        /// DEVICE_NEEDS_RESET: set by the device after an unrecoverable error.
        public static let deviceNeedsReset = DeviceStatus(rawValue: 64)
        /// FAILED: the driver gave up on the device.
        public static let failed = DeviceStatus(rawValue: 128)
    }

    /// InterruptStatus bit 0: the device used a buffer.
    public static let usedBufferInterrupt: UInt32 = 1
    /// InterruptStatus bit 1: the configuration changed (here: DEVICE_NEEDS_RESET was set).
    public static let configurationChangeInterrupt: UInt32 = 2

    /// What the device is and offers. Not part of `State`: both replicas are built with the same
    /// configuration (it is part of the machine configuration they compare on connect).
    public struct Configuration: Equatable, Sendable {
        /// Disk size in 512-byte sectors.
        public var capacity: UInt64
        /// Offer VIRTIO_BLK_F_RO and fail writes.
        public var readOnly: Bool
        /// The device ID string GET_ID returns (at most 20 bytes, zero-padded). When nil, GET_ID
        /// requests are submitted as `BlockRequest.Kind.getID` instead.
        public var serial: [UInt8]?
        /// QueueNumMax: the largest queue the driver may configure (a power of two).
        public var queueSizeMax: UInt16
        /// The VendorID register.
        public var vendorID: UInt32
        /// The largest data transfer of one request; longer requests fail with IOERR.
        public var maxRequestBytes: UInt64

        /// A configuration for a disk of `capacity` sectors.
        public init(
            capacity: UInt64, readOnly: Bool = false, serial: [UInt8]? = Array("lockstep-disk".utf8),
            queueSizeMax: UInt16 = 256, vendorID: UInt32 = VirtioMMIOBlock.defaultVendorID,
            maxRequestBytes: UInt64 = 32 << 20
        ) {
            self.capacity = capacity
            self.readOnly = readOnly
            self.serial = serial
            self.queueSizeMax = queueSizeMax
            self.vendorID = vendorID
            self.maxRequestBytes = maxRequestBytes
        }

        /// seg_max: data segments per request (the queue also holds a header and a status).
        public var segmentMaximum: UInt32 { UInt32(max(Int(queueSizeMax) - 2, 1)) }

        /// The features the device offers.
        public var features: Features {
            var features: Features = [.version1, .segmentMaximum, .blockSize, .flush]
            if readOnly { features.insert(.readOnly) }
            return features
        }
    }

    /// A guest-physical byte range.
    public struct Segment: Codable, Equatable, Sendable {
        /// Guest-physical start.
        public var address: UInt64
        /// Bytes.
        public var length: UInt64

        /// `length` bytes at guest-physical `address`.
        public init(address: UInt64, length: UInt64) {
            self.address = address
            self.length = length
        }
    }

    /// A submitted request the device is waiting to complete.
    public struct OutstandingRequest: Codable, Equatable, Sendable {
        /// The id the `BlockRequest` carried.
        public var id: BlockRequestID
        /// What the request does.
        public var kind: BlockRequest.Kind
        /// The head descriptor index, the `id` of its used-ring entry.
        public var head: UInt16
        /// Where read (or GET_ID) data goes.
        public var dataSegments: [Segment]
        /// The bytes expected in the completion (reads, GET_ID).
        public var dataLength: UInt64
        /// The guest-physical address of the status byte.
        public var statusAddress: UInt64

        /// An outstanding request (normally created by the device itself).
        public init(
            id: BlockRequestID, kind: BlockRequest.Kind, head: UInt16, dataSegments: [Segment],
            dataLength: UInt64, statusAddress: UInt64
        ) {
            self.id = id
            self.kind = kind
            self.head = head
            self.dataSegments = dataSegments
            self.dataLength = dataLength
            self.statusAddress = statusAddress
        }
    }

    /// The request virtqueue's registers and the device's ring positions.
    public struct Queue: Codable, Equatable, Sendable {
        /// QueueNum as written.
        public var size: UInt32 = 0
        /// QueueReady.
        public var ready: Bool = false
        /// QueueDesc: the descriptor table.
        public var descriptorTable: UInt64 = 0
        /// QueueDriver: the available ring.
        public var driverArea: UInt64 = 0
        /// QueueDevice: the used ring.
        public var deviceArea: UInt64 = 0
        /// The next available-ring index the device will read.
        public var nextAvailable: UInt16 = 0
        /// The used ring's idx: the next used-ring index the device will write.
        public var nextUsed: UInt16 = 0

        /// A queue that is not configured.
        public init() {}
    }

    /// The complete, replicated state of the device.
    public struct State: Codable, Equatable, Sendable {
        /// The Status register.
        public var status: UInt8 = 0
        /// DeviceFeaturesSel.
        public var deviceFeaturesSelect: UInt32 = 0
        /// DriverFeaturesSel.
        public var driverFeaturesSelect: UInt32 = 0
        /// The features the driver wrote (DriverFeatures, both halves).
        public var driverFeatures: UInt64 = 0
        /// QueueSel.
        public var queueSelect: UInt32 = 0
        /// The request queue (queue 0, the only one).
        public var queue = Queue()
        /// InterruptStatus: bit 0 used buffer, bit 1 configuration change.
        public var interruptStatus: UInt32 = 0
        /// The level this device last drove on its interrupt line.
        public var interruptLevel: Bool = false
        /// SHMSel (no shared memory regions exist).
        public var sharedMemorySelect: UInt32 = 0
        /// The id the next submitted request gets.
        public var nextRequestID: BlockRequestID = 1
        /// Submitted requests not yet completed, in submission order.
        public var outstanding: [OutstandingRequest] = []

        /// The reset state.
        public init() {}
    }

    /// What a guest (or the machine) did wrong, as counted in `misbehaviorCounts`.
    public enum Misbehavior: String, Sendable, CaseIterable {
        case badAccessSize = "bad-access-size"
        case unknownRegister = "unknown-register"
        case readOfWriteOnlyRegister = "read-of-write-only-register"
        case writeToReadOnlyRegister = "write-to-read-only-register"
        case legacyRegister = "legacy-register"
        case featureNegotiation = "feature-negotiation"
        case statusProtocol = "status-protocol"
        case queueRegisterWhileReady = "queue-register-while-ready"
        case unknownQueue = "unknown-queue"
        case invalidQueue = "invalid-queue"
        case notifyIgnored = "notify-ignored"
        case brokenChain = "broken-descriptor-chain"
        case badRequest = "bad-request"
        case unsupportedRequest = "unsupported-request"
        case configWrite = "config-write"
        case unknownCompletion = "unknown-completion"
        case badCompletion = "bad-completion"
        case abandonedRequests = "abandoned-requests"
    }

    let configuration: Configuration
    var s: State
    let memory: GuestMemory
    private let line: InterruptLine
    let submit: (BlockRequest) -> Void
    var log: MisbehaviorLog<Misbehavior>

    /// Creates the device in `state` (by default reset).
    ///
    /// - Parameters:
    ///   - configuration: capacity, serial and limits.
    ///   - memory: guest RAM, where the rings and buffers are.
    ///   - interrupt: the line the device drives (IRQ 5 on x86).
    ///   - submit: receives each request the guest submits; the machine passes
    ///     `GuestEnvironment.submitBlockRequest`. Its completion must come back through
    ///     `complete(_:)`.
    ///   - state: the state to start from; restoring does not drive the line.
    public init(
        configuration: Configuration, memory: GuestMemory, interrupt: InterruptLine,
        submit: @escaping (BlockRequest) -> Void, state: State = State(),
        logger: Logger = Logger(label: "lockstep.devices.virtio-blk")
    ) {
        self.configuration = configuration
        self.memory = memory
        self.line = interrupt
        self.submit = submit
        self.s = state
        self.log = MisbehaviorLog(logger: logger)
    }

    /// The complete device state, for snapshots and replica comparison.
    public var state: State { s }

    /// Replaces the device state (for example with a snapshot). Does not drive the line.
    public func restore(_ state: State) { s = state }

    /// How often the guest misbehaved, by kind. Diagnostics only: not part of `state`.
    public var misbehaviorCounts: [Misbehavior: Int] { log.counts }

    /// The ids of the submitted requests not yet completed, oldest first.
    public var outstandingRequests: [BlockRequestID] { s.outstanding.map(\.id) }

    /// The Status register as a set.
    public var deviceStatus: DeviceStatus { DeviceStatus(rawValue: s.status) }

    // MARK: - BusDevice

    /// Reads a register or the configuration space.
    public func read(offset: UInt64, size: Int) -> UInt64 {
        let register = Register(offset: offset)
        if case .config(let configOffset) = register {
            return readConfig(at: configOffset, size: size)
        }
        guard size == 4, offset % 4 == 0 else {
            log.report(.badAccessSize, "virtio-blk: \(size)-byte read at offset 0x\(String(offset, radix: 16)) (registers are 32-bit); returns 0")
            return 0
        }
        let value: UInt32
        switch register {
        case .magicValue: value = Self.magicValue
        case .version: value = Self.version
        case .deviceID: value = Self.deviceID
        case .vendorID: value = configuration.vendorID
        case .deviceFeatures:
            let features = configuration.features.rawValue
            switch s.deviceFeaturesSelect {
            case 0: value = UInt32(truncatingIfNeeded: features)
            case 1: value = UInt32(truncatingIfNeeded: features >> 32)
            default: value = 0
            }
        case .queueSizeMax: value = s.queueSelect == 0 ? UInt32(configuration.queueSizeMax) : 0
        case .queueReady: value = s.queueSelect == 0 && s.queue.ready ? 1 : 0
        case .interruptStatus: value = s.interruptStatus
        case .status: value = UInt32(s.status)
        case .configGeneration: value = 0
        case .sharedMemoryLengthLow, .sharedMemoryLengthHigh, .sharedMemoryBaseLow,
            .sharedMemoryBaseHigh:
            value = 0xFFFF_FFFF  // no shared memory region: length and base read as -1
        case .queueReset: value = 0
        case .deviceFeaturesSelect, .driverFeatures, .driverFeaturesSelect, .queueSelect,
            .queueSize, .queueNotify, .interruptACK, .queueDescriptorLow, .queueDescriptorHigh,
            .queueDriverLow, .queueDriverHigh, .queueDeviceLow, .queueDeviceHigh,
            .sharedMemorySelect:
            log.report(.readOfWriteOnlyRegister, "virtio-blk: read of write-only register \(register); returns 0")
            value = 0
        case .legacyGuestPageSize, .legacyQueueAlign, .legacyQueuePFN:
            log.report(.legacyRegister, "virtio-blk: read of legacy register \(register) on a version 2 device; returns 0")
            value = 0
        case .config, .unsupported:
            log.report(.unknownRegister, "virtio-blk: read of unknown offset 0x\(String(offset, radix: 16)); returns 0")
            value = 0
        }
        return UInt64(value)
    }

    /// Writes a register (configuration space writes are ignored: nothing in it is writable).
    public func write(offset: UInt64, size: Int, value: UInt64) {
        let register = Register(offset: offset)
        if case .config(let configOffset) = register {
            log.report(.configWrite, "virtio-blk: write to read-only config offset \(configOffset) ignored")
            return
        }
        guard size == 4, offset % 4 == 0 else {
            log.report(.badAccessSize, "virtio-blk: \(size)-byte write at offset 0x\(String(offset, radix: 16)) (registers are 32-bit) ignored")
            return
        }
        let word = UInt32(truncatingIfNeeded: value)
        switch register {
        case .deviceFeaturesSelect: s.deviceFeaturesSelect = word
        case .driverFeatures: writeDriverFeatures(word)
        case .driverFeaturesSelect: s.driverFeaturesSelect = word
        case .queueSelect: s.queueSelect = word
        case .queueSize:
            withSelectedIdleQueue(register) { $0.size = word }
        case .queueReady: writeQueueReady(word)
        case .queueNotify: notify(queue: word)
        case .interruptACK:
            s.interruptStatus &= ~word
            updateInterrupt()
        case .status: writeStatus(word)
        case .queueDescriptorLow:
            withSelectedIdleQueue(register) { $0.descriptorTable = $0.descriptorTable.settingLow(word) }
        case .queueDescriptorHigh:
            withSelectedIdleQueue(register) { $0.descriptorTable = $0.descriptorTable.settingHigh(word) }
        case .queueDriverLow:
            withSelectedIdleQueue(register) { $0.driverArea = $0.driverArea.settingLow(word) }
        case .queueDriverHigh:
            withSelectedIdleQueue(register) { $0.driverArea = $0.driverArea.settingHigh(word) }
        case .queueDeviceLow:
            withSelectedIdleQueue(register) { $0.deviceArea = $0.deviceArea.settingLow(word) }
        case .queueDeviceHigh:
            withSelectedIdleQueue(register) { $0.deviceArea = $0.deviceArea.settingHigh(word) }
        case .sharedMemorySelect: s.sharedMemorySelect = word
        case .queueReset:
            log.report(.unknownRegister, "virtio-blk: QueueReset written but VIRTIO_F_RING_RESET is not offered; ignored")
        case .magicValue, .version, .deviceID, .vendorID, .deviceFeatures, .queueSizeMax,
            .interruptStatus, .configGeneration, .sharedMemoryLengthLow, .sharedMemoryLengthHigh,
            .sharedMemoryBaseLow, .sharedMemoryBaseHigh:
            log.report(.writeToReadOnlyRegister, "virtio-blk: write of 0x\(String(word, radix: 16)) to read-only register \(register) ignored")
        case .legacyGuestPageSize, .legacyQueueAlign, .legacyQueuePFN:
            log.report(.legacyRegister, "virtio-blk: write to legacy register \(register) on a version 2 device ignored")
        case .config, .unsupported:
            log.report(.unknownRegister, "virtio-blk: write to unknown offset 0x\(String(offset, radix: 16)) ignored")
        }
    }

    // MARK: - Configuration space

    /// `struct virtio_blk_config`, little-endian.
    public var configBytes: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.configSize)
        func put(_ value: UInt64, at offset: Int, size: Int) {
            for i in 0..<size { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        }
        put(configuration.capacity, at: 0, size: 8)  // capacity
        put(UInt64(configuration.segmentMaximum), at: 12, size: 4)  // seg_max
        put(Self.sectorSize, at: 20, size: 4)  // blk_size
        put(1, at: 34, size: 2)  // num_queues
        return bytes
    }

    private func readConfig(at offset: UInt64, size: Int) -> UInt64 {
        guard [1, 2, 4, 8].contains(size) else {
            log.report(.badAccessSize, "virtio-blk: \(size)-byte config read; returns 0")
            return 0
        }
        let bytes = configBytes
        var value: UInt64 = 0
        for i in 0..<size {
            let (index, overflow) = offset.addingReportingOverflow(UInt64(i))
            guard !overflow, index < UInt64(bytes.count) else { continue }
            value |= UInt64(bytes[Int(index)]) << (8 * UInt64(i))
        }
        return value
    }

    // MARK: - Status and features

    private func writeDriverFeatures(_ word: UInt32) {
        guard !deviceStatus.contains(.featuresOK) else {
            log.report(.featureNegotiation, "virtio-blk: DriverFeatures written after FEATURES_OK; ignored")
            return
        }
        switch s.driverFeaturesSelect {
        case 0: s.driverFeatures = (s.driverFeatures & 0xFFFF_FFFF_0000_0000) | UInt64(word)
        case 1: s.driverFeatures = (s.driverFeatures & 0x0000_0000_FFFF_FFFF) | UInt64(word) << 32
        default:
            if word != 0 {
                log.report(.featureNegotiation, "virtio-blk: driver accepts feature bits 0x\(String(word, radix: 16)) in word \(s.driverFeaturesSelect), which the device never offered")
            }
        }
    }

    private func writeStatus(_ word: UInt32) {
        guard word != 0 else {
            reset()
            return
        }
        if word > 0xFF {
            log.report(.statusProtocol, "virtio-blk: Status write 0x\(String(word, radix: 16)) has bits above 7; they are ignored")
        }
        let old = deviceStatus
        var new = DeviceStatus(rawValue: UInt8(truncatingIfNeeded: word))
        // DEVICE_NEEDS_RESET belongs to the device.
        new.remove(.deviceNeedsReset)
        if old.contains(.deviceNeedsReset) { new.insert(.deviceNeedsReset) }
        if new.contains(.featuresOK), !old.contains(.featuresOK) {
            let accepted = Features(rawValue: s.driverFeatures)
            let unoffered = accepted.subtracting(configuration.features)
            if !unoffered.isEmpty || !accepted.contains(.version1) {
                new.remove(.featuresOK)
                log.report(.featureNegotiation, "virtio-blk: FEATURES_OK refused: driver features 0x\(String(accepted.rawValue, radix: 16)) \(accepted.contains(.version1) ? "include bits the device did not offer" : "lack VIRTIO_F_VERSION_1")")
            }
        }
        if !old.subtracting(new).subtracting(.deviceNeedsReset).isEmpty {
            log.report(.statusProtocol, "virtio-blk: driver cleared status bits 0x\(String(old.subtracting(new).rawValue, radix: 16)) without a reset")
        }
        if new.contains(.driverOK), !new.contains(.featuresOK) {
            log.report(.statusProtocol, "virtio-blk: DRIVER_OK set without FEATURES_OK")
        }
        s.status = new.rawValue
    }

    /// The device reset (Status = 0): everything but the request-id counter returns to its
    /// initial value; outstanding requests are abandoned.
    private func reset() {
        if !s.outstanding.isEmpty {
            log.report(.abandonedRequests, "virtio-blk: reset abandons \(s.outstanding.count) outstanding request(s); their completions will be ignored")
        }
        let level = s.interruptLevel
        let nextID = s.nextRequestID
        s = State()
        s.nextRequestID = nextID
        s.interruptLevel = level
        updateInterrupt()
    }

    // MARK: - Queue registers

    private func withSelectedIdleQueue(_ register: Register, _ body: (inout Queue) -> Void) {
        guard s.queueSelect == 0 else {
            log.report(.unknownQueue, "virtio-blk: \(register) written for queue \(s.queueSelect), which does not exist; ignored")
            return
        }
        guard !s.queue.ready else {
            log.report(.queueRegisterWhileReady, "virtio-blk: \(register) written while the queue is ready; ignored")
            return
        }
        body(&s.queue)
    }

    private func writeQueueReady(_ word: UInt32) {
        guard s.queueSelect == 0 else {
            log.report(.unknownQueue, "virtio-blk: QueueReady written for queue \(s.queueSelect), which does not exist; ignored")
            return
        }
        guard word != 0 else {
            s.queue.ready = false
            return
        }
        guard !s.queue.ready else { return }
        if let problem = queueProblem(s.queue) {
            needsReset("queue cannot be made ready: \(problem)")
            return
        }
        s.queue.ready = true
    }

    /// What is wrong with `queue`'s size or ring addresses, if anything.
    func queueProblem(_ queue: Queue) -> String? {
        let size = UInt64(queue.size)
        guard size > 0, size <= UInt64(configuration.queueSizeMax), size & (size - 1) == 0 else {
            return "size \(queue.size) is not a power of two in 1...\(configuration.queueSizeMax)"
        }
        let areas: [(String, UInt64, UInt64)] = [
            ("descriptor table", queue.descriptorTable, 16 * size),
            ("available ring", queue.driverArea, 6 + 2 * size),
            ("used ring", queue.deviceArea, 6 + 8 * size),
        ]
        for (name, address, length) in areas where !memory.contains(GuestAddress(address), count: length) {
            return "the \(name) (\(length) bytes at 0x\(String(address, radix: 16))) is outside guest RAM"
        }
        return nil
    }

    private func notify(queue index: UInt32) {
        guard index == 0 else {
            log.report(.unknownQueue, "virtio-blk: notify for queue \(index), which does not exist; ignored")
            return
        }
        let status = deviceStatus
        guard status.contains(.driverOK), s.queue.ready else {
            log.report(.notifyIgnored, "virtio-blk: queue notify before \(s.queue.ready ? "DRIVER_OK" : "the queue is ready"); ignored")
            return
        }
        guard !status.contains(.deviceNeedsReset) else {
            log.report(.notifyIgnored, "virtio-blk: queue notify while the device needs a reset; ignored")
            return
        }
        processAvailableRing()
    }

    // MARK: - Interrupts

    /// Sets DEVICE_NEEDS_RESET and sends a configuration-change interrupt: the device stops
    /// processing the queue until the driver resets it.
    func needsReset(_ reason: String) {
        log.report(.brokenChain, "virtio-blk: \(reason); device needs reset")
        s.status |= DeviceStatus.deviceNeedsReset.rawValue
        s.interruptStatus |= Self.configurationChangeInterrupt
        updateInterrupt()
    }

    func updateInterrupt() {
        let level = s.interruptStatus != 0
        guard level != s.interruptLevel else { return }
        s.interruptLevel = level
        line.set(level)
    }
}

extension UInt64 {
    /// This value with its low 32 bits replaced.
    fileprivate func settingLow(_ word: UInt32) -> UInt64 { (self & 0xFFFF_FFFF_0000_0000) | UInt64(word) }
    /// This value with its high 32 bits replaced.
    fileprivate func settingHigh(_ word: UInt32) -> UInt64 { (self & 0xFFFF_FFFF) | UInt64(word) << 32 }
}
