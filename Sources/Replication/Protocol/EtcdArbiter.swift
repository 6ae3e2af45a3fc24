import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// The arbiter in etcd, for hosts that share no storage. The pair's keys, under
/// `PREFIX/SESSION/` (SESSION in hexadecimal):
///
/// - `primary`: created by the primary when it starts, on a lease of `requestedTTL` seconds
///   (etcd may raise it to its minimum) that it renews every third of the TTL. Its create
///   revision is the primary's fencing token.
/// - `nonce`: the proof-of-sharing nonce the primary publishes, on the same lease.
/// - `live`: created, without a lease, by the replica that goes live; its create revision is
///   that replica's fencing token. The backup's transaction requires `primary` to be gone (its
///   lease expired), the primary's requires its own `primary` to still stand.
///
/// `EtcdStanding` holds the rules; this class makes the requests, retrying while etcd cannot be
/// reached and reporting what it waits for.
final class EtcdArbiter: Sendable {
    let endpoint: EtcdEndpoint
    let client: EtcdClient
    let sessionPrefix: String
    let primaryKey: String
    let nonceKey: String
    let liveKey: String
    /// The pair's membership: written once per generation (its version is the generation).
    let membersKey: String
    /// The winner's announcement of where it takes new backups, without a lease.
    let leaderKey: String
    private let report: @Sendable (ArbiterWait?) -> Void

    private let standing = Mutex(EtcdStanding())
    private let keeper = Mutex<RepeatedTask?>(nil)
    private let lastReport = Mutex<ArbiterWait?>(nil)
    private let clock = ContinuousClock()

    /// The lease TTL the primary asks for, in seconds (etcd's default minimum is 2 s anyway:
    /// 1.5 × its election timeout, rounded up).
    static let requestedTTL: Int64 = 2
    /// The longest TTL accepted from etcd's answer: a larger one is a malformed answer.
    static let maximumTTL: Int64 = 60
    /// How often (in seconds) the backup asks again while the primary's lease runs.
    static let pollInterval = 0.2

    init(endpoint: EtcdEndpoint, session: [UInt8], report: @escaping @Sendable (ArbiterWait?) -> Void) {
        self.endpoint = endpoint
        client = EtcdClient(endpoint: endpoint)
        sessionPrefix = endpoint.prefix + "/" + session.map { String(format: "%02x", $0) }.joined() + "/"
        primaryKey = sessionPrefix + "primary"
        nonceKey = sessionPrefix + "nonce"
        liveKey = sessionPrefix + "live"
        membersKey = sessionPrefix + "members"
        leaderKey = sessionPrefix + "leader"
        self.report = report
    }

    deinit { keeper.withLock { $0?.cancel() } }

    var claimLocation: String { "etcd://\(endpoint.urlHost):\(endpoint.port)\(liveKey)" }

    // MARK: - Registration (the primary)

    func register(claimant: String) throws(ArbiterError) -> FencingToken {
        while true {
            if standing.withLock({ $0.lease }) == nil { try grant() }
            guard let lease = standing.withLock({ $0.lease }) else { continue }
            let request = EtcdTransactionRequest(
                compare: [EtcdCompare(key: EtcdBytes(primaryKey), createRevision: EtcdInteger(0))],
                success: [.put(EtcdPutRequest(key: EtcdBytes(primaryKey), value: EtcdBytes(claimant), lease: EtcdInteger(lease)))],
                failure: [.range(EtcdRangeRequest(key: EtcdBytes(primaryKey)))])
            let answer: EtcdTransactionResponse
            do throws(EtcdError) {
                answer = try retrying { () throws(EtcdError) in
                    try client.callAndWait("/v3/kv/txn", request, as: EtcdTransactionResponse.self)
                }
            } catch .leaseNotFound {
                // The lease expired before the key was made (etcd was slow): start over.
                standing.withLock { $0 = EtcdStanding() }
                continue
            } catch {
                throw ArbiterError.refused(endpoint: endpoint.description, reason: error.description)
            }
            let token: FencingToken
            if answer.succeeded == true, let revision = answer.header?.revision?.value, revision > 0 {
                token = FencingToken(UInt64(revision))
            } else if let existing = answer.found(0), existing.lease?.value == lease,
                      let created = existing.createRevision?.value, created > 0
            {
                token = FencingToken(UInt64(created))
            } else {
                throw ArbiterError.sessionTaken(endpoint: endpoint.description)
            }
            standing.withLock { $0.registered(token: token) }
            startKeeper()
            return token
        }
    }

