import Foundation
import MachineCore

/// Why a disk image cannot be used.
public enum HostDiskError: Error, Equatable, Sendable, CustomStringConvertible {
    case notFound(path: String)
    case notARegularFile(path: String)
    case cannotOpen(path: String, reason: String)
    case empty(path: String)
    case notSectorAligned(path: String, size: UInt64)

    public var description: String {
        switch self {
        case .notFound(let path): "\(path): no such disk image"
        case .notARegularFile(let path): "\(path): a disk image must be a regular file"
        case .cannotOpen(let path, let reason): "\(path): cannot open disk image for reading and writing: \(reason)"
        case .empty(let path): "\(path): disk image is empty"
        case .notSectorAligned(let path, let size):
            "\(path): disk image size \(size) is not a multiple of 512 bytes"
        }
    }
}

/// A disk image file on the host, the backend of the guest's virtio block device.
public final class HostDisk {
    public static let sectorSize = 512
    /// The serial number a guest reads with VIRTIO_BLK_T_GET_ID (20 bytes, zero-padded).
    public static let serial = Array("lockstep-disk".utf8) + [UInt8](repeating: 0, count: 7)

    public let path: String
    /// Size in 512-byte sectors.
    public let sectors: UInt64
    private let handle: FileHandle

    public init(path: String) throws(HostDiskError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .notFound(path: path)
        }
        guard !isDirectory.boolValue else { throw .notARegularFile(path: path) }
        let handle: FileHandle
        do {
            handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        } catch {
            throw .cannotOpen(path: path, reason: (error as NSError).localizedDescription)
        }
        let size: UInt64
        do { size = try handle.seekToEnd() } catch {
            throw .cannotOpen(path: path, reason: "\(error)")
        }
        guard size > 0 else { throw .empty(path: path) }
        guard size % UInt64(Self.sectorSize) == 0 else { throw .notSectorAligned(path: path, size: size) }
        self.path = path
        self.handle = handle
        self.sectors = size / UInt64(Self.sectorSize)
    }

    /// Performs `request` on the image and returns its completion. Host I/O errors and requests
    /// outside the image become an error status for the guest, never a crash.
    public func perform(_ request: BlockRequest) -> BlockCompletion {
        let sectorCount = UInt64((request.length + Self.sectorSize - 1) / Self.sectorSize)
        switch request.kind {
        case .read, .write:
            guard request.sector <= sectors, sectorCount <= sectors - request.sector else {
                return BlockCompletion(id: request.id, status: .ioError)
            }
        case .flush, .getID:
            break
        }
        do {
            switch request.kind {
            case .read:
                try handle.seek(toOffset: request.sector * UInt64(Self.sectorSize))
                var data = [UInt8](try handle.read(upToCount: request.length) ?? Data())
                if data.count < request.length {
                    data += [UInt8](repeating: 0, count: request.length - data.count)
                }
                return BlockCompletion(id: request.id, status: .ok, data: data)
            case .write:
                try handle.seek(toOffset: request.sector * UInt64(Self.sectorSize))
                try handle.write(contentsOf: request.data)
                return BlockCompletion(id: request.id, status: .ok)
            case .flush:
                try handle.synchronize()
                return BlockCompletion(id: request.id, status: .ok)
            case .getID:
                return BlockCompletion(id: request.id, status: .ok, data: Self.serial)
            }
        } catch {
            return BlockCompletion(id: request.id, status: .ioError)
        }
    }
}
