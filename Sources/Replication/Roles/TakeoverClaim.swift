import Foundation

/// Who claims the arbiter when a backup's primary fails, and when. The machine thread claims when
/// it notices the end itself (waiting for the log). But with the exits clock an epoch of a guest
/// that does not exit can last seconds, and the machine thread notices nothing while it runs the
/// guest: then a watcher thread claims the moment the connection ends, provided the machine
/// thread runs the guest at the head of the log (every complete message received consumed, none
/// waiting in the inbox), so the backup has executed everything the primary made visible and only
/// the primary's unfinished epoch remains, which it is executing already. Exactly one claim is
/// made; the machine thread takes its verdict.
final class TakeoverClaim: @unchecked Sendable {
    enum Claimant: Sendable, Equatable { case machineThread, watcher }

    private enum State {
        /// Replicating; whether the machine thread runs the guest at the head of the log.
        case following(atHead: Bool)
        case claiming(Claimant)
        case decided(Claimant, Result<Arbiter.Outcome, ArbiterError>)
        /// Replication ended without a takeover (the run finished, or the log was refused).
        case ended
    }

    private let condition = NSCondition()
    private var state = State.following(atHead: false)
    private var generation: UInt64 = 0

    /// The generation of the pair's membership this backup belongs to: its claim names it.
    var membership: UInt64 {
        get { condition.lock(); defer { condition.unlock() }; return generation }
        set { condition.lock(); generation = newValue; condition.unlock() }
    }

    /// The machine thread starts running the guest with every complete message consumed (true),
    /// or stops doing so to take messages or handle a boundary (false).
    func setAtHead(_ atHead: Bool) {
        condition.lock()
        if case .following = state { state = .following(atHead: atHead) }
        condition.unlock()
    }

    /// Starts a claim for `claimant` if none was made: the watcher only while the machine thread
    /// runs at the head of the log. Returns whether the caller must claim now.
    func begin(_ claimant: Claimant) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard case .following(let atHead) = state, claimant == .machineThread || atHead else { return false }
        state = .claiming(claimant)
        return true
    }

    /// The arbiter's answer to the claim begun.
    func decide(_ verdict: Result<Arbiter.Outcome, ArbiterError>) {
        condition.lock()
        if case .claiming(let claimant) = state { state = .decided(claimant, verdict) }
        condition.broadcast()
        condition.unlock()
    }

    /// The verdict, once a claim was begun (waits while it is under way), and who claimed; nil if
    /// no claim was begun.
    func verdict() -> (Claimant, Result<Arbiter.Outcome, ArbiterError>)? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            switch state {
            case .claiming: condition.wait()
            case .decided(let claimant, let verdict): return (claimant, verdict)
            case .following, .ended: return nil
            }
        }
    }

    /// No takeover will happen (unless a claim was already begun).
    func end() {
        condition.lock()
        if case .following = state { state = .ended }
        condition.unlock()
    }
}
