import Foundation
import Hypervisor
import Replication

extension ReplicaEnd {
    /// How `process` ended, if it did.
    static func of(_ process: ReplicaProcess) -> ReplicaEnd? {
        guard process.exitedAt != nil else { return nil }
        return process.terminationReason == .uncaughtSignal ? .killed(signal: process.terminationStatus) : .exited(process.terminationStatus)
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
