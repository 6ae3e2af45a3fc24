import Foundation
import Hypervisor

/// The arbiter of one pair, as one replica sees it: the test-and-set that decides which replica
/// may go on alone when the two lose each other, as VMware FT does it, behind one interface with
/// two backends (`ArbiterSpecification`):
///
/// - `FileArbiter`: `O_CREAT|O_EXCL` of a file on storage both replicas share.
/// - `EtcdArbiter`: a compare-and-swap on a key of the session in etcd, with a lease the primary
///   keeps alive while it replicates.
///
/// What a replica does with it:
///
/// | moment | call | file | etcd |
/// |---|---|---|---|
/// | primary starts | `register(claimant:)` | nothing to hold; token 1 | grants a lease, creates `PREFIX/SESSION/primary` on it; token = its revision |
/// | handshake | `publish(nonce:)` / `readNonce()` | `.lockstep-arbiter-SESSION.nonce` | `PREFIX/SESSION/nonce`, on the primary's lease |
/// | before each output | `entitlement`, then `revalidate()` if `.lapsed` | a stat of the claim file | the lease's validity by this replica's own monotonic clock, no request |
/// | going live | `acquire(claimant:)` | exclusive create of `.lockstep-arbiter-SESSION`; token 2 | transaction: `live` absent and `primary` as expected, then create `live`; token = its revision |
/// | after both exited | `release()` | removes the files | deletes the session's keys, revokes the lease |
///
/// Going live is possible for the backup only once the primary can no longer emit: with files,
/// because the primary stats the claim file before each output; with etcd, because the backup's
/// transaction requires the primary's lease-bound key to be gone, which happens only after the
/// lease expired on etcd, after the primary stopped regarding it as valid. A primary goes on
/// alone only while its own registration still stands. Whoever wins holds the arbiter for the
/// rest of the session: nothing a replica does removes the claim (`release` is for `lockstep
/// pair` or the operator, once neither replica runs), so a primary frozen past the timeout
/// always finds it taken when it wakes. The fencing token grows with each claim (the
/// registration's, then the winner's), so storage that records tokens can refuse a writer
/// with an older one.
///
/// While etcd cannot be reached, operations retry with back-off and the replica is told
/// "waiting for the arbiter" (`ArbiterWait`) instead of guessing; an answer that cannot become
/// right by retrying is an `ArbiterError`.
public final class Arbiter: Sendable {
    /// The outcome of `acquire`.
    public enum Outcome: Equatable, Sendable {
        case won
        /// Another replica holds it; the text is what it wrote ("backup pid 1234").
        case lost(holder: String)
    }

    enum Backend: Sendable {
        case file(FileArbiter)
        case etcd(EtcdArbiter)
    }

    let backend: Backend

    /// The file arbiter for `session`, in `directory`.
    public convenience init(directory: String, session: [UInt8]) {
        self.init(.directory(directory), session: session)
    }

    /// The arbiter `specification` names, for `session`; `report` hears each change in what the
    /// arbiter waits for (nil once it answers again).
    public init(_ specification: ArbiterSpecification, session: [UInt8],
                report: @escaping @Sendable (ArbiterWait?) -> Void = { _ in })
    {
        switch specification {
        case .directory(let directory):
            backend = .file(FileArbiter(directory: directory, session: session))
        case .etcd(let endpoint):
            backend = .etcd(EtcdArbiter(endpoint: endpoint, session: session, report: report))
        }
    }

    /// Where the claim lives: the file's path, or the etcd key's URL (for messages, and for
    /// `lockstep pair`'s clean-up of a file).
    public var path: String {
        switch backend {
        case .file(let file): file.path
        case .etcd(let etcd): etcd.claimLocation
        }
    }

    /// Where the proof-of-sharing nonce lives (for messages).
    public var proofLocation: String {
        switch backend {
        case .file(let file): file.noncePath
        case .etcd(let etcd): "etcd://\(etcd.endpoint.urlHost):\(etcd.endpoint.port)\(etcd.nonceKey)"
        }
    }

