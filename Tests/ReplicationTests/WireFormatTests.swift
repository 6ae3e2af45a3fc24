import MachineCore
import NIOCore
import Testing

@testable import Replication

let digestA = StateDigest.of(Array("a".utf8))
let digestB = StateDigest.of(Array("b".utf8))

/// One of every message the primary sends, with every optional part present and absent (the
/// writer never writes an empty environment-values message).
let primaryMessages: [Message] = [
    .environmentValues(LoggedValues([LoggedValue(read: .timestampCounter, value: 0x1122_3344_5566_7788),
                                     LoggedValue(read: .intervalTimer, value: 42),
                                     LoggedValue(read: .randomNumber, value: .max)])),
    .epochEnd(EpochRecord(epoch: 7, progress: 123_456, stop: .idle, time: VirtualTime(nanoseconds: 99),
                          events: [], environmentCount: 3, outputCount: 0, stateDigest: nil)),
    .epochEnd(EpochRecord(epoch: .max, progress: 1, stop: .epochEnd, time: .zero,
                          events: [.consoleInput(Array("quit\n".utf8)),
                                   .blockCompletion(BlockCompletion(id: 5, status: .ok, data: [1, 2, 3])),
                                   .blockCompletion(BlockCompletion(id: 6, status: .ioError))],
                          environmentCount: 0, outputCount: 2, stateDigest: digestA)),
    .output(OutputRecord(sequence: 1, epoch: 2, kind: .console, digest: digestA)),
    .output(OutputRecord(sequence: 9, epoch: 3, kind: .diskWrite, digest: digestB)),
    .output(OutputRecord(sequence: 10, epoch: 3, kind: .diskFlush, digest: digestB)),
    .outputDone(9),
    .finished(FinishedRecord(epoch: 3, progress: 4, status: -1, ending: .crashed, stateDigest: digestB)),
    .finished(FinishedRecord(epoch: 9, progress: 10, status: 0, ending: .inputClosed, stateDigest: digestA)),
]

/// The message stream bytes of `messages`.
func stream(_ messages: [Message]) -> [UInt8] {
    var writer = MessageWriter()
    for m in messages { writer.write(m) }
    return Array(writer.take().readableBytesView)
}

/// Parses `bytes` as the backup would (or `receiver`), fed in chunks of `chunk` bytes.
func parse(_ bytes: [UInt8], receiver: ReplicaRole = .backup, chunk: Int = .max) throws(WireError) -> [Message] {
    var parser = MessageParser(receiver: receiver)
    var out: [Message] = []
    var offset = 0
    repeat {
        let end = min(bytes.count, offset &+ chunk)
        parser.append(ByteBuffer(bytes: bytes[offset..<end]))
        offset = end
        while let m = try parser.next() { out.append(m) }
    } while offset < bytes.count
    return out
}

/// The bytes of one message with a raw header.
func rawMessage(type: UInt16, payload: [UInt8], length: UInt32? = nil) -> [UInt8] {
    var b = ByteBuffer()
    b.writeInteger(type, endianness: .little)
    b.writeInteger(length ?? UInt32(payload.count), endianness: .little)
    b.writeBytes(payload)
    return Array(b.readableBytesView)
}

@Suite struct MessageFormatTests {
    @Test func everyMessageRoundTrips() throws {
        #expect(try parse(stream(primaryMessages)) == primaryMessages)
        #expect(try parse(stream([.executed(0), .executed(.max)]), receiver: .primary) == [.executed(0), .executed(.max)])
    }

    @Test(arguments: [1, 2, 5, 6, 7, 64, 1000])
    func messagesSplitAcrossChunksAreAssembled(_ chunk: Int) throws {
        #expect(try parse(stream(primaryMessages), chunk: chunk) == primaryMessages)
    }

