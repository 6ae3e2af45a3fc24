#if canImport(Glibc)
import Glibc
#endif

/// Why a guest-memory operation failed.
public enum GuestMemoryError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The requested size is zero, not a multiple of the page size, or larger than the limit.
    case invalidSize(UInt64, reason: String)
    /// The host refused to reserve the memory (mmap failed with this errno).
    case allocationFailed(size: UInt64, errno: Int32)
    /// An access of `count` bytes at `address` falls (partly) outside guest RAM.
    case outOfRange(address: GuestAddress, count: UInt64)

    public var description: String {
        switch self {
        case .invalidSize(let size, let reason):
            return "invalid guest memory size \(size) bytes: \(reason)"
        case .allocationFailed(let size, let errno):
            return "cannot reserve \(size) bytes of guest memory: \(String(cString: strerror(errno)))"
        case .outOfRange(let address, let count):
            return "guest access of \(count) bytes at \(address) is outside guest RAM"
        }
    }
}

/// Guest RAM: one contiguous, page-aligned, anonymous host mapping that starts at `base`.
///
/// This is the guest-memory backend: together with the KVM layer it is the only place that uses
/// unsafe pointers. Every accessor checks bounds; the host mapping is released in `deinit`.
/// The KVM engine maps the same host pages into the VM through `hostAddress`, so a VM that uses
/// this memory must be destroyed before the memory is.
///
/// Writes are tracked per page in a write map (one byte per 4 KiB page): every host write through
/// this type (`write`, `fill`, `store`: the loader, DMA by devices) and every emulator store
/// (`storeBigEndianWord` & co., or `markWritten(atOffset:)` for an engine that stores by other
/// means) sets its page's byte. A `DirtyPageTracker` collects the map; KVM guest writes are not
/// in it (the KVM engine adds its dirty log). Fresh RAM is all zero, so a page never marked is a
/// zero page.
public final class GuestMemory {
    /// The page size the mapping is aligned to.
    public static let pageSize: UInt64 = 4096
    /// log2 of `pageSize`: the page of byte offset `o` is `o >> pageShift`.
    public static let pageShift: UInt64 = 12
    /// The write map covers at least this many pages, so that any 32-bit offset (an emulator's
    /// address) falls inside it and `markWritten(atOffset:)` needs no bounds check.
    static let minimumWriteMapPages = 1 << 20
    /// The largest guest RAM Lockstep will reserve (64 GiB).
    public static let maximumSize: UInt64 = 64 << 30

    /// The guest-physical address of the first byte of RAM.
    public let base: GuestAddress
    /// The size of RAM in bytes.
    public let size: UInt64

    @usableFromInline let host: UnsafeMutableRawPointer
    /// One byte per page, non-zero when the page was written since the last collection
    /// (`collectWrittenPages`). `writeMapCount` >= max(pageCount, 2^20) entries.
    @usableFromInline let writeMap: UnsafeMutablePointer<UInt8>
    let writeMapCount: Int
    /// One read-only page of zeros, to compare pages with (`memcmp`).
    let zeroPage: UnsafeRawPointer

    /// The number of 4 KiB pages of RAM.
    public var pageCount: Int { Int(size >> Self.pageShift) }

