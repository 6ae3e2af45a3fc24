import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The arbiter as a file on storage both replicas share: whichever replica first creates the
/// session's claim file (O_CREAT | O_EXCL, atomic on a local or NFSv3+ file system) may go on
/// alone; the other must stop without output. There is no lease: the primary checks, before
/// each output, that the claim file does not exist.
final class FileArbiter: Sendable {
    /// The claim file: `.lockstep-arbiter-SESSION`, holding the winner's name.
    let path: String
    /// The proof-of-sharing file: `.lockstep-arbiter-SESSION.nonce`, the nonce in hexadecimal.
    let noncePath: String
    /// The membership file: `.lockstep-arbiter-SESSION.members`, the generation in decimal.
    let membersPath: String
    /// The winner's announcement: `.lockstep-arbiter-SESSION.leader`, where it takes new backups.
    let leaderPath: String

    /// What this replica holds.
    private enum Claim {
        case none
        case registered
        case won
    }

    private let claim = Mutex(Claim.none)

    init(directory: String, session: [UInt8]) {
        let name = ".lockstep-arbiter-" + session.map { String(format: "%02x", $0) }.joined()
        path = (directory as NSString).appendingPathComponent(name)
        noncePath = path + ".nonce"
        membersPath = path + ".members"
        leaderPath = path + ".leader"
    }

    /// Replaces the membership file (a new file renamed over it, so a reader sees one
    /// generation or the other, never a torn one), synced.
    func recordMembership(_ generation: UInt64) throws(ArbiterError) {
        try replace(membersPath, with: Array("\(generation)\n".utf8))
    }

    /// Replaces the announcement file, as the membership file is replaced.
    func announceLeader(_ bytes: [UInt8]) throws(ArbiterError) {
        try replace(leaderPath, with: bytes)
    }

    /// The announcement file's bytes (at most one more than an announcement may hold: a longer
    /// file is then refused by the parser without being read whole).
    func readAnnouncement() -> [UInt8]? {
        guard let handle = FileHandle(forReadingAtPath: leaderPath) else { return nil }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: Arbiter.maximumAnnouncementBytes + 1)).map { [UInt8]($0) }
    }

    /// Writes `bytes` to a new file renamed over `target` (a reader sees the old or the new
    /// contents, never torn ones), synced.
    private func replace(_ target: String, with bytes: [UInt8]) throws(ArbiterError) {
        let temporary = target + ".\(getpid())"
        // The corresponding C calls are open(2), write(2), fsync(2), rename(2).
        let fd = open(temporary, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .directory(path: temporary, errno: errno) }
        let written = write(fd, bytes, bytes.count) == bytes.count && fsync(fd) == 0
        let error = errno
        close(fd)
        guard written, rename(temporary, target) == 0 else {
            unlink(temporary)
            throw .directory(path: target, errno: written ? errno : error)
        }
    }

    /// The recorded generation: 0 if none; a file that is not one decimal number (anyone may
    /// write there) counts as the largest, so no backup's claim passes it.
    var recordedMembership: UInt64 {
        guard let data = FileManager.default.contents(atPath: membersPath) else { return 0 }
        let text = String(decoding: data.prefix(32), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard data.count <= 32, let generation = UInt64(text) else { return .max }
        return generation
    }

    func register() -> FencingToken {
        claim.withLock { if case .none = $0 { $0 = .registered } }
        return FencingToken(1)
    }

    /// Writes the nonce file (replacing an older one) and syncs it.
    func publish(nonce: [UInt8]) throws(ArbiterError) {
        let text = nonce.map { String(format: "%02x", $0) }.joined() + "\n"
        // The corresponding C calls are open(2), write(2), fsync(2).
        let fd = open(noncePath, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .directory(path: noncePath, errno: errno) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard write(fd, bytes, bytes.count) == bytes.count, fsync(fd) == 0 else {
            throw .directory(path: noncePath, errno: errno)
        }
    }

    func readNonce() throws(ArbiterError) -> [UInt8]? {
        guard let data = FileManager.default.contents(atPath: noncePath) else { return nil }
        let text = String(decoding: data.prefix(2 * Arbiter.maximumNonceBytes + 2), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard data.count <= 2 * Arbiter.maximumNonceBytes + 2, text.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            guard let byte = UInt8(text[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }

    func acquire(claimant: String, membership: UInt64?) throws(ArbiterError) -> Arbiter.Outcome {
        if let membership, case let recorded = recordedMembership, recorded > membership {
            return Arbiter.fenced(recorded: recorded, own: membership)
        }
        // The corresponding C call is open(2) with O_CREAT | O_EXCL: atomic test-and-set.
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o644)
        if fd < 0 {
            let error = errno
            guard error == EEXIST else { throw .directory(path: path, errno: error) }
            return .lost(holder: holder ?? "unknown")
        }
        defer { close(fd) }
        claim.withLock { $0 = .won }
        // The exclusive create above is the test-and-set; the name written into the file only
        // tells the loser who won, and any process sees it at once (NFS at close). It is not
        // fsync'd: on a busy disk an fsync here took up to hundreds of milliseconds, at every
        // failover, before the backup could go live (and it never made the create durable: that
        // would take an fsync of the directory). A host crash takes both replicas with it, or
        // the NFS server commits the create before answering it.
        let bytes = Array((claimant + "\n").utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else {
            throw .directory(path: path, errno: errno)
        }
        // The primary may have recorded a new generation between the check and the create: then
        // this claim is withdrawn (the primary, which stats the claim before each output, stops
        // if it saw it; the members may then claim).
        if let membership, case let recorded = recordedMembership, recorded > membership {
            unlink(path)
            claim.withLock { $0 = .none }
            return Arbiter.fenced(recorded: recorded, own: membership)
        }
        return .won
    }

    var entitlement: Entitlement {
        switch claim.withLock({ $0 }) {
        case .won:
            return .entitled(FencingToken(2), until: nil)
        case .registered:
            if isClaimed { return .lost(holder: holder ?? "unknown") }
            return .entitled(FencingToken(1), until: nil)
        case .none:
            if isClaimed { return .lost(holder: holder ?? "unknown") }
            return .unclaimed
        }
    }

    /// Who holds the arbiter, if anyone does.
    var holder: String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return Arbiter.printable([UInt8](data))
    }

    /// Whether anyone holds the arbiter.
    var isClaimed: Bool { FileManager.default.fileExists(atPath: path) }

    func withdrawNonce() { unlink(noncePath) }

    func release() {
        unlink(path)
        unlink(noncePath)
        unlink(membersPath)
        unlink(leaderPath)
    }

    /// Checks that an arbiter file can be created in `directory` (by creating and removing a
    /// probe file there), so that an unusable directory is reported when a replica starts, not
    /// at a failover.
    static func checkDirectory(_ directory: String) throws(ArbiterError) {
        let probe = (directory as NSString).appendingPathComponent(".lockstep-arbiter-probe-\(getpid())")
        // The corresponding C calls are open(2) with O_CREAT | O_EXCL and unlink(2).
        let fd = open(probe, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .directory(path: probe, errno: errno) }
        close(fd)
        unlink(probe)
    }
}
