import Foundation
import Hypervisor
import Synchronization
import Testing
import TestSupport

@testable import Replication

func randomSession() -> [UInt8] { (0..<16).map { _ in UInt8.random(in: 0...255) } }

/// Collects what an arbiter reports it waits for.
final class WaitLog: Sendable {
    private let waits = Mutex<[ArbiterWait?]>([])
    var report: @Sendable (ArbiterWait?) -> Void { { [self] wait in waits.withLock { $0.append(wait) } } }
    var all: [ArbiterWait?] { waits.withLock { $0 } }
    func contains(where predicate: (ArbiterWait) -> Bool) -> Bool {
        all.contains { $0.map(predicate) ?? false }
    }
}

/// Runs `body` on a thread of its own; `result` waits for it (at most `timeout` seconds).
final class Background<T: Sendable>: Sendable {
    private let value = Mutex<Result<T, any Error>?>(nil)

    init(_ body: @escaping @Sendable () throws -> T) {
        Thread.detachNewThread { [self] in
            let result = Result { try body() }
            value.withLock { $0 = result }
        }
    }

    var isDone: Bool { value.withLock { $0 != nil } }

    func result(timeout: TimeInterval) throws -> T? {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while Date() < deadline {
            if let result = value.withLock({ $0 }) { return try result.get() }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return nil
    }
}

extension Arbiter {
    /// The etcd backend, for the test seam that stops its renewals.
    var etcd: EtcdArbiter? {
        if case .etcd(let etcd) = backend { return etcd }
        return nil
    }
}

@Suite struct ArbiterSpecificationTests {
    @Test(arguments: [
        ("file:/srv/shared", ArbiterSpecification.directory("/srv/shared")),
        ("etcd://127.0.0.1:2379", .etcd(EtcdEndpoint(host: "127.0.0.1", port: 2379))),
        ("etcd://etcd-1.example:2379/pairs/", .etcd(EtcdEndpoint(host: "etcd-1.example", port: 2379, prefix: "/pairs"))),
        ("etcd://[::1]:23790/a/b", .etcd(EtcdEndpoint(host: "::1", port: 23790, prefix: "/a/b"))),
    ])
    func valid(_ text: String, _ expected: ArbiterSpecification) throws {
        #expect(try ArbiterSpecification(parsing: text) == expected)
    }

    @Test(arguments: [
        ("/srv/shared", "expected file:DIR or etcd://HOST:PORT[/PREFIX]"),
        ("file:", "needs a directory"),
        ("etcd://", "missing :PORT"),
        ("etcd://host", "missing :PORT"),
        ("etcd://:2379", "missing host"),
        ("etcd://host:0", "port must be a number from 1 to 65535"),
        ("etcd://host:70000", "port must be a number from 1 to 65535"),
        ("etcd://host:http", "port must be a number"),
        ("etcd://[::1:2379", "closing bracket"),
        ("etcd://ho st:2379", "not a name or an address"),
        ("etcd://host:2379/a b", "printable ASCII"),
        ("http://host:2379", "expected file:DIR or etcd://"),
    ])
    func invalid(_ text: String, _ reason: String) {
        do {
            _ = try ArbiterSpecification(parsing: text)
            Issue.record("\(text) parsed")
        } catch {
            #expect(error.description.hasPrefix("--arbiter \(text): "))
            #expect(error.description.contains(reason), "\(error.description)")
            #expect(!error.description.contains("\n"))
        }
    }

    @Test func descriptionsRoundTrip() throws {
        for text in ["file:/tmp/x", "etcd://127.0.0.1:2379/lockstep", "etcd://[::1]:1/p"] {
            #expect(try ArbiterSpecification(parsing: text).description == text)
        }
    }

