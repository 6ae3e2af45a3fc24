import MachineCore
import NIOCore

/// Reassembles replication messages from the opened data frames of one direction, in order.
///
/// A message that lies inside one chunk is decoded in place (its payload is a slice of the
/// chunk: nothing copied); one split across chunks is assembled once, in a buffer of its own,
/// after its header has been checked (type, direction, length limit), so a peer can never make
/// the parser buffer more than one message past its limit. Every field is checked before it is
/// used; an error means the stream cannot be trusted any more.
public struct MessageParser: Sendable {
    /// The side this parser runs on: it accepts only messages its peer sends.
    public let receiver: ReplicaRole
    private let limit: Int
    private var chunks = CircularBuffer<ByteBuffer>()
    private var assembly: ByteBuffer?
    /// Bytes waiting in `chunks`.
    public private(set) var bufferedBytes = 0
    /// Messages decoded so far.
    public private(set) var messageCount: UInt64 = 0

    public init(receiver: ReplicaRole) {
        self.receiver = receiver
        limit = MessageLimits.maximumPayload(receivedBy: receiver)
    }

    /// Adds the plaintext of the next data frame.
    public mutating func append(_ chunk: ByteBuffer) {
        guard chunk.readableBytes > 0 else { return }
        bufferedBytes += chunk.readableBytes
        chunks.append(chunk)
    }

    /// The next complete message, or nil if more bytes are needed.
    public mutating func next() throws(WireError) -> Message? {
        while true {
            if var partial = assembly {
                assembly = nil
                move(into: &partial, upTo: MessageLimits.headerSize)
                guard partial.readableBytes >= MessageLimits.headerSize else {
                    assembly = partial
                    return nil
                }
                let (type, length) = try header(in: partial, at: partial.readerIndex)
                let total = MessageLimits.headerSize + length
                if partial.capacity < total { partial.reserveCapacity(total) }
                move(into: &partial, upTo: total)
                guard partial.readableBytes >= total else {
                    assembly = partial
                    return nil
                }
                partial.moveReaderIndex(forwardBy: MessageLimits.headerSize)
                messageCount += 1
                return try Self.decode(type, payload: partial)
            }
            guard var front = chunks.first else { return nil }
            if front.readableBytes == 0 {
                chunks.removeFirst()
                continue
            }
            if front.readableBytes >= MessageLimits.headerSize {
                let (type, length) = try header(in: front, at: front.readerIndex)
                if front.readableBytes >= MessageLimits.headerSize + length {
                    front.moveReaderIndex(forwardBy: MessageLimits.headerSize)
                    let payload = front.readSlice(length: length)!
                    chunks[chunks.startIndex] = front
                    bufferedBytes -= MessageLimits.headerSize + length
                    messageCount += 1
                    return try Self.decode(type, payload: payload)
                }
            }
            // The message continues in later chunks: assemble it.
            assembly = ByteBufferAllocator().buffer(capacity: 4096)
        }
    }

    /// Checks a message header: a known type, sent by the peer, within the direction's limit.
    private func header(in buffer: ByteBuffer, at offset: Int) throws(WireError) -> (MessageType, Int) {
        let rawType = buffer.getInteger(at: offset, endianness: .little, as: UInt16.self)!
        let length = buffer.getInteger(at: offset + 2, endianness: .little, as: UInt32.self)!
        guard let type = MessageType(rawValue: rawType), type != .invalid else { throw .unknownMessageType(rawType) }
        guard type.sender != receiver else { throw .wrongDirection(type) }
        guard Int(length) <= limit else { throw .messageTooLarge(rawType, length, limit: limit) }
        return (type, Int(length))
    }

    /// Moves bytes from the chunks into `target` until it holds `count` readable bytes.
    private mutating func move(into target: inout ByteBuffer, upTo count: Int) {
        while target.readableBytes < count, !chunks.isEmpty {
            var front = chunks.removeFirst()
            let n = min(count - target.readableBytes, front.readableBytes)
            var part = front.readSlice(length: n)!
            target.writeBuffer(&part)
            bufferedBytes -= n
            if front.readableBytes > 0 { chunks.prepend(front) }
        }
    }