    @Test func aMessageInsideOneChunkIsNotCopied() throws {
        let bytes = stream([.outputDone(1), .outputDone(2)])
        var parser = MessageParser(receiver: .backup)
        parser.append(ByteBuffer(bytes: bytes))
        #expect(parser.bufferedBytes == bytes.count)
        #expect(try parser.next() == .outputDone(1))
        #expect(parser.bufferedBytes == bytes.count / 2)
        #expect(try parser.next() == .outputDone(2))
        #expect(try parser.next() == nil)
        #expect(parser.messageCount == 2)
    }

    @Test func environmentValuesAreWrittenAsOneGrowingMessage() throws {
        var writer = MessageWriter()
        for i in 0..<1000 { writer.value(.timestampCounter, UInt64(i)) }
        writer.outputDone(1)
        let messages = try parse(Array(writer.take().readableBytesView))
        #expect(messages.count == 2)
        guard case .environmentValues(let values) = messages.first else { Issue.record("no values"); return }
        #expect(values.count == 1000)
        #expect(values.all.map(\.value) == (0..<1000).map(UInt64.init))
    }

    @Test func aLongRunOfValuesIsCutIntoMessagesUnderTheLimit() throws {
        var writer = MessageWriter()
        let n = MessageWriter.valuesMessageLimit / MessageLimits.valueSize * 3
        for i in 0..<n { writer.value(.randomNumber, UInt64(i)) }
        let messages = try parse(Array(writer.take().readableBytesView))
        #expect(messages.count >= 3)
        let all = messages.flatMap { m -> [LoggedValue] in
            if case .environmentValues(let v) = m { return v.all } else { return [] }
        }
        #expect(all.count == n)
    }

    @Test func theWriterReusesItsBuffer() {
        var writer = MessageWriter(capacity: 4096)
        writer.outputDone(1)
        let first = writer.take()
        #expect(first.readableBytes == 14)
        #expect(writer.isEmpty)
        writer.outputDone(2)
        #expect(writer.count == 14)
    }