    @Test func anEtcdThatDoesNotAnswerIsOneLineAtStart() throws {
        // Port 1 on loopback: nothing listens there.
        let specification = try ArbiterSpecification(parsing: "etcd://127.0.0.1:1")
        do {
            try specification.check()
            Issue.record("an unreachable etcd passed the check")
        } catch {
            guard case .unreachable = error else { Issue.record("\(error)"); return }
            #expect(error.description.contains("etcd://127.0.0.1:1/lockstep"))
            #expect(!error.description.contains("\n"))
        }
    }
}

@Suite struct FileArbiterTests {
    func directory() throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lockstep-file-arbiter-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }

    @Test func theNonceTheOneReplicaPublishesIsTheOneTheOtherReads() throws {
        let directory = try directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let session = randomSession()
        let primary = Arbiter(directory: directory, session: session)
        let backup = Arbiter(directory: directory, session: session)
        #expect(try backup.readNonce() == nil)
        let nonce = (0..<32).map { _ in UInt8.random(in: 0...255) }
        try primary.publish(nonce: nonce)
        #expect(try backup.readNonce() == nonce)
        // Another directory, or another session, sees nothing: not shared.
        #expect(try Arbiter(directory: try self.directory(), session: session).readNonce() == nil)
        #expect(try Arbiter(directory: directory, session: randomSession()).readNonce() == nil)
        // A nonce file that is not hexadecimal is no nonce.
        try Data("zz\n".utf8).write(to: URL(fileURLWithPath: (primary.path as NSString).appendingPathExtension("nonce")!))
        #expect(try backup.readNonce() == nil)
        primary.release()
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty)
    }

    @Test func entitlementFollowsTheClaimFile() throws {
        let directory = try directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let session = randomSession()
        let primary = Arbiter(directory: directory, session: session)
        let backup = Arbiter(directory: directory, session: session)
        #expect(primary.entitlement == .unclaimed)
        #expect(try primary.register(claimant: "primary pid 1") == FencingToken(1))
        #expect(primary.entitlement == .entitled(FencingToken(1), until: nil))
        #expect(try backup.acquire(claimant: "backup pid 2") == .won)
        #expect(backup.entitlement == .entitled(FencingToken(2), until: nil))
        #expect(backup.token! > FencingToken(1))
        #expect(primary.entitlement == .lost(holder: "backup pid 2"))
        #expect(try primary.revalidate() == .lost(holder: "backup pid 2"))
        #expect(primary.isClaimed)
    }

    @Test func aHostileClaimFileIsReadAsOneBoundedLine() throws {
        let directory = try directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let arbiter = Arbiter(directory: directory, session: randomSession())
        try Data(("evil\u{1B}[2J\nsecond line" + String(repeating: "x", count: 10_000)).utf8)
            .write(to: URL(fileURLWithPath: arbiter.path))
        let holder = try #require(arbiter.holder)
        #expect(!holder.contains("\n") && !holder.contains("\u{1B}"))
        #expect(holder.count <= 200)
        #expect(holder.hasPrefix("evil?[2J?second line"))
    }
}

/// The winner's announcement of where it takes new backups, read back as hostile input.
@Suite struct LeaderAnnouncementTests {
    @Test(arguments: [
        ("127.0.0.1:4711\n", "127.0.0.1", 4711),
        ("replica-2.example:1", "replica-2.example", 1),
        ("[::1]:65535\n", "::1", 65535),
    ])
    func anAnnouncementIsOneAddressWithAHostAndAPort(_ text: String, _ host: String, _ port: Int) {
        #expect(Arbiter.parseAnnouncement(Array(text.utf8)) == HostPort(host: host, port: port))
    }

    @Test(arguments: [
        "", "\n", ":4711", "host:0", "host:65536", "host:", "host", "host:47 11", "ho st:4711",
        "host:4711\n\n", "host:4711\nsecond:1", "host:\u{1B}[2J", "hóst:4711", "::1:4711",
        "[::1:4711", "[]:4711", "host:-1", "host:+1", "host:99999999999999999999999",
        String(repeating: "h", count: 400) + ":1",
    ])
    func anythingElseIsNoAnnouncement(_ text: String) {
        #expect(Arbiter.parseAnnouncement(Array(text.utf8)) == nil)
    }