    /// Reserves `size` bytes of zeroed guest RAM starting at guest-physical `base`.
    /// The corresponding C function is `mmap(MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)`.
    public init(size: UInt64, base: GuestAddress = GuestAddress(0)) throws(GuestMemoryError) {
        guard size > 0 else { throw .invalidSize(size, reason: "it must not be zero") }
        guard size % Self.pageSize == 0 else {
            throw .invalidSize(size, reason: "it must be a multiple of \(Self.pageSize)")
        }
        guard size <= Self.maximumSize else {
            throw .invalidSize(size, reason: "the limit is \(Self.maximumSize >> 30) GiB")
        }
        guard base.advanced(by: size) != nil else {
            throw .invalidSize(size, reason: "RAM at \(base) would wrap around the address space")
        }
        // SAFETY: an anonymous private mapping with no fixed address; the result is checked for
        // MAP_FAILED before use and released exactly once in deinit.
        let p = mmap(nil, Int(size), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p, p != MAP_FAILED else { throw .allocationFailed(size: size, errno: errno) }
        let mapCount = max(Int(size >> Self.pageShift), Self.minimumWriteMapPages)
        // SAFETY: as above; the write map is zero-filled, checked for MAP_FAILED, and released in
        // deinit. On failure the RAM mapping just made is released before throwing.
        let map = mmap(nil, mapCount, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let map, map != MAP_FAILED else {
            let error = errno
            munmap(p, Int(size))
            throw .allocationFailed(size: size, errno: error)
        }
        // SAFETY: as above; a read-only anonymous page is zero and stays zero.
        let zero = mmap(nil, Int(Self.pageSize), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let zero, zero != MAP_FAILED else {
            let error = errno
            munmap(p, Int(size))
            munmap(map, mapCount)
            throw .allocationFailed(size: size, errno: error)
        }
        self.zeroPage = UnsafeRawPointer(zero)
        self.host = p
        self.writeMap = map.assumingMemoryBound(to: UInt8.self)
        self.writeMapCount = mapCount
        self.base = base
        self.size = size
    }

    deinit {
        // SAFETY: `host` came from mmap with exactly `size` bytes, the write map with
        // `writeMapCount` bytes, the zero page with one page, and nothing else unmaps them.
        munmap(host, Int(size))
        munmap(writeMap, writeMapCount)
        munmap(UnsafeMutableRawPointer(mutating: zeroPage), Int(Self.pageSize))
    }

    /// The host virtual address of guest RAM, for registering it as a KVM memory slot.
    public var hostAddress: UInt64 { UInt64(UInt(bitPattern: host)) }

    /// The offset into RAM of `count` bytes at `address`, or nil if any of them is outside RAM.
    @inlinable public func offset(of address: GuestAddress, count: UInt64) -> Int? {
        guard let offset = address.offset(from: base), offset <= size, count <= size - offset
        else { return nil }
        return Int(offset)
    }

    /// Whether all `count` bytes at `address` are guest RAM.
    @inlinable public func contains(_ address: GuestAddress, count: UInt64 = 1) -> Bool {
        offset(of: address, count: count) != nil
    }

    @inlinable func checkedOffset(_ address: GuestAddress, _ count: UInt64) throws(GuestMemoryError)
        -> Int
    {
        guard let offset = offset(of: address, count: count) else {
            throw .outOfRange(address: address, count: count)
        }
        return offset
    }

    /// Copies `count` bytes of guest RAM at `address`.
    public func read(at address: GuestAddress, count: Int) throws(GuestMemoryError) -> [UInt8] {
        let offset = try checkedOffset(address, UInt64(count))
        // SAFETY: checkedOffset proved [offset, offset+count) lies inside the mapping.
        return [UInt8](UnsafeRawBufferPointer(start: host + offset, count: count))
    }

    /// Copies `bytes` into guest RAM at `address`.
    public func write(_ bytes: some Collection<UInt8>, at address: GuestAddress)
        throws(GuestMemoryError)
    {
        let offset = try checkedOffset(address, UInt64(bytes.count))
        // SAFETY: checkedOffset proved the destination range lies inside the mapping.
        let destination = UnsafeMutableRawBufferPointer(start: host + offset, count: bytes.count)
        destination.copyBytes(from: bytes)
        markWritten(offset: offset, count: bytes.count)
    }

    /// Sets `count` bytes at `address` to `byte`.
    public func fill(_ byte: UInt8, at address: GuestAddress, count: Int) throws(GuestMemoryError) {
        let offset = try checkedOffset(address, UInt64(count))
        // SAFETY: checkedOffset proved the range lies inside the mapping.
        memset(host + offset, Int32(byte), count)
        markWritten(offset: offset, count: count)
    }

    /// Reads an integer stored at `address` in byte order `order` (no alignment required).
    @inlinable public func load<T: FixedWidthInteger & UnsignedInteger>(
        _ type: T.Type, at address: GuestAddress, order: ByteOrder
    ) throws(GuestMemoryError) -> T {
        let offset = try checkedOffset(address, UInt64(MemoryLayout<T>.size))
        // SAFETY: checkedOffset proved the bytes lie inside the mapping; loadUnaligned has no
        // alignment requirement.
        let raw = host.loadUnaligned(fromByteOffset: offset, as: T.self)
        return order == .little ? T(littleEndian: raw) : T(bigEndian: raw)
    }

    /// Stores an integer at `address` in byte order `order` (no alignment required).
    @inlinable public func store<T: FixedWidthInteger & UnsignedInteger>(
        _ value: T, at address: GuestAddress, order: ByteOrder
    ) throws(GuestMemoryError) {
        let offset = try checkedOffset(address, UInt64(MemoryLayout<T>.size))
        let raw = order == .little ? value.littleEndian : value.bigEndian
        // SAFETY: checkedOffset proved the bytes lie inside the mapping.
        host.storeBytes(of: raw, toByteOffset: offset, as: T.self)
        markWritten(offset: offset, count: MemoryLayout<T>.size)
    }
}
