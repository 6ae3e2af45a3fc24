import CKVM

#if canImport(Glibc)
import Glibc
#endif

/// A VM's or vCPU's binary statistics file: named 64-bit counters such as the vCPU stat
/// `insn_emulation` (on the PVM host, an exact count of instructions executed at CPL0).
///
/// Obtained from `VCPU.statistics()` / `VirtualMachine.statistics()`; the corresponding ioctl is
/// `KVM_GET_STATS_FD`, and the file layout is `struct kvm_stats_header` then
/// `struct kvm_stats_desc` entries then the data. Owns the stats fd (closed in `deinit`).
/// Values are read live with `pread` on every call, which is safe from any thread (the
/// `emulation-counter` epoch clock's kick timer reads `insn_emulation` while the vCPU runs).
public final class BinaryStatistics: Sendable {
    /// What a statistic measures and how to read it.
    /// The corresponding C struct is `struct kvm_stats_desc`.
    public struct Descriptor: Hashable, Sendable {
        /// The `KVM_STATS_TYPE_*` of a statistic.
        public enum Kind: Hashable, Sendable {
            /// `KVM_STATS_TYPE_CUMULATIVE`: only ever grows.
            case cumulative
            /// `KVM_STATS_TYPE_INSTANT`: a current value.
            case instant
            /// `KVM_STATS_TYPE_PEAK`: the highest value seen.
            case peak
            /// `KVM_STATS_TYPE_LINEAR_HIST`: a histogram with `bucketSize`-wide buckets.
            case linearHistogram
            /// `KVM_STATS_TYPE_LOG_HIST`: a histogram with power-of-two buckets.
            case logHistogram
            /// A type this module does not know.
            case unsupported(UInt32)
        }
        /// The `KVM_STATS_UNIT_*` of a statistic.
        public enum Unit: Hashable, Sendable {
            case none, bytes, seconds, cycles, boolean
            /// A unit this module does not know.
            case unsupported(UInt32)
        }

        /// The statistic's name (`insn_emulation`, `exits`, ...).
        public var name: String
        /// How the value evolves (`KVM_STATS_TYPE_*`).
        public var kind: Kind
        /// The unit of the value (`KVM_STATS_UNIT_*`).
        public var unit: Unit
        /// The value is `raw × base^exponent`, with `base` 10 or 2.
        public var base: Int
        /// The power of `base` the raw value is scaled by.
        public var exponent: Int16
        /// The number of 64-bit values (1, or the bucket count of a histogram).
        public var size: Int
        /// The byte offset of the values from the start of the data block.
        public var offset: Int
        /// The bucket width of a linear histogram.
        public var bucketSize: UInt32
    }

    /// The stats file descriptor.
    public let fd: Int32
    /// The statistics this file offers, in file order.
    public let descriptors: [Descriptor]
    /// The id string of the file (e.g. `kvm-1234/vcpu-0`).
    public let id: String
    private let dataOffset: Int
    private let byName: [String: Int]

