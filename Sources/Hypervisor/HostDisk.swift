import Foundation
import Logging
import MachineCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Why a disk image cannot be used.
public enum HostDiskError: Error, Equatable, Sendable, CustomStringConvertible {
    case notFound(path: String)
    case notARegularFile(path: String)
    case cannotOpen(path: String, reason: String)
    case empty(path: String)
    case notSectorAligned(path: String, size: UInt64)
    /// Another virtual machine (a Lockstep run, another pair, QEMU) has the image open.
    case inUse(path: String, sharing: ImageSharing)

    public var description: String {
        switch self {
        case .notFound(let path): "\(path): no such disk image"
        case .notARegularFile(let path): "\(path): a disk image must be a regular file"
        case .cannotOpen(let path, let reason): "\(path): cannot open disk image for reading and writing: \(reason)"
        case .empty(let path): "\(path): disk image is empty"
        case .notSectorAligned(let path, let size):
            "\(path): disk image size \(size) is not a multiple of 512 bytes"
        case .inUse(let path, let sharing):
            switch sharing {
            case .exclusive:
                "\(path): disk image is in use by another virtual machine (Lockstep or QEMU holds its lock)"
            case .pair:
                "\(path): disk image is in use by a virtual machine other than this replica's pair (Lockstep or QEMU holds its lock)"
            }
        }
    }
}

/// A disk image file on the host, the backend of the guest's virtio block device.
///
/// Requests are positioned reads and writes (`pread(2)`/`pwrite(2)`), so the disk keeps no file
/// position and can be shared between threads. A write or flush completes only as durable as
/// `cache` promises (`DiskCacheMode`); the image is locked against other virtual machines as
/// `ImageLock` describes, for as long as this object lives.
public final class HostDisk: Sendable {
    public static let sectorSize = 512
    /// The serial number a guest reads with VIRTIO_BLK_T_GET_ID (20 bytes, zero-padded).
    public static let serial = Array("lockstep-disk".utf8) + [UInt8](repeating: 0, count: 7)

    public let path: String
    /// Size in 512-byte sectors.
    public let sectors: UInt64
    public let cache: DiskCacheMode
    /// The image's file descriptor, owned: closed (dropping its locks) in deinit.
    let descriptor: Int32
    /// Set once an `fdatasync(2)` failed: the kernel may have dropped the dirty pages and a later
    /// sync could falsely succeed, so every later write and flush fails too (as QEMU does).
    private let syncFailed = Atomic<Bool>(false)

    private static let logger = Logger(label: "lockstep.disk")

    /// Opens the image at `path` for reading and writing, with `cache`'s durability, and takes
    /// its lock for `sharing`.
    public init(path: String, cache: DiskCacheMode = .default, sharing: ImageSharing = .exclusive)
        throws(HostDiskError)
    {
        let flags = O_RDWR | O_CLOEXEC | (cache.synchronousWrites ? O_DSYNC : 0)
        let descriptor = try Self.open(path, flags: flags)
        do throws(HostDiskError) {
            sectors = try Self.sectors(of: descriptor, path: path)
            switch ImageLock.acquire(sharing, on: descriptor) {
            case .locked:
                break
            case .inUse:
                throw .inUse(path: path, sharing: sharing)
            case .unsupported(let error):
                Self.logger.warning("\(path): this file system has no OFD locks (\(String(cString: strerror(error)))); the image is not protected against a second virtual machine")
            case .failed(let error):
                throw .cannotOpen(path: path, reason: "locking it: \(String(cString: strerror(error)))")
            }
        } catch {
            close(descriptor)
            throw error
        }
        self.path = path
        self.cache = cache
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    /// Whether the other replica of the pair named by `token` has this same file open and locked
    /// (`ImageLock.partnerHolds`); nil when the file system cannot tell (no OFD locks).
    public func isOpenByPartner(ofPair token: [UInt8]) -> Bool? {
        ImageLock.partnerHolds(pair: token, on: descriptor)
    }

    /// The size in sectors of the image at `path`, checked as `init` checks it, without opening
    /// it for writing or locking it.
    public static func inspect(path: String) throws(HostDiskError) -> UInt64 {
        let descriptor = try open(path, flags: O_RDONLY | O_CLOEXEC)
        defer { close(descriptor) }
        return try sectors(of: descriptor, path: path)
    }

    /// The corresponding C call is open(2).
    private static func open(_ path: String, flags: Int32) throws(HostDiskError) -> Int32 {
        while true {
            let descriptor = Glibc.open(path, flags)
            if descriptor >= 0 { return descriptor }
            switch errno {
            case EINTR: continue
            case ENOENT: throw .notFound(path: path)
            case EISDIR: throw .notARegularFile(path: path)
            case let error: throw .cannotOpen(path: path, reason: String(cString: strerror(error)))
            }
        }
    }

    /// The corresponding C call is fstat(2).
    private static func sectors(of descriptor: Int32, path: String) throws(HostDiskError) -> UInt64 {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw .cannotOpen(path: path, reason: String(cString: strerror(errno)))
        }
        guard status.st_mode & S_IFMT == S_IFREG else { throw .notARegularFile(path: path) }
        let size = UInt64(status.st_size)
        guard size > 0 else { throw .empty(path: path) }
        guard size % UInt64(sectorSize) == 0 else { throw .notSectorAligned(path: path, size: size) }
        return size / UInt64(sectorSize)
    }

