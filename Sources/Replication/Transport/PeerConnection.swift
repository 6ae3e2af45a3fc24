import Foundation
import MachineCore
import NIOCore
import NIOPosix

/// Why a replication connection ended.
public enum CloseReason: Error, Equatable, Sendable, CustomStringConvertible {
    /// The peer closed the connection (or its process died).
    case peerClosed
    /// Nothing arrived from the peer for longer than the failure-detection timeout.
    case timeout(milliseconds: Int)
    /// The peer sent something that is not a valid frame or message.
    case protocolError(WireError)
    /// The socket failed.
    case ioError(String)
    /// This side closed it.
    case closedLocally

    public var description: String {
        switch self {
        case .peerClosed: "the peer closed the connection"
        case .timeout(let ms): "nothing heard from the peer for \(ms) ms"
        case .protocolError(let e): "replication protocol error: \(e)"
        case .ioError(let e): "replication channel I/O error: \(e)"
        case .closedLocally: "closed"
        }
    }
}

/// Timing of failure detection on a connection.
public struct ConnectionTiming: Sendable, Hashable {
    /// The peer is declared failed after this long without a frame.
    public var timeout: TimeAmount
    /// A heartbeat is sent when nothing else has been sent for this long.
    public var heartbeat: TimeAmount

    public init(timeoutMilliseconds: Int) {
        timeout = .milliseconds(Int64(timeoutMilliseconds))
        heartbeat = .milliseconds(Int64(max(timeoutMilliseconds / 5, 1)))
    }
}

/// One replication connection over TCP: framing, sequence numbers, batching, acknowledgements,
/// heartbeats and failure detection. Thread-safe: the machine's thread sends and waits, the
/// event loop receives; all mutable state is guarded by `condition`.
public final class PeerConnection: @unchecked Sendable {
    public let channel: Channel
    public let timing: ConnectionTiming
    /// Whether this side acknowledges every burst of frames it receives (the backup does).
    private let acknowledges: Bool
    private let condition = NSCondition()
    private var heartbeatTask: RepeatedTask?

    // Guarded by `condition`.
    private var nextSequence: UInt64 = 0
    private var outgoing: [UInt8] = []
    private var inbox: [Message] = []
    private var closeReason: CloseReason?
    private var lastReceivedAt: UInt64
    private var lastSentAt: UInt64
    private var lastReceivedSequence: UInt64?
    private var peerAck = AckRecord(received: 0, executedEpochs: 0)
    private var executedEpochs: UInt64 = 0
    /// The executed epochs in the last acknowledgement sent.
    private var acknowledgedExecution: UInt64 = 0
    private var unacknowledged = false
    private var bytesSent: UInt64 = 0
    private var bytesReceived: UInt64 = 0

    init(channel: Channel, timing: ConnectionTiming, acknowledges: Bool) {
        self.channel = channel
        self.timing = timing
        self.acknowledges = acknowledges
        let now = DispatchTime.now().uptimeNanoseconds
        lastReceivedAt = now
        lastSentAt = now
    }

    /// The NIO handler that feeds this connection; installed by the bootstraps.
    func makeHandler() -> FrameHandler { FrameHandler(connection: self) }

