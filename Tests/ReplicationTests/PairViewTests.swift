import Foundation
import Hypervisor
import Testing

@testable import Replication

/// The state machine behind `lockstep pair`'s status row and failover events, fed observations
/// as the display's timer takes them (the tmux-driven PairConsoleTests check the drawing).
@Suite struct PairViewTests {
    static let start = 1_000_000.0

    static func stats(_ role: ReplicaRole, _ state: ReplicaState, epoch: UInt64, backups: Int = 0, lag: UInt64 = 0,
                      entered: [ReplicaState: (Double, UInt64)] = [:]) -> ReplicationStatus.Snapshot
    {
        var s = ReplicationStatus.Snapshot(role: role, state: state)
        s.epoch = epoch
        s.backups = backups
        s.backupLag = lag
        s.sendBytesPerSecond = 3 * 1024
        for (state, (time, epoch)) in entered {
            s.stateEnteredAt[state] = start + time
            s.stateEnteredAtEpoch[state] = epoch
        }
        return s
    }

    static func look(_ number: Int, _ leader: ReplicationStatus.Snapshot?, end: ReplicaEnd? = nil, previous: ReplicaEnd? = nil,
                     successor: (Int, ReplicationStatus.Snapshot)? = nil, others: Int = 1, at time: Double) -> PairObservation
    {
        PairObservation(leaderNumber: number, leader: leader, leaderEnd: end, previousLeaderEnd: previous,
                        successor: successor.map { (number: $0.0, stats: $0.1) }, others: others, started: start, now: start + time)
    }

    static let tookOver = stats(.backup, .live, epoch: 180, entered: [.takingOver: (2.0, 173), .live: (2.004, 173)])

    @Test func aKilledPrimaryIsOneFailoverEventAndTheBackupIsShownLiveAndAdvancing() {
        var view = PairView()
        #expect(view.observe(Self.look(0, Self.stats(.primary, .waitingForBackup, epoch: 0), at: 0.1)).isEmpty)
        #expect(view.phase == .starting)
        #expect(view.statusLine(Self.look(0, Self.stats(.primary, .waitingForBackup, epoch: 0), at: 0.1))
            == "pair: primary waiting for backup · 1 backup starting · 0.1 s")

        let replicating = Self.look(0, Self.stats(.primary, .replicating, epoch: 120, backups: 1, lag: 2), at: 1.5)
        #expect(view.observe(replicating).isEmpty)
        #expect(view.phase == .leading(leader: 0))
        #expect(view.statusLine(replicating) == "pair: primary live, epoch 120 · 1 backup, 2 epochs behind · 3.0 KiB/s to them · 1.5 s")

        let killed = Self.look(0, Self.stats(.primary, .replicating, epoch: 174, backups: 1), end: .killed(signal: SIGKILL), at: 2.1)
        #expect(view.observe(killed).isEmpty)
        guard case .failingOver(from: 0, end: .killed(signal: SIGKILL), let at) = view.phase else {
            Issue.record("not failing over: \(view.phase)")
            return
        }
        #expect(abs(at - 2.1) < 1e-6)
        #expect(view.statusLine(killed) == "pair: primary killed (SIGKILL) at 2.1 s · a backup is taking over · 2.1 s")

        let events = view.observe(Self.look(1, Self.tookOver, previous: .killed(signal: SIGKILL), others: 0, at: 2.3))
        #expect(events == ["failover at 2.0 s: the primary was killed by SIGKILL; backup 1 took over after epoch 173 and is live since 2.0 s (4 ms later)"])
        #expect(view.phase == .leading(leader: 1))
        #expect(view.failovers == 1)
        var later = Self.tookOver
        later.epoch = 400
        let alone = Self.look(1, later, previous: .killed(signal: SIGKILL), others: 0, at: 3.0)
        #expect(view.observe(alone).isEmpty, "one event per failover")
        #expect(view.statusLine(alone) == "pair: backup 1 live, epoch 400 · no backup · 3.0 s · 1 failover")
    }

    @Test func theGuestsOwnEndIsNoFailoverButALostArbiterIs() {
        var view = PairView()
        _ = view.observe(Self.look(0, Self.stats(.primary, .replicating, epoch: 10, backups: 1), at: 1))
        let exited = Self.look(0, Self.stats(.primary, .finished, epoch: 50, backups: 1), end: .exited(0), at: 2)
        #expect(view.observe(exited).isEmpty)
        #expect(view.phase == .leading(leader: 0))
        #expect(view.statusLine(exited) == "pair: primary exited (0), epoch 50 · 2.0 s")

        var other = PairView()
        _ = other.observe(Self.look(0, Self.stats(.primary, .replicating, epoch: 10, backups: 1), at: 1))
        _ = other.observe(Self.look(0, Self.stats(.primary, .replicating, epoch: 10, backups: 1), end: .exited(ExitStatus.lostArbiter), at: 2))
        #expect(other.phase == .failingOver(from: 0, end: .exited(ExitStatus.lostArbiter), at: 2))
    }

    /// Events the display's quarter-second look can miss still give exactly one failover line.
    @Test func aFailoverSeenLateIsStillOneEvent() {
        // The primary died before the display saw it replicate; the fleet already leads with 1.
        var early = PairView()
        let events = early.observe(Self.look(1, Self.tookOver, previous: .killed(signal: SIGKILL), others: 0, at: 2.3))
        #expect(events.count == 1 && events[0].hasPrefix("failover at 2.0 s: the primary was killed by SIGKILL; backup 1 took over"))
        #expect(early.observe(Self.look(1, Self.tookOver, previous: .killed(signal: SIGKILL), others: 0, at: 2.6)).isEmpty)

        // The successor went live (and finished) before the fleet switched leaders.
        var missed = PairView()
        _ = missed.observe(Self.look(0, Self.stats(.primary, .replicating, epoch: 10, backups: 1), at: 1))
        let seen = missed.observe(Self.look(0, Self.stats(.primary, .replicating, epoch: 174, backups: 1), end: .killed(signal: SIGKILL),
                                            successor: (1, Self.tookOver), at: 2.5))
        #expect(seen.count == 1 && seen[0].contains("backup 1 took over after epoch 173"))
        #expect(missed.phase == .leading(leader: 1))
        // The fleet catching up later is the same failover, not a second one.
        #expect(missed.observe(Self.look(1, Self.tookOver, previous: .killed(signal: SIGKILL), others: 0, at: 2.8)).isEmpty)
        #expect(missed.failovers == 1)
    }
}