    /// The primary, before replicating: registers as the pair's running replica.
    @discardableResult
    public func register(claimant: String) throws(ArbiterError) -> FencingToken {
        switch backend {
        case .file(let file): file.register()
        case .etcd(let etcd): try etcd.register(claimant: claimant)
        }
    }

    /// The primary: leaves `nonce` where the backup must read it back (proof that both use the
    /// same arbiter). At most `maximumNonceBytes`.
    public func publish(nonce: [UInt8]) throws(ArbiterError) {
        precondition(nonce.count <= Self.maximumNonceBytes, "a nonce of \(nonce.count) bytes")
        switch backend {
        case .file(let file): try file.publish(nonce: nonce)
        case .etcd(let etcd): try etcd.publish(nonce: nonce)
        }
    }

    /// The backup: the nonce the primary published, or nil if there is none (or it is not a
    /// nonce: longer than `maximumNonceBytes`, or not hexadecimal in a file).
    public func readNonce() throws(ArbiterError) -> [UInt8]? {
        switch backend {
        case .file(let file): try file.readNonce()
        case .etcd(let etcd): try etcd.readNonce()
        }
    }

    public static let maximumNonceBytes = 64

    /// The primary, as it exits: removes the nonce it published (the file; etcd's goes with the
    /// primary's lease). The claim, if any, stays.
    public func withdrawNonce() {
        switch backend {
        case .file(let file): file.withdrawNonce()
        case .etcd: break
        }
    }

    /// The replica that went live, once it listens for new backups (`--lead-on`): leaves where
    /// it takes them (`HOST:PORT`, the host as a joiner on another host dials it) where the
    /// other replicas of the session look for it, replacing an older announcement. File: a
    /// `.leader` file next to the claim, written and renamed over; etcd: `PREFIX/SESSION/leader`,
    /// without a lease (it lasts as long as the claim). At most `maximumAnnouncementBytes`.
    public func announceLeader(_ address: HostPort) throws(ArbiterError) {
        let bytes = Array(address.description.utf8)
        precondition(address.host != nil && bytes.count < Self.maximumAnnouncementBytes, "announcing \(address)")
        switch backend {
        case .file(let file): try file.announceLeader(bytes + [0x0A])
        case .etcd(let etcd): try etcd.announceLeader(bytes)
        }
    }

    /// A backup that lost the arbiter: where the winner takes new backups, if it announced it
    /// (nil if nothing is there yet, or what is there is not an announcement: see
    /// `parseAnnouncement`).
    public func readLeader() throws(ArbiterError) -> HostPort? {
        let bytes: [UInt8]? = switch backend {
        case .file(let file): file.readAnnouncement()
        case .etcd(let etcd): try etcd.readAnnouncement()
        }
        return bytes.flatMap(Self.parseAnnouncement)
    }

    public static let maximumAnnouncementBytes = 300

    /// An announcement read back from the arbiter (hostile: anyone may write there): at most
    /// `maximumAnnouncementBytes`, printable ASCII without spaces but for one final newline, a
    /// `HOST:PORT` or `[IPV6]:PORT` with a host and a port from 1 to 65535. Anything else is
    /// no announcement.
    static func parseAnnouncement(_ bytes: [UInt8]) -> HostPort? {
        guard bytes.count <= maximumAnnouncementBytes else { return nil }
        let line = bytes.last == 0x0A ? bytes.dropLast() : bytes[...]
        guard !line.isEmpty, line.allSatisfy({ (0x21...0x7E).contains($0) }) else { return nil }
        guard case .success(let address) = HostPort.parse(String(decoding: line, as: UTF8.self)),
              let host = address.host, !host.isEmpty, (1...65535).contains(address.port)
        else { return nil }
        return address
    }