    /// Decodes a payload of `type`. Every read is bounds-checked; trailing bytes are an error.
    static func decode(_ type: MessageType, payload: ByteBuffer) throws(WireError) -> Message {
        var r = PayloadReader(payload, type: type)
        let message: Message
        switch type {
        case .invalid:
            throw .unknownMessageType(0)
        case .environmentValues:
            return .environmentValues(try LoggedValues(payload: payload))
        case .epochEnd:
            // The fixed-width fields in one bounds check and one read (a read per field cost
            // about 150 host instructions each, per epoch, at the backup).
            guard let (epoch, progress, rawStop, nanoseconds, environmentCount, outputCount, hasDigest) =
                r.buffer.readMultipleIntegers(endianness: .little, as: (UInt64, UInt64, UInt8, UInt64, UInt64, UInt64, UInt8).self)
            else { throw .badMessage(type, "truncated") }
            guard let stop = EpochStop(rawValue: rawStop) else { throw .badMessage(type, "stop kind \(rawStop)") }
            let time = VirtualTime(nanoseconds: nanoseconds)
            let digest: StateDigest?
            switch hasDigest {
            case 0: digest = nil
            case 1: digest = try r.digest()
            case let v: throw .badMessage(type, "boolean field holds \(v)")
            }
            let n = try r.count(minimumSize: 5)
            var events: [BoundaryEvent] = []
            if n > 0 { events.reserveCapacity(n) }
            for _ in 0..<n {
                switch try r.u8() {
                case 1:
                    events.append(.consoleInput(try r.blob()))
                case 2:
                    let id = try r.u64()
                    let rawStatus = try r.u8()
                    guard let status = BlockStatus(rawValue: rawStatus) else { throw .badMessage(type, "block status \(rawStatus)") }
                    events.append(.blockCompletion(BlockCompletion(id: id, status: status, data: try r.blob())))
                case let kind:
                    throw .badMessage(type, "boundary event kind \(kind)")
                }
            }
            message = .epochEnd(EpochRecord(epoch: epoch, progress: progress, stop: stop, time: time, events: events,
                                            environmentCount: environmentCount, outputCount: outputCount,
                                            stateDigest: digest))
        case .output:
            let sequence = try r.u64(), epoch = try r.u64()
            let rawKind = try r.u8()
            guard let kind = OutputKind(rawValue: rawKind) else { throw .badMessage(type, "output kind \(rawKind)") }
            message = .output(OutputRecord(sequence: sequence, epoch: epoch, kind: kind, digest: try r.digest()))
        case .outputDone:
            message = .outputDone(try r.u64())
        case .finished:
            let epoch = try r.u64(), progress = try r.u64()
            let status = Int32(bitPattern: try r.u32())
            let rawEnding = try r.u8()
            guard let ending = RunEnding(rawValue: rawEnding) else { throw .badMessage(type, "run ending \(rawEnding)") }
            message = .finished(FinishedRecord(epoch: epoch, progress: progress, status: status, ending: ending,
                                               stateDigest: try r.digest()))
        case .executed:
            message = .executed(try r.u64())
        case .transferPages:
            return .transferPages(try TransferPages(payload: payload))
        case .transferState:
            let epoch = try r.u64(), nextOutput = try r.u64(), delivered = try r.u64()
            let line = try r.blob()
            guard line.count <= OutputLog.partialLineBytes else {
                throw .badMessage(type, "a partial line of \(line.count) bytes (at most \(OutputLog.partialLineBytes))")
            }
            let digest = try r.digest()
            let machine = try r.blob()
            guard machine.count <= TransferState.machineLimit else {
                throw .badMessage(type, "a machine state of \(machine.count) bytes (at most \(TransferState.machineLimit))")
            }
            guard epoch != .max, nextOutput != 0, nextOutput != .max else {
                throw .badMessage(type, "epoch \(epoch), next output \(nextOutput)")
            }
            message = .transferState(TransferState(epoch: epoch, nextOutput: nextOutput, consoleBytesDelivered: delivered,
                                                   partialLine: line, ramDigest: digest, machine: machine))
        case .compare:
            let version = try r.u8()
            guard version == CompareRequest.formatVersion else { throw .badMessage(type, "format version \(version)") }
            let epoch = try r.u64(), progress = try r.u64()
            let rawStop = try r.u8()
            guard let stop = CompareStop(rawValue: rawStop) else { throw .badMessage(type, "stop kind \(rawStop)") }
            message = .compare(CompareRequest(epoch: epoch, progress: progress, stop: stop, wantsFingerprint: try r.bool()))
        case .verdict:
            let version = try r.u8()
            guard version == Verdict.formatVersion else { throw .badMessage(type, "format version \(version)") }
            let epoch = try r.u64()
            let rawOutcome = try r.u8()
            guard let outcome = VerdictOutcome(rawValue: rawOutcome) else { throw .badMessage(type, "outcome \(rawOutcome)") }
            let count = try r.u64()
            let outputs = try r.digest()
            let first = try r.u64()
            let fingerprint = try r.bool() ? try r.digest() : nil
            message = .verdict(Verdict(epoch: epoch, outcome: outcome, outputCount: count, outputs: outputs,
                                       firstDifference: first, fingerprint: fingerprint))
        case .rollback:
            let version = try r.u8()
            guard version == RollbackRequest.formatVersion else { throw .badMessage(type, "format version \(version)") }
            message = .rollback(RollbackRequest(epoch: try r.u64(), attempt: try r.u32()))
        case .rolledBack:
            let version = try r.u8()
            guard version == RollbackRequest.formatVersion else { throw .badMessage(type, "format version \(version)") }
            message = .rolledBack(attempt: try r.u32())
        case .membership:
            let version = try r.u8()
            guard version == 1 else { throw .badMessage(type, "format version \(version)") }
            let generation = try r.u64()
            guard generation > 0 else { throw .badMessage(type, "generation 0") }
            message = .membership(generation: generation)
        }
        try r.finish()
        return message
    }
}

