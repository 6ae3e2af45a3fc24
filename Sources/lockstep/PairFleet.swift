import Foundation
import Hypervisor
import Replication

#if canImport(Glibc)
import Glibc
#endif

/// The replicas of one `lockstep pair` run: the primary, its backups, and with re-protection the
/// backups started later to join whichever replica leads (`backup --join`). Every backup is
/// started with `--lead-on`, so the one that wins the arbiter after a failure takes new backups;
/// the fleet notices it by its port file and starts replacements until `backups` follow again.
final class PairFleet: @unchecked Sendable {
    struct Member {
        let process: ReplicaProcess
        let stats: String
        let portFile: String
        /// Started to join a running replica (re-protection), rather than from boot.
        let joined: Bool
    }

    private let work: URL
    private let executable: URL
    private let console: PairConsole
    private let backups: Int
    private let reprotect: Bool
    private let common: [String]
    private let guest: [String]
    private let lock = NSLock()
    // Guarded by `lock`.
    private var all: [Member] = []
    private var leaderIndex = 0
    private var leaderPort: Int?
    private var failoverCount = 0
    private var stopping = false
    private var failedJoins = 0
    /// Consecutive joins that failed before they followed: re-protection gives up after this many.
    static let joinAttempts = 5

    init(work: URL, executable: URL, console: PairConsole, backups: Int, reprotect: Bool, common: [String],
         guest: [String])
    {
        self.work = work
        self.executable = executable
        self.console = console
        self.backups = backups
        self.reprotect = reprotect
        self.common = common
        self.guest = guest
    }

    var members: [Member] { lock.withLock { all } }
    var failovers: Int { lock.withLock { failoverCount } }

    /// The leading replica and its number (0: the primary started first), once there is one.
    var leader: (index: Int, member: Member)? { lock.withLock { all.isEmpty ? nil : (leaderIndex, all[leaderIndex]) } }

    /// The leading replica's statistics.
    var leaderStats: ReplicationStatus.Snapshot? {
        let stats = lock.withLock { all.isEmpty ? nil : all[leaderIndex].stats }
        return stats.flatMap { ReplicationStatus.Snapshot.load($0) }
    }

    /// The primary, already started.
    func adopt(_ primary: ReplicaProcess, stats: String, portFile: String) {
        lock.withLock {
            all.append(Member(process: primary, stats: stats, portFile: portFile, joined: false))
            leaderIndex = all.count - 1
        }
    }

    /// Starts a backup of the replica listening on `port`: from boot, or joining it running.
    @discardableResult
    func startBackup(port: Int, join: Bool, stats: String? = nil, session: String? = nil) throws -> ReplicaProcess {
        let index = lock.withLock { all.count }
        let stats = stats ?? work.appendingPathComponent("replica-\(index).json").path
        let portFile = work.appendingPathComponent("replica-\(index).port").path
        var arguments = ["backup", "--connect", "127.0.0.1:\(port)", "--stats-json", stats]
        // A joiner that cannot reach its leader has nothing to wait for: the leader is gone.
        if join { arguments += ["--join", "--connect-timeout", "5"] }
        if let session, !join { arguments += ["--session", session] }
        // Among several backups each is named (backupN, as `--inject-fault` names them).
        if backups > 1 { arguments += ["--backup-number", "\(index)"] }
        if reprotect {
            arguments += ["--lead-on", "127.0.0.1:0", "--port-file", portFile, "--backups", "\(backups)"]
        }
        let process = try console.start(executable, arguments + common + guest)
        lock.withLock { all.append(Member(process: process, stats: stats, portFile: portFile, joined: join)) }
        return process
    }