    /// Grants this replica's lease.
    private func grant() throws(ArbiterError) {
        var sentAt = clock.now
        let answer = try retryingOrRefused { () throws(EtcdError) in
            sentAt = clock.now
            return try client.callAndWait("/v3/lease/grant", EtcdLeaseGrantRequest(ttl: EtcdInteger(Self.requestedTTL)),
                                   as: EtcdLeaseGrantResponse.self)
        }
        guard let lease = answer.id?.value, lease != 0, let ttl = answer.ttl?.value, (1...Self.maximumTTL).contains(ttl) else {
            throw .refused(endpoint: endpoint.description, reason: answer.error.map { "lease not granted: \($0.prefix(200))" } ?? "a lease grant without a usable ID and TTL")
        }
        standing.withLock { $0.granted(lease: lease, ttl: ttl, sentAt: sentAt) }
    }

    /// Renews the lease every third of its TTL on an event loop, for as long as it stands.
    private func startKeeper() {
        guard case .registered(_, let ttl, _, _) = standing.withLock({ $0.state }) else { return }
        let interval = TimeAmount.milliseconds(ttl * 1000 / 3)
        let loop = MultiThreadedEventLoopGroup.singleton.any()
        let task = loop.scheduleRepeatedAsyncTask(
            initialDelay: interval, delay: interval
        ) { [weak self] task in
            guard let self, let lease = self.standing.withLock({ $0.lease }) else {
                task.cancel()
                return loop.makeSucceededVoidFuture()
            }
            let sentAt = self.clock.now
            return self.client.call("/v3/lease/keepalive", EtcdLeaseRequest(id: EtcdInteger(lease)),
                                    as: EtcdLeaseKeepAliveResponse.self)
                .map { answer in
                    self.standing.withLock { $0.renewed(ttl: answer.result?.ttl?.value ?? 0, sentAt: sentAt) }
                    if self.standing.withLock({ $0.isLost }) { task.cancel() }
                }
                .recover { _ in }  // no answer: the lease lapses on its own, by this replica's clock
        }
        keeper.withLock {
            $0?.cancel()
            $0 = task
        }
    }

    /// Stops renewing the lease, as a replica that died or froze would (a test seam).
    func stopRenewing() {
        keeper.withLock {
            $0?.cancel()
            $0 = nil
        }
    }

    func publish(nonce: [UInt8]) throws(ArbiterError) {
        guard let lease = standing.withLock({ $0.lease }) else {
            throw .refused(endpoint: endpoint.description, reason: "a nonce is published by a registered primary")
        }
        let request = EtcdPutRequest(key: EtcdBytes(nonceKey), value: EtcdBytes(nonce), lease: EtcdInteger(lease))
        do throws(EtcdError) {
            _ = try retrying { () throws(EtcdError) in
                try client.callAndWait("/v3/kv/put", request, as: EtcdIgnoredResponse.self)
            }
        } catch .leaseNotFound {
            standing.withLock { $0.renewed(ttl: 0, sentAt: clock.now) }
            throw .refused(endpoint: endpoint.description, reason: "this replica's lease expired")
        } catch {
            throw .refused(endpoint: endpoint.description, reason: error.description)
        }
    }

    func readNonce() throws(ArbiterError) -> [UInt8]? {
        let answer = try retryingOrRefused { () throws(EtcdError) in
            try client.callAndWait("/v3/kv/range", EtcdRangeRequest(key: EtcdBytes(nonceKey)), as: EtcdRangeResponse.self)
        }
        guard let bytes = answer.kvs?.first?.value?.bytes, bytes.count <= Arbiter.maximumNonceBytes else { return nil }
        return bytes
    }

    // MARK: - The winner's announcement

    func announceLeader(_ bytes: [UInt8]) throws(ArbiterError) {
        let request = EtcdPutRequest(key: EtcdBytes(leaderKey), value: EtcdBytes(bytes), lease: EtcdInteger(0))
        _ = try retryingOrRefused { () throws(EtcdError) in
            try client.callAndWait("/v3/kv/put", request, as: EtcdIgnoredResponse.self)
        }
    }