    @Test func bytesThatAreNotUTF8AreNoAnnouncement() {
        #expect(Arbiter.parseAnnouncement([0x68, 0xFF, 0x3A, 0x31]) == nil)
        #expect(Arbiter.parseAnnouncement(Array(repeating: 0x00, count: 10)) == nil)
    }

    @Test func theFileBackendSharesTheAnnouncementAndReadsAHostileFileAsNone() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lockstep-leader-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: url) }
        let session = randomSession()
        let winner = Arbiter(directory: url.path, session: session)
        let loser = Arbiter(directory: url.path, session: session)
        #expect(try loser.readLeader() == nil)
        try winner.announceLeader(HostPort(host: "127.0.0.1", port: 4711))
        #expect(try loser.readLeader() == HostPort(host: "127.0.0.1", port: 4711))
        #expect(try Arbiter(directory: url.path, session: randomSession()).readLeader() == nil)
        // Replaced, not appended.
        try winner.announceLeader(HostPort(host: "::1", port: 4712))
        #expect(try loser.readLeader() == HostPort(host: "::1", port: 4712))
        // Anyone may write there: a huge file is refused without being read whole, garbage is none.
        let file = URL(fileURLWithPath: winner.path + ".leader")
        try Data(("127.0.0.1:1" + String(repeating: "1", count: 10_000_000)).utf8).write(to: file)
        #expect(try loser.readLeader() == nil)
        try Data("evil\u{1B}[2J:1\n".utf8).write(to: file)
        #expect(try loser.readLeader() == nil)
        winner.release()
        #expect(try FileManager.default.contentsOfDirectory(atPath: url.path).isEmpty)
    }
}

@Suite struct EtcdStandingTests {
    let clock = ContinuousClock()

    @Test func aRegistrationIsValidUntilItsTTLLessTheMarginCountedFromWhenTheRequestWasSent() {
        let sent = clock.now
        var standing = EtcdStanding()
        standing.granted(lease: 7, ttl: 2, sentAt: sent)
        #expect(standing.entitlement(at: sent) == .unclaimed)
        standing.registered(token: FencingToken(12))
        let until = sent + .seconds(2) - .milliseconds(200)
        #expect(standing.entitlement(at: sent + .seconds(1)) == .entitled(FencingToken(12), until: until))
        #expect(standing.entitlement(at: until) == .lapsed(FencingToken(12)))
        // A renewal sent later extends it; an older, slower answer never shortens it.
        standing.renewed(ttl: 2, sentAt: sent + .seconds(1))
        standing.renewed(ttl: 2, sentAt: sent + .milliseconds(500))
        #expect(standing.entitlement(at: until + .milliseconds(500)) == .entitled(FencingToken(12), until: until + .seconds(1)))
        // A hostile answer cannot stretch the lease beyond the TTL granted.
        standing.renewed(ttl: 1_000_000, sentAt: sent + .seconds(1))
        #expect(standing.entitlement(at: until + .seconds(1)) == .lapsed(FencingToken(12)))
        // etcd no longer knows the lease: lost for good, whatever comes later.
        standing.renewed(ttl: 0, sentAt: sent + .seconds(2))
        #expect(standing.entitlement(at: sent) == .lost(holder: EtcdStanding.expiredHolder))
        standing.renewed(ttl: 2, sentAt: sent + .seconds(3))
        standing.won(token: FencingToken(99))
        #expect(standing.isLost)
    }

    @Test func theMarginIsATenthOfTheTTLAndAtLeast100ms() {
        #expect(EtcdStanding.margin(for: 2) == .milliseconds(200))
        #expect(EtcdStanding.margin(for: 1) == .milliseconds(100))
        #expect(EtcdStanding.margin(for: 30) == .seconds(3))
    }