    /// Test-and-set: claims the arbiter for `claimant` unless someone already has. With etcd,
    /// waits (and reports it) while etcd is unreachable or the primary's lease still runs.
    /// A backup names the generation of the pair's membership it belongs to (`membership`): the
    /// claim fails if the primary recorded a later one, which excludes it (it was dropped, and
    /// outputs may have been released without it). The primary names none.
    public func acquire(claimant: String, membership: UInt64? = nil) throws(ArbiterError) -> Outcome {
        switch backend {
        case .file(let file): try file.acquire(claimant: claimant, membership: membership)
        case .etcd(let etcd): try etcd.acquire(claimant: claimant, membership: membership)
        }
    }

    /// The primary, after it dropped a backup and before it releases any output without it:
    /// records `generation` of the pair's membership (the backups that follow learnt it from
    /// the primary's stream first). Generations only grow; none recorded counts as 0.
    public func recordMembership(_ generation: UInt64) throws(ArbiterError) {
        switch backend {
        case .file(let file): try file.recordMembership(generation)
        case .etcd(let etcd): try etcd.recordMembership(generation)
        }
    }

    /// What `acquire` answers a backup that a later membership generation excludes.
    static func fenced(recorded: UInt64, own: UInt64) -> Outcome {
        .lost(holder: "the pair's membership generation \(recorded) (this replica belongs to generation \(own): the primary dropped it)")
    }

    /// What this replica may do now, without asking anyone but its own clock (etcd) or the
    /// shared directory (file): to be checked before every output.
    public var entitlement: Entitlement {
        switch backend {
        case .file(let file): file.entitlement
        case .etcd(let etcd): etcd.entitlement
        }
    }

    /// After `entitlement` said `.lapsed`: asks the arbiter (etcd: renews the lease, which
    /// fails for good once it expired), waiting while it cannot be reached.
    public func revalidate() throws(ArbiterError) -> Entitlement {
        switch backend {
        case .file(let file): file.entitlement
        case .etcd(let etcd): try etcd.revalidate()
        }
    }

    /// The fencing token of this replica's claim, if it holds one.
    public var token: FencingToken? {
        switch entitlement {
        case .entitled(let token, _), .lapsed(let token): token
        case .lost, .unclaimed: nil
        }
    }

    /// Whether this replica must not emit because the arbiter is, or may be, held by the other:
    /// the check today's primary makes before an output. File: the claim file exists. etcd: this
    /// replica is not entitled (a lapsed lease is revalidated first, waiting while etcd is
    /// unreachable); a replica that registered nothing asks whether `live` exists.
    public var isClaimed: Bool {
        switch backend {
        case .file(let file):
            return file.isClaimed
        case .etcd(let etcd):
            switch etcd.entitlement {
            case .entitled: return false
            case .lost: return true
            case .lapsed:
                guard let renewed = try? etcd.revalidate() else { return true }
                if case .entitled = renewed { return false }
                return true
            case .unclaimed:
                return etcd.liveHolder() != nil
            }
        }
    }

    /// Who holds the arbiter, if anyone does (etcd: one request; nil if it does not answer).
    public var holder: String? {
        switch backend {
        case .file(let file): file.holder
        case .etcd(let etcd): etcd.liveHolder()
        }
    }

    /// Removes the claim and the nonce, once neither replica can run any more (`lockstep pair`
    /// does, after both have exited). A replica never calls it itself: a primary frozen past the
    /// timeout may wake after the backup finished, and must still find the arbiter claimed.
    public func release() {
        switch backend {
        case .file(let file): file.release()
        case .etcd(let etcd): etcd.release()
        }
    }

    /// Releases every session of one `lockstep pair` run once none of its replicas runs: the
    /// first session and those a replica that led after a failover made (they keep the first's
    /// first four bytes, `ImageLock`'s slot). File: the claim and nonce files whose names start
    /// with those bytes; etcd: every key under `PREFIX/` and those 8 hexadecimal digits (the
    /// leases then expire on their own).
    public static func releaseSessions(_ specification: ArbiterSpecification, sharingSlotWith session: [UInt8]) {
        let stem = session.prefix(4).map { String(format: "%02x", $0) }.joined()
        switch specification {
        case .directory(let directory):
            let prefix = ".lockstep-arbiter-" + stem
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            for name in names where name.hasPrefix(prefix) {
                unlink((directory as NSString).appendingPathComponent(name))
            }
        case .etcd(let endpoint):
            EtcdArbiter.deleteKeys(endpoint, prefix: endpoint.prefix + "/" + stem)
        }
    }

