/// A replica's standing with an etcd arbiter, by its own monotonic clock: a state machine fed
/// with what etcd answered and when each question was sent, so that its rules are tested
/// without etcd (`EtcdArbiter` performs the requests).
///
/// ```
///              granted                registered(token)
///  [unclaimed] -------> [leased] ----------------------> [registered] --renewed(ttl > 0)--+
///       |                                                  |    |  ^                     |
///       |                                                  |    |  +---------------------+
///       |  won(token)                          won(token)  |    | renewed(ttl <= 0): the
///       +-------------------> [live] <---------------------+    | lease expired on etcd
///       |                                                       v
///       +--------------- lost(holder) -----------------------> [lost]
/// ```
///
/// A registration is entitled to emit until `validUntil`: the time the grant or keep-alive
/// request was SENT plus the TTL etcd answered, less a margin (`margin(for:)`). etcd starts the
/// TTL when it receives the request, after it was sent, so etcd cannot expire the lease, and
/// therefore cannot let the backup go live, before this replica stops regarding it as valid,
/// as long as the two clocks' rates differ by less than the margin. A claim won (`live`) is
/// permanent: the key it created is never removed while either replica may run.
struct EtcdStanding: Equatable, Sendable {
    typealias Instant = ContinuousClock.Instant

    enum State: Equatable, Sendable {
        case unclaimed
        /// A lease exists, no key is held on it yet.
        case leased(lease: Int64, ttl: Int64, validUntil: Instant)
        /// The primary's registration: its key lives as long as the lease.
        case registered(lease: Int64, ttl: Int64, token: FencingToken, validUntil: Instant)
        case live(token: FencingToken, lease: Int64?)
        case lost(holder: String)
    }

    private(set) var state = State.unclaimed

    /// What a lapsed primary is told when etcd no longer knows its lease.
    static let expiredHolder = "the backup (this primary's lease expired on the arbiter, so the backup may go live)"

    /// How long before the end of its TTL a replica stops trusting its lease: a tenth of the TTL,
    /// at least 100 ms (clock-rate differences are parts per million; the margin also covers
    /// the time between this replica's check and its output, in practice microseconds).
    static func margin(for ttl: Int64) -> Duration {
        max(Duration.seconds(ttl) / 10, .milliseconds(100))
    }

    static func validUntil(sentAt: Instant, ttl: Int64) -> Instant {
        sentAt + .seconds(ttl) - margin(for: ttl)
    }

    /// The lease this replica holds, if any.
    var lease: Int64? {
        switch state {
        case .leased(let lease, _, _), .registered(let lease, _, _, _): lease
        case .live(_, let lease): lease
        case .unclaimed, .lost: nil
        }
    }

    /// The token of the primary's registration, while it stands.
    var registration: FencingToken? {
        if case .registered(_, _, let token, _) = state { return token }
        return nil
    }

    /// etcd granted lease `lease` with `ttl` seconds, asked for at `sentAt`.
    mutating func granted(lease: Int64, ttl: Int64, sentAt: Instant) {
        guard case .unclaimed = state else { return }
        state = .leased(lease: lease, ttl: ttl, validUntil: Self.validUntil(sentAt: sentAt, ttl: ttl))
    }

    /// The registration key was created on the lease at revision `token`.
    mutating func registered(token: FencingToken) {
        guard case .leased(let lease, let ttl, let validUntil) = state else { return }
        state = .registered(lease: lease, ttl: ttl, token: token, validUntil: validUntil)
    }

    /// A keep-alive sent at `sentAt` answered `ttl` seconds (0 or less: etcd no longer knows the
    /// lease). A TTL above the granted one is taken as the granted one (a hostile answer cannot
    /// stretch the lease), and an older answer never shortens a newer one.
    mutating func renewed(ttl answered: Int64, sentAt: Instant) {
        switch state {
        case .leased(let lease, let ttl, let validUntil):
            if answered <= 0 {
                state = .unclaimed
            } else {
                let renewed = Self.validUntil(sentAt: sentAt, ttl: min(answered, ttl))
                state = .leased(lease: lease, ttl: ttl, validUntil: max(validUntil, renewed))
            }
        case .registered(let lease, let ttl, let token, let validUntil):
            if answered <= 0 {
                state = .lost(holder: Self.expiredHolder)
            } else {
                let renewed = Self.validUntil(sentAt: sentAt, ttl: min(answered, ttl))
                state = .registered(lease: lease, ttl: ttl, token: token, validUntil: max(validUntil, renewed))
            }
        case .unclaimed, .live, .lost:
            break
        }
    }

    /// This replica created the live key at revision `token`.
    mutating func won(token: FencingToken) {
        guard !isLost else { return }
        state = .live(token: token, lease: lease)
    }

    /// The other replica holds the arbiter, or this one's registration is gone.
    mutating func lost(holder: String) {
        if case .live = state { return }
        state = .lost(holder: holder)
    }

    var isLost: Bool {
        if case .lost = state { return true }
        return false
    }

    func entitlement(at now: Instant) -> Entitlement {
        switch state {
        case .unclaimed, .leased:
            return .unclaimed
        case .registered(_, _, let token, let validUntil):
            return now < validUntil ? .entitled(token, until: validUntil) : .lapsed(token)
        case .live(let token, _):
            return .entitled(token, until: nil)
        case .lost(let holder):
            return .lost(holder: holder)
        }
    }

    /// What a going-live transaction's answer means. The transaction compared `live`'s create
    /// revision with 0 and `primary`'s with `expectedPrimary` (the replica's own registration for
    /// the primary, 0 for the backup: the primary's key must be gone); on failure it read
    /// `live`, then `primary`.
    enum Decision: Equatable, Sendable {
        case won(FencingToken)
        case lost(holder: String)
        /// The primary's registration still stands on lease `lease`: wait for it to expire.
        case primaryLeaseRuns(lease: Int64)
        /// The answer cannot be placed (a malformed or racing answer): ask again.
        case askAgain
    }

    static func decide(succeeded: Bool, revision: Int64?, live: EtcdKeyValue?, primary: EtcdKeyValue?,
                       expectedPrimary: Int64, claimant: String) -> Decision
    {
        if succeeded {
            guard let revision, revision > 0 else { return .askAgain }
            return .won(FencingToken(UInt64(revision)))
        }
        if let live {
            let holder = live.value?.text ?? "unknown"
            // An earlier attempt of ours that succeeded, whose answer was lost.
            if holder == Arbiter.printable(Array(claimant.utf8)), let created = live.createRevision?.value, created > 0 {
                return .won(FencingToken(UInt64(created)))
            }
            return .lost(holder: holder)
        }
        if expectedPrimary != 0 {
            // The primary: its registration must still stand for it to go on alone.
            guard let primary, primary.createRevision?.value == expectedPrimary else {
                return .lost(holder: expiredHolder)
            }
            return .askAgain
        }
        guard let primary else { return .askAgain }
        return .primaryLeaseRuns(lease: primary.lease?.value ?? 0)
    }
}
