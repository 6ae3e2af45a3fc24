import Crypto

/// Reads a snapshot (see `MachineSnapshot` for the format) in two steps: `init` reads and checks
/// everything but RAM (so the caller can compare the identity with its own and build the
/// machine), `restore(into:)` reads RAM into a freshly built machine and restores its state.
/// Every field is hostile until checked; sizes are bounded before anything is allocated.
public final class SnapshotReader {
    /// Where the reader is in the file.
    private enum Stage {
        /// Identity, machine and host records read; RAM comes next.
        case metadataRead
        /// `restore(into:)` finished.
        case restored
        /// `restore(into:)` failed: the machine it wrote into is unusable.
        case failed
    }

    /// What the snapshot is of.
    public let identity: SnapshotIdentity
    /// The machine's state without RAM.
    public let machineState: MachineState
    /// The host's side of the boundary.
    public let host: SnapshotHostState

    private let input: any SnapshotInput
    private var stage = Stage.metadataRead
    private var records: UInt64 = 0

    /// Reads the header and the identity, machine and host records.
    public init(input: any SnapshotInput) throws(SnapshotError) {
        self.input = input
        let header = try input.read(upTo: MachineSnapshot.magic.count + 4)
        guard header.count >= MachineSnapshot.magic.count,
              Array(header.prefix(MachineSnapshot.magic.count)) == MachineSnapshot.magic
        else {
            throw header.isEmpty ? .truncated("the data is empty") : .notASnapshot
        }
        var reader = ByteReader(Array(header.dropFirst(MachineSnapshot.magic.count)), what: "header")
        let version = try reader.u16()
        guard version == MachineSnapshot.version else { throw .unsupportedVersion(version) }
        guard try reader.u16() == 0 else { throw .malformed("the header's reserved field is not zero") }
        var count: UInt64 = 0
        identity = try Self.decodeIdentity(try Self.readRecord(.identity, from: input, count: &count))
        machineState = try Self.decodeMachine(try Self.readRecord(.machine, from: input, count: &count))
        host = try Self.decodeHost(try Self.readRecord(.host, from: input, count: &count))
        records = count
    }

    /// Reads RAM into `machine` (built from the same image and configuration, not yet run),
    /// zeroes the pages it has that the snapshot does not, checks the RAM digest, reads the end
    /// of the snapshot and restores the machine's state (which checks the state digest).
    /// After an error the machine is unusable.
    public func restore(into machine: any Machine) throws {
        guard case .metadataRead = stage else { preconditionFailure("restore(into:) runs once") }
        stage = .failed
        guard machine.architecture == machineState.architecture else {
            throw SnapshotError.foreign("it is of an \(machineState.architecture) machine, this one is \(machine.architecture)")
        }
        var count = records
        var memory = ByteReader(try Self.readRecord(.memory, from: input, count: &count), what: "memory record")
        let pageSize = try memory.u64()
        let pageCount = try memory.u64()
        let following = try memory.u64()
        let ramDigest = StateDigest(bytes: Array(try memory.take(32)))
        try memory.finish()
        guard pageSize == GuestMemory.pageSize else {
            throw SnapshotError.malformed("a page size of \(pageSize) bytes (Lockstep's is \(GuestMemory.pageSize))")
        }
        let ram = machine.memory
        guard pageCount == UInt64(ram.pageCount) else {
            throw SnapshotError.foreign("its RAM has \(pageCount) pages, this machine's \(ram.pageCount)")
        }
        guard following <= pageCount else {
            throw SnapshotError.malformed("\(following) pages of \(pageCount) follow")
        }
        // Pages this machine has that are not zero: the ones the snapshot does not carry must be.
        let stale = try machine.memoryDigest.nonZeroPages()
        var restored = PageBitmap(pageCount: ram.pageCount)
        var pagesRead: UInt64 = 0
        while pagesRead < following {
            let payload = try Self.readRecord(.pages, from: input, count: &count)
            var reader = ByteReader(payload, what: "pages record")
            let n = try reader.u32()
            guard n >= 1, n <= MachineSnapshot.pagesPerRecord, UInt64(n) <= following - pagesRead else {
                throw SnapshotError.malformed("a pages record with \(n) pages where \(following - pagesRead) remain")
            }
            for _ in 0..<n {
                let page = try reader.u64()
                guard page < pageCount else {
                    throw SnapshotError.malformed("page \(page) is outside the \(pageCount) pages of RAM")
                }
                guard !restored[Int(page)] else { throw SnapshotError.malformed("page \(page) appears twice") }
                restored.insert(Int(page))
                ram.writePage(Int(page), from: try reader.take(Int(GuestMemory.pageSize)))
            }
            try reader.finish()
            pagesRead += UInt64(n)
        }
        for page in stale where !restored[page] { ram.zeroPage(page) }
        var end = ByteReader(try Self.readRecord(.end, from: input, count: &count), what: "end record")
        let recordsBefore = try end.u64()
        let totalPages = try end.u64()
        try end.finish()
        guard recordsBefore == count - 1, totalPages == following else {
            throw SnapshotError.malformed("the end record counts \(recordsBefore) records and \(totalPages) pages, the snapshot has \(count - 1) and \(following)")
        }
        guard try input.read(upTo: 1).isEmpty else {
            throw SnapshotError.malformed("data follows the end record")
        }
        let actual = try machine.memoryDigest.digest()
        guard actual == ramDigest else {
            throw SnapshotError.digestMismatch(what: "RAM", expected: ramDigest, actual: actual)
        }
        try machine.restoreState(machineState)
        stage = .restored
    }

