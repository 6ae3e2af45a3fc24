import MachineCore
import NIOCore

/// Encodes replication messages into one preallocated batch buffer with fixed-width stores.
/// Nothing is allocated per message once the buffer has its capacity; environment values are
/// appended to an open `environment-values` message whose length is patched when it closes.
public struct MessageWriter: Sendable {
    public private(set) var buffer: ByteBuffer
    /// Where the open environment-values message's header starts, if one is open.
    private var openValues: Int?
    /// An environment-values message is closed (and a new one opened) at this payload size.
    static let valuesMessageLimit = 60 << 10

    /// The fixed-width part of an epoch-end message (header, fields, event count), assembled
    /// byte by byte and written to `buffer` with one store: each of ByteBuffer's integer writes
    /// costs a uniqueness check, a capacity check, an exclusivity check and a copy (about 200 host
    /// instructions; eight of them made up half of a primary's work per epoch at 32K-instruction
    /// epochs). `epochEndFixedSize` bytes, allocated once.
    private var fixed = [UInt8](repeating: 0, count: MessageWriter.epochEndFixedSize)
    /// Header (6), epoch, progress, stop, time, environment values, outputs, digest flag, event count.
    static let epochEndFixedSize = MessageLimits.headerSize + 8 + 8 + 1 + 8 + 8 + 8 + 1 + 4

    public init(capacity: Int = 80 << 10) {
        buffer = ByteBufferAllocator().buffer(capacity: capacity)
    }

    /// Bytes encoded so far.
    public var count: Int { buffer.readableBytes }
    public var isEmpty: Bool { buffer.readableBytes == 0 }

    /// Logs one environment value (rule P0).
    public mutating func value(_ read: EnvironmentRead, _ value: UInt64) {
        if let start = openValues, buffer.writerIndex - start - MessageLimits.headerSize >= Self.valuesMessageLimit {
            closeValues()
        }
        if openValues == nil {
            openValues = buffer.writerIndex
            buffer.writeMultipleIntegers(MessageType.environmentValues.rawValue, UInt32(0), endianness: .little)
        }
        buffer.writeMultipleIntegers(read.wireCode, value, endianness: .little)
    }

    static func writeValue(_ v: LoggedValue, into buffer: inout ByteBuffer) {
        buffer.writeMultipleIntegers(v.read.wireCode, v.value, endianness: .little)
    }

    public mutating func epochEnd(_ r: EpochRecord) {
        closeValues()
        var length = 8 + 8 + 1 + 8 + 8 + 8 + 1 + 4
        if r.stateDigest != nil { length += 32 }
        for e in r.events {
            switch e {
            case .consoleInput(let bytes): length += 1 + 4 + bytes.count
            case .blockCompletion(let c): length += 1 + 8 + 1 + 4 + c.data.count
            }
        }
        var at = 0
        Self.store(MessageType.epochEnd.rawValue, into: &fixed, at: &at)
        Self.store(UInt32(length), into: &fixed, at: &at)
        Self.store(r.epoch, into: &fixed, at: &at)
        Self.store(r.progress, into: &fixed, at: &at)
        Self.store(r.stop.rawValue, into: &fixed, at: &at)
        Self.store(r.time.nanoseconds, into: &fixed, at: &at)
        Self.store(r.environmentCount, into: &fixed, at: &at)
        Self.store(r.outputCount, into: &fixed, at: &at)
        Self.store(UInt8(r.stateDigest == nil ? 0 : 1), into: &fixed, at: &at)
        if let d = r.stateDigest {
            // The digest sits between the flag and the event count.
            buffer.writeBytes(fixed[0..<at])
            buffer.writeBytes(d.bytes)
            at = 0
        }
        Self.store(UInt32(r.events.count), into: &fixed, at: &at)
        buffer.writeBytes(fixed[0..<at])
        for e in r.events {
            switch e {
            case .consoleInput(let bytes):
                buffer.writeMultipleIntegers(UInt8(1), UInt32(bytes.count), endianness: .little)
                buffer.writeBytes(bytes)
            case .blockCompletion(let c):
                buffer.writeMultipleIntegers(UInt8(2), c.id, c.status.rawValue, UInt32(c.data.count), endianness: .little)
                buffer.writeBytes(c.data)
            }
        }
    }

    public mutating func output(_ o: OutputRecord) {
        closeValues()
        header(.output, 8 + 8 + 1 + 32)
        buffer.writeMultipleIntegers(o.sequence, o.epoch, o.kind.rawValue, endianness: .little)
        buffer.writeBytes(o.digest.bytes)
    }

    /// An empty environment-values message: a probe whose receipt, measured from when it was
    /// sent, renews the primary's output lease (the backup logs no values for it).
    public mutating func probe() {
        closeValues()
        header(.environmentValues, 0)
    }

    public mutating func outputDone(_ sequence: UInt64) {
        closeValues()
        header(.outputDone, 8)
        buffer.writeInteger(sequence, endianness: .little)
    }

    public mutating func finished(_ f: FinishedRecord) {
        closeValues()
        header(.finished, 8 + 8 + 4 + 1 + 32)
        buffer.writeMultipleIntegers(f.epoch, f.progress, UInt32(bitPattern: f.status), f.ending.rawValue,
                                     endianness: .little)
        buffer.writeBytes(f.stateDigest.bytes)
    }

