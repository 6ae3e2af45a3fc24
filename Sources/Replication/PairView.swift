import Foundation
import Hypervisor

/// How a replica's process ended, as `lockstep pair` saw it.
public enum ReplicaEnd: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case killed(signal: Int32)

    public var description: String {
        switch self {
        case .exited(ExitStatus.outvoted): "was outvoted and stepped down (status \(ExitStatus.outvoted))"
        case .exited(ExitStatus.lostArbiter): "lost the arbiter (status \(ExitStatus.lostArbiter))"
        case .exited(let status): "exited with status \(status)"
        case .killed(let signal): "was killed by \(Self.name(signal))"
        }
    }

    /// Shorter, for the status line.
    public var brief: String {
        switch self {
        case .exited(let status): "exited (\(status))"
        case .killed(let signal): "killed (\(Self.name(signal)))"
        }
    }

    public static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGKILL: "SIGKILL"
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        case SIGSEGV: "SIGSEGV"
        case SIGABRT: "SIGABRT"
        default: "signal \(signal)"
        }
    }
}

/// One look at the pair: the leading replica (its number, 0 for the primary started first, its
/// statistics, how its process ended if it did), how the previous leader ended, and how many
/// other replicas run.
public struct PairObservation: Sendable {
    public var leaderNumber: Int
    public var leader: ReplicationStatus.Snapshot?
    public var leaderEnd: ReplicaEnd?
    public var previousLeaderEnd: ReplicaEnd?
    /// Another replica that has gone live (it took over), before the fleet has made it the leader
    /// (or when the run ended first): its number and statistics.
    public var successor: (number: Int, stats: ReplicationStatus.Snapshot)?
    public var others: Int
    /// When the pair started and when this look was taken (seconds since 1970).
    public var started: Double
    public var now: Double

    public init(leaderNumber: Int, leader: ReplicationStatus.Snapshot?, leaderEnd: ReplicaEnd?, previousLeaderEnd: ReplicaEnd?,
                successor: (number: Int, stats: ReplicationStatus.Snapshot)?, others: Int, started: Double, now: Double)
    {
        self.leaderNumber = leaderNumber
        self.leader = leader
        self.leaderEnd = leaderEnd
        self.previousLeaderEnd = previousLeaderEnd
        self.successor = successor
        self.others = others
        self.started = started
        self.now = now
    }

    /// Seconds since the pair started at `time` (seconds since 1970).
    public func since(_ time: Double) -> Double { max(0, time - started) }
}

/// What `lockstep pair` shows of its replicas: a state machine fed with observations, which gives
/// the status line (who is live, the backups' lag in epochs, the channel's rate) and, when the
/// leader changes, the event to print as a line of its own (time, epoch, what happened).
public struct PairView {
    public enum Phase: Equatable, Sendable {
        /// The primary has not started running the guest with its backups yet.
        case starting
        /// Replica `leader` is live (0: the primary).
        case leading(leader: Int)
        /// The leader ended abnormally; a backup is taking over.
        case failingOver(from: Int, end: ReplicaEnd?, at: Double)
    }

    public private(set) var phase: Phase = .starting
    public private(set) var failovers = 0

    public init() {}

    public static func name(_ number: Int) -> String { number == 0 ? "primary" : "backup \(number)" }

    /// Takes one observation; returns the events it shows, one line each.
    public mutating func observe(_ o: PairObservation) -> [String] {
        var events: [String] = []
        switch phase {
        case .starting:
            if o.leaderNumber > 0 {
                // The primary failed before this display saw it replicate.
                phase = .leading(leader: 0)
                events.append(failover(from: 0, end: o.previousLeaderEnd, noticed: nil, o))
            } else if let end = o.leaderEnd, Self.abnormal(end), let successor = o.successor {
                // The primary failed before this display saw it replicate, and its successor
                // went live (and maybe finished) before the fleet switched leaders.
                events.append(failover(from: 0, end: end, noticed: nil, o, to: successor))
            } else if let state = o.leader?.state, !state.awaitsBackup {
                phase = .leading(leader: o.leaderNumber)
            }
        case .leading(let leader):
            // Successors are always started after their leaders: a smaller number is the fleet
            // not yet caught up with a takeover seen here first.
            if o.leaderNumber > leader {
                events.append(failover(from: leader, end: o.previousLeaderEnd, noticed: nil, o))
            } else if o.leaderNumber < leader {
                break
            } else if let end = o.leaderEnd, let successor = o.successor, Self.abnormal(end) {
                events.append(failover(from: leader, end: end, noticed: nil, o, to: successor))
            } else if let end = o.leaderEnd, o.others > 0 {
                // A guest's own end (any exit but giving way: a lost arbiter, outvoted) is no failure.
                if case .exited(let status) = end, !ExitStatus.gaveWay(status) { break }
                phase = .failingOver(from: leader, end: end, at: o.since(o.now))
            }
        case .failingOver(let from, let end, let at):
            if o.leaderNumber > from {
                events.append(failover(from: from, end: end ?? o.previousLeaderEnd, noticed: at, o))
            } else if let successor = o.successor {
                events.append(failover(from: from, end: end, noticed: at, o, to: successor))
            }
        }
        return events
    }

