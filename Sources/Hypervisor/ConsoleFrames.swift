/// The guest's console output as numbered frames: how a replica started by `lockstep pair`
/// writes it (`--console-frames`), so that the pair's console can drop a record a failover
/// repeats.
///
/// A failover may perform again the one output record whose completion the dead primary never
/// logged (docs/protocol.md, "Guarantees and their limits"). Both replicas number records
/// identically, so the console that copies every replica's output sees the repeat under the
/// same number and writes it once. A frame is a 12-byte header, the record's sequence number
/// (8 bytes) and the byte count (4 bytes), both little-endian, then the bytes. Sequence 0 is an
/// unnumbered write (a replica running alone after a takeover): always new.
public struct ConsoleFrame: Sendable, Equatable {
    public let sequence: UInt64
    public let bytes: [UInt8]

    public static let headerSize = 12
    /// The most bytes a frame carries: a numbered console record is at most one 4 KiB line;
    /// a longer unnumbered write is split.
    public static let maximumBytes = 1 << 16

    public init(sequence: UInt64, bytes: [UInt8]) {
        self.sequence = sequence
        self.bytes = bytes
    }

    /// The frames that carry `bytes`, each at most `maximumBytes` long. Only unnumbered writes
    /// can be longer than that (a numbered record is at most `OutputLog.partialLineBytes`), so
    /// a record is never split into frames that repeat its number.
    public static func encode(sequence: UInt64, bytes: [UInt8]) -> [UInt8] {
        assert(sequence == 0 || bytes.count <= maximumBytes, "a numbered console record longer than a frame")
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + headerSize)
        var start = 0
        repeat {
            let end = min(bytes.count, start + maximumBytes)
            out += littleEndian(sequence, count: 8)
            out += littleEndian(UInt64(end - start), count: 4)
            out += bytes[start..<end]
            start = end
        } while start < bytes.count
        return out
    }

    private static func littleEndian(_ value: UInt64, count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
    }
}

/// Cuts a replica's framed output, as it arrives in chunks of any size, into frames.
/// A frame longer than `ConsoleFrame.maximumBytes` is refused: the stream is not frames.
public struct ConsoleFrameReader: Sendable {
    private var buffer: [UInt8] = []

    public struct Malformed: Error, CustomStringConvertible {
        public let length: UInt64
        public var description: String {
            "a replica's console frame says \(length) bytes (at most \(ConsoleFrame.maximumBytes)): its output is not console frames"
        }
    }

    public init() {}

    /// The bytes of a frame cut short by the end of the stream (a replica killed while writing).
    public var unfinished: Int { buffer.count }

    /// Adds `chunk` and returns the frames it completed.
    public mutating func append(_ chunk: some Collection<UInt8>) throws(Malformed) -> [ConsoleFrame] {
        buffer += chunk
        var frames: [ConsoleFrame] = []
        var offset = 0
        while buffer.count - offset >= ConsoleFrame.headerSize {
            let sequence = Self.value(buffer, at: offset, count: 8)
            let length = Self.value(buffer, at: offset + 8, count: 4)
            guard length <= UInt64(ConsoleFrame.maximumBytes) else { throw Malformed(length: length) }
            let end = offset + ConsoleFrame.headerSize + Int(length)
            guard end <= buffer.count else { break }
            frames.append(ConsoleFrame(sequence: sequence, bytes: Array(buffer[(offset + ConsoleFrame.headerSize)..<end])))
            offset = end
        }
        buffer.removeFirst(offset)
        return frames
    }

    private static func value(_ bytes: [UInt8], at offset: Int, count: Int) -> UInt64 {
        (0..<count).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
    }
}

/// The console shared by the replicas of a pair: writes each numbered record once, whichever
/// replica's output it came in.
public struct SequencedConsole: Sendable {
    /// The highest record number written.
    public private(set) var written: UInt64 = 0

    public init() {}

    /// The bytes of `frame` to write, or nil for a record written already (a failover's repeat).
    public mutating func accept(_ frame: ConsoleFrame) -> [UInt8]? {
        if frame.sequence == 0 { return frame.bytes }
        guard frame.sequence > written else { return nil }
        written = frame.sequence
        return frame.bytes
    }
}
