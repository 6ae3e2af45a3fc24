import Foundation
import NIOCore

/// The event-loop side of one replication connection: runs its handshake, then opens and seals
/// frames, sends receipts and heartbeats, watches liveness and the machine thread's watchdog,
/// and applies backpressure in both directions. Reads only when asked (`autoRead` is off), so a
/// full inbox stops reading from the socket.
final class SealedChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    /// Plaintext batches of this side's message stream, from `ReplicationConnection.send`.
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Phase {
        case handshaking(HandshakeStateMachine)
        case established(sealer: FrameSealer, opener: FrameOpener, connection: ReplicationConnection)
        case closed
    }

    private var phase: Phase
    private let role: ReplicaRole
    private let timing: ConnectionTiming
    private let watchdog: MachineWatchdog?
    /// Called once on the event loop with the handshake's outcome.
    private var onHandshake: ((Result<ReplicationConnection, HandshakeFailure>) -> Void)?
    private var reader = FrameReader()
    private var liveness: LivenessMonitor
    private var observer: WatchdogObserver
    private var pending = CircularBuffer<ByteBuffer>()
    private var pendingBytes = 0
    /// Plaintext bytes of the peer's stream opened so far (what receipts report).
    private var received: UInt64 = 0
    private var receiptOwed = false
    private var readingStopped = false
    private var lastSentAt: UInt64
    /// While the machine thread is stuck this side sends nothing, so its peer can take over.
    private var silent = false
    /// A local close waiting for the queue to drain, with an optional refusal to send first.
    private var closeRequest: String??
    private var context: ChannelHandlerContext?
    private var ticker: RepeatedTask?
    private var handshakeDeadline: Scheduled<Void>?
    /// Backup: proves the arbiter and the disk shared for a session (blocking: run off the loop).
    private let verifySharing: (@Sendable (_ session: [UInt8]) -> String?)?

    init(handshake: HandshakeStateMachine, timing: ConnectionTiming, watchdog: MachineWatchdog?,
         verifySharing: (@Sendable (_ session: [UInt8]) -> String?)? = nil,
         onHandshake: @escaping (Result<ReplicationConnection, HandshakeFailure>) -> Void)
    {
        self.verifySharing = verifySharing
        phase = .handshaking(handshake)
        role = handshake.role
        self.timing = timing
        self.watchdog = watchdog
        self.onHandshake = onHandshake
        let now = Self.now()
        liveness = LivenessMonitor(timeout: UInt64(timing.timeout.nanoseconds), now: now)
        observer = WatchdogObserver(now: now)
        lastSentAt = now
    }

    static func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds }

    /// HOST:PORT, or [V6]:PORT.
    static func describe(_ address: SocketAddress?) -> String {
        guard let address, let ip = address.ipAddress, let port = address.port else { return "unknown" }
        return Endpoint(host: ip, port: port).description
    }

    // MARK: Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private var started = false

    private func start(context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let seconds = Int(timing.handshake.nanoseconds / 1_000_000_000)
        handshakeDeadline = context.eventLoop.scheduleTask(in: timing.handshake) {
            bound.value.handshakeFailed(.timedOut(seconds: seconds))
        }
        if case .handshaking(var machine) = phase {
            let step = machine.start()
            phase = .handshaking(machine)
            write(step.send, context: context)
        }
        context.read()
    }

    func channelInactive(context: ChannelHandlerContext) {
        end(.peerClosed, handshake: .closed("the peer closed the connection"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        let text = NetworkErrorText.describe(error)
        end(.ioError(text), handshake: .closed(text))
        context.close(promise: nil)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        ticker?.cancel()
        handshakeDeadline?.cancel()
        self.context = nil
    }

    // MARK: Receiving

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        let wireBytes = bytes.readableBytes
        reader.append(&bytes)
        var completed = 0
        var chunks: [ByteBuffer] = []
        do {
            while let frame = try reader.next() {
                completed += 1
                switch phase {
                case .handshaking:
                    handshake(frame, context: context)
                case .established(let sealer, var opener, let connection):
                    let plaintext = try opener.open(frame)
                    phase = .established(sealer: sealer, opener: opener, connection: connection)
                    switch frame.type {
                    case .data:
                        received += UInt64(plaintext.readableBytes)
                        chunks.append(plaintext)
                    case .receipt:
                        var p = plaintext
                        try connection.receipt(p.readInteger(endianness: .little, as: UInt64.self) ?? 0)
                    case .refusal:
                        end(.refusedByPeer(PeerText.sanitized(bytes: plaintext.readableBytesView)), handshake: nil)
                        context.close(promise: nil)
                        return
                    case .invalid, .handshake, .identity, .ready:
                        throw WireError.unexpectedFrame(frame.type)
                    }
                case .closed:
                    return
                }
            }
        } catch let error as WireError {
            switch phase {
            case .handshaking: handshakeFailed(.malformed(error))
            case .established, .closed:
                end(.protocolError(error), handshake: nil)
                context.close(promise: nil)
            }
            return
        } catch {
            return
        }
        let now = Self.now()
        liveness.bytesArrived(at: now, completedFrames: completed, partialFrame: reader.hasPartialFrame)
        if case .established(_, _, let connection) = phase {
            // Only the primary waits for receipts (output commit); a backup acknowledges each
            // read, and the primary's receipts are its heartbeats.
            if !chunks.isEmpty && role != .primary { receiptOwed = true }
            if !connection.delivered(chunks, wireBytes: wireBytes, lastSign: liveness.lastSign) {
                readingStopped = true
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if receiptOwed && !silent {
            sendReceipt(context: context)
            context.flush()
        }
        if readingStopped {
            liveness.pause(at: Self.now())
        } else if case .closed = phase {
            return
        } else {
            context.read()
        }
    }

    /// The machine thread made room in the inbox.
    func resumeReading() {
        guard readingStopped, let context, case .established(_, _, let connection) = phase else { return }
        readingStopped = false
        let now = Self.now()
        liveness.resume(at: now)
        connection.readingResumed(lastSign: liveness.lastSign)
        context.read()
    }

    private func handshake(_ frame: RawFrame, context: ChannelHandlerContext) {
        guard case .handshaking(var machine) = phase else { return }
        let step = machine.receive(frame)
        phase = .handshaking(machine)
        apply(step, context: context)
    }

    private func apply(_ step: HandshakeStateMachine.Step, context: ChannelHandlerContext) {
        switch step.outcome {
        case nil:
            write(step.send, context: context)
            if let session = step.verify { verify(session, context: context) }
        case .failure(let failure):
            // The alert or refusal goes out before the connection closes.
            handshakeFailed(failure, farewell: step.send)
        case .success(let session):
            write(step.send, context: context)
            establish(session, context: context)
        }
    }

    /// Runs the proof of sharing off the event loop (it reads the arbiter, which may be etcd
    /// over the network, and opens the disk), then gives the state machine the verdict.
    private func verify(_ session: [UInt8], context: ChannelHandlerContext) {
        let check = verifySharing
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let loop = context.eventLoop
        DispatchQueue.global().async {
            let refusal = check?(session)
            loop.execute { bound.value.verified(refusal: refusal) }
        }
    }

    private func verified(refusal: String?) {
        guard let context, case .handshaking(var machine) = phase else { return }
        let step = machine.verified(refusal: refusal)
        phase = .handshaking(machine)
        apply(step, context: context)
    }

    private func establish(_ session: EstablishedSession, context: ChannelHandlerContext) {
        handshakeDeadline?.cancel()
        handshakeDeadline = nil
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let loop = context.eventLoop
        let actions = ReplicationConnection.LoopActions(
            resumeReading: { loop.execute { bound.value.resumeReading() } },
            close: { refusal in loop.execute { bound.value.requestClose(refusal: refusal) } })
        let now = Self.now()
        let connection = ReplicationConnection(
            role: role, peer: session.peer, session: session.session, purpose: session.purpose,
            remoteAddress: Self.describe(context.channel.remoteAddress),
            timing: timing, limits: .forRole(role), channel: context.channel, loop: actions, now: now)
        phase = .established(sealer: session.sealer, opener: session.opener, connection: connection)
        liveness = LivenessMonitor(timeout: UInt64(timing.timeout.nanoseconds), now: now)
        ticker = context.eventLoop.scheduleRepeatedTask(initialDelay: timing.heartbeat, delay: timing.heartbeat) { _ in
            bound.value.tick()
        }
        let callback = onHandshake
        onHandshake = nil
        callback?(.success(connection))
    }

    private func handshakeFailed(_ failure: HandshakeFailure, farewell: [UInt8] = []) {
        guard case .handshaking = phase else { return }
        phase = .closed
        handshakeDeadline?.cancel()
        let callback = onHandshake
        onHandshake = nil
        callback?(.failure(failure))
        guard let context else { return }
        if farewell.isEmpty || !context.channel.isActive {
            context.close(promise: nil)
        } else {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(bytes: farewell))).whenComplete { _ in
                channel.close(promise: nil)
            }
        }
    }

    /// The connection ended: tell whoever waits (the handshake's caller or the machine thread).
    private func end(_ reason: CloseReason, handshake failure: HandshakeFailure?) {
        switch phase {
        case .handshaking:
            if let failure { handshakeFailed(failure) }
        case .established(_, _, let connection):
            phase = .closed
            ticker?.cancel()
            connection.fail(reason)
        case .closed:
            break
        }
    }

    // MARK: Sending

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let batch = unwrapOutboundIn(data)
        promise?.succeed(())
        guard batch.readableBytes > 0 else { return }
        pending.append(batch)
        pendingBytes += batch.readableBytes
    }

    func flush(context: ChannelHandlerContext) {
        pump(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { pump(context: context) }
        context.fireChannelWritabilityChanged()
    }

    /// Seals queued plaintext into data frames of at most 64 KiB while the socket takes them, so a
    /// large batch never sits in NIO's buffer as a whole and a receipt can go out between frames.
    private func pump(context: ChannelHandlerContext) {
        guard case .established(var sealer, let opener, let connection) = phase, !silent else { return }
        var plaintext = 0, wire = 0
        while context.channel.isWritable, var first = pending.first {
            let chunk = first.readSlice(length: min(Frame.maximumPlaintext, first.readableBytes))!
            var out = context.channel.allocator.buffer(capacity: chunk.readableBytes + Frame.headerSize + Frame.tagSize)
            do {
                try sealer.seal(.data, chunk.readableBytesView, into: &out)
            } catch {
                phase = .established(sealer: sealer, opener: opener, connection: connection)
                end(.protocolError(error), handshake: nil)
                context.close(promise: nil)
                return
            }
            plaintext += chunk.readableBytes
            wire += out.readableBytes
            if first.readableBytes == 0 { pending.removeFirst() } else { pending[pending.startIndex] = first }
            context.write(wrapOutboundOut(out), promise: nil)
        }
        phase = .established(sealer: sealer, opener: opener, connection: connection)
        pendingBytes -= plaintext
        if wire > 0 {
            lastSentAt = Self.now()
            context.flush()
            connection.wrote(plaintext: plaintext, wireBytes: wire)
        }
        if pending.isEmpty, let request = closeRequest { finishClose(refusal: request, context: context) }
    }

    private func sendReceipt(context: ChannelHandlerContext) {
        guard case .established(var sealer, let opener, let connection) = phase else { return }
        var plaintext = context.channel.allocator.buffer(capacity: 8)
        plaintext.writeInteger(received, endianness: .little)
        var out = context.channel.allocator.buffer(capacity: 8 + Frame.headerSize + Frame.tagSize)
        guard (try? sealer.seal(.receipt, plaintext.readableBytesView, into: &out)) != nil else { return }
        phase = .established(sealer: sealer, opener: opener, connection: connection)
        receiptOwed = false
        lastSentAt = Self.now()
        context.write(wrapOutboundOut(out), promise: nil)
        connection.wrote(plaintext: 0, wireBytes: out.readableBytes)
    }

    /// Every heartbeat period: liveness, the watchdog, and a heartbeat if nothing else was sent.
    private func tick() {
        guard let context, case .established = phase else { return }
        let now = Self.now()
        if liveness.isExpired(at: now) {
            end(.timeout(milliseconds: Int(timing.timeout.nanoseconds / 1_000_000)), handshake: nil)
            context.close(promise: nil)
            return
        }
        if let watchdog {
            let stuck = observer.isStuck(watchdog, now: now, limit: UInt64(timing.timeout.nanoseconds))
            if stuck != silent {
                silent = stuck
                if !silent { pump(context: context) }
            }
        }
        if !silent && now &- lastSentAt >= UInt64(timing.heartbeat.nanoseconds) {
            sendReceipt(context: context)
            context.flush()
        }
    }

    private func requestClose(refusal: String?) {
        guard let context, case .established = phase else { return }
        closeRequest = .some(refusal)
        if pending.isEmpty {
            finishClose(refusal: refusal, context: context)
            return
        }
        // A peer that stopped reading cannot hold the close back for longer than the timeout.
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: timing.timeout) {
            let handler = bound.value
            guard let context = handler.context, handler.closeRequest != nil else { return }
            handler.pending.removeAll()
            handler.finishClose(refusal: refusal, context: context)
        }
    }

    private func finishClose(refusal: String?, context: ChannelHandlerContext) {
        closeRequest = nil
        if let refusal, case .established(var sealer, _, _) = phase {
            var out = context.channel.allocator.buffer(capacity: 256)
            if (try? sealer.seal(.refusal, Array(refusal.utf8.prefix(Frame.maximumRefusal)), into: &out)) != nil {
                context.write(wrapOutboundOut(out), promise: nil)
            }
        }
        end(.closedLocally, handshake: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(capacity: 0))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    private func write(_ bytes: [UInt8], context: ChannelHandlerContext) {
        guard !bytes.isEmpty else { return }
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
    }
}
