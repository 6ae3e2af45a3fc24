import Testing

@testable import Hypervisor

@Suite struct ConsoleFrameTests {
    @Test func framesSurviveAnyChunking() throws {
        let records: [(UInt64, [UInt8])] = [(1, Array("echo ready\n".utf8)), (2, []), (3, Array(repeating: 0x41, count: 4096)),
                                            (0, Array(repeating: 0x42, count: 70_000))]
        let stream = records.flatMap { ConsoleFrame.encode(sequence: $0.0, bytes: $0.1) }
        for chunkSize in [1, 5, 12, 13, 4099, 65536, stream.count] {
            var reader = ConsoleFrameReader()
            var frames: [ConsoleFrame] = []
            var offset = 0
            while offset < stream.count {
                let end = min(stream.count, offset + chunkSize)
                frames += try reader.append(stream[offset..<end])
                offset = end
            }
            #expect(reader.unfinished == 0)
            // The 70,000-byte unnumbered write comes as two frames.
            #expect(frames.map(\.sequence) == [1, 2, 3, 0, 0], "chunks of \(chunkSize)")
            #expect(frames.flatMap(\.bytes) == records.flatMap(\.1), "chunks of \(chunkSize)")
        }
    }

    @Test func aFrameCutShortIsHeldNotShown() throws {
        var reader = ConsoleFrameReader()
        let frame = ConsoleFrame.encode(sequence: 7, bytes: Array("line seven\n".utf8))
        #expect(try reader.append(frame.dropLast(3)).isEmpty)
        #expect(reader.unfinished == frame.count - 3)
    }

    @Test func anOversizedLengthIsRefusedWithoutAllocating() {
        var reader = ConsoleFrameReader()
        // "echo ready\n" read as a header: its length field is far beyond a frame's bound.
        #expect(throws: ConsoleFrameReader.Malformed.self) { try reader.append(Array("echo ready\n\n".utf8)) }
        var header = [UInt8](repeating: 0, count: 12)
        header[8] = 0xFF; header[9] = 0xFF; header[10] = 0xFF; header[11] = 0xFF
        var other = ConsoleFrameReader()
        #expect(throws: ConsoleFrameReader.Malformed.self) { try other.append(header) }
    }

    /// A failover: the primary wrote records 1-3, the backup that took over performs 3 again
    /// (its completion was never logged), then goes on; unnumbered output is always new.
    @Test func aRecordAFailoverRepeatsIsWrittenOnce() {
        var console = SequencedConsole()
        let primary = [ConsoleFrame(sequence: 1, bytes: [1]), ConsoleFrame(sequence: 2, bytes: [2]), ConsoleFrame(sequence: 3, bytes: [3])]
        let backup = [ConsoleFrame(sequence: 3, bytes: [3]), ConsoleFrame(sequence: 4, bytes: [4]), ConsoleFrame(sequence: 0, bytes: [5]),
                      ConsoleFrame(sequence: 0, bytes: [5])]
        let written = (primary + backup).compactMap { console.accept($0) }
        #expect(written == [[1], [2], [3], [4], [5], [5]])
        #expect(console.written == 4)
    }
}
