import Foundation
import Hypervisor
import Replication

/// How a replica's process ended, as `lockstep pair` saw it.
enum ReplicaEnd: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case killed(signal: Int32)

    var description: String {
        switch self {
        case .exited(let status): "exited with status \(status)"
        case .killed(let signal): "was killed by \(Self.name(signal))"
        }
    }

    /// Shorter, for the status line.
    var brief: String {
        switch self {
        case .exited(let status): "exited (\(status))"
        case .killed(let signal): "killed (\(Self.name(signal)))"
        }
    }

    static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGKILL: "SIGKILL"
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        case SIGSEGV: "SIGSEGV"
        case SIGABRT: "SIGABRT"
        default: "signal \(signal)"
        }
    }

    /// How `process` ended, if it did.
    static func of(_ process: ReplicaProcess) -> ReplicaEnd? {
        guard process.exitedAt != nil else { return nil }
        return process.terminationReason == .uncaughtSignal ? .killed(signal: process.terminationStatus) : .exited(process.terminationStatus)
    }
}

/// One look at the pair: the leading replica (its number, 0 for the primary started first, its
/// statistics, how its process ended if it did), how the previous leader ended, and how many
/// other replicas run.
struct PairObservation: Sendable {
    var leaderNumber: Int
    var leader: ReplicationStatus.Snapshot?
    var leaderEnd: ReplicaEnd?
    var previousLeaderEnd: ReplicaEnd?
    /// Another replica that has gone live (it took over), before the fleet has made it the leader
    /// (or when the run ended first): its number and statistics.
    var successor: (number: Int, stats: ReplicationStatus.Snapshot)?
    var others: Int
    /// When the pair started and when this look was taken (seconds since 1970).
    var started: Double
    var now: Double

    /// Seconds since the pair started at `time` (seconds since 1970).
    func since(_ time: Double) -> Double { max(0, time - started) }
}

/// What `lockstep pair` shows of its replicas: a state machine fed with observations, which gives
/// the status line (who is live, the backups' lag in epochs, the channel's rate) and, when the
/// leader changes, the event to print as a line of its own (time, epoch, what happened).
struct PairView {
    enum Phase: Equatable {
        /// The primary has not started running the guest with its backups yet.
        case starting
        /// Replica `leader` is live (0: the primary).
        case leading(leader: Int)
        /// The leader ended abnormally; a backup is taking over.
        case failingOver(from: Int, end: ReplicaEnd?, at: Double)
    }

    private(set) var phase: Phase = .starting
    private(set) var failovers = 0

    static func name(_ number: Int) -> String { number == 0 ? "primary" : "backup \(number)" }

    /// Takes one observation; returns the events it shows, one line each.
    mutating func observe(_ o: PairObservation) -> [String] {
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
                // A guest's own end (any exit but a lost arbiter) is no failure.
                if case .exited(let status) = end, status != ExitStatus.lostArbiter { break }
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

    /// Whether a leader's end is a failure (a signal, or a lost arbiter), not the guest's own end.
    static func abnormal(_ end: ReplicaEnd) -> Bool {
        if case .exited(let status) = end { return status == ExitStatus.lostArbiter }
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
    func statusLine(_ o: PairObservation) -> String {
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

/// The pair's status on the terminal's last row (`TerminalStatus`), refreshed four times a second
/// from the fleet's replicas (statistics files and processes), and the pair's events as lines of
/// their own through the console. Events are printed with or without a terminal; the status row
/// only on one.
final class PairStatusDisplay: @unchecked Sendable {
    private let fleet: PairFleet
    private let console: PairConsole
    private let terminal: TerminalStatus
    private let eventsWanted: Bool
    private let started = Date().timeIntervalSince1970
    private let lock = NSLock()
    // Guarded by `lock`.
    private var view = PairView()
    private var timer: (any DispatchSourceTimer)?
    private var previousLeader: ReplicaProcess?
    private var currentLeader: (Int, ReplicaProcess)?

    init(fleet: PairFleet, console: PairConsole, events: Bool) {
        self.fleet = fleet
        self.console = console
        terminal = console.terminal
        eventsWanted = events
    }

    func start() {
        let source = DispatchSource.makeTimerSource(queue: .global())
        source.schedule(deadline: .now(), repeating: 0.25)
        source.setEventHandler { [weak self] in self?.refresh() }
        lock.withLock { timer = source }
        source.resume()
    }

    /// One last look (the final event, if any), then the status row is given back.
    func stop() {
        lock.withLock {
            timer?.cancel()
            timer = nil
        }
        refresh(final: true)
        terminal.finish()
    }

    private func refresh(final: Bool = false) {
        lock.withLock {
            guard final || timer != nil, let (number, member) = fleet.leader else { return }
            if let current = currentLeader, current.0 != number { previousLeader = current.1 }
            if currentLeader == nil && number > 0 { previousLeader = fleet.members.first?.process }
            currentLeader = (number, member.process)
            let others = fleet.members.filter { $0.process !== member.process && $0.process.isRunning }.count
            let members = fleet.members
            let successor = members.indices.lazy.filter { $0 > number }.compactMap { index -> (number: Int, stats: ReplicationStatus.Snapshot)? in
                guard let stats = ReplicationStatus.Snapshot.load(members[index].stats), stats.stateEnteredAt[.live] != nil else { return nil }
                return (index, stats)
            }.first
            let observation = PairObservation(
                leaderNumber: number, leader: ReplicationStatus.Snapshot.load(member.stats),
                leaderEnd: ReplicaEnd.of(member.process), previousLeaderEnd: previousLeader.flatMap(ReplicaEnd.of),
                successor: successor, others: others, started: started, now: Date().timeIntervalSince1970)
            for event in view.observe(observation) where eventsWanted { console.message("lockstep pair: \(event)") }
            if !final { terminal.show(view.statusLine(observation)) }
        }
    }
}