    func readAnnouncement() throws(ArbiterError) -> [UInt8]? {
        let answer = try retryingOrRefused { () throws(EtcdError) in
            try client.callAndWait("/v3/kv/range", EtcdRangeRequest(key: EtcdBytes(leaderKey)), as: EtcdRangeResponse.self)
        }
        return answer.kvs?.first?.value?.bytes
    }

    // MARK: - Going live

    /// The primary: writes the membership key once more, without a lease (it outlives the
    /// primary); its version becomes `generation`.
    func recordMembership(_ generation: UInt64) throws(ArbiterError) {
        let request = EtcdPutRequest(key: EtcdBytes(membersKey), value: EtcdBytes("\(generation)"), lease: EtcdInteger(0))
        _ = try retryingOrRefused { () throws(EtcdError) in
            try client.callAndWait("/v3/kv/put", request, as: EtcdIgnoredResponse.self)
        }
    }

    func acquire(claimant: String, membership: UInt64?) throws(ArbiterError) -> Arbiter.Outcome {
        switch standing.withLock({ $0.state }) {
        case .live: return .won
        case .lost(let holder): return .lost(holder: holder)
        case .unclaimed, .leased, .registered: break
        }
        let expectedPrimary = Int64(standing.withLock { $0.registration?.revision ?? 0 })
        // A backup's claim holds only while no later membership generation than its own was
        // recorded: in the same transaction, so no generation can slip in between.
        let fence = membership.map { [EtcdCompare(key: EtcdBytes(membersKey), versionBelow: EtcdInteger(Int64(clamping: $0) &+ 1))] } ?? []
        let request = EtcdTransactionRequest(
            compare: [EtcdCompare(key: EtcdBytes(liveKey), createRevision: EtcdInteger(0)),
                      EtcdCompare(key: EtcdBytes(primaryKey), createRevision: EtcdInteger(expectedPrimary))] + fence,
            success: [.put(EtcdPutRequest(key: EtcdBytes(liveKey), value: EtcdBytes(claimant), lease: EtcdInteger(0)))],
            failure: [.range(EtcdRangeRequest(key: EtcdBytes(liveKey))), .range(EtcdRangeRequest(key: EtcdBytes(primaryKey))),
                      .range(EtcdRangeRequest(key: EtcdBytes(membersKey)))])
        var reportedLease: Int64?
        while true {
            let answer = try retryingOrRefused { () throws(EtcdError) in
                try client.callAndWait("/v3/kv/txn", request, as: EtcdTransactionResponse.self)
            }
            if answer.succeeded != true, answer.found(0) == nil, let membership,
               let recorded = answer.found(2)?.version?.value, recorded > 0, UInt64(recorded) > membership
            {
                standing.withLock { $0.lost(holder: "membership") }
                say(nil)
                return Arbiter.fenced(recorded: UInt64(recorded), own: membership)
            }
            let decision = EtcdStanding.decide(
                succeeded: answer.succeeded == true, revision: answer.header?.revision?.value,
                live: answer.found(0), primary: answer.found(1), expectedPrimary: expectedPrimary, claimant: claimant)
            switch decision {
            case .won(let token):
                standing.withLock { $0.won(token: token) }
                say(nil)
                return .won
            case .lost(let holder):
                standing.withLock { $0.lost(holder: holder) }
                say(nil)
                return .lost(holder: holder)
            case .primaryLeaseRuns(let lease):
                if reportedLease != lease {
                    reportedLease = lease
                    say(.primaryLease(seconds: remainingSeconds(of: lease)))
                }
            case .askAgain:
                break
            }
            Thread.sleep(forTimeInterval: Self.pollInterval)
        }
    }

    /// The seconds lease `lease` still runs (its TTL at most, if etcd does not say).
    private func remainingSeconds(of lease: Int64) -> Int64 {
        let answer = try? client.callAndWait("/v3/lease/timetolive", EtcdLeaseRequest(id: EtcdInteger(lease)),
                                             as: EtcdLeaseTimeToLiveResponse.self)
        return max(0, min(answer?.ttl?.value ?? Self.requestedTTL, Self.maximumTTL))
    }

    // MARK: - Entitlement

    var entitlement: Entitlement { standing.withLock { $0 }.entitlement(at: clock.now) }