    @Test func aWonClaimIsPermanent() {
        var standing = EtcdStanding()
        standing.won(token: FencingToken(5))
        standing.lost(holder: "someone")
        standing.renewed(ttl: 0, sentAt: clock.now)
        #expect(standing.entitlement(at: clock.now + .seconds(3600)) == .entitled(FencingToken(5), until: nil))
    }

    func keyValue(_ value: String, created: Int64, lease: Int64 = 0) -> EtcdKeyValue {
        EtcdKeyValue(key: nil, value: EtcdBytes(value), createRevision: EtcdInteger(created), modRevision: nil,
                     lease: lease == 0 ? nil : EtcdInteger(lease))
    }

    @Test func goingLiveDecisions() {
        let decide = EtcdStanding.decide
        #expect(decide(true, 40, nil, nil, 0, "backup pid 2") == .won(FencingToken(40)))
        #expect(decide(true, nil, nil, nil, 0, "backup pid 2") == .askAgain)
        // Someone is live already; if it is this claimant, an earlier answer was lost.
        #expect(decide(false, 41, keyValue("primary pid 1", created: 30), nil, 0, "backup pid 2") == .lost(holder: "primary pid 1"))
        #expect(decide(false, 41, keyValue("backup pid 2", created: 30), nil, 0, "backup pid 2") == .won(FencingToken(30)))
        // The backup waits while the primary's registration stands.
        #expect(decide(false, 41, nil, keyValue("primary pid 1", created: 12, lease: 7), 0, "backup pid 2") == .primaryLeaseRuns(lease: 7))
        // The primary may go on alone only while its own registration stands.
        #expect(decide(false, 41, nil, nil, 12, "primary pid 1") == .lost(holder: EtcdStanding.expiredHolder))
        #expect(decide(false, 41, nil, keyValue("primary pid 9", created: 20, lease: 7), 12, "primary pid 1") == .lost(holder: EtcdStanding.expiredHolder))
    }
}

@Suite struct EtcdAnswerTests {
    func decode<T: Decodable>(_ json: String, status: UInt = 200, as type: T.Type) throws -> T {
        try EtcdClient.decode(status: Int(status), answer: Data(json.utf8), as: type)
    }

    @Test func integersComeAsStringsOrNumbersAndNothingElse() throws {
        #expect(try decode(#"{"ID":"7","TTL":2}"#, as: EtcdLeaseGrantResponse.self).ttl == EtcdInteger(2))
        #expect(try decode(#"{"ID":"7","TTL":"2"}"#, as: EtcdLeaseGrantResponse.self).id == EtcdInteger(7))
        #expect(throws: EtcdError.self) { try decode(#"{"ID":"7x"}"#, as: EtcdLeaseGrantResponse.self) }
        #expect(throws: EtcdError.self) { try decode(#"{"ID":"99999999999999999999"}"#, as: EtcdLeaseGrantResponse.self) }
        #expect(throws: EtcdError.self) { try decode(#"{"kvs":[{"value":"not base64!"}]}"#, as: EtcdRangeResponse.self) }
        #expect(throws: EtcdError.self) { try decode("<html>", as: EtcdRangeResponse.self) }
        #expect(try decode("{}", as: EtcdTransactionResponse.self).found(3) == nil)
    }

    @Test func errorStatusesSayWhetherRetryingCanHelp() {
        #expect(throws: EtcdError.unavailable("etcd cannot serve now (HTTP 503): etcdserver: no leader")) {
            try decode(#"{"error":"etcdserver: no leader","code":14,"message":"etcdserver: no leader"}"#, status: 503,
                       as: EtcdRangeResponse.self)
        }
        #expect(throws: EtcdError.leaseNotFound) {
            try decode(#"{"message":"etcdserver: requested lease not found","code":5}"#, status: 404, as: EtcdIgnoredResponse.self)
        }
        #expect(throws: EtcdError.rejected(status: 400, message: "bad")) {
            try decode(#"{"message":"bad"}"#, status: 400, as: EtcdRangeResponse.self)
        }
    }
}