    /// Follows the run until its leading replica ends it: a leader that dies is succeeded by the
    /// backup that took over (it writes its port file when it starts taking backups); while a
    /// leader runs with fewer backups than asked for, new ones are started to join it.
    func supervise() {
        while true {
            let (leader, others, port, stopped) = lock.withLock {
                (all[leaderIndex], all.indices.filter { $0 != leaderIndex && all[$0].process.isRunning }, leaderPort, stopping)
            }
            if !leader.process.isRunning {
                let normal = leader.process.terminationReason == .exit
                    && !ExitStatus.gaveWay(leader.process.terminationStatus)
                // Backups that were still joining the leader that is gone can never follow it.
                stopJoinersNotFollowing(others)
                if normal || stopped || others.isEmpty { return }
                // A successor announces itself with its port file.
                let candidates = lock.withLock { others.map { ($0, all[$0].portFile) } }
                if let next = candidates.first(where: { FileManager.default.fileExists(atPath: $0.1) })?.0 {
                    lock.withLock {
                        leaderIndex = next
                        leaderPort = nil
                        failoverCount += 1
                    }
                    continue
                }
            } else if reprotect && !stopped {
                if port == nil {
                    lock.withLock { leaderPort = Self.readPort(leader.portFile) }
                } else if let port, others.count < backups, leader.process.isRunning,
                          lock.withLock({ failedJoins < Self.joinAttempts })
                {
                    joinAndWatch(port: port)
                }
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    /// Stops (SIGTERM) the joining backups among `indices` that do not follow yet: once the
    /// leader is gone (finished or dead) they have nothing left to do, and would otherwise retry
    /// until their own timeout. Followers get the finish from the leader and exit by themselves,
    /// or take over from a dead one.
    private func stopJoinersNotFollowing(_ indices: [Int]) {
        let joiners = lock.withLock { indices.map { all[$0] }.filter(\.joined) }
        for joiner in joiners where joiner.process.isRunning {
            switch ReplicationStatus.Snapshot.load(joiner.stats)?.state {
            case .replaying?, .takingOver?, .live?, .finished?, .finishedLive?, .failed?: continue
            case .starting?, .joining?, nil, .waitingForBackup?, .replicating?, .alone?:
                kill(joiner.process.processIdentifier, SIGTERM)
            }
        }
    }

    /// Starts a backup that joins the leader, and counts it as failed if it exits before it
    /// followed while the leader still runs.
    private func joinAndWatch(port: Int) {
        guard let process = try? startBackup(port: port, join: true) else {
            lock.withLock { failedJoins += 1 }
            return
        }
        let stats = lock.withLock { all.last!.stats }
        DispatchQueue.global().async { [self] in
            while process.isRunning {
                if ReplicationStatus.Snapshot.load(stats)?.state == .replaying {
                    lock.withLock { failedJoins = 0 }
                    return
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
            lock.withLock { failedJoins += 1 }
        }
    }

    /// Kills the leader `times` times, each time once it has had all its backups for `seconds`
    /// (with `backupToo`, one of its backups at the same moment): fault injection for tests.
    func killLeaders(times: Int, after seconds: Double, backupToo: Bool) {
        DispatchQueue.global().async { [self] in
            for _ in 0..<times {
                var protectedSince: Date?
                var victim: ReplicaProcess?
                while victim == nil {
                    let (leader, others, stopped) = lock.withLock {
                        (all[leaderIndex], all.indices.filter { $0 != leaderIndex && all[$0].process.isRunning }
                            .map { all[$0] }, stopping)
                    }
                    guard leader.process.isRunning, !stopped else { return }
                    let stats = ReplicationStatus.Snapshot.load(leader.stats)
                    if let stats, stats.backups >= backups, others.count == backups {
                        let since = protectedSince ?? Date()
                        protectedSince = since
                        if Date().timeIntervalSince(since) >= seconds {
                            kill(leader.process.processIdentifier, SIGKILL)
                            if backupToo, let victim = others.first { kill(victim.process.processIdentifier, SIGKILL) }
                            FileHandle.standardError.write(Data("lockstep pair: fault injection: killed the leading replica (pid \(leader.process.processIdentifier))\(backupToo ? " and a backup" : "")\n".utf8))
                            victim = leader.process
                            continue
                        }
                    } else {
                        protectedSince = nil
                    }
                    Thread.sleep(forTimeInterval: 0.02)
                }
                // Wait for the successor (the leader that was killed, not whoever leads by now).
                victim?.waitForExit()
                while true {
                    let (leader, anyRunning) = lock.withLock {
                        (all[leaderIndex], all.contains { $0.process.isRunning })
                    }
                    if (leader.process !== victim && leader.process.isRunning) || !anyRunning { break }
                    Thread.sleep(forTimeInterval: 0.02)
                }
            }
        }
    }

    /// Waits until every replica has exited.
    func waitForAll() {
        for member in members { member.process.waitForExit() }
    }

    /// Stops every replica (SIGTERM).
    func stopAll() {
        let running = lock.withLock {
            stopping = true
            return all.filter { $0.process.isRunning }
        }
        for member in running { kill(member.process.processIdentifier, SIGTERM) }
    }

    /// The guest's status: the leader's once it finished the run; while the first primary leads,
    /// as a pair of two always did.
    func status(primary: ReplicaProcess, backup: ReplicaProcess) -> Int32 {
        let (leader, members) = lock.withLock { (all[leaderIndex], all) }
        if leader.process === primary {
            // A primary that gave way (outvoted, or its arbiter lost) to a backup that finished
            // the run before the fleet saw it lead: that backup's status is the run's.
            if primary.terminationReason == .exit, ExitStatus.gaveWay(primary.terminationStatus),
               let successor = members.dropFirst().first(where: {
                   $0.process.terminationReason == .exit && !ExitStatus.gaveWay($0.process.terminationStatus)
                       && ReplicationStatus.Snapshot.load($0.stats)?.stateEnteredAt[.live] != nil
               })
            {
                return successor.process.terminationStatus
            }
            return PairCommand.status(primary: primary, backup: backup)
        }
        let finished = leader.process.terminationReason == .exit && !ExitStatus.gaveWay(leader.process.terminationStatus)
        return finished ? leader.process.terminationStatus : ExitStatus.internalError
    }

    static func readPort(_ path: String) -> Int? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let first = text.split(separator: "\n").first
        else { return nil }
        return Int(first)
    }
}
