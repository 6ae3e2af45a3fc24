import Synchronization

/// What a replica's machine thread is doing, as its connection's watchdog sees it.
public enum MachineActivity: UInt64, Sendable {
    /// Not running the replica yet (building the machine after the handshake): never stuck, so
    /// a slow start on a loaded host is not taken for a failure.
    case starting = 4
    /// Executing the guest (the engine's `run`): progress, however long it takes.
    case guest = 0
    /// Host work between guest runs: boundaries, logging, outputs, disk and console I/O.
    case host = 1
    /// Waiting for the peer (an acknowledgement, the next record): bounded by the timeout.
    case waitingForPeer = 2
    /// Waiting for console input or a timer while the guest idles.
    case waitingForInput = 3
}

/// The machine thread's pulse: one atomic word it stores at every change of activity (no lock,
/// no clock read), and that the connection's event loop samples at each heartbeat. A thread that
/// stays in one step of host work for longer than the limit is stuck: its connection stops
/// heartbeating, so the peer can take over.
public final class MachineWatchdog: Sendable {
    /// (changes << 3) | activity.
    private let word = Atomic<UInt64>(MachineActivity.starting.rawValue)

    public init() {}

    /// Called by the machine thread when it starts doing `activity`.
    @inline(__always)
    public func enter(_ activity: MachineActivity) {
        let old = word.load(ordering: .relaxed)
        word.store(((old >> 3) &+ 1) << 3 | activity.rawValue, ordering: .releasing)
    }

    /// The current word (for `WatchdogObserver`).
    var current: UInt64 { word.load(ordering: .acquiring) }
}

/// Samples a watchdog from the event loop. Pure: times are given, in nanoseconds.
public struct WatchdogObserver: Sendable {
    private var lastWord: UInt64
    private var changedAt: UInt64

    public init(now: UInt64) {
        lastWord = .max
        changedAt = now
    }

    /// Whether the machine thread has been in the same step of host work for longer than `limit`.
    public mutating func isStuck(_ watchdog: MachineWatchdog, now: UInt64, limit: UInt64) -> Bool {
        observe(watchdog.current, now: now, limit: limit)
    }

    mutating func observe(_ word: UInt64, now: UInt64, limit: UInt64) -> Bool {
        if word != lastWord {
            lastWord = word
            changedAt = now
            return false
        }
        return MachineActivity(rawValue: word & 7) == .host && now &- changedAt > limit
    }
}