    /// A claimant's name read back from the arbiter (hostile: anyone may write there) as one
    /// line of printable text: surrounding white space trimmed, control characters as "?", at
    /// most `limit` characters.
    static func printable(_ bytes: [UInt8], limit: Int = 200) -> String {
        let text = String(decoding: bytes.prefix(limit * 4), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let characters = text.unicodeScalars.prefix(limit)
            .map { $0.properties.generalCategory == .control ? "?" : Character($0) }
        return String(characters)
    }

    /// Checks that an arbiter file can be created in `directory`.
    public static func checkDirectory(_ directory: String) throws(ArbiterError) {
        try FileArbiter.checkDirectory(directory)
    }
}

/// A claim's place in the arbiter's order of claims: a later claim has a larger token (etcd:
/// the revision at which the key was created; file: 1 for the primary's registration, 2 for
/// the winner's claim).
public struct FencingToken: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let revision: UInt64

    public init(_ revision: UInt64) { self.revision = revision }

    public static func < (a: FencingToken, b: FencingToken) -> Bool { a.revision < b.revision }

    public var description: String { "\(revision)" }
}

/// What a replica may do now, as far as the arbiter is concerned.
public enum Entitlement: Sendable, Equatable {
    /// May perform outputs, until `until` by its own monotonic clock (nil: no lease; the file
    /// backend's answer, valid for the stat it came from).
    case entitled(FencingToken, until: ContinuousClock.Instant?)
    /// Its lease ran out by its own clock: `revalidate()` before any output.
    case lapsed(FencingToken)
    /// The other replica holds the arbiter, or this one's lease expired on the arbiter: it must
    /// never emit again.
    case lost(holder: String)
    /// Holds no claim (a backup that is replaying, or a primary that never registered) and
    /// nobody has gone live.
    case unclaimed
}

/// What an arbiter operation is waiting for.
public enum ArbiterWait: Sendable, Equatable, CustomStringConvertible {
    /// etcd does not answer, or cannot serve.
    case unreachable(String)
    /// The backup waits for the primary's lease to expire (at most this many seconds more).
    case primaryLease(seconds: Int64)

    public var description: String {
        switch self {
        case .unreachable(let reason): "waiting for the arbiter: \(reason)"
        case .primaryLease(let seconds):
            "waiting for the arbiter: the primary's lease runs \(seconds) s more before this replica may go live"
        }
    }
}

/// The arbiter cannot be used, for a reason that waiting will not fix.
public enum ArbiterError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A file in the arbiter directory cannot be created or written.
    case directory(path: String, errno: Int32)
    /// etcd cannot be reached when a replica starts.
    case unreachable(endpoint: String, reason: String)
    /// etcd refused a request, or answered something that is not etcd's answer.
    case refused(endpoint: String, reason: String)
    /// The session's keys are held by a registration that is not this replica's.
    case sessionTaken(endpoint: String)

    public var description: String {
        switch self {
        case .directory(let path, let errno):
            let directory = (path as NSString).deletingLastPathComponent
            return "cannot create an arbiter file in \(directory): \(String(cString: strerror(errno))) (choose the arbiter with --arbiter or --arbiter-dir)"
        case .unreachable(let endpoint, let reason):
            return "cannot reach the arbiter at \(endpoint): \(reason)"
        case .refused(let endpoint, let reason):
            return "the arbiter at \(endpoint) cannot be used: \(reason)"
        case .sessionTaken(let endpoint):
            return "the arbiter at \(endpoint) already has this session registered by another replica"
        }
    }
}
