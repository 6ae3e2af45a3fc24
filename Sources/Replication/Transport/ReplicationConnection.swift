import Foundation
import NIOCore

/// Why a replication connection ended.
public enum CloseReason: Error, Equatable, Sendable, CustomStringConvertible {
    /// The peer closed the connection (or its process died).
    case peerClosed
    /// Nothing arrived from the peer for longer than the failure-detection timeout.
    case timeout(milliseconds: Int)
    /// The peer sent something that is not a valid frame or message.
    case protocolError(WireError)
    /// The peer ended replication, for the reason it gave (sanitised).
    case refusedByPeer(String)
    /// The socket failed.
    case ioError(String)
    /// This side closed it.
    case closedLocally

    public var description: String {
        switch self {
        case .peerClosed: "the peer closed the connection"
        case .timeout(let ms): "nothing heard from the peer for \(ms) ms"
        case .protocolError(let e): "replication protocol error: \(e)"
        case .refusedByPeer(let why): "the peer ended replication: \(why)"
        case .ioError(let e): "the replication channel failed: \(e)"
        case .closedLocally: "closed"
        }
    }
}

/// Timing of a connection: failure detection, heartbeats, the handshake's deadline.
public struct ConnectionTiming: Sendable, Hashable {
    /// The peer is declared failed after this long without a sign of life.
    public var timeout: TimeAmount
    /// A heartbeat (a receipt) is sent when nothing else has been sent for this long; liveness
    /// and the machine thread's watchdog are checked as often.
    public var heartbeat: TimeAmount
    /// A connection must finish its handshake within this long.
    public var handshake: TimeAmount

    public init(timeoutMilliseconds: Int) {
        timeout = .milliseconds(Int64(timeoutMilliseconds))
        heartbeat = .milliseconds(Int64(max(timeoutMilliseconds / 5, 1)))
        handshake = .milliseconds(Int64(max(5000, 2 * timeoutMilliseconds)))
    }
}

/// How much a connection buffers (see "Limits" in docs/protocol.md).
public struct ConnectionLimits: Sendable, Hashable {
    /// Opened data held for the machine thread before the connection stops reading.
    public var inbox: Int
    /// Plaintext handed to the connection and not yet sealed before the sender waits.
    public var outgoing: Int

    public static func forRole(_ role: ReplicaRole) -> ConnectionLimits {
        ConnectionLimits(inbox: role == .backup ? 8 << 20 : 1 << 20, outgoing: 8 << 20)
    }
}

/// What the machine thread gets from the connection's inbox.
public enum Received: Sendable {
    /// Opened data, in order (possibly empty when not waiting).
    case data([ByteBuffer])
    /// The connection ended and everything it received has been taken.
    case closed(CloseReason)
}

/// One authenticated replication connection, after its handshake: a sealed, sequenced stream of
/// message bytes in each direction, receipts, liveness, and bounded queues with backpressure.
/// It never looks inside the messages it carries.
///
/// Thread-safe: the machine thread sends batches, waits for receipts and takes received data;
/// the event loop (`SealedChannelHandler`) does everything else. Mutable state shared between
/// them is guarded by `condition`; nothing here is touched per epoch.
public final class ReplicationConnection: @unchecked Sendable {
    /// This side's role.
    public let role: ReplicaRole
    /// The peer, as its handshake identified it.
    public let peer: IdentityMessage
    /// The pair's session (the primary's 16 bytes).
    public let session: [UInt8]
    /// What the backup asked for in the handshake (join a running primary, or replicate from boot).
    public let purpose: JoinPurpose
    /// The peer's address, for messages.
    public let remoteAddress: String
    public let timing: ConnectionTiming
    public let limits: ConnectionLimits
    let channel: Channel
    /// Set by the handler: restart reading, and close after the queued data, on the event loop.
    private let loop: LoopActions

    struct LoopActions: Sendable {
        let resumeReading: @Sendable () -> Void
        let close: @Sendable (_ refusal: String?) -> Void
    }

