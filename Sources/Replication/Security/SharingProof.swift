@preconcurrency import Crypto
import Foundation
import Hypervisor

/// The handshake's proof that both replicas of a pair use the same arbiter and the same disk
/// image (see "Proof of sharing" in docs/protocol.md):
///
/// - **Arbiter**: the primary publishes `arbiterNonce(key:session:)` in its arbiter before it
///   listens; the backup, once it has learnt the session in the handshake, reads the nonce back
///   from its own arbiter. A separate directory (or another etcd) does not have it. The value is
///   bound to the pair's key and to the session (16 fresh random bytes per primary run), so only
///   a replica of this pair, in this run, could have written it.
/// - **Disk**: the backup opens the image with the pair's locks and tests (F_OFD_GETLK) that the
///   primary holds its locks on the same file (`HostDisk.isOpenByPartner`). A copy of the image
///   is another file: nobody holds its locks.
///
/// What is not shared is named in a sealed refusal sent before `ready`, so the primary logs it
/// and keeps waiting instead of starting to replicate.
public enum SharingProof {
    /// The value the primary publishes in the arbiter for `session`.
    public static func arbiterNonce(key: ReplicationKey, session: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array("lockstep arbiter proof v1".utf8) + session,
                                              using: key.symmetricKey))
    }

    /// The backup's check of the arbiter: the refusal naming what is not shared, or nil.
    public static func checkArbiter(_ arbiter: Arbiter, key: ReplicationKey, session: [UInt8]) -> String? {
        let found: [UInt8]?
        do { found = try arbiter.readNonce() } catch {
            return "the arbiter cannot be read to prove it is shared: \(error)"
        }
        guard found == arbiterNonce(key: key, session: session) else {
            return "the arbiter is not shared: \(arbiter.proofLocation) does not hold the primary's nonce (give both replicas the same --arbiter, on storage or an etcd both reach)"
        }
        return nil
    }

    /// The backup's check of the disk image it opened with the pair's locks: the refusal naming
    /// what is not shared, or nil (also when the file system cannot tell: `warn` hears it).
    public static func checkDisk(_ disk: HostDisk, session: [UInt8], warn: (String) -> Void) -> String? {
        switch disk.isOpenByPartner(ofPair: session) {
        case true?:
            return nil
        case false?:
            return "the disk image is not shared: the primary does not have \(disk.path) open (a copy is not the same disk: give both replicas the same image, on storage both see)"
        case nil:
            warn("warning: \(disk.path): the file system has no OFD locks, so that the image is the primary's cannot be proven")
            return nil
        }
    }
}