    public mutating func executed(_ epochs: UInt64) {
        closeValues()
        header(.executed, 8)
        buffer.writeInteger(epochs, endianness: .little)
    }

    /// Pages of `memory` for a joining backup (at most `TransferPages.maximumCount`).
    public mutating func transferPages<C: Collection>(_ pages: C, of memory: GuestMemory) where C.Element == Int {
        precondition(!pages.isEmpty && pages.count <= TransferPages.maximumCount, "1 to 256 pages per message")
        closeValues()
        header(.transferPages, 4 + pages.count * TransferPages.entrySize)
        buffer.writeInteger(UInt32(pages.count), endianness: .little)
        for page in pages {
            buffer.writeInteger(UInt64(page), endianness: .little)
            memory.withPage(page) { _ = buffer.writeBytes($0) }
        }
    }

    public mutating func transferState(_ t: TransferState) {
        closeValues()
        header(.transferState, 8 * 3 + 4 + t.partialLine.count + 32 + 4 + t.machine.count)
        buffer.writeMultipleIntegers(t.epoch, t.nextOutput, t.consoleBytesDelivered, UInt32(t.partialLine.count),
                                     endianness: .little)
        buffer.writeBytes(t.partialLine)
        buffer.writeBytes(t.ramDigest.bytes)
        buffer.writeInteger(UInt32(t.machine.count), endianness: .little)
        buffer.writeBytes(t.machine)
    }

    public mutating func compare(_ c: CompareRequest) {
        closeValues()
        header(.compare, CompareRequest.payloadSize)
        buffer.writeMultipleIntegers(CompareRequest.formatVersion, c.epoch, c.progress, c.stop.rawValue,
                                     UInt8(c.wantsFingerprint ? 1 : 0), endianness: .little)
    }

    public mutating func verdict(_ v: Verdict) {
        closeValues()
        header(.verdict, 1 + 8 + 1 + 8 + 32 + 8 + 1 + (v.fingerprint == nil ? 0 : 32))
        buffer.writeMultipleIntegers(Verdict.formatVersion, v.epoch, v.outcome.rawValue, v.outputCount,
                                     endianness: .little)
        buffer.writeBytes(v.outputs.bytes)
        buffer.writeMultipleIntegers(v.firstDifference, UInt8(v.fingerprint == nil ? 0 : 1), endianness: .little)
        if let f = v.fingerprint { buffer.writeBytes(f.bytes) }
    }

    public mutating func rollback(_ r: RollbackRequest) {
        closeValues()
        header(.rollback, RollbackRequest.payloadSize)
        buffer.writeMultipleIntegers(RollbackRequest.formatVersion, r.epoch, r.attempt, endianness: .little)
    }

    public mutating func rolledBack(attempt: UInt32) {
        closeValues()
        header(.rolledBack, 1 + 4)
        buffer.writeMultipleIntegers(RollbackRequest.formatVersion, attempt, endianness: .little)
    }

    public mutating func membership(generation: UInt64) {
        closeValues()
        header(.membership, 1 + 8)
        buffer.writeMultipleIntegers(UInt8(1), generation, endianness: .little)
    }

    /// Any message, for tests and tools (environment values as one message).
    public mutating func write(_ message: Message) {
        switch message {
        case .environmentValues(let values):
            for v in values.all { value(v.read, v.value) }
            closeValues()
        case .epochEnd(let r): epochEnd(r)
        case .output(let o): output(o)
        case .outputDone(let s): outputDone(s)
        case .finished(let f): finished(f)
        case .executed(let e): executed(e)
        case .transferPages(let p):
            closeValues()
            header(.transferPages, 4 + p.count * TransferPages.entrySize)
            buffer.writeInteger(UInt32(p.count), endianness: .little)
            p.forEach { page, data in
                buffer.writeInteger(page, endianness: .little)
                buffer.writeBytes(data)
            }
        case .transferState(let t): transferState(t)
        case .compare(let c): compare(c)
        case .verdict(let v): verdict(v)
        case .rollback(let r): rollback(r)
        case .rolledBack(let attempt): rolledBack(attempt: attempt)
        case .membership(let generation): membership(generation: generation)
        }
    }

    /// The encoded batch; the writer goes on in `replacement` (an emptied, recycled buffer), so
    /// in steady state two buffers alternate and nothing is allocated.
    public mutating func take(replacingWith replacement: ByteBuffer? = nil) -> ByteBuffer {
        closeValues()
        var next = replacement ?? ByteBufferAllocator().buffer(capacity: buffer.capacity)
        next.clear()
        let batch = buffer
        buffer = next
        return batch
    }

    /// Stores `value` little-endian at `at` in `bytes`, and moves `at` past it.
    @inline(__always)
    private static func store<T: FixedWidthInteger>(_ value: T, into bytes: inout [UInt8], at: inout Int) {
        for k in 0..<(T.bitWidth / 8) {
            bytes[at + k] = UInt8(truncatingIfNeeded: value >> (8 * k))
        }
        at += T.bitWidth / 8
    }

    private mutating func header(_ type: MessageType, _ length: Int) {
        buffer.writeMultipleIntegers(type.rawValue, UInt32(length), endianness: .little)
    }

    private mutating func closeValues() {
        guard let start = openValues else { return }
        openValues = nil
        let length = buffer.writerIndex - start - MessageLimits.headerSize
        buffer.setInteger(UInt32(length), at: start + 2, endianness: .little)
    }
}
