/// When a guest's disk write counts as done: QEMU's `-drive cache=` modes, the subset that a
/// copy-through disk backend can honour.
///
/// | mode | a write completes to the guest | a flush | QEMU equivalent |
/// |---|---|---|---|
/// | `writethrough` (default) | once it is on stable storage (the image is opened `O_DSYNC`) | `fdatasync(2)` | `cache=writethrough` |
/// | `writeback` | once it is in the host's page cache | `fdatasync(2)`: durable once the flush completes | `cache=writeback` |
/// | `unsafe` | once it is in the host's page cache | ignored: nothing is ever made durable | `cache=unsafe` |
///
/// QEMU's `none` and `directsync` open the image `O_DIRECT`, which needs host buffers aligned to
/// the device's logical block; Lockstep's disk path copies through ordinary Swift arrays, so it
/// refuses those two names with a line saying what to use instead (`knownUnsupported`).
public enum DiskCacheMode: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case writethrough
    case writeback
    case unsafe

    public static let `default` = DiskCacheMode.writethrough

    public var description: String { rawValue }

    /// Whether each write reaches stable storage before it completes (open with `O_DSYNC`).
    public var synchronousWrites: Bool {
        switch self {
        case .writethrough: true
        case .writeback, .unsafe: false
        }
    }

    /// Whether a guest's flush request syncs the image (`fdatasync(2)`).
    public var honoursFlush: Bool {
        switch self {
        case .writethrough, .writeback: true
        case .unsafe: false
        }
    }

    /// QEMU's cache modes that Lockstep recognises and refuses, with the reason.
    public static let knownUnsupported: [String: String] = [
        "none": "QEMU's none opens the image O_DIRECT, which needs aligned host buffers Lockstep does not use",
        "directsync": "QEMU's directsync opens the image O_DIRECT, which needs aligned host buffers Lockstep does not use",
    ]

    /// Parses a `--disk-cache` value; the error is the one line to show.
    public static func parse(_ text: String) -> Result<DiskCacheMode, DiskCacheModeError> {
        if let mode = DiskCacheMode(rawValue: text) { return .success(mode) }
        return .failure(DiskCacheModeError(text: text, reason: knownUnsupported[text]))
    }
}

/// A `--disk-cache` value that is not a mode Lockstep supports.
public struct DiskCacheModeError: Error, Equatable, Sendable, CustomStringConvertible {
    public let text: String
    /// Why a QEMU mode Lockstep knows is refused; nil for an unknown name.
    public let reason: String?

    public var description: String {
        let choices = DiskCacheMode.allCases.map(\.rawValue).joined(separator: ", ")
        if let reason {
            return "--disk-cache \(text): \(reason) (use writethrough, the safe default, or writeback)"
        }
        return "--disk-cache \(text): expected \(choices)"
    }
}