    /// Starts heartbeats and failure detection (after the handshake).
    public func startMonitoring() {
        let period = timing.heartbeat
        let task = channel.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) {
            [self] _ in tick()
        }
        condition.lock()
        heartbeatTask = task
        lastReceivedAt = DispatchTime.now().uptimeNanoseconds
        let alreadyClosed = closeReason != nil
        condition.unlock()
        // A connection that ended before monitoring started has no one left to cancel the task.
        if alreadyClosed { task.cancel() }
    }

    private func tick() {
        let now = DispatchTime.now().uptimeNanoseconds
        condition.lock()
        if closeReason != nil {
            condition.unlock()
            return
        }
        if now &- lastReceivedAt > UInt64(timing.timeout.nanoseconds) {
            condition.unlock()
            fail(.timeout(milliseconds: Int(timing.timeout.nanoseconds / 1_000_000)))
            return
        }
        let idle = now &- lastSentAt >= UInt64(timing.heartbeat.nanoseconds)
        condition.unlock()
        if idle {
            if acknowledges { sendAcknowledgement() } else { send(.heartbeat) }
            flush()
        }
    }

    /// Queues an acknowledgement of everything received and executed so far. It is built and
    /// numbered under one lock, so acknowledgements leave in the order of what they report.
    private func sendAcknowledgement() {
        condition.lock()
        defer { condition.unlock() }
        unacknowledged = false
        acknowledgedExecution = executedEpochs
        let ack = Message.ack(AckRecord(received: lastReceivedSequence.map { $0 + 1 } ?? 0,
                                        executedEpochs: executedEpochs))
        enqueue(type: ack.type, payload: ack.encodedPayload())
    }

    // MARK: Sending

    /// Queues `message`; nothing is written until `flush`. Returns the frame's sequence number.
    ///
    /// A message too large for a frame (a bug in the sender: the primary bounds what one
    /// boundary carries) is never sent: it ends the connection with a clear reason instead of
    /// reaching the peer as a protocol error.
    @discardableResult
    public func send(_ message: Message) -> UInt64 {
        let payload = message.encodedPayload()
        if payload.count > Frame.maximumPayload {
            fail(.ioError("cannot send a \(payload.count)-byte \(message.type) message: the frame limit is \(Frame.maximumPayload) bytes"))
        }
        condition.lock()
        defer { condition.unlock() }
        return enqueue(type: message.type, payload: payload)
    }

    /// Numbers and queues a frame. Called with `condition` held.
    @discardableResult
    private func enqueue(type: MessageType, payload: [UInt8]) -> UInt64 {
        let sequence = nextSequence
        nextSequence += 1
        guard closeReason == nil else { return sequence }
        outgoing += Frame(type: type, sequence: sequence, payload: payload).encoded()
        return sequence
    }

    /// Writes every queued frame in one batch.
    public func flush() {
        condition.lock()
        defer { condition.unlock() }
        guard !outgoing.isEmpty, closeReason == nil else { return }
        let bytes = outgoing
        outgoing.removeAll(keepingCapacity: true)
        bytesSent += UInt64(bytes.count)
        lastSentAt = DispatchTime.now().uptimeNanoseconds
        let channel = self.channel
        // Always through the task queue, even on the event loop, so that batches flushed from
        // different threads reach the socket in sequence order.
        channel.eventLoop.execute {
            channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).whenFailure { [self] error in
                fail(.ioError("\(error)"))
            }
        }
    }

    // MARK: Receiving (event loop)

    func didReceive(_ message: Message, sequence: UInt64, byteCount: Int) {
        condition.lock()
        lastReceivedAt = DispatchTime.now().uptimeNanoseconds
        lastReceivedSequence = sequence
        bytesReceived += UInt64(byteCount)
        switch message {
        case .ack(let ack):
            // Acknowledgements only ever move forward.
            peerAck = AckRecord(received: max(peerAck.received, ack.received),
                                executedEpochs: max(peerAck.executedEpochs, ack.executedEpochs))
        case .heartbeat:
            break
        default:
            inbox.append(message)
            unacknowledged = true
        }
        condition.broadcast()
        condition.unlock()
    }

    /// After a burst of frames: the backup acknowledges what it has received.
    func didFinishReading() {
        guard acknowledges else { return }
        condition.lock()
        let pending = unacknowledged && closeReason == nil
        condition.unlock()
        if pending {
            sendAcknowledgement()
            flush()
        }
    }

    /// Ends the connection for `reason` (the first reason wins) and wakes every waiter.
    func fail(_ reason: CloseReason) {
        condition.lock()
        let first = closeReason == nil
        if first { closeReason = reason }
        let task = heartbeatTask
        condition.broadcast()
        condition.unlock()
        if first {
            task?.cancel()
            channel.close(promise: nil)
        }
    }

    /// Closes the connection from this side, after writing what is queued.
    public func close() {
        flush()
        fail(.closedLocally)
    }

    /// Why the connection ended, if it has.
    public var closed: CloseReason? {
        condition.lock()
        defer { condition.unlock() }
        return closeReason
    }

    // MARK: Waiting

    /// The next message other than acks and heartbeats, waiting until `deadline`.
    /// Returns `.failure` once the connection has ended and every received message was taken.
    public func receive(until deadline: Date? = nil) -> Result<Message, CloseReason>? {
        condition.lock()
        defer { condition.unlock() }
        while inbox.isEmpty && closeReason == nil {
            if let deadline {
                if !condition.wait(until: deadline) { return nil }
            } else {
                condition.wait()
            }
        }
        if !inbox.isEmpty { return .success(inbox.removeFirst()) }
        return .failure(closeReason!)
    }

    /// Waits until the peer acknowledged every frame before `sequence` (exclusive), or the
    /// connection ended. Returns the close reason in the latter case.
    public func waitForAcknowledgement(through sequence: UInt64) -> CloseReason? {
        condition.lock()
        defer { condition.unlock() }
        while peerAck.received <= sequence && closeReason == nil { condition.wait() }
        return peerAck.received > sequence ? nil : closeReason
    }

    /// Waits until the backup has executed at least `epochs` epochs, or the connection ended.
    public func waitForExecution(of epochs: UInt64) -> CloseReason? {
        condition.lock()
        defer { condition.unlock() }
        while peerAck.executedEpochs < epochs && closeReason == nil { condition.wait() }
        return peerAck.executedEpochs >= epochs ? nil : closeReason
    }

    /// Epochs a backup executes between acknowledgements it sends of its own accord, so that a
    /// primary held back by its maximum lag goes on without waiting for a heartbeat.
    public static let executionAcknowledgementInterval: UInt64 = 8

    /// Records how far this (backup) side has executed. It is acknowledged at once every
    /// `executionAcknowledgementInterval` epochs, or every `maximumLag` epochs if that is
    /// smaller (the primary waits once the backup is that far behind).
    public func setExecutedEpochs(_ epochs: UInt64, maximumLag: UInt64 = .max) {
        condition.lock()
        executedEpochs = epochs
        unacknowledged = true
        let interval = max(1, min(Self.executionAcknowledgementInterval, maximumLag))
        let due = epochs >= acknowledgedExecution + interval
        condition.unlock()
        if due {
            sendAcknowledgement()
            flush()
        }
    }

    /// Nanoseconds since the last frame arrived from the peer.
    public var silence: UInt64 {
        condition.lock()
        defer { condition.unlock() }
        return DispatchTime.now().uptimeNanoseconds &- lastReceivedAt
    }

    /// Counters for the status line.
    public var statistics: (sent: UInt64, received: UInt64, peerExecutedEpochs: UInt64) {
        condition.lock()
        defer { condition.unlock() }
        return (bytesSent, bytesReceived, peerAck.executedEpochs)
    }
}

/// Decodes frames from the TCP stream into messages for a `PeerConnection`.
final class FrameHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let connection: PeerConnection
    private var decoder = FrameDecoder()

    init(connection: PeerConnection) { self.connection = connection }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        decoder.append(bytes)
        do {
            while let frame = try decoder.next() {
                let message = try Message(frame: frame)
                connection.didReceive(message, sequence: frame.sequence,
                                      byteCount: frame.payload.count + Frame.headerSize + Frame.trailerSize)
            }
        } catch {
            connection.fail(.protocolError(error))
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        connection.didFinishReading()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.fail(.peerClosed)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        connection.fail(.ioError("\(error)"))
    }
}