/// Reads little-endian fields from a message payload; every read is bounds-checked.
struct PayloadReader {
    var buffer: ByteBuffer
    let type: MessageType

    init(_ buffer: ByteBuffer, type: MessageType) {
        self.buffer = buffer
        self.type = type
    }

    mutating func u8() throws(WireError) -> UInt8 {
        guard let v = buffer.readInteger(as: UInt8.self) else { throw .badMessage(type, "truncated") }
        return v
    }

    mutating func u32() throws(WireError) -> UInt32 {
        guard let v = buffer.readInteger(endianness: .little, as: UInt32.self) else { throw .badMessage(type, "truncated") }
        return v
    }

    mutating func u64() throws(WireError) -> UInt64 {
        guard let v = buffer.readInteger(endianness: .little, as: UInt64.self) else { throw .badMessage(type, "truncated") }
        return v
    }

    mutating func bool() throws(WireError) -> Bool {
        switch try u8() {
        case 0: return false
        case 1: return true
        case let v: throw .badMessage(type, "boolean field holds \(v)")
        }
    }

    mutating func digest() throws(WireError) -> StateDigest {
        guard let bytes = buffer.readBytes(length: 32) else { throw .badMessage(type, "truncated") }
        return StateDigest(bytes: bytes)
    }

    /// A length-prefixed byte string that fits in the rest of the payload.
    mutating func blob() throws(WireError) -> [UInt8] {
        let n = Int(try u32())
        guard n <= buffer.readableBytes, let bytes = buffer.readBytes(length: n) else {
            throw .badMessage(type, "a field of \(n) bytes does not fit in the message")
        }
        return bytes
    }

    /// A count of following items, each at least `minimumSize` bytes: rejects counts the rest of
    /// the payload cannot hold.
    mutating func count(minimumSize: Int) throws(WireError) -> Int {
        let n = Int(try u32())
        guard n <= buffer.readableBytes / max(minimumSize, 1) else {
            throw .badMessage(type, "\(n) items cannot fit in the rest of the message")
        }
        return n
    }

    func finish() throws(WireError) {
        guard buffer.readableBytes == 0 else { throw .badMessage(type, "\(buffer.readableBytes) unexpected trailing bytes") }
    }
}