    private let condition = NSCondition()
    /// Signalled once when the connection ends (for `waitForEnd`, which must not wake at every
    /// broadcast of `condition`: data and receipts arrive many times per epoch).
    private let ended = DispatchSemaphore(value: 0)
    // Guarded by `condition`.
    private var inbox = CircularBuffer<ByteBuffer>()
    private var inboxBytes = 0
    /// What the machine thread holds (reported when it takes data): counts against the inbox limit.
    private var machineHeld = 0
    private var readingStopped = false
    private var closeReason: CloseReason?
    /// Bytes of this side's message stream the peer holds (its last receipt).
    private var peerHolds: UInt64 = 0
    /// Bytes of this side's message stream handed to the event loop.
    private var handedOver: UInt64 = 0
    /// Of those, bytes not yet sealed and written.
    private var queued = 0
    private var lastSign: UInt64
    private var peerSilenceUncounted = false
    private var wireBytesSent: UInt64 = 0
    private var wireBytesReceived: UInt64 = 0

    init(role: ReplicaRole, peer: IdentityMessage, session: [UInt8], purpose: JoinPurpose = .replicateFromBoot,
         remoteAddress: String, timing: ConnectionTiming, limits: ConnectionLimits, channel: Channel, loop: LoopActions,
         now: UInt64)
    {
        self.purpose = purpose
        self.role = role
        self.peer = peer
        self.session = session
        self.remoteAddress = remoteAddress
        self.timing = timing
        self.limits = limits
        self.channel = channel
        self.loop = loop
        lastSign = now
    }

    // MARK: Machine thread

    /// Hands a batch of encoded messages to the connection, waiting while the outgoing queue is
    /// full (backpressure). Returns the offset in this side's message stream just past the
    /// batch: `waitForReceipt(covering:)` with it waits until the peer holds the whole batch.
    public func send(_ batch: ByteBuffer) -> Result<UInt64, CloseReason> {
        let n = batch.readableBytes
        condition.lock()
        while queued > 0 && queued + n > limits.outgoing && closeReason == nil { condition.wait() }
        if let reason = closeReason {
            condition.unlock()
            return .failure(reason)
        }
        queued += n
        handedOver += UInt64(n)
        let end = handedOver
        condition.unlock()
        if n > 0 { channel.writeAndFlush(batch, promise: nil) }
        return .success(end)
    }

    /// Waits until the peer holds this side's message stream up to `offset`, or the connection
    /// ends (its reason is returned then).
    public func waitForReceipt(covering offset: UInt64) -> CloseReason? {
        condition.lock()
        defer { condition.unlock() }
        while peerHolds < offset && closeReason == nil { condition.wait() }
        return peerHolds >= offset ? nil : closeReason
    }

    /// Bytes of this side's message stream the peer has acknowledged so far.
    var acknowledgedBytes: UInt64 { condition.withLock { peerHolds } }

    /// How a wait for a receipt ended.
    public enum ReceiptWait: Sendable, Equatable {
        /// The peer holds the stream up to the offset.
        case held
        /// Data arrived from the peer first: take it (`receive`) so the inbox never fills while
        /// this side waits, then wait again.
        case dataArrived
        case closed(CloseReason)
    }

    /// Waits for the receipt covering `offset`, or for data from the peer, or for the end.
    public func waitForReceipt(covering offset: UInt64, orData: Bool) -> ReceiptWait {
        condition.lock()
        defer { condition.unlock() }
        while peerHolds < offset && closeReason == nil && !(orData && !inbox.isEmpty) { condition.wait() }
        if peerHolds >= offset { return .held }
        if orData && !inbox.isEmpty { return .dataArrived }
        return .closed(closeReason ?? .closedLocally)
    }

    /// Takes the data received so far; with `wait`, waits until there is some or the connection
    /// has ended. `held` is what the caller still holds of earlier data (it counts against the
    /// inbox limit until the caller reports it consumed).
    public func receive(holding held: Int, wait: Bool) -> Received {
        receive(holding: held, waiting: wait ? .untilData : .no)
    }

    /// Takes the data received so far, waiting at most `limit` for some: `.data([])` if none
    /// came by then.
    public func receive(holding held: Int, waitingAtMost limit: Duration) -> Received {
        let seconds = Double(limit.components.seconds) + Double(limit.components.attoseconds) / 1e18
        return receive(holding: held, waiting: .until(Date(timeIntervalSinceNow: seconds)))
    }

    /// How long `receive` waits for data (or the end) when there is none yet.
    private enum Waiting {
        case no
        case untilData
        case until(Date)
    }

