import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Who may have a disk image open at the same time as this run.
public enum ImageSharing: Sendable, Equatable {
    /// Nobody else may write it, and nobody else may be writing it (`lockstep run`).
    case exclusive
    /// Only the other replica of the pair named by `token` (the pair's session, which the primary
    /// chooses and the backup learns in the handshake).
    case pair(token: [UInt8])
}

/// Image locking as QEMU does it: open file description (OFD) byte-range locks on the image,
/// beyond its data, taken first and tested second, so two runs that start together both refuse
/// rather than both proceed.
///
/// The bytes, all taken as shared (read) locks, so a holder never blocks another's test:
///
/// | byte(s) | taken by | meaning (QEMU's `RAW_LOCK_PERM_BASE`/`RAW_LOCK_SHARED_BASE` = 100/200) |
/// |---|---|---|
/// | 100 | everyone | holds the consistent-read permission |
/// | 101 | everyone | holds the write permission |
/// | 201 | `exclusive` | does not share the write permission |
/// | `pairSlots` except the pair's own slot | `pair` | "a pair other than the one in that slot uses this image" |
///
/// Tests (`F_OFD_GETLK` for a write lock, which any other description's lock conflicts with):
/// an exclusive user refuses if another holds 101 or 201; a pair's replica refuses if another holds
/// 201 or its own slot. So a plain run and any pair exclude each other, two pairs exclude each
/// other (each locks the other's slot), QEMU (which holds 101 and, writing without share-rw,
/// 201) and Lockstep exclude each other, and the two replicas of one pair, which leave their own
/// slot free and do not take 201, coexist. A primary frozen by SIGSTOP keeps its locks, and its
/// backup, already holding the same shared locks, goes live beside it on the same host.
///
/// The locks belong to the open file description: they go when `HostDisk` closes the file (or
/// the process dies), are never inherited by another open of the same file, and are honoured
/// across hosts by NFS (v4 byte-range locks, or NLM for v3). A file system without OFD locks
/// (`ENOLCK`, `EOPNOTSUPP`, `EINVAL`) is used unlocked, with a warning.
public enum ImageLock {
    /// QEMU's permission lock bytes (block/file-posix.c) for BLK_PERM_CONSISTENT_READ (bit 0)
    /// and BLK_PERM_WRITE (bit 1).
    static let consistentReadByte: Int64 = 100
    static let writeByte: Int64 = 101
    /// QEMU's "does not share BLK_PERM_WRITE" byte.
    static let writeNotSharedByte: Int64 = 201
    /// Lockstep's pair slots: 2^32 bytes from 0x4C4B_5350_0000 ("LKSP" << 16), far beyond any
    /// image's data and QEMU's and libvirt's bytes.
    static let pairSlots: Range<Int64> = 0x4C4B_5350_0000 ..< 0x4C4B_5350_0000 + (1 << 32)

    /// The slot of the pair named by `token`: its first four bytes, little-endian.
    static func slot(of token: [UInt8]) -> Int64 {
        var value: Int64 = 0
        for (index, byte) in token.prefix(4).enumerated() { value |= Int64(byte) << (8 * index) }
        return pairSlots.lowerBound + value
    }

    /// The corresponding fcntl(2) commands, F_OFD_GETLK and F_OFD_SETLK (Linux 3.15, the same
    /// on every architecture; Glibc exports them only under _GNU_SOURCE).
    static let getLock: Int32 = 36
    static let setLock: Int32 = 37

    /// What taking the locks found.
    enum Outcome: Equatable {
        case locked
        /// Another open file description holds a conflicting byte.
        case inUse
        /// This file system does not do OFD locks.
        case unsupported(errno: Int32)
        case failed(errno: Int32)
    }

    private struct Failure: Error {
        let outcome: Outcome
    }

    /// The shared locks `sharing` takes.
    static func ranges(for sharing: ImageSharing) -> [Range<Int64>] {
        var ranges = [consistentReadByte ..< consistentReadByte + 1, writeByte ..< writeByte + 1]
        switch sharing {
        case .exclusive:
            ranges.append(writeNotSharedByte ..< writeNotSharedByte + 1)
        case .pair(let token):
            let own = slot(of: token)
            ranges.append(pairSlots.lowerBound ..< own)
            ranges.append(own + 1 ..< pairSlots.upperBound)
        }
        return ranges.filter { !$0.isEmpty }
    }

    /// The bytes whose lock by anyone else means the image is in use.
    static func conflicts(for sharing: ImageSharing) -> [Int64] {
        switch sharing {
        case .exclusive: [writeByte, writeNotSharedByte]
        case .pair(let token): [writeNotSharedByte, slot(of: token)]
        }
    }

    /// Takes `sharing`'s locks on `descriptor`, then tests for conflicts; on a conflict the
    /// caller closes the descriptor, which drops the locks.
    static func acquire(_ sharing: ImageSharing, on descriptor: Int32) -> Outcome {
        do throws(Failure) {
            for range in ranges(for: sharing) {
                try set(F_RDLCK, range, on: descriptor)
            }
            for byte in conflicts(for: sharing) {
                if try isLockedByOthers(byte, on: descriptor) { return .inUse }
            }
            return .locked
        } catch {
            return error.outcome
        }
    }

    /// Whether the other replica of the pair named by `token` holds its locks on this very file,
    /// tested after `acquire(.pair(token:))` succeeded: another description holding a pair slot
    /// that is not this pair's can only be this pair's other replica (any other pair also locks
    /// this pair's slot, and one of the two would have been refused). This is the backup's proof
    /// that it opened the primary's image, not a copy (`docs/protocol.md`, "Proof of sharing").
    /// Nil when the file system has no OFD locks (the proof is not available).
    static func partnerHolds(pair token: [UInt8], on descriptor: Int32) -> Bool? {
        let own = slot(of: token)
        let probe = own == pairSlots.lowerBound ? own + 1 : pairSlots.lowerBound
        do throws(Failure) {
            return try isLockedByOthers(probe, on: descriptor)
        } catch {
            return nil
        }
    }

    /// The corresponding C call is fcntl(2) with F_OFD_SETLK.
    private static func set(_ type: Int32, _ range: Range<Int64>, on descriptor: Int32) throws(Failure) {
        var lock = flock()
        lock.l_type = Int16(type)
        lock.l_whence = Int16(SEEK_SET)
        lock.l_start = off_t(range.lowerBound)
        lock.l_len = off_t(range.upperBound - range.lowerBound)
        while fcntl(descriptor, setLock, &lock) != 0 {
            let error = errno
            if error == EINTR { continue }
            throw failure(error)
        }
    }

    /// The corresponding C call is fcntl(2) with F_OFD_GETLK: it reports a lock another open file
    /// description holds that would conflict with a write lock on `byte` (never this one's own).
    private static func isLockedByOthers(_ byte: Int64, on descriptor: Int32) throws(Failure) -> Bool {
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        lock.l_start = off_t(byte)
        lock.l_len = 1
        while fcntl(descriptor, getLock, &lock) != 0 {
            let error = errno
            if error == EINTR { continue }
            throw failure(error)
        }
        return lock.l_type != Int16(F_UNLCK)
    }

    private static func failure(_ error: Int32) -> Failure {
        switch error {
        case EAGAIN, EACCES: Failure(outcome: .inUse)
        case ENOLCK, EOPNOTSUPP, EINVAL: Failure(outcome: .unsupported(errno: error))
        default: Failure(outcome: .failed(errno: error))
        }
    }
}