    /// Renews the registration's lease now. An answer slower than the lease's validity leaves
    /// it lapsed, and the renewal is asked for again.
    func revalidate() throws(ArbiterError) -> Entitlement {
        while true {
            guard let lease = standing.withLock({ $0.registration == nil ? nil : $0.lease }) else { return entitlement }
            var sentAt = clock.now
            do throws(EtcdError) {
                let answer = try retrying { () throws(EtcdError) in
                    sentAt = clock.now
                    return try client.callAndWait("/v3/lease/keepalive", EtcdLeaseRequest(id: EtcdInteger(lease)),
                                                  as: EtcdLeaseKeepAliveResponse.self)
                }
                standing.withLock { $0.renewed(ttl: answer.result?.ttl?.value ?? 0, sentAt: sentAt) }
            } catch .leaseNotFound {
                standing.withLock { $0.renewed(ttl: 0, sentAt: sentAt) }
            } catch {
                throw ArbiterError.refused(endpoint: endpoint.description, reason: error.description)
            }
            let now = entitlement
            if case .lapsed = now { continue }
            return now
        }
    }

    /// Who holds `live`, in one request; nil if nobody, or if etcd does not answer.
    func liveHolder() -> String? {
        let answer = try? client.callAndWait("/v3/kv/range", EtcdRangeRequest(key: EtcdBytes(liveKey)),
                                             as: EtcdRangeResponse.self)
        return answer?.kvs?.first?.value?.text
    }

    /// Deletes the session's keys and revokes the lease (one attempt each).
    func release() {
        stopRenewing()
        Self.deleteKeys(using: client, prefix: sessionPrefix)
        if let lease = standing.withLock({ $0.lease }) {
            _ = try? client.callAndWait("/v3/lease/revoke", EtcdLeaseRequest(id: EtcdInteger(lease)),
                                        as: EtcdIgnoredResponse.self)
        }
    }

    /// Deletes every key that starts with `prefix` (one attempt).
    static func deleteKeys(_ endpoint: EtcdEndpoint, prefix: String) {
        deleteKeys(using: EtcdClient(endpoint: endpoint), prefix: prefix)
    }

    private static func deleteKeys(using client: EtcdClient, prefix: String) {
        var end = Array(prefix.utf8)
        guard let last = end.last, last < 0xFF else { return }
        end[end.count - 1] = last + 1  // the first key after every key with this prefix
        _ = try? client.callAndWait("/v3/kv/deleterange",
                                    EtcdDeleteRangeRequest(key: EtcdBytes(prefix), rangeEnd: EtcdBytes(end)),
                                    as: EtcdIgnoredResponse.self)
    }

    // MARK: - Retrying

    /// Runs `operation` until it gives an answer: while etcd cannot be reached or cannot serve,
    /// reports `.unreachable` (once per reason) and tries again after a back-off growing from
    /// 100 ms to 1 s. Any other failure is thrown.
    private func retrying<T>(_ operation: () throws(EtcdError) -> T) throws(EtcdError) -> T {
        var delay = 0.1
        while true {
            do {
                let result = try operation()
                say(nil)
                return result
            } catch where error.isTransient {
                say(.unreachable("etcd at \(endpoint.urlHost):\(endpoint.port): \(error)"))
                Thread.sleep(forTimeInterval: delay)
                delay = min(delay * 2, 1)
            }
        }
    }

    private func retryingOrRefused<T>(_ operation: () throws(EtcdError) -> T) throws(ArbiterError) -> T {
        do { return try retrying(operation) } catch {
            throw .refused(endpoint: endpoint.description, reason: error.description)
        }
    }

    /// Tells the replica what it waits for, once per change.
    private func say(_ wait: ArbiterWait?) {
        let changed = lastReport.withLock { last in
            defer { last = wait }
            return last != wait
        }
        if changed { report(wait) }
    }

    /// Checks, when a replica starts, that etcd answers (one request, no retry).
    static func checkReachable(_ endpoint: EtcdEndpoint) throws(ArbiterError) {
        let client = EtcdClient(endpoint: endpoint)
        do throws(EtcdError) {
            _ = try client.callAndWait("/v3/kv/range", EtcdRangeRequest(key: EtcdBytes(endpoint.prefix + "/")),
                                       as: EtcdRangeResponse.self)
        } catch .unavailable(let reason) {
            throw .unreachable(endpoint: endpoint.description, reason: reason)
        } catch {
            throw .refused(endpoint: endpoint.description, reason: error.description)
        }
    }
}