    private func receive(holding held: Int, waiting: Waiting) -> Received {
        condition.lock()
        machineHeld = held
        if maybeResume() {
            condition.unlock()
            loop.resumeReading()
            condition.lock()
        }
        switch waiting {
        case .no: break
        case .untilData: while inbox.isEmpty && closeReason == nil { condition.wait() }
        case .until(let deadline): while inbox.isEmpty && closeReason == nil && condition.wait(until: deadline) {}
        }
        if inbox.isEmpty, let reason = closeReason {
            condition.unlock()
            return .closed(reason)
        }
        var chunks: [ByteBuffer] = []
        chunks.reserveCapacity(inbox.count)
        while let chunk = inbox.popFirst() { chunks.append(chunk) }
        machineHeld = held + inboxBytes
        inboxBytes = 0
        condition.unlock()
        return .data(chunks)
    }

    /// Reading restarts once the inbox and what the machine thread holds are below half the limit.
    private func maybeResume() -> Bool {
        guard readingStopped, inboxBytes + machineHeld < limits.inbox / 2, closeReason == nil else { return false }
        readingStopped = false
        return true
    }

    /// Waits until the connection ends. Returns why, and whether received data was still
    /// waiting in the inbox then (data the machine thread had not taken).
    public func waitForEnd() -> (reason: CloseReason, unreceived: Bool) {
        ended.wait()
        ended.signal()  // for any other waiter
        condition.lock()
        defer { condition.unlock() }
        return (closeReason ?? .closedLocally, !inbox.isEmpty)
    }

    /// Why the connection ended, if it has.
    /// Plaintext handed to the connection and not yet sealed and written: a sender that must not
    /// block (a state transfer beside a running guest) sends more only while this is small.
    public var queuedBytes: Int {
        condition.lock()
        defer { condition.unlock() }
        return queued
    }

    public var closed: CloseReason? {
        condition.lock()
        defer { condition.unlock() }
        return closeReason
    }

    /// Nanoseconds since the last sign of life from the peer (0 while this side is not reading).
    public func silence(now: UInt64 = NIODeadline.now().uptimeNanoseconds) -> UInt64 {
        condition.lock()
        defer { condition.unlock() }
        return peerSilenceUncounted || now < lastSign ? 0 : now - lastSign
    }

    /// Closes the connection from this side once what is queued has been written; with a
    /// `refusal`, the peer is told why (a sealed refusal frame) before the connection closes.
    public func close(refusal: String? = nil) {
        condition.lock()
        let open = closeReason == nil
        condition.unlock()
        if open { loop.close(refusal) }
    }

    /// Wire bytes sent and received (frames, headers included).
    public var statistics: (sent: UInt64, received: UInt64) {
        condition.lock()
        defer { condition.unlock() }
        return (wireBytesSent, wireBytesReceived)
    }

    // MARK: Event loop

    /// Opened data arrived. Returns whether the loop may go on reading.
    func delivered(_ chunks: [ByteBuffer], wireBytes: Int, lastSign sign: UInt64) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        for chunk in chunks {
            inbox.append(chunk)
            inboxBytes += chunk.readableBytes
        }
        wireBytesReceived += UInt64(wireBytes)
        lastSign = max(lastSign, sign)
        if !chunks.isEmpty { condition.broadcast() }
        if inboxBytes + machineHeld >= limits.inbox {
            readingStopped = true
            peerSilenceUncounted = true
        }
        return !readingStopped
    }

    /// The loop reads again (liveness counts again from now).
    func readingResumed(lastSign sign: UInt64) {
        condition.lock()
        peerSilenceUncounted = false
        lastSign = max(lastSign, sign)
        condition.unlock()
    }

    /// The peer's receipt: it holds this side's stream up to `offset`.
    func receipt(_ offset: UInt64) throws(WireError) {
        condition.lock()
        defer { condition.unlock() }
        guard offset <= handedOver else { throw .receiptBeyondSent(claimed: offset, sent: handedOver) }
        if offset > peerHolds {
            peerHolds = offset
            condition.broadcast()
        }
    }

    /// The loop sealed `plaintext` bytes of queued data into frames of `wireBytes` bytes.
    func wrote(plaintext: Int, wireBytes: Int) {
        condition.lock()
        queued -= plaintext
        wireBytesSent += UInt64(wireBytes)
        if plaintext > 0 { condition.broadcast() }
        condition.unlock()
    }

    /// Ends the connection for `reason` (the first reason wins) and wakes every waiter.
    /// Returns whether this call ended it.
    @discardableResult
    func fail(_ reason: CloseReason) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard closeReason == nil else { return false }
        closeReason = reason
        condition.broadcast()
        ended.signal()
        return true
    }
}
