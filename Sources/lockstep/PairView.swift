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
}

/// One look at the pair: the replicas' statistics files and how their processes ended, if they did.
struct PairObservation: Sendable {
    var primary: ReplicationStatus.Snapshot?
    var backup: ReplicationStatus.Snapshot?
    var primaryEnd: ReplicaEnd?
    var backupEnd: ReplicaEnd?
    /// When the pair started and when this look was taken (seconds since 1970).
    var started: Double
    var now: Double

    /// Seconds since the pair started at `time` (seconds since 1970).
    func since(_ time: Double) -> Double { max(0, time - started) }
}

/// What `lockstep pair` shows of its replicas: a state machine fed with observations, which gives
/// the status line (who is live, the backup's lag in epochs, the channel's rate) and, when the
/// pair changes, the event to print as a line of its own (time, epoch, what happened).
struct PairView {
    enum Phase: Equatable {
        /// No backup has joined yet.
        case starting
        /// The primary is live, the backup replays its epochs.
        case replicating
        /// The backup is gone; the primary goes on alone.
        case primaryAlone(backupEnd: ReplicaEnd?, at: Double)
        /// The primary failed; the backup finishes its last epoch and claims the arbiter.
        case failingOver(primaryEnd: ReplicaEnd?, at: Double)
        /// The backup won and is live.
        case backupLive(primaryEnd: ReplicaEnd?, at: Double, epoch: UInt64)
    }

    private(set) var phase: Phase = .starting

    /// Takes one observation; returns the events it shows, one line each.
    mutating func observe(_ o: PairObservation) -> [String] {
        var events: [String] = []
        let backupState = o.backup?.state
        // The failover: the backup's own states say when it noticed and when it went live.
        if backupState == .takingOver || backupState == .live || backupState == .finishedLive {
            let noticed = o.backup?.stateEnteredAt[.takingOver].map(o.since) ?? o.since(o.now)
            switch phase {
            case .starting, .replicating, .primaryAlone:
                phase = .failingOver(primaryEnd: o.primaryEnd, at: noticed)
            case .failingOver, .backupLive:
                break
            }
            if case .failingOver(let primaryEnd, let at) = phase, backupState != .takingOver, let backup = o.backup {
                let end = primaryEnd ?? o.primaryEnd
                let live = backup.stateEnteredAt[.live].map(o.since) ?? o.since(o.now)
                let epoch = backup.stateEnteredAtEpoch[.takingOver] ?? backup.stateEnteredAtEpoch[.live] ?? backup.epoch
                phase = .backupLive(primaryEnd: end, at: at, epoch: epoch)
                let what = end.map { "the primary \($0)" } ?? "the primary stopped answering"
                events.append("failover at \(Self.seconds(at)): \(what); the backup took over after epoch \(epoch) "
                              + "and is live since \(Self.seconds(live)) (\(Self.milliseconds(live - at)) later)")
            }
            return events
        }
        switch phase {
        case .starting:
            if o.primary?.state == .replicating || backupState == .replaying { phase = .replicating }
        case .replicating:
            if o.primary?.state == .alone || (o.backupEnd != nil && o.primaryEnd == nil && o.primary?.state.isFinal == false) {
                let at = o.primary?.stateEnteredAt[.alone].map(o.since) ?? o.since(o.now)
                phase = .primaryAlone(backupEnd: o.backupEnd, at: at)
                let what = o.backupEnd.map { "the backup \($0)" } ?? "the backup is gone"
                events.append("at \(Self.seconds(at)): \(what); the primary goes on alone at epoch \(o.primary?.epoch ?? 0)")
            }
        case .primaryAlone, .failingOver, .backupLive:
            break
        }
        return events
    }

