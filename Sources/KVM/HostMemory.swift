#if canImport(Glibc)
import Glibc
#endif

/// Page-aligned anonymous host memory, for guest RAM in tools and tests that do not use
/// MachineCore's `GuestMemory`.
///
/// Owns the mapping and unmaps it in `deinit`. Register it with
/// `VirtualMachine.setUserMemoryRegion(_:owner:)` passing it as the owner, so the VM keeps it
/// mapped for as long as the slot exists. Every accessor checks bounds and traps on a bad range
/// (a programmer error: these are host-side accesses, never guest-controlled).
public final class HostMemory {
    /// The size in bytes (a multiple of 4096).
    public let size: Int
    private let base: UnsafeMutableRawPointer

    /// Maps `size` bytes of zeroed memory. The corresponding C call is
    /// `mmap(MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)`.
    public init(size: Int) throws(KVMError) {
        precondition(size > 0 && size % 4096 == 0, "HostMemory size must be a positive multiple of 4096")
        // SAFETY: an anonymous mapping at no fixed address; checked for MAP_FAILED and unmapped
        // exactly once in deinit.
        let pointer = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let pointer, pointer != MAP_FAILED else {
            throw KVMError(operation: "mmap", errno: Glibc.errno, detail: "\(size) bytes of guest RAM")
        }
        self.base = pointer
        self.size = size
    }

    deinit {
        // SAFETY: `base` came from mmap with exactly `size` bytes and is unmapped only here.
        munmap(base, size)
    }

    /// The host virtual address, for `UserMemoryRegion.userspaceAddress`.
    public var hostAddress: UInt64 { UInt64(UInt(bitPattern: base)) }

    private func check(_ offset: Int, _ count: Int) {
        precondition(offset >= 0 && count >= 0 && offset <= size && count <= size - offset,
                     "HostMemory access of \(count) bytes at offset \(offset) is outside \(size) bytes")
    }

    /// Copies `bytes` to `offset`.
    public func write(_ bytes: some Collection<UInt8>, at offset: Int) {
        check(offset, bytes.count)
        // SAFETY: check() proved [offset, offset + count) is inside the mapping.
        UnsafeMutableRawBufferPointer(start: base + offset, count: bytes.count).copyBytes(from: bytes)
    }

    /// Copies `count` bytes from `offset`.
    public func read(at offset: Int, count: Int) -> [UInt8] {
        check(offset, count)
        // SAFETY: check() proved [offset, offset + count) is inside the mapping.
        return [UInt8](UnsafeRawBufferPointer(start: base + offset, count: count))
    }

    /// Reads a little-endian integer at `offset` (no alignment needed).
    public func load<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        check(offset, MemoryLayout<T>.size)
        // SAFETY: check() proved the bytes are inside the mapping; loadUnaligned has no alignment
        // requirement.
        return T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// Writes a little-endian integer at `offset` (no alignment needed).
    public func store<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        check(offset, MemoryLayout<T>.size)
        // SAFETY: check() proved the bytes are inside the mapping.
        base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }

    /// A copy of all bytes (for snapshots in tests).
    public func contents() -> [UInt8] { read(at: 0, count: size) }

    /// Overwrites all bytes with `bytes` (which must have `size` bytes).
    public func replaceContents(with bytes: [UInt8]) {
        precondition(bytes.count == size, "replaceContents needs exactly \(size) bytes")
        write(bytes, at: 0)
    }
}