/// The etcd arbiter against a real etcd on loopback (skipped, saying so, without the binary).
@Suite(.enabled(if: EtcdServer.binary != nil, "\(EtcdServer.unavailableReason ?? "")"))
struct EtcdArbiterTests {
    func arbiter(_ etcd: EtcdServer, _ session: [UInt8], _ log: WaitLog = WaitLog()) throws -> Arbiter {
        Arbiter(try ArbiterSpecification(parsing: "etcd://\(etcd.address)/test"), session: session, report: log.report)
    }

    @Test func theWinnersAnnouncementIsSharedAndAHostileValueIsNone() throws {
        let etcd = try EtcdServer()
        defer { etcd.shutDown() }
        let session = randomSession()
        let winner = try arbiter(etcd, session)
        let loser = try arbiter(etcd, session)
        #expect(try loser.readLeader() == nil)
        try winner.announceLeader(HostPort(host: "127.0.0.1", port: 4711))
        #expect(try loser.readLeader() == HostPort(host: "127.0.0.1", port: 4711))
        #expect(try arbiter(etcd, randomSession()).readLeader() == nil)
        // Anyone with access to etcd may write the key: what is not an announcement is none.
        let raw = try #require(winner.etcd)
        for hostile in [Array("evil\u{1B}[2J:1".utf8), Array(repeating: UInt8(0x31), count: 100_000), [0xFF, 0x3A, 0x31]] {
            _ = try raw.client.callAndWait("/v3/kv/put", EtcdPutRequest(key: EtcdBytes(raw.leaderKey), value: EtcdBytes(hostile),
                                                                          lease: EtcdInteger(0)), as: EtcdIgnoredResponse.self)
            #expect(try loser.readLeader() == nil)
        }
        winner.release()
        #expect(try loser.readLeader() == nil)
    }

    @Test func theRegistrationStaysValidBeyondItsTTLAndTheNonceIsShared() throws {
        let etcd = try EtcdServer()
        defer { etcd.shutDown() }
        try ArbiterSpecification(parsing: "etcd://\(etcd.address)").check()
        let session = randomSession()
        let primary = try arbiter(etcd, session)
        let token = try primary.register(claimant: "primary pid 1")
        guard case .entitled(token, let until?) = primary.entitlement else {
            Issue.record("not entitled after registering: \(primary.entitlement)")
            return
        }
        #expect(until > ContinuousClock().now + .seconds(1))
        let nonce = (0..<16).map { _ in UInt8.random(in: 0...255) }
        try primary.publish(nonce: nonce)
        #expect(try arbiter(etcd, session).readNonce() == nonce)
        #expect(try arbiter(etcd, randomSession()).readNonce() == nil)
        // Renewed every third of the TTL: still valid after more than one TTL.
        Thread.sleep(forTimeInterval: 2.5)
        guard case .entitled(token, _) = primary.entitlement else {
            Issue.record("the registration lapsed: \(primary.entitlement)")
            return
        }
        #expect(!primary.isClaimed)
        primary.release()
        #expect(try arbiter(etcd, session).readNonce() == nil)
    }

    @Test func theBackupGoesLiveOnlyOnceThePrimarysLeaseHasExpired() throws {
        let etcd = try EtcdServer()
        defer { etcd.shutDown() }
        let session = randomSession()
        let primary = try arbiter(etcd, session)
        let registration = try primary.register(claimant: "primary pid 1")
        // The primary dies: nothing renews its lease any more.
        primary.etcd!.stopRenewing()
        let stopped = ContinuousClock().now
        let log = WaitLog()
        let backup = try arbiter(etcd, session, log)
        #expect(try backup.acquire(claimant: "backup pid 2") == .won)
        let waited = ContinuousClock().now - stopped
        #expect(waited > .milliseconds(500), "went live \(waited) after the primary stopped renewing")
        #expect(log.contains { if case .primaryLease = $0 { true } else { false } })
        let token = try #require(backup.token)
        #expect(token > registration)
        // The primary's own clock told it to stop before etcd let the backup in.
        if case .entitled = primary.entitlement { Issue.record("the primary still believes its lease valid") }
        #expect(try primary.revalidate() == .lost(holder: EtcdStanding.expiredHolder))
        #expect(try primary.acquire(claimant: "primary pid 1") == .lost(holder: EtcdStanding.expiredHolder))
        #expect(primary.isClaimed)
        #expect(primary.holder == "backup pid 2")
        // Going live is permanent and idempotent.
        #expect(try backup.acquire(claimant: "backup pid 2") == .won)
        #expect(backup.entitlement == .entitled(token, until: nil))
    }

