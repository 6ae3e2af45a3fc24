import MachineCore
import Testing

@testable import Replication

let digestA = StateDigest.of(Array("a".utf8))
let digestB = StateDigest.of(Array("b".utf8))

/// One of every message, with every optional part present and absent.
let sampleMessages: [Message] = [
    .hello(Hello(role: .primary, imageDigest: digestA, configurationDigest: digestB,
                 configuration: "engine=emulator memory=67108864", session: Array(0..<16))),
    .hello(Hello(role: .backup, imageDigest: digestB, configurationDigest: digestA,
                 configuration: "", session: [])),
    .refuse("guest image differs"),
    .environmentValues([]),
    .environmentValues([LoggedValue(read: .timestampCounter, value: 0x1122_3344_5566_7788),
                        LoggedValue(read: .intervalTimer, value: 42),
                        LoggedValue(read: .randomNumber, value: .max)]),
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
    .ack(AckRecord(received: 100, executedEpochs: 12)),
    .heartbeat,
    .finished(FinishedRecord(epoch: 3, progress: 4, status: -1, ending: .crashed, stateDigest: digestB)),
    .finished(FinishedRecord(epoch: 9, progress: 10, status: 0, ending: .inputClosed, stateDigest: digestA)),
]

func frames(_ messages: [Message]) -> [UInt8] {
    messages.enumerated().flatMap { index, message in
        Frame(type: message.type, sequence: UInt64(index), payload: message.encodedPayload()).encoded()
    }
}

func decodeAll(_ bytes: [UInt8], chunk: Int = .max) throws(WireError) -> [Message] {
    var decoder = FrameDecoder()
    var out: [Message] = []
    var offset = 0
    while offset < bytes.count {
        let end = min(bytes.count, offset &+ chunk)
        decoder.append(bytes[offset..<end])
        offset = end
        while let frame = try decoder.next() { out.append(try Message(frame: frame)) }
    }
    return out
}

@Suite struct WireFormatTests {
    @Test func everyMessageRoundTrips() throws {
        #expect(try decodeAll(frames(sampleMessages)) == sampleMessages)
    }

    @Test func framesSplitAcrossReadsReassemble() throws {
        for chunk in [1, 3, 7, 20, 64] {
            #expect(try decodeAll(frames(sampleMessages), chunk: chunk) == sampleMessages)
        }
    }

    @Test func headerLayout() {
        let bytes = Frame(type: .outputDone, sequence: 0x0102, payload: [0xAA]).encoded()
        #expect(Array(bytes[0..<4]) == Array("LKSP".utf8))
        #expect(bytes[4] == 1 && bytes[5] == 0)  // version 1
        #expect(bytes[6] == 6 && bytes[7] == 0)  // type
        #expect(bytes[8] == 1 && bytes[9...11].allSatisfy { $0 == 0 })  // length
        #expect(bytes[12] == 2 && bytes[13] == 1)  // sequence
        #expect(bytes.count == 20 + 1 + 4)
    }

    /// Flipping any single bit anywhere in a frame is detected; it never yields a different message.
    @Test func everySingleBitFlipIsDetected() throws {
        let original = frames([sampleMessages[6]])
        for index in original.indices {
            for bit in 0..<8 {
                var corrupted = original
                corrupted[index] ^= UInt8(1 << bit)
                let result = Result { () throws(WireError) in try decodeAll(corrupted) }
                switch result {
                case .success(let messages):
                    // A flip in the length can make the frame look incomplete: nothing decoded.
                    #expect(messages.isEmpty, "flip at byte \(index) bit \(bit) decoded \(messages)")
                case .failure:
                    break
                }
            }
        }
    }

    @Test func foreignBytesAreRejectedAtOnce() {
        #expect(throws: WireError.self) { try decodeAll(Array("GET / HTTP/1.1\r\n\r\n".utf8)) }
        // Even one wrong byte at the start is enough to know.
        #expect(throws: WireError.badMagic(0x47)) { try decodeAll([0x47]) }
    }

    @Test func otherProtocolVersionIsRefused() {
        var bytes = frames([.heartbeat])
        bytes[4] = 2
        #expect(throws: WireError.unsupportedVersion(2)) { try decodeAll(bytes) }
    }

    @Test func invalidAndUnknownTypesAreRejected() {
        for type: UInt16 in [0, 200] {
            var w = WireWriter()
            w.raw(Frame.magic); w.u16(1); w.u16(type); w.u32(0); w.u64(0)
            w.u32(Frame.checksum(w.bytes))
            #expect(throws: WireError.unknownMessageType(type)) { try decodeAll(w.bytes) }
        }
    }

    @Test func absurdLengthIsRejectedBeforeBuffering() {
        var w = WireWriter()
        w.raw(Frame.magic); w.u16(1); w.u16(MessageType.heartbeat.rawValue); w.u32(.max); w.u64(0)
        #expect(throws: WireError.frameTooLarge(.max)) { try decodeAll(w.bytes) }
    }

    @Test func truncatedStreamDecodesNothing() throws {
        let bytes = frames([sampleMessages[0]])
        #expect(try decodeAll(Array(bytes.dropLast())).isEmpty)
    }

    @Test func replayedOrDroppedFramesAreOutOfSequence() {
        let one = Frame(type: .heartbeat, sequence: 0, payload: []).encoded()
        #expect(throws: WireError.outOfSequence(expected: 1, actual: 0)) { try decodeAll(one + one) }
        let skip = Frame(type: .heartbeat, sequence: 1, payload: []).encoded()
        #expect(throws: WireError.outOfSequence(expected: 0, actual: 1)) { try decodeAll(skip) }
    }

    @Test func malformedPayloadsAreRejected() {
        func frame(_ type: MessageType, _ payload: [UInt8]) -> [UInt8] {
            Frame(type: type, sequence: 0, payload: payload).encoded()
        }
        // Trailing garbage after a valid payload.
        #expect(throws: WireError.self) { try decodeAll(frame(.outputDone, [1, 0, 0, 0, 0, 0, 0, 0, 9])) }
        // A count that cannot fit.
        #expect(throws: WireError.self) { try decodeAll(frame(.environmentValues, [0xFF, 0xFF, 0xFF, 0x7F])) }
        // An unknown environment read kind.
        #expect(throws: WireError.self) { try decodeAll(frame(.environmentValues, [1, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0])) }
        // An unknown run ending.
        var w = WireWriter()
        w.u64(0); w.u64(0); w.i32(0); w.u8(7); w.raw([UInt8](repeating: 0, count: 32))
        #expect(throws: WireError.malformed(.finished, "run ending 7")) { try decodeAll(frame(.finished, w.bytes)) }
        // A boolean that is neither 0 nor 1 (the digest flag of an epoch record).
        var e = WireWriter()
        e.u64(0); e.u64(1); e.u8(0); e.u64(0); e.u64(0); e.u64(0); e.u8(2); e.u32(0)
        #expect(throws: WireError.malformed(.epochEnd, "boolean field holds 2")) {
            try decodeAll(frame(.epochEnd, e.bytes))
        }
        // Text that is not UTF-8.
        #expect(throws: WireError.self) { try decodeAll(frame(.refuse, [2, 0, 0, 0, 0xC3, 0x28])) }
    }
}
