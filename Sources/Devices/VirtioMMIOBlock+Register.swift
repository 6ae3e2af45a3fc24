extension VirtioMMIOBlock {
    /// The QueueNotify register's offset (a hypervisor may defer writes to it: they start
    /// requests, whose effects the driver observes only through the used ring and interrupts).
    public static let queueNotifyOffset: UInt64 = 0x050
    /// The InterruptACK register's offset.
    public static let interruptACKOffset: UInt64 = 0x064

    /// The virtio-mmio (version 2) register at an offset into the device's window.
    /// Virtio 1.2, section 4.2.2 "MMIO Device Register Layout".
    public enum Register: Equatable, Sendable {
        /// 0x000 R: 0x74726976 ("virt").
        case magicValue
        /// 0x004 R: 2 (1 is the legacy interface).
        case version
        /// 0x008 R: 2, a block device.
        case deviceID
        /// 0x00c R.
        case vendorID
        /// 0x010 R: 32 feature bits, selected by DeviceFeaturesSel.
        case deviceFeatures
        /// 0x014 W.
        case deviceFeaturesSelect
        /// 0x020 W: 32 feature bits, selected by DriverFeaturesSel.
        case driverFeatures
        /// 0x024 W.
        case driverFeaturesSelect
        /// 0x028 W, legacy interface only (GuestPageSize).
        case legacyGuestPageSize
        /// 0x030 W.
        case queueSelect
        /// 0x034 R.
        case queueSizeMax
        /// 0x038 W.
        case queueSize
        /// 0x03c W, legacy interface only (QueueAlign).
        case legacyQueueAlign
        /// 0x040 RW, legacy interface only (QueuePFN).
        case legacyQueuePFN
        /// 0x044 RW.
        case queueReady
        /// 0x050 W.
        case queueNotify
        /// 0x060 R: bit 0 used buffer, bit 1 configuration change.
        case interruptStatus
        /// 0x064 W.
        case interruptACK
        /// 0x070 RW: device status; writing 0 resets the device.
        case status
        /// 0x080 W.
        case queueDescriptorLow
        /// 0x084 W.
        case queueDescriptorHigh
        /// 0x090 W (QueueAvailLow in Linux's header).
        case queueDriverLow
        /// 0x094 W.
        case queueDriverHigh
        /// 0x0a0 W (QueueUsedLow in Linux's header).
        case queueDeviceLow
        /// 0x0a4 W.
        case queueDeviceHigh
        /// 0x0ac W.
        case sharedMemorySelect
        /// 0x0b0 R.
        case sharedMemoryLengthLow
        /// 0x0b4 R.
        case sharedMemoryLengthHigh
        /// 0x0b8 R.
        case sharedMemoryBaseLow
        /// 0x0bc R.
        case sharedMemoryBaseHigh
        /// 0x0c0 RW (needs VIRTIO_F_RING_RESET, not offered).
        case queueReset
        /// 0x0fc R.
        case configGeneration
        /// 0x100 and up: device configuration space, at this offset into it.
        case config(UInt64)
        /// Any other offset.
        case unsupported(UInt64)

        /// The register at `offset` into the device's window.
        public init(offset: UInt64) {
            switch offset {
            case 0x000: self = .magicValue
            case 0x004: self = .version
            case 0x008: self = .deviceID
            case 0x00c: self = .vendorID
            case 0x010: self = .deviceFeatures
            case 0x014: self = .deviceFeaturesSelect
            case 0x020: self = .driverFeatures
            case 0x024: self = .driverFeaturesSelect
            case 0x028: self = .legacyGuestPageSize
            case 0x030: self = .queueSelect
            case 0x034: self = .queueSizeMax
            case 0x038: self = .queueSize
            case 0x03c: self = .legacyQueueAlign
            case 0x040: self = .legacyQueuePFN
            case 0x044: self = .queueReady
            case VirtioMMIOBlock.queueNotifyOffset: self = .queueNotify
            case 0x060: self = .interruptStatus
            case VirtioMMIOBlock.interruptACKOffset: self = .interruptACK
            case 0x070: self = .status
            case 0x080: self = .queueDescriptorLow
            case 0x084: self = .queueDescriptorHigh
            case 0x090: self = .queueDriverLow
            case 0x094: self = .queueDriverHigh
            case 0x0a0: self = .queueDeviceLow
            case 0x0a4: self = .queueDeviceHigh
            case 0x0ac: self = .sharedMemorySelect
            case 0x0b0: self = .sharedMemoryLengthLow
            case 0x0b4: self = .sharedMemoryLengthHigh
            case 0x0b8: self = .sharedMemoryBaseLow
            case 0x0bc: self = .sharedMemoryBaseHigh
            case 0x0c0: self = .queueReset
            case 0x0fc: self = .configGeneration
            case 0x100...: self = .config(offset - 0x100)
            default: self = .unsupported(offset)
            }
        }
    }

    /// A virtio-blk request type (the `type` field of `struct virtio_blk_req`).
    /// Virtio 1.2, section 5.2.6 "Device Operation".
    public enum RequestType: Equatable, Sendable {
        /// VIRTIO_BLK_T_IN (0): read.
        case read
        /// VIRTIO_BLK_T_OUT (1): write.
        case write
        /// VIRTIO_BLK_T_FLUSH (4).
        case flush
        /// VIRTIO_BLK_T_GET_ID (8): a 20-byte device ID string.
        case getID
        /// VIRTIO_BLK_T_GET_LIFETIME (10), not offered.
        case getLifetime
        /// VIRTIO_BLK_T_DISCARD (11), not offered.
        case discard
        /// VIRTIO_BLK_T_WRITE_ZEROES (13), not offered.
        case writeZeroes
        /// VIRTIO_BLK_T_SECURE_ERASE (14), not offered.
        case secureErase
        /// Any other value.
        case unsupported(UInt32)

        /// The request type with `type` field `rawValue`.
        public init(rawValue: UInt32) {
            switch rawValue {
            case 0: self = .read
            case 1: self = .write
            case 4: self = .flush
            case 8: self = .getID
            case 10: self = .getLifetime
            case 11: self = .discard
            case 13: self = .writeZeroes
            case 14: self = .secureErase
            default: self = .unsupported(rawValue)
            }
        }
    }
}