    @Test func aPrimaryWhoseRegistrationStandsGoesOnAloneAndTheBackupLosesAtOnce() throws {
        let etcd = try EtcdServer()
        defer { etcd.shutDown() }
        let session = randomSession()
        let primary = try arbiter(etcd, session)
        _ = try primary.register(claimant: "primary pid 1")
        #expect(try primary.acquire(claimant: "primary pid 1") == .won)
        // The backup loses at once: it never waits for the primary's lease.
        let log = WaitLog()
        #expect(try arbiter(etcd, session, log).acquire(claimant: "backup pid 2") == .lost(holder: "primary pid 1"))
        #expect(!log.contains { if case .primaryLease = $0 { true } else { false } })
        guard case .entitled(_, nil) = primary.entitlement else {
            Issue.record("the winner is not entitled for good: \(primary.entitlement)")
            return
        }
    }

    /// etcd killed during a run: nobody goes live while it is down (the backup says it waits),
    /// the primary's lease lapses by its own clock and its revalidation waits too; once etcd is
    /// back the primary renews, and the backup goes live only after the primary stops renewing.
    @Test func whileEtcdIsDownNobodyGuesses() throws {
        let etcd = try EtcdServer()
        defer { etcd.shutDown() }
        let session = randomSession()
        let primaryLog = WaitLog(), backupLog = WaitLog()
        let primary = try arbiter(etcd, session, primaryLog)
        let registration = try primary.register(claimant: "primary pid 1")
        etcd.kill()
        let backup = try arbiter(etcd, session, backupLog)
        let takeover = Background { try backup.acquire(claimant: "backup pid 2") }
        Thread.sleep(forTimeInterval: 2.5)
        #expect(!takeover.isDone, "the backup decided while etcd was down")
        #expect(backupLog.contains { if case .unreachable = $0 { true } else { false } })
        #expect(primary.entitlement == .lapsed(registration))
        let revalidation = Background { try primary.revalidate() }
        Thread.sleep(forTimeInterval: 0.5)
        #expect(!revalidation.isDone, "the primary decided while etcd was down")
        #expect(primaryLog.contains { if case .unreachable = $0 { true } else { false } })
        try etcd.start()
        // etcd restores the lease with a fresh TTL; the primary renews it and may emit again.
        let renewed = try revalidation.result(timeout: 10)
        guard case .entitled(registration, _)? = renewed else {
            Issue.record("the primary did not get its lease back: \(String(describing: renewed))")
            return
        }
        Thread.sleep(forTimeInterval: 1)
        #expect(!takeover.isDone, "the backup went live while the primary renewed its lease")
        primary.etcd!.stopRenewing()
        #expect(try takeover.result(timeout: 15) == .won)
        #expect(try primary.revalidate() == .lost(holder: EtcdStanding.expiredHolder))
    }
}