    /// Every way a peer can get a message wrong is a clean error, never a trap.
    /// The epoch-end record, byte for byte as docs/protocol.md lays it out (the writer stores its
    /// fixed-width fields itself, so a round trip alone could not catch a shifted field).
    @Test func anEpochEndHasTheDocumentedLayout() throws {
        func le(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        let record = EpochRecord(epoch: 0x0102_0304_0506_0708, progress: 0x1112_1314_1516_1718, stop: .idle,
                                 time: VirtualTime(nanoseconds: 0x2122_2324_2526_2728),
                                 events: [.consoleInput([0x41, 0x0A])],
                                 environmentCount: 0x3132_3334_3536_3738, outputCount: 0x4142_4344_4546_4748,
                                 stateDigest: digestA)
        let payload = le(record.epoch, 8) + le(record.progress, 8) + [1] + le(record.time.nanoseconds, 8)
            + le(record.environmentCount, 8) + le(record.outputCount, 8) + [1] + digestA.bytes
            + le(1, 4) + [1] + le(2, 4) + [0x41, 0x0A]
        #expect(stream([.epochEnd(record)]) == le(2, 2) + le(UInt64(payload.count), 4) + payload)
        var plain = record
        plain.stateDigest = nil
        plain.events = []
        let short = le(plain.epoch, 8) + le(plain.progress, 8) + [1] + le(plain.time.nanoseconds, 8)
            + le(plain.environmentCount, 8) + le(plain.outputCount, 8) + [0] + le(0, 4)
        #expect(stream([.epochEnd(plain)]) == le(2, 2) + le(UInt64(short.count), 4) + short)
        #expect(try parse(stream([.epochEnd(record), .epochEnd(plain)])) == [.epochEnd(record), .epochEnd(plain)])
    }

    @Test func hostileMessagesAreRefused() {
        let cases: [(String, [UInt8], ReplicaRole)] = [
            ("type 0", rawMessage(type: 0, payload: []), .backup),
            ("unknown type", rawMessage(type: 99, payload: []), .backup),
            ("a backup's message at the backup", rawMessage(type: 6, payload: [UInt8](repeating: 0, count: 8)), .backup),
            ("a primary's message at the primary", rawMessage(type: 4, payload: [UInt8](repeating: 0, count: 8)), .primary),
            ("a length past the limit", rawMessage(type: 2, payload: [], length: UInt32(MessageLimits.fromPrimary + 1)), .backup),
            ("2^32-1 bytes", rawMessage(type: 2, payload: [], length: .max), .backup),
            ("a backup message past its limit", rawMessage(type: 6, payload: [], length: UInt32(MessageLimits.fromBackup + 1)), .primary),
            ("values not a multiple of 9", rawMessage(type: 1, payload: [1, 0, 0]), .backup),
            ("a value of kind 7", rawMessage(type: 1, payload: [7] + [UInt8](repeating: 0, count: 8)), .backup),
            ("a truncated epoch end", rawMessage(type: 2, payload: [1, 2, 3]), .backup),
            ("trailing bytes", rawMessage(type: 4, payload: [UInt8](repeating: 0, count: 9)), .backup),
            ("a boolean of 2", rawMessage(type: 2, payload: [UInt8](repeating: 0, count: 41) + [2] + [0, 0, 0, 0]), .backup),
            ("an event count that cannot fit",
             rawMessage(type: 2, payload: [UInt8](repeating: 0, count: 42) + [0xFF, 0xFF, 0xFF, 0xFF]), .backup),
            ("an event blob longer than the message",
             rawMessage(type: 2, payload: [UInt8](repeating: 0, count: 42) + [1, 0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0x7F]), .backup),
            ("an unknown event kind",
             rawMessage(type: 2, payload: [UInt8](repeating: 0, count: 42) + [1, 0, 0, 0, 9]), .backup),
            ("a stop kind of 9", rawMessage(type: 2, payload: [UInt8](repeating: 0, count: 16) + [9] + [UInt8](repeating: 0, count: 29)), .backup),
            ("an output kind of 0", rawMessage(type: 3, payload: [UInt8](repeating: 0, count: 16) + [0] + [UInt8](repeating: 0, count: 32)), .backup),
            ("a run ending of 3", rawMessage(type: 5, payload: [UInt8](repeating: 0, count: 20) + [3] + [UInt8](repeating: 0, count: 32)), .backup),
        ]
        for (name, bytes, receiver) in cases {
            #expect(throws: WireError.self, "\(name)") { _ = try parse(bytes, receiver: receiver) }
        }
    }

    @Test func anOversizedMessageIsRefusedFromItsHeaderAlone() {
        // Only the header arrives: the parser must not wait for (or buffer) 48 MiB.
        var parser = MessageParser(receiver: .backup)
        parser.append(ByteBuffer(bytes: rawMessage(type: 2, payload: [], length: UInt32(MessageLimits.fromPrimary + 1))))
        #expect(throws: WireError.messageTooLarge(2, UInt32(MessageLimits.fromPrimary + 1), limit: MessageLimits.fromPrimary)) {
            _ = try parser.next()
        }
    }
}

@Suite struct FrameFormatTests {
    func frame(_ type: FrameType, body: [UInt8], version: UInt16 = Frame.version, length: UInt32? = nil) -> [UInt8] {
        var b = ByteBuffer()
        b.writeInteger(Frame.magic, endianness: .little)
        b.writeInteger(version, endianness: .little)
        b.writeInteger(type.rawValue, endianness: .little)
        b.writeInteger(length ?? UInt32(body.count), endianness: .little)
        b.writeBytes(body)
        return Array(b.readableBytesView)
    }

    @Test func framesAreReassembledByteByByte() throws {
        let bytes = frame(.handshake, body: [3, 1]) + frame(.handshake, body: [3, 2])
        var reader = FrameReader()
        var frames: [RawFrame] = []
        for byte in bytes {
            reader.append(contentsOf: [byte])
            while let f = try reader.next() { frames.append(f) }
        }
        #expect(frames.map(\.type) == [.handshake, .handshake])
        #expect(frames.map { Array($0.body.readableBytesView) } == [[3, 1], [3, 2]])
        #expect(!reader.hasPartialFrame)
    }

