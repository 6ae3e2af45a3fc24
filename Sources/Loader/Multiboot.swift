import MachineCore

/// A Multiboot v1 header found in a kernel image (Multiboot Specification 0.6.96, section 3.1).
public struct MultibootHeader: Hashable, Sendable {
    /// The header magic, 0x1BADB002.
    public static let magic: UInt32 = 0x1BAD_B002
    /// What the loader leaves in EAX for the kernel, 0x2BADB002.
    public static let bootloaderMagic: UInt32 = 0x2BAD_B002
    /// The header must lie within the first 8192 bytes of the file, 32-bit aligned.
    public static let searchLimit = 8192

    /// The address fields used when flag bit 16 is set (an "a.out kludge" kernel).
    public struct Addresses: Hashable, Sendable {
        public let headerAddress: UInt32
        public let loadAddress: UInt32
        public let loadEndAddress: UInt32
        public let bssEndAddress: UInt32
        public let entryAddress: UInt32
    }

    /// Offset of the header in the file.
    public let fileOffset: Int
    public let flags: UInt32
    /// Present when flag bit 16 is set.
    public let addresses: Addresses?

    /// Flag bit 1: the kernel wants mem_* and the memory map.
    public var wantsMemoryInfo: Bool { flags & 0x2 != 0 }
    /// Flag bit 2: the kernel wants a video mode (Lockstep has no display and ignores it).
    public var wantsVideoMode: Bool { flags & 0x4 != 0 }

    /// Looks for a Multiboot header in `image`. Returns nil if there is none; throws if there is
    /// one whose checksum or fields are wrong.
    public static func find(in image: [UInt8], path: String) throws(LoaderError) -> MultibootHeader? {
        let limit = min(image.count, searchLimit)
        var offset = 0
        while offset + 12 <= limit {
            if word(image, offset) == magic {
                let flags = word(image, offset + 4)
                let checksum = word(image, offset + 8)
                guard magic &+ flags &+ checksum == 0 else {
                    throw .invalidMultibootHeader(path: path, reason: "checksum does not add up")
                }
                var addresses: Addresses?
                if flags & 0x1_0000 != 0 {
                    guard offset + 32 <= image.count else {
                        throw .invalidMultibootHeader(path: path, reason: "address fields are truncated")
                    }
                    addresses = Addresses(
                        headerAddress: word(image, offset + 12), loadAddress: word(image, offset + 16),
                        loadEndAddress: word(image, offset + 20), bssEndAddress: word(image, offset + 24),
                        entryAddress: word(image, offset + 28))
                }
                return MultibootHeader(fileOffset: offset, flags: flags, addresses: addresses)
            }
            offset += 4
        }
        return nil
    }

    private static func word(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16
            | UInt32(bytes[offset + 3]) << 24
    }
}

/// The Multiboot v1 information structure a loader hands to the kernel in EBX.
public struct MultibootInfo: Hashable, Sendable {
    /// One entry of the BIOS-style memory map.
    public struct MemoryRegion: Hashable, Sendable {
        public enum Kind: UInt32, Sendable { case available = 1, reserved = 2 }
        public let base: UInt64
        public let length: UInt64
        public let kind: Kind
        public init(base: UInt64, length: UInt64, kind: Kind) {
            self.base = base
            self.length = length
            self.kind = kind
        }
    }

    public var commandLine: String
    public var memoryMap: [MemoryRegion]
    public var bootloaderName: String

    /// The PC-style map of `ramSize` bytes of RAM at 0: low memory up to 0x9FC00, the EBDA and
    /// BIOS area reserved, and everything from 1 MiB available.
    public static func pcMemoryMap(ramSize: UInt64) -> [MemoryRegion] {
        [
            MemoryRegion(base: 0, length: 0x9FC00, kind: .available),
            MemoryRegion(base: 0x9FC00, length: 0x400, kind: .reserved),
            MemoryRegion(base: 0xF0000, length: 0x10000, kind: .reserved),
            MemoryRegion(base: 0x10_0000, length: ramSize > 0x10_0000 ? ramSize - 0x10_0000 : 0, kind: .available),
        ]
    }

    public init(commandLine: String, memoryMap: [MemoryRegion], bootloaderName: String = "lockstep") {
        self.commandLine = commandLine
        self.memoryMap = memoryMap
        self.bootloaderName = bootloaderName
    }

    /// Size of the fixed part of the structure (through the boot loader name and APM fields).
    static let fixedSize = 88

    /// The bytes of the structure when it is placed at guest-physical `address`: the fixed part,
    /// then the command line, the memory map and the boot loader name, all within `limit` bytes.
    public func encode(at address: UInt32, limit: Int) throws(LoaderError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.fixedSize)
        func put(_ value: UInt32, at offset: Int) {
            for i in 0..<4 { out[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
        }
        func append32(_ value: UInt32) {
            for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: value >> (8 * i))) }
        }
        func append64(_ value: UInt64) {
            append32(UInt32(truncatingIfNeeded: value))
            append32(UInt32(truncatingIfNeeded: value >> 32))
        }
        let lowKB = memoryMap.first { $0.base == 0 && $0.kind == .available }.map { $0.length / 1024 } ?? 0
        let upperKB = memoryMap.first { $0.base == 0x10_0000 && $0.kind == .available }
            .map { $0.length / 1024 } ?? 0
        // flags: mem_* (bit 0), cmdline (bit 2), mmap (bit 6), boot_loader_name (bit 9)
        put(1 << 0 | 1 << 2 | 1 << 6 | 1 << 9, at: 0)
        put(UInt32(lowKB), at: 4)
        put(UInt32(min(upperKB, UInt64(UInt32.max))), at: 8)
        put(0xFFFF_FFFF, at: 12)  // boot_device: none

        put(address + UInt32(out.count), at: 16)
        out += Array(commandLine.utf8) + [0]
        while out.count % 4 != 0 { out.append(0) }

        let mapStart = out.count
        for region in memoryMap {
            append32(20)
            append64(region.base)
            append64(region.length)
            append32(region.kind.rawValue)
        }
        put(UInt32(out.count - mapStart), at: 44)
        put(address + UInt32(mapStart), at: 48)

        put(address + UInt32(out.count), at: 64)
        out += Array(bootloaderName.utf8) + [0]
        guard out.count <= limit else {
            throw .bootInfoTooLarge(reason: "\(out.count) bytes of Multiboot information (command line \(commandLine.utf8.count) bytes) exceed \(limit)")
        }
        return out
    }
}