/// Fencing a dropped backup: the primary records each new generation of the pair's membership
/// before it releases an output without the dropped backup; a backup's claim names the
/// generation it learnt from the primary's stream, and fails against a later one.
@Suite struct MembershipFencingTests {
    @Test func theFileArbiterRefusesAClaimFromAnEarlierGeneration() throws {
        let directory = try FileArbiterTests().directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let session = randomSession()
        let primary = Arbiter(directory: directory, session: session)
        try primary.register(claimant: "primary pid 1")
        // No generation recorded: every backup of the first one may claim.
        #expect(try Arbiter(directory: directory, session: session).acquire(claimant: "b", membership: 0) == .won)
        primary.release()
        try primary.recordMembership(1)
        try primary.recordMembership(2)
        let dropped = Arbiter(directory: directory, session: session)
        guard case .lost(let holder) = try dropped.acquire(claimant: "backup pid 2", membership: 1) else {
            Issue.record("a dropped backup claimed the arbiter"); return
        }
        #expect(holder.contains("generation 2") && holder.contains("dropped"))
        #expect(!dropped.isClaimed, "a fenced claim leaves no claim file")
        #expect(try Arbiter(directory: directory, session: session).acquire(claimant: "backup pid 3", membership: 2) == .won)
        // A membership file that is not a number fences every backup (anyone may write there).
        primary.release()
        try Data("two\n".utf8).write(to: URL(fileURLWithPath: primary.path + ".members"))
        #expect(try Arbiter(directory: directory, session: session).acquire(claimant: "b", membership: 9) != .won)
        // The primary names no generation.
        #expect(try primary.acquire(claimant: "primary pid 1") == .won)
        primary.release()
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty)
    }

    @Test func aBackupLearnsGenerationsThatOnlyGrowAndKeepsThemAcrossARollback() throws {
        var r = BackupStateMachine(epochLength: 100, maximumLag: 4)
        let checkpoint = r
        #expect(try r.receive(.membership(generation: 1), progress: 0) == .member(generation: 1))
        #expect(try r.receive(.membership(generation: 3), progress: 0) == .member(generation: 3))
        #expect(r.membership == 3)
        for stale: UInt64 in [3, 2] {
            var copy = r
            #expect(throws: ReplicationError.self) { _ = try copy.receive(.membership(generation: stale), progress: 0) }
        }
        try r.rolledBack(to: checkpoint)
        #expect(r.membership == 3, "a rollback does not bring back an older membership")
        // On the wire: version 1, a generation of at least 1, from the primary only.
        #expect(try parse(stream([.membership(generation: 7), .membership(generation: .max)]))
                == [.membership(generation: 7), .membership(generation: .max)])
        let cases: [(String, [UInt8], ReplicaRole)] = [
            ("generation 0", rawMessage(type: 13, payload: [1] + [UInt8](repeating: 0, count: 8)), .backup),
            ("format version 2", rawMessage(type: 13, payload: [2, 1, 0, 0, 0, 0, 0, 0, 0]), .backup),
            ("a truncated membership", rawMessage(type: 13, payload: [1, 1]), .backup),
            ("trailing bytes", rawMessage(type: 13, payload: [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]), .backup),
            ("a membership at the primary", rawMessage(type: 13, payload: [1, 1, 0, 0, 0, 0, 0, 0, 0]), .primary),
        ]
        for (name, bytes, receiver) in cases {
            #expect(throws: WireError.self, "\(name)") { _ = try parse(bytes, receiver: receiver) }
        }
    }
}

extension EtcdArbiterTests {
    @Test func etcdRefusesAClaimFromAnEarlierGenerationInTheClaimsTransaction() throws {
        let etcd = try EtcdServer()
        defer { etcd.shutDown() }
        let session = randomSession()
        let primary = try arbiter(etcd, session)
        try primary.register(claimant: "primary pid 1")
        try primary.recordMembership(1)
        try primary.recordMembership(2)
        // The primary dies; once its lease expired, the dropped backup (generation 1) is
        // refused, the member (generation 2) goes live.
        primary.etcd!.stopRenewing()
        guard case .lost(let holder) = try arbiter(etcd, session).acquire(claimant: "backup pid 2", membership: 1) else {
            Issue.record("a dropped backup went live"); return
        }
        #expect(holder.contains("generation 2"))
        #expect(try arbiter(etcd, session).acquire(claimant: "backup pid 3", membership: 2) == .won)
        #expect(try arbiter(etcd, session).holder == "backup pid 3")
    }
}