    init(fd: Int32) throws(KVMError) {
        self.fd = fd
        do {
            var header = kvm_stats_header()
            try Self.pread(fd, &header, MemoryLayout<kvm_stats_header>.size, offset: 0, what: "header")
            let nameSize = Int(header.name_size)
            let entrySize = MemoryLayout<kvm_stats_desc>.size + nameSize
            let count = Int(header.num_desc)
            var raw = [UInt8](repeating: 0, count: entrySize * count)
            try Self.pread(fd, &raw, offset: Int(header.desc_offset), what: "descriptors")
            var idBytes = [UInt8](repeating: 0, count: nameSize)
            try Self.pread(fd, &idBytes, offset: Int(header.id_offset), what: "id")
            self.id = Self.cString(idBytes[...])
            var descriptors: [Descriptor] = []
            for i in 0..<count {
                let start = i * entrySize
                // SAFETY: `raw` holds `count` entries of `entrySize` bytes read from the file, so the
                // descriptor header at `start` is inside it; loadUnaligned needs no alignment.
                let d = raw.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: start, as: kvm_stats_desc.self) }
                let nameStart = start + MemoryLayout<kvm_stats_desc>.size
                let flags = d.flags
                let typeBits = flags & UInt32(KVM_STATS_TYPE_MASK)
                let unitBits = flags & UInt32(KVM_STATS_UNIT_MASK)
                let baseBits = flags & UInt32(KVM_STATS_BASE_MASK)
                let kind: Descriptor.Kind = switch Int32(typeBits) {
                case KVM_STATS_TYPE_CUMULATIVE: .cumulative
                case KVM_STATS_TYPE_INSTANT: .instant
                case KVM_STATS_TYPE_PEAK: .peak
                case KVM_STATS_TYPE_LINEAR_HIST: .linearHistogram
                case KVM_STATS_TYPE_LOG_HIST: .logHistogram
                default: .unsupported(typeBits)
                }
                let unit: Descriptor.Unit = switch Int32(unitBits) {
                case KVM_STATS_UNIT_NONE: .none
                case KVM_STATS_UNIT_BYTES: .bytes
                case KVM_STATS_UNIT_SECONDS: .seconds
                case KVM_STATS_UNIT_CYCLES: .cycles
                case KVM_STATS_UNIT_BOOLEAN: .boolean
                default: .unsupported(unitBits)
                }
                descriptors.append(Descriptor(
                    name: Self.cString(raw[nameStart ..< nameStart + nameSize]),
                    kind: kind, unit: unit, base: Int32(baseBits) == KVM_STATS_BASE_POW2 ? 2 : 10,
                    exponent: d.exponent, size: Int(d.size), offset: Int(d.offset), bucketSize: d.bucket_size))
            }
            self.descriptors = descriptors
            self.dataOffset = Int(header.data_offset)
            self.byName = Dictionary(descriptors.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
        } catch {
            Syscall.close(fd)
            throw error
        }
    }

    deinit {
        Syscall.close(fd)
    }

    private static func cString(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    private static func pread(
        _ fd: Int32, _ pointer: UnsafeMutableRawPointer, _ count: Int, offset: Int, what: String
    ) throws(KVMError) {
        var done = 0
        while done < count {
            // SAFETY: `pointer` has `count` writable bytes (callers pass a buffer of that size).
            let n = Glibc.pread(fd, pointer + done, count - done, off_t(offset + done))
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw KVMError(operation: "pread", errno: Glibc.errno, detail: "KVM stats \(what)")
            }
            if n == 0 {
                throw KVMError(operation: "pread", errno: EIO, detail: "KVM stats \(what): short read")
            }
            done += n
        }
    }

    private static func pread<T>(_ fd: Int32, _ value: inout T, _ count: Int, offset: Int, what: String) throws(KVMError) {
        // SAFETY: `value` is a plain C struct of at least `count` bytes; the pointer does not
        // escape the closure.
        let result: Result<Void, KVMError> = withUnsafeMutableBytes(of: &value) { buffer in
            Result { () throws(KVMError) in try pread(fd, buffer.baseAddress!, min(count, buffer.count), offset: offset, what: what) }
        }
        try result.get()
    }

    private static func pread<T>(_ fd: Int32, _ array: inout [T], offset: Int, what: String) throws(KVMError) {
        // SAFETY: the array's storage has exactly buffer.count bytes; the pointer does not
        // escape the closure.
        let result: Result<Void, KVMError> = array.withUnsafeMutableBytes { buffer in
            guard let base = buffer.baseAddress else { return .success(()) }
            return Result { () throws(KVMError) in try pread(fd, base, buffer.count, offset: offset, what: what) }
        }
        try result.get()
    }

    /// The descriptor named `name`, if this file has it.
    public func descriptor(named name: String) -> Descriptor? {
        byName[name].map { descriptors[$0] }
    }

    /// The current values of `descriptor` (one for a counter, one per bucket for a histogram).
    public func values(of descriptor: Descriptor) throws(KVMError) -> [UInt64] {
        var values = [UInt64](repeating: 0, count: descriptor.size)
        let fd = self.fd
        let offset = dataOffset + descriptor.offset
        try Self.pread(fd, &values, offset: offset, what: descriptor.name)
        return values
    }

    /// The current value of the counter `name` (e.g. `insn_emulation`), or nil if this file has
    /// no such statistic.
    public func value(named name: String) throws(KVMError) -> UInt64? {
        guard let descriptor = descriptor(named: name) else { return nil }
        return try values(of: descriptor).first
    }

    /// All counters (first value of each statistic) by name.
    public func allValues() throws(KVMError) -> [String: UInt64] {
        var result: [String: UInt64] = [:]
        for descriptor in descriptors {
            result[descriptor.name] = try values(of: descriptor).first ?? 0
        }
        return result
    }
}
