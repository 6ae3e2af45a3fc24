/// One backup of a primary, as a state machine: a backup that joins a running primary first
/// receives its state (pre-copy rounds, then the final copy at a boundary), then follows; any
/// backup may be lost. A primary holds one per backup (`--backups N`); the primary-wide rules
/// (output commit, the arbiter) stay in `PrimaryStateMachine`.
///
/// ```
///   [transferring(round 1: every page that is not zero)]
///        | round sent --> dirty pages since the round began:
///        |    few enough, or the last round allowed --> .finalCopy (at this boundary)
///        |    otherwise --> [transferring(round + 1: the dirty pages)]
///        | final copy sent --> [following(executed: the transfer's epoch)]
///   [following] --executed(n)--> [following] (reports only move forward)
///   any --lost(reason)--> [gone(reason)]
/// ```
public struct BackupPeerStateMachine: Sendable, Equatable {
    /// A pre-copy round: the pages it sends and how many are sent.
    public struct Round: Sendable, Equatable {
        public var number: Int
        public var pages: [Int]
        public var sent: Int
    }

    public enum State: Sendable, Equatable {
        case transferring(Round)
        case following(executed: UInt64)
        case gone(CloseReason)
    }

    /// What the primary does after a round of pages went out.
    public enum RoundEnd: Sendable, Equatable {
        /// Send these dirty pages as the next round while the guest runs.
        case nextRound
        /// Stop at this boundary and send the last dirty pages and the machine's state.
        case finalCopy
    }

    public private(set) var state: State
    /// Pages sent in all (every round and the final copy).
    public private(set) var pagesSent = 0
    /// At most this many dirty pages are left for the final copy (the guest is stopped for it).
    public let finalCopyPages: Int
    /// After this many rounds the final copy is made whatever remains (a guest that writes faster
    /// than the link carries would otherwise never converge).
    public let maximumRounds: Int

    /// A backup that replicated from boot: it follows from the start.
    public static func following() -> BackupPeerStateMachine {
        BackupPeerStateMachine(state: .following(executed: 0), finalCopyPages: 0, maximumRounds: 0)
    }

    /// A backup that joins: its first round is `pages` (every page of RAM that is not zero).
    /// The final copy waits for at most `finalCopyPages` dirty pages (128: 512 KiB, about a
    /// millisecond of hashing and copying here; 512 made a guest writing 1000 pages a second
    /// pause 5-10 ms).
    public static func joining(pages: [Int], finalCopyPages: Int = 128, maximumRounds: Int = 8) -> BackupPeerStateMachine {
        BackupPeerStateMachine(state: .transferring(Round(number: 1, pages: pages, sent: 0)),
                               finalCopyPages: finalCopyPages, maximumRounds: maximumRounds)
    }

    public var isFollowing: Bool { if case .following = state { true } else { false } }

    /// The next pages of the round to send (at most `limit`); empty when the round is sent.
    public mutating func nextPages(limit: Int) -> ArraySlice<Int> {
        guard case .transferring(var round) = state else { return [] }
        let end = min(round.pages.count, round.sent + max(limit, 0))
        let chunk = round.pages[round.sent..<end]
        round.sent = end
        pagesSent += chunk.count
        state = .transferring(round)
        return chunk
    }

    /// Whether the round's pages are all sent.
    public var roundSent: Bool {
        guard case .transferring(let round) = state else { return false }
        return round.sent == round.pages.count
    }

    /// The round is sent; `dirty` are the pages written since it began.
    public mutating func roundEnded(dirty: [Int]) -> RoundEnd {
        guard case .transferring(let round) = state else { return .finalCopy }
        if dirty.count <= finalCopyPages || round.number >= maximumRounds { return .finalCopy }
        state = .transferring(Round(number: round.number + 1, pages: dirty, sent: 0))
        return .nextRound
    }

    /// The rounds sent so far.
    public var rounds: Int { if case .transferring(let round) = state { round.number } else { 0 } }

    /// The final copy (`pages` more) went out at the boundary before epoch `epoch`: the backup
    /// follows from there.
    public mutating func transferred(finalPages pages: Int, epoch: UInt64) {
        pagesSent += pages
        state = .following(executed: epoch)
    }

    /// The backup reported `epochs` executed. Returns the epochs it has executed now.
    public mutating func executed(_ epochs: UInt64) -> UInt64 {
        guard case .following(let before) = state else { return 0 }
        let now = max(before, epochs)
        state = .following(executed: now)
        return now
    }

    /// Both replicas went back to the start of `epoch` (output comparison's rollback).
    public mutating func rolledBack(to epoch: UInt64) -> UInt64 {
        guard case .following(let before) = state else { return 0 }
        state = .following(executed: min(before, epoch))
        return min(before, epoch)
    }

    public var executedEpochs: UInt64? { if case .following(let n) = state { n } else { nil } }

    public mutating func lost(_ reason: CloseReason) {
        if case .gone = state { return }
        state = .gone(reason)
    }
}