    /// Performs `request` on the image and returns its completion. Host I/O errors and requests
    /// outside the image become an error status for the guest, never a crash. A write or flush
    /// returns once it is as durable as the cache mode promises.
    public func perform(_ request: BlockRequest) -> BlockCompletion {
        let offset: Int64
        switch request.kind {
        case .read, .write:
            guard request.length >= 0, request.kind == .read || request.data.count == request.length else {
                return BlockCompletion(id: request.id, status: .ioError)
            }
            let sectorCount = UInt64(request.length / Self.sectorSize + (request.length % Self.sectorSize == 0 ? 0 : 1))
            guard request.sector <= sectors, sectorCount <= sectors - request.sector else {
                return BlockCompletion(id: request.id, status: .ioError)
            }
            offset = Int64(request.sector) * Int64(Self.sectorSize)
        case .flush, .getID:
            offset = 0
        }
        switch request.kind {
        case .read:
            guard let data = read(request.length, at: offset) else {
                return BlockCompletion(id: request.id, status: .ioError)
            }
            return BlockCompletion(id: request.id, status: .ok, data: data)
        case .write:
            let written = !syncFailed.load(ordering: .acquiring) && write(request.data, at: offset)
            return BlockCompletion(id: request.id, status: written ? .ok : .ioError)
        case .flush:
            return BlockCompletion(id: request.id, status: flush() ? .ok : .ioError)
        case .getID:
            return BlockCompletion(id: request.id, status: .ok, data: Self.serial)
        }
    }

    /// Reads `count` bytes at `offset`; bytes past the end of the file (an image truncated
    /// under us) read as zeros. The corresponding C call is pread(2).
    private func read(_ count: Int, at offset: Int64) -> [UInt8]? {
        var data: [UInt8] = []
        data.reserveCapacity(count)
        while data.count < count {
            var chunk = [UInt8](repeating: 0, count: count - data.count)
            let n = pread(descriptor, &chunk, chunk.count, off_t(offset) + off_t(data.count))
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 {
                data += [UInt8](repeating: 0, count: count - data.count)
                break
            }
            data += chunk[0..<n]
        }
        return data
    }

    /// Writes `bytes` at `offset`, all of them or fail. The corresponding C call is pwrite(2)
    /// (on a descriptor opened O_DSYNC in writethrough mode: it returns once the data is durable).
    private func write(_ bytes: [UInt8], at offset: Int64) -> Bool {
        var done = 0
        while done < bytes.count {
            let rest = done == 0 ? bytes : Array(bytes[done...])
            let n = pwrite(descriptor, rest, rest.count, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EIO { syncFailed.store(true, ordering: .releasing) }
                return false
            }
            if n == 0 { return false }
            done += n
        }
        return true
    }

    /// Makes every completed write durable, as the cache mode promises. The corresponding C call
    /// is fdatasync(2).
    private func flush() -> Bool {
        guard !syncFailed.load(ordering: .acquiring) else { return false }
        guard cache.honoursFlush else { return true }
        while fdatasync(descriptor) != 0 {
            if errno == EINTR { continue }
            syncFailed.store(true, ordering: .releasing)
            return false
        }
        return true
    }
}