    @Test func aForeignPeerIsRejectedAtItsFirstWrongByte() {
        var reader = FrameReader()
        reader.append(contentsOf: Array("G".utf8))
        #expect(throws: WireError.badMagic(0x47)) { _ = try reader.next() }
    }

    @Test func headersAreCheckedBeforeTheBodyArrives() {
        let cases: [(String, [UInt8])] = [
            ("version 1", Array(frame(.handshake, body: [], version: 1, length: 2).prefix(12))),
            ("type 0", Array(frame(.invalid, body: [], length: 1).prefix(12))),
            ("type 77", { var f = frame(.handshake, body: [], length: 1); f[6] = 77; return Array(f.prefix(12)) }()),
            ("a 4 GiB data frame", Array(frame(.data, body: [], length: .max).prefix(12))),
            ("a data frame one byte too long", Array(frame(.data, body: [], length: UInt32(Frame.maximumPlaintext + Frame.tagSize + 1)).prefix(12))),
            ("an empty data frame", Array(frame(.data, body: [], length: 16).prefix(12))),
            ("a long handshake", Array(frame(.handshake, body: [], length: 129).prefix(12))),
            ("a short receipt", Array(frame(.receipt, body: [], length: 20).prefix(12))),
        ]
        for (name, bytes) in cases {
            var reader = FrameReader()
            reader.append(contentsOf: bytes)
            #expect(throws: WireError.self, "\(name)") { _ = try reader.next() }
        }
    }

    @Test func noHandshakeFrameAfterTheFirstSealedOne() throws {
        var reader = FrameReader()
        reader.append(contentsOf: frame(.ready, body: [UInt8](repeating: 0, count: 16)) + frame(.handshake, body: [3, 1]))
        #expect(try reader.next()?.type == .ready)
        #expect(throws: WireError.unexpectedFrame(.handshake)) { _ = try reader.next() }
    }

    @Test func handshakeMessagesRoundTripAndMalformedOnesAreRefused() throws {
        let offer = HandshakeMessage.offer(role: .backup, purpose: .replicateFromBoot, nonce: Array(repeating: 1, count: 32),
                                           publicKey: Array(repeating: 2, count: 32))
        let answer = HandshakeMessage.answer(role: .primary, nonce: Array(repeating: 3, count: 32), publicKey: Array(repeating: 4, count: 32))
        for m in [offer, answer, .alert(.busy)] {
            #expect(try HandshakeMessage(body: ByteBuffer(bytes: m.encoded())) == m)
        }
        let bad: [[UInt8]] = [[], [0], [9], [1, 2], [1, 3, 1] + Array(repeating: 0, count: 64), [1, 2, 9] + Array(repeating: 0, count: 64),
                              [1, 2, 1] + Array(repeating: 0, count: 63), offer.encoded() + [0], [2, 1] + Array(repeating: 0, count: 10)]
        for body in bad {
            #expect(throws: WireError.self, "\(body.prefix(4))") { _ = try HandshakeMessage(body: ByteBuffer(bytes: body)) }
        }
    }

    @Test func identitiesRoundTripAndSessionsHaveTheirExactLength() throws {
        let primary = IdentityMessage(role: .primary, imageDigest: digestA, configurationDigest: digestB,
                                      configuration: "engine=emulator", session: Array(0..<16))
        var b = ByteBuffer()
        primary.encode(into: &b)
        #expect(try IdentityMessage(plaintext: b) == primary)
        for session in [[UInt8](), Array(0..<15), Array(0..<17)] {
            var bad = ByteBuffer()
            IdentityMessage(role: .primary, imageDigest: digestA, configurationDigest: digestB, configuration: "",
                            session: session).encode(into: &bad)
            #expect(throws: WireError.self) { _ = try IdentityMessage(plaintext: bad) }
        }
        var backup = ByteBuffer()
        IdentityMessage(role: .backup, imageDigest: digestA, configurationDigest: digestB, configuration: "", session: [1])
            .encode(into: &backup)
        #expect(throws: WireError.self) { _ = try IdentityMessage(plaintext: backup) }
    }
}
