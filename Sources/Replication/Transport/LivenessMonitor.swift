/// Decides whether the peer is alive, from the bytes that arrive (not only complete frames), so a
/// large record on a slow link is not mistaken for a dead peer.
///
/// Any byte is a sign of life, but a frame in progress counts for at most one timeout after its
/// first byte: a peer (or an attacker on the path) that trickles bytes of a frame that never
/// completes cannot keep a dead peer alive. While this side has stopped reading (its inbox is
/// full), the peer's silence is not counted. Pure: times are given, in nanoseconds.
public struct LivenessMonitor: Sendable, Equatable {
    public let timeout: UInt64
    /// The last sign of life.
    public private(set) var lastSign: UInt64
    /// When the frame in progress (if any) began to arrive.
    private var frameStartedAt: UInt64?
    /// Since when this side has stopped reading, if it has.
    private var pausedSince: UInt64?

    public init(timeout: UInt64, now: UInt64) {
        self.timeout = timeout
        lastSign = now
    }

    /// Bytes arrived: `completedFrames` frames were completed, and `partialFrame` tells whether
    /// bytes of an unfinished frame remain buffered.
    public mutating func bytesArrived(at now: UInt64, completedFrames: Int, partialFrame: Bool) {
        if completedFrames > 0 { lastSign = max(lastSign, now) }
        guard partialFrame else {
            frameStartedAt = nil
            return
        }
        if completedFrames > 0 || frameStartedAt == nil { frameStartedAt = now }
        if let start = frameStartedAt, now &- start <= timeout { lastSign = max(lastSign, now) }
    }

    /// This side stopped reading (backpressure).
    public mutating func pause(at now: UInt64) {
        if pausedSince == nil { pausedSince = now }
    }

    /// This side reads again: the time it did not read is not the peer's silence.
    public mutating func resume(at now: UInt64) {
        guard pausedSince != nil else { return }
        pausedSince = nil
        lastSign = max(lastSign, now)
        if frameStartedAt != nil { frameStartedAt = now }
    }

    public var isPaused: Bool { pausedSince != nil }

    /// How long the peer has been silent.
    public func silence(at now: UInt64) -> UInt64 {
        pausedSince != nil ? 0 : (now > lastSign ? now - lastSign : 0)
    }

    /// Whether the peer has been silent for longer than the timeout.
    public func isExpired(at now: UInt64) -> Bool { silence(at: now) > timeout }
}