    /// Whether a leader's end is a failure (a signal, a lost arbiter, outvoted), not the guest's own end.
    static func abnormal(_ end: ReplicaEnd) -> Bool {
        if case .exited(let status) = end { return ExitStatus.gaveWay(status) }
        return true
    }

    private mutating func failover(from: Int, end: ReplicaEnd?, noticed: Double?, _ o: PairObservation,
                                   to successor: (number: Int, stats: ReplicationStatus.Snapshot)? = nil) -> String
    {
        failovers += 1
        let number = successor?.number ?? o.leaderNumber
        phase = .leading(leader: number)
        let backup = successor?.stats ?? o.leader
        let took = backup?.stateEnteredAt[.takingOver].map(o.since) ?? noticed ?? o.since(o.now)
        let live = backup?.stateEnteredAt[.live].map(o.since) ?? o.since(o.now)
        let epoch = backup?.stateEnteredAtEpoch[.takingOver] ?? backup?.stateEnteredAtEpoch[.live] ?? backup?.epoch ?? 0
        let who = from == 0 ? "the primary" : Self.name(from)
        let what = end.map { "\(who) \($0)" } ?? "\(who) failed"
        return "failover at \(Self.seconds(took)): \(what); \(Self.name(number)) took over after epoch \(epoch) "
            + "and is live since \(Self.seconds(live)) (\(Self.milliseconds(live - took)) later)"
    }

    /// The status line for `o`.
    public func statusLine(_ o: PairObservation) -> String {
        let clock = Self.seconds(o.since(o.now))
        let history = failovers == 0 ? "" : " · \(failovers) failover\(failovers == 1 ? "" : "s")"
        switch phase {
        case .starting:
            let state = o.leaderEnd.map { "primary \($0.brief)" } ?? "primary \(o.leader?.state.description ?? "starting")"
            return "pair: \(state) · \(o.others) backup\(o.others == 1 ? "" : "s") starting · \(clock)"
        case .failingOver(let from, let end, let at):
            let what = end.map { "\(Self.name(from)) \($0.brief)" } ?? "\(Self.name(from)) failed"
            return "pair: \(what) at \(Self.seconds(at)) · a backup is taking over · \(clock)\(history)"
        case .leading(let leader):
            let stats = leader == o.leaderNumber ? o.leader : (o.successor?.number == leader ? o.successor?.stats : nil)
            guard let s = stats else { return "pair: \(Self.name(leader)) live · \(clock)\(history)" }
            if leader != o.leaderNumber { return "pair: \(Self.name(leader)) live, epoch \(s.epoch) · \(clock)\(history)" }
            if let end = o.leaderEnd {
                return "pair: \(Self.name(leader)) \(end.brief), epoch \(s.epoch) · \(clock)\(history)"
            }
            let followers: String
            if o.others == 0 || s.backups == 0 {
                followers = "no backup" + s.protectionText.replacingOccurrences(of: "  ", with: ", ")
            } else {
                let behind = s.backupLag == 1 ? "1 epoch behind" : "\(s.backupLag) epochs behind"
                followers = "\(s.backups) backup\(s.backups == 1 ? "" : "s"), \(behind) · \(Self.rate(s.sendBytesPerSecond)) to them"
            }
            return "pair: \(Self.name(leader)) live, epoch \(s.epoch) · \(followers) · \(clock)\(history)"
        }
    }

    static func seconds(_ value: Double) -> String { String(format: "%.1f s", value) }
    static func milliseconds(_ value: Double) -> String { String(format: "%.0f ms", max(0, value) * 1000) }
    static func rate(_ bytesPerSecond: Double) -> String {
        bytesPerSecond >= 1024 * 1024 ? String(format: "%.1f MiB/s", bytesPerSecond / 1024 / 1024)
            : String(format: "%.1f KiB/s", bytesPerSecond / 1024)
    }
}