    // MARK: Records

    /// Reads the next record, which must be of type `expected`, and returns its checked payload.
    static func readRecord(_ expected: MachineSnapshot.RecordType, from input: any SnapshotInput,
                           count: inout UInt64) throws(SnapshotError) -> [UInt8]
    {
        let header = try input.read(upTo: 8)
        guard header.count == 8 else { throw .truncated("the \(expected.name) record is missing") }
        var reader = ByteReader(header, what: "\(expected.name) record header")
        let rawType = try reader.u16()
        let reserved = try reader.u16()
        let length = try reader.u32()
        guard let type = MachineSnapshot.RecordType(rawValue: rawType), type != .invalid else {
            throw .malformed("unknown record type \(rawType) where the \(expected.name) record belongs")
        }
        guard type == expected else {
            throw .malformed("a \(type.name) record where the \(expected.name) record belongs")
        }
        guard reserved == 0 else { throw .malformed("the \(type.name) record's reserved field is not zero") }
        guard Int(length) <= type.limit else {
            throw .recordTooLarge(record: type.name, length: UInt64(length), limit: UInt64(type.limit))
        }
        let rest = try input.read(upTo: Int(length) + MachineSnapshot.checksumSize)
        guard rest.count == Int(length) + MachineSnapshot.checksumSize else {
            throw .truncated("the \(type.name) record ends early")
        }
        var hasher = SHA256()
        hasher.update(data: header)
        hasher.update(data: rest.prefix(Int(length)))
        guard Array(hasher.finalize()) == Array(rest.suffix(MachineSnapshot.checksumSize)) else {
            throw .checksumMismatch(record: type.name)
        }
        count += 1
        return Array(rest.prefix(Int(length)))
    }

    static func decodeIdentity(_ payload: [UInt8]) throws(SnapshotError) -> SnapshotIdentity {
        var r = ByteReader(payload, what: "identity record")
        let architecture = try decodeArchitecture(try r.string(limit: 64))
        let digest = StateDigest(bytes: Array(try r.take(32)))
        let n = try r.count(minimumSize: 8)
        var settings: [SnapshotIdentity.Setting] = []
        for _ in 0..<n {
            let key = try r.string()
            settings.append(SnapshotIdentity.Setting(key, try r.string()))
        }
        try r.finish()
        return SnapshotIdentity(architecture: architecture, imageDigest: digest, configuration: settings)
    }

    static func decodeMachine(_ payload: [UInt8]) throws(SnapshotError) -> MachineState {
        var r = ByteReader(payload, what: "machine record")
        let architecture = try decodeArchitecture(try r.string(limit: 64))
        let clockName = try r.string(limit: 64)
        guard let epochClock = EpochClock(rawValue: clockName) else {
            throw .malformed("unknown epoch clock \(clockName.prefix(40))")
        }
        let progress = try r.u64()
        let baseTime = VirtualTime(nanoseconds: try r.u64())
        let baseProgress = try r.u64()
        let processor = try r.blob(limit: MachineSnapshot.RecordType.machine.limit)
        let n = try r.count(minimumSize: 8)
        var devices: [DeviceState] = []
        for _ in 0..<n {
            let name = try r.string(limit: 64)
            devices.append(DeviceState(name: name, bytes: try r.blob(limit: MachineSnapshot.RecordType.machine.limit)))
        }
        let digest = StateDigest(bytes: Array(try r.take(32)))
        try r.finish()
        return MachineState(architecture: architecture, epochClock: epochClock, progress: progress,
                            clockBaseTime: baseTime, clockBaseProgress: baseProgress,
                            processor: processor, devices: devices, digest: digest)
    }

    static func decodeHost(_ payload: [UInt8]) throws(SnapshotError) -> SnapshotHostState {
        var r = ByteReader(payload, what: "host record")
        let epoch = try r.u64()
        let n = try r.count(minimumSize: 5)
        var events: [BoundaryEvent] = []
        for _ in 0..<n {
            switch try r.u8() {
            case 1:
                events.append(.consoleInput(try r.blob(limit: MachineSnapshot.RecordType.host.limit)))
            case 2:
                let id = try r.u64()
                let rawStatus = try r.u8()
                guard let status = BlockStatus(rawValue: rawStatus) else {
                    throw .malformed("a disk completion with status \(rawStatus)")
                }
                let data = try r.blob(limit: MachineSnapshot.RecordType.host.limit)
                events.append(.blockCompletion(BlockCompletion(id: id, status: status, data: data)))
            case let kind:
                throw .malformed("a pending event of unknown kind \(kind)")
            }
        }
        try r.finish()
        return SnapshotHostState(epoch: epoch, pendingEvents: events)
    }

    static func decodeArchitecture(_ name: String) throws(SnapshotError) -> GuestArchitecture {
        guard let architecture = GuestArchitecture(rawValue: name) else {
            throw .malformed("unknown architecture \(name.prefix(40))")
        }
        return architecture
    }
}