    /// The status line for `o`.
    func statusLine(_ o: PairObservation) -> String {
        let clock = Self.seconds(o.since(o.now))
        switch phase {
        case .starting:
            let primary = o.primaryEnd.map { "primary \($0.brief)" } ?? "primary \(o.primary?.state.description ?? "starting")"
            let backup = o.backupEnd.map { "backup \($0.brief)" } ?? "backup \(o.backup?.state.description ?? "starting")"
            return "pair: \(primary) · \(backup) · \(clock)"
        case .replicating:
            guard let p = o.primary else { return "pair: replicating · \(clock)" }
            if p.state.isFinal || o.primaryEnd != nil {
                return "pair: primary \(o.primaryEnd?.brief ?? p.state.description), epoch \(p.epoch) · backup \(o.backup?.state.description ?? "-") · \(clock)"
            }
            let behind = p.backupLag == 1 ? "1 epoch behind" : "\(p.backupLag) epochs behind"
            return "pair: primary live, epoch \(p.epoch) · backup \(o.backup?.state.description ?? "replaying"), \(behind) · "
                + "\(Self.rate(p.sendBytesPerSecond)) to the backup · \(clock)"
        case .primaryAlone(let backupEnd, let at):
            let epoch = o.primary.map { "epoch \($0.epoch)" } ?? "-"
            let state = o.primaryEnd.map { "primary \($0.brief)" } ?? "primary live, alone, \(epoch)"
            return "pair: \(state) · backup \(backupEnd?.brief ?? "gone") at \(Self.seconds(at)) · \(clock)"
        case .failingOver(let primaryEnd, let at):
            let what = (primaryEnd ?? o.primaryEnd).map { "primary \($0.brief)" } ?? "primary silent"
            return "pair: backup taking over, epoch \(o.backup?.epoch ?? 0) · \(what) at \(Self.seconds(at)) · \(clock)"
        case .backupLive(let primaryEnd, let at, let epoch):
            let live = o.backup.map { $0.state == .finishedLive ? "backup finished live, epoch \($0.epoch)" : "backup live, epoch \($0.epoch)" }
                ?? "backup live"
            let what = primaryEnd.map { "primary \($0.brief)" } ?? "primary failed"
            return "pair: \(live) · \(clock) · \(what) at \(Self.seconds(at)), failover after epoch \(epoch)"
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
/// from the replicas' statistics files and processes, and the pair's events as lines of their own
/// through the console. Events are printed with or without a terminal; the status row only on one.
final class PairStatusDisplay: @unchecked Sendable {
    private let primary: ReplicaProcess
    private let backup: ReplicaProcess
    private let primaryStats: String
    private let backupStats: String
    private let console: PairConsole
    private let terminal: TerminalStatus
    private let eventsWanted: Bool
    private let started = Date().timeIntervalSince1970
    private let lock = NSLock()
    // Guarded by `lock`.
    private var view = PairView()
    private var timer: (any DispatchSourceTimer)?

    init(primary: ReplicaProcess, backup: ReplicaProcess, primaryStats: String, backupStats: String,
         console: PairConsole, events: Bool)
    {
        self.primary = primary
        self.backup = backup
        self.primaryStats = primaryStats
        self.backupStats = backupStats
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

    private static func end(of process: ReplicaProcess) -> ReplicaEnd? {
        guard process.exitedAt != nil else { return nil }
        return process.terminationReason == .uncaughtSignal
            ? .killed(signal: process.terminationStatus) : .exited(process.terminationStatus)
    }

    private func refresh(final: Bool = false) {
        lock.withLock {
            guard final || timer != nil else { return }
            let observation = PairObservation(
                primary: ReplicationStatus.Snapshot.load(primaryStats), backup: ReplicationStatus.Snapshot.load(backupStats),
                primaryEnd: Self.end(of: primary), backupEnd: Self.end(of: backup),
                started: started, now: Date().timeIntervalSince1970)
            for event in view.observe(observation) where eventsWanted { console.message("lockstep pair: \(event)") }
            if !final { terminal.show(view.statusLine(observation)) }
        }
    }
}
