import Crypto

/// Where a snapshot's bytes go (a file, later a network stream).
public protocol SnapshotOutput: AnyObject {
    func write(_ bytes: [UInt8]) throws(SnapshotError)
}

/// Where a snapshot's bytes come from. `read(upTo:)` returns fewer bytes only at the end.
public protocol SnapshotInput: AnyObject {
    func read(upTo count: Int) throws(SnapshotError) -> [UInt8]
}

/// A machine snapshot: everything a new process needs to continue a machine from an epoch
/// boundary, on the same engine, with the same image and configuration.
///
/// The format (version 1, all integers little-endian):
///
///     file    = magic "LOCKSNAP" | version u16 | reserved u16 (0) | record*
///     record  = type u16 | reserved u16 (0) | length u32 | payload (length bytes)
///             | SHA-256 of type..payload (32 bytes)
///
/// Records come in this order, each type with a length limit, anything else is refused:
/// `identity` (architecture, image SHA-256, configuration settings), `machine` (`MachineState`:
/// progress, virtual clock, the engine's CPU encoding, each device's state, the state digest),
/// `host` (`SnapshotHostState`: epoch count, pending boundary events), `memory` (page size, page
/// count, the number of pages that follow, the RAM digest), then `pages` records of at most 256
/// pages each (page number u64 and its 4096 bytes; only pages that are not all zero, each at
/// most once), and `end` (the number of records and pages before it), after which the data must
/// end. Strings and blobs are u32-length-prefixed. Every field is checked on reading (it may
/// come from a file or the network); the checksum only detects damage, it vouches for nothing.
/// After the pages the restored RAM must match the RAM digest and the restored machine the
/// state digest, or the restore fails.
public enum MachineSnapshot {
    public static let magic: [UInt8] = Array("LOCKSNAP".utf8)
    public static let version: UInt16 = 1
    /// Pages per `pages` record (1 MiB of page data).
    public static let pagesPerRecord = 256
    static let checksumSize = 32

    /// A record type. 0 is invalid.
    public enum RecordType: UInt16, Sendable, CaseIterable {
        case invalid = 0
        case identity = 1
        case machine = 2
        case host = 3
        case memory = 4
        case pages = 5
        case end = 6

        /// The largest payload a record of this type may have.
        public var limit: Int {
            switch self {
            case .invalid: 0
            case .identity: 1 << 16
            case .machine: 16 << 20
            case .host: 80 << 20
            case .memory: 56
            case .pages: 4 + MachineSnapshot.pagesPerRecord * (8 + Int(GuestMemory.pageSize))
            case .end: 16
            }
        }

        var name: String {
            switch self {
            case .invalid: "invalid"
            case .identity: "identity"
            case .machine: "machine"
            case .host: "host"
            case .memory: "memory"
            case .pages: "pages"
            case .end: "end"
            }
        }
    }

    /// What a written snapshot holds.
    public struct Summary: Equatable, Sendable {
        /// Pages of RAM written (the pages that are not all zero).
        public var pages: Int
        /// Bytes written.
        public var bytes: UInt64
    }

    /// Writes a snapshot of `machine`, which must be at an epoch boundary (between
    /// `applyBoundary` and the next `run`), with `identity` and the host's `host` state.
    public static func write(_ machine: any Machine, identity: SnapshotIdentity,
                             host: SnapshotHostState, to output: any SnapshotOutput) throws -> Summary
    {
        // The state first: on KVM capturing completes the last exit, which may write RAM.
        let state = try machine.captureState()
        let pages = try machine.memoryDigest.nonZeroPages()
        let ramDigest = try machine.memoryDigest.digest()
        var written: UInt64 = 0
        var records: UInt64 = 0
        func emit(_ type: RecordType, _ payload: ByteWriter) throws(SnapshotError) {
            let record = try encodeRecord(type, payload.bytes)
            try output.write(record)
            written += UInt64(record.count)
            records += 1
        }
        var header = ByteWriter()
        header.raw(magic)
        header.u16(version)
        header.u16(0)
        try output.write(header.bytes)
        written += UInt64(header.bytes.count)

        try emit(.identity, encode(identity))
        try emit(.machine, encode(state))
        try emit(.host, encode(host))
        var memory = ByteWriter()
        memory.u64(GuestMemory.pageSize)
        memory.u64(UInt64(machine.memory.pageCount))
        memory.u64(UInt64(pages.count))
        memory.raw(ramDigest.bytes)
        try emit(.memory, memory)
        var start = 0
        while start < pages.count {
            let chunk = pages[start..<min(start + pagesPerRecord, pages.count)]
            var payload = ByteWriter()
            payload.u32(UInt32(chunk.count))
            var bytes: [UInt8] = []
            bytes.reserveCapacity(chunk.count * (8 + Int(GuestMemory.pageSize)))
            for page in chunk {
                bytes += littleEndianBytes(UInt64(page))
                machine.memory.appendPage(page, to: &bytes)
            }
            payload.raw(bytes)
            try emit(.pages, payload)
            start += pagesPerRecord
        }
        var end = ByteWriter()
        end.u64(records)
        end.u64(UInt64(pages.count))
        try emit(.end, end)
        return Summary(pages: pages.count, bytes: written)
    }

    /// A record: header, payload and checksum.
    static func encodeRecord(_ type: RecordType, _ payload: [UInt8]) throws(SnapshotError) -> [UInt8] {
        guard payload.count <= type.limit else {
            throw .unsupported("its \(type.name) state takes \(payload.count) bytes, more than a snapshot holds (\(type.limit))")
        }
        var w = ByteWriter()
        w.u16(type.rawValue)
        w.u16(0)
        w.u32(UInt32(payload.count))
        var record = w.bytes
        record.reserveCapacity(record.count + payload.count + checksumSize)
        record += payload
        record += SHA256.hash(data: record)
        return record
    }

    static func encode(_ identity: SnapshotIdentity) -> ByteWriter {
        var w = ByteWriter()
        w.string(identity.architecture.rawValue)
        w.raw(identity.imageDigest.bytes)
        w.u32(UInt32(identity.configuration.count))
        for setting in identity.configuration {
            w.string(setting.key)
            w.string(setting.value)
        }
        return w
    }

    static func encode(_ state: MachineState) -> ByteWriter {
        var w = ByteWriter()
        w.string(state.architecture.rawValue)
        w.string(state.epochClock.rawValue)
        w.u64(state.progress)
        w.u64(state.clockBaseTime.nanoseconds)
        w.u64(state.clockBaseProgress)
        w.blob(state.processor)
        w.u32(UInt32(state.devices.count))
        for device in state.devices {
            w.string(device.name)
            w.blob(device.bytes)
        }
        w.raw(state.digest.bytes)
        return w
    }

    static func encode(_ host: SnapshotHostState) -> ByteWriter {
        var w = ByteWriter()
        w.u64(host.epoch)
        w.u32(UInt32(host.pendingEvents.count))
        for event in host.pendingEvents {
            switch event {
            case .consoleInput(let bytes):
                w.u8(1)
                w.blob(bytes)
            case .blockCompletion(let completion):
                w.u8(2)
                w.u64(completion.id)
                w.u8(completion.status.rawValue)
                w.blob(completion.data)
            }
        }
        return w
    }
}
