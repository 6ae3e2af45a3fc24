import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The arbiter: an atomic test-and-set on the shared storage next to the disk image, as VMware
/// FT does it. Whichever replica first creates the session's arbiter file (O_CREAT | O_EXCL, atomic
/// on a local or NFSv3+ file system) may go on alone; the other must stop without output.
public struct Arbiter: Sendable {
    /// The arbiter file for this pair.
    public let path: String

    /// The arbiter for `session`, in `directory`.
    public init(directory: String, session: [UInt8]) {
        let name = ".lockstep-arbiter-" + session.map { String(format: "%02x", $0) }.joined()
        path = (directory as NSString).appendingPathComponent(name)
    }

    /// The outcome of `acquire`.
    public enum Outcome: Equatable, Sendable {
        case won
        /// Another replica holds it; the text is what it wrote ("backup pid 1234").
        case lost(holder: String)
    }

    /// Test-and-set: claims the arbiter for `claimant` unless someone already has.
    public func acquire(claimant: String) throws -> Outcome {
        // The corresponding C call is open(2) with O_CREAT | O_EXCL: atomic test-and-set.
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o644)
        if fd < 0 {
            let error = errno
            guard error == EEXIST else {
                throw ArbiterError(path: path, errno: error)
            }
            return .lost(holder: holder ?? "unknown")
        }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        try handle.write(contentsOf: Data((claimant + "\n").utf8))
        try handle.synchronize()
        return .won
    }

    /// Who holds the arbiter, if anyone does.
    public var holder: String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Whether anyone holds the arbiter.
    public var isClaimed: Bool { FileManager.default.fileExists(atPath: path) }

    /// Removes the arbiter file, once neither replica can run any more (`lockstep pair` does,
    /// after both have exited). A replica never removes it itself: a primary frozen past the
    /// timeout may wake after the backup finished, and must still find the arbiter claimed.
    public func release() { try? FileManager.default.removeItem(atPath: path) }

    /// Checks that an arbiter file can be created in `directory` (by creating and removing a
    /// probe file there), so that an unusable directory is reported when a replica starts, not
    /// at a failover.
    public static func checkDirectory(_ directory: String) throws(ArbiterError) {
        let probe = (directory as NSString).appendingPathComponent(".lockstep-arbiter-probe-\(getpid())")
        // The corresponding C calls are open(2) with O_CREAT | O_EXCL and unlink(2).
        let fd = open(probe, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ArbiterError(path: probe, errno: errno) }
        close(fd)
        unlink(probe)
    }
}

/// The arbiter file could not be created for a reason other than someone else holding it.
public struct ArbiterError: Error, CustomStringConvertible {
    public let path: String
    public let errno: Int32
    public var description: String {
        let directory = (path as NSString).deletingLastPathComponent
        return "cannot create an arbiter file in \(directory): \(String(cString: strerror(errno))) (choose the directory with --arbiter-dir)"
    }
}
