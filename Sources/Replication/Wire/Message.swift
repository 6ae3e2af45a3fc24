import MachineCore
import NIOCore

/// The replication messages of protocol version 2, carried in the sealed data stream. 0 is never
/// valid.
///
/// ```
/// offset size  field
///      0    2  message type
///      2    4  payload length n (at most `MessageLimits.maximumPayload` of the direction)
///      6    n  payload
/// ```
public enum MessageType: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    case invalid = 0
    /// Primary to backup: results of environment instructions, in execution order (rule P0).
    case environmentValues = 1
    /// Primary to backup: an epoch ended; its length, boundary time and events (rules P1, P2).
    case epochEnd = 2
    /// Primary to backup: an output is about to become visible (output commit, step 1).
    case output = 3
    /// Primary to backup: an output has been performed (output commit, step 3).
    case outputDone = 4
    /// Primary to backup: the guest stopped; its status and final state digest.
    case finished = 5
    /// Backup to primary: the backup has executed epochs up to (not including) a number.
    case executed = 6
    /// Primary to a joining backup: pages of RAM (live state transfer, pre-copy and final copy).
    case transferPages = 7
    /// Primary to a joining backup: the end of the transfer; the machine's state at a boundary.
    case transferState = 8
    /// Primary to backup: run the epoch to its boundary now and report its outputs' digest
    /// (output comparison, `--compare`).
    case compare = 9
    /// Backup to primary: its own digest of an epoch's outputs (and state), or that it diverged.
    case verdict = 10
    /// Primary to backup: return to the checkpoint at an epoch's start and run again.
    case rollback = 11
    /// Backup to primary: it returned to the checkpoint (the rollback's attempt number).
    case rolledBack = 12
    /// Primary to backup: the generation of the pair's membership the backup belongs to (the
    /// arbiter accepts a claim only from a member of the current one).
    case membership = 13

    /// Who sends messages of this type.
    public var sender: ReplicaRole? {
        switch self {
        case .invalid: nil
        case .environmentValues, .epochEnd, .output, .outputDone, .finished, .transferPages, .transferState,
             .compare, .rollback, .membership: .primary
        case .executed, .verdict, .rolledBack: .backup
        }
    }

    public var description: String {
        switch self {
        case .invalid: "invalid"
        case .environmentValues: "environment-values"
        case .epochEnd: "epoch-end"
        case .output: "output"
        case .outputDone: "output-done"
        case .finished: "finished"
        case .executed: "executed"
        case .transferPages: "transfer-pages"
        case .transferState: "transfer-state"
        case .compare: "compare"
        case .verdict: "verdict"
        case .rollback: "rollback"
        case .rolledBack: "rolled-back"
        case .membership: "membership"
        }
    }
}

/// The size limits of a message stream, per direction.
public enum MessageLimits {
    public static let headerSize = 6
    /// The largest message a primary sends: an epoch-end record with a boundary's events (up to
    /// `eventBytes` of console input and disk data, plus one disk read of up to 32 MiB).
    public static let fromPrimary = 48 << 20
    /// The largest message a backup sends.
    public static let fromBackup = 64 << 10
    /// The console input and disk data one boundary delivers beyond its first disk completion.
    public static let eventBytes = 8 << 20
    /// The size of one logged environment value.
    public static let valueSize = 9

    /// The largest message `role` accepts from its peer.
    public static func maximumPayload(receivedBy role: ReplicaRole) -> Int {
        role == .backup ? fromPrimary : fromBackup
    }
}

/// One environment-instruction result, as the primary's guest saw it.
public struct LoggedValue: Equatable, Sendable {
    public var read: EnvironmentRead
    public var value: UInt64

    public init(read: EnvironmentRead, value: UInt64) {
        self.read = read
        self.value = value
    }
}

/// How an epoch ended at the primary.
public enum EpochStop: UInt8, Equatable, Sendable {
    case epochEnd = 0
    case idle = 1
}

/// The end of an epoch at the primary.
public struct EpochRecord: Equatable, Sendable {
    public var epoch: UInt64
    /// The primary's `Machine.progress` at the boundary: where the backup must stop.
    public var progress: UInt64
    public var stop: EpochStop
    /// Virtual time at the boundary (rule P2).
    public var time: VirtualTime
    /// The buffered inputs delivered at this boundary, in order (rule P1).
    public var events: [BoundaryEvent]
    /// How many environment values the epoch consumed (a divergence check).
    public var environmentCount: UInt64
    /// How many output records the epoch produced (a divergence check).
    public var outputCount: UInt64
    /// The full state digest at the boundary, when the primary took one.
    public var stateDigest: StateDigest?

    public init(epoch: UInt64, progress: UInt64, stop: EpochStop, time: VirtualTime, events: [BoundaryEvent],
                environmentCount: UInt64, outputCount: UInt64, stateDigest: StateDigest?)
    {
        self.epoch = epoch
        self.progress = progress
        self.stop = stop
        self.time = time
        self.events = events
        self.environmentCount = environmentCount
        self.outputCount = outputCount
        self.stateDigest = stateDigest
    }
}

/// What kind of output a record is.
public enum OutputKind: UInt8, Equatable, Sendable {
    /// Bytes on the console (one line, or the part of a line that ended an epoch).
    case console = 1
    /// A disk write (its data are the request's).
    case diskWrite = 2
    /// A disk flush.
    case diskFlush = 3
}

/// An output about to become visible. The backup produces the same record itself when it
/// replays the epoch; the digest lets it check that it did.
public struct OutputRecord: Equatable, Sendable {
    /// Output records are numbered from 1 in the order the guest produced them.
    public var sequence: UInt64
    public var epoch: UInt64
    public var kind: OutputKind
    /// SHA-256 of the output's content.
    public var digest: StateDigest

    public init(sequence: UInt64, epoch: UInt64, kind: OutputKind, digest: StateDigest) {
        self.sequence = sequence
        self.epoch = epoch
        self.kind = kind
        self.digest = digest
    }
}

/// How the guest's run ended at the primary.
public enum RunEnding: UInt8, Equatable, Sendable {
    /// The guest exited (debug-exit, halt or shutdown) with the record's status.
    case exited = 0
    /// The guest crashed (triple fault, an interruption with no handler, ...).
    case crashed = 1
    /// The guest idles waiting for console input, with no timer armed and no disk request
    /// outstanding, and console input is closed: it would wait forever. The run ends with status 0.
    case inputClosed = 2
}

/// The guest stopped at the primary.
public struct FinishedRecord: Equatable, Sendable {
    public var epoch: UInt64
    public var progress: UInt64
    public var status: Int32
    public var ending: RunEnding
    public var stateDigest: StateDigest

    public init(epoch: UInt64, progress: UInt64, status: Int32, ending: RunEnding, stateDigest: StateDigest) {
        self.epoch = epoch
        self.progress = progress
        self.status = status
        self.ending = ending
        self.stateDigest = stateDigest
    }
}

/// A decoded replication message. Environment values stay in the received buffer (a slice, not
/// a copy), already checked, and are read one by one as the guest executes.
public enum Message: Equatable, Sendable {
    case environmentValues(LoggedValues)
    case epochEnd(EpochRecord)
    case output(OutputRecord)
    case outputDone(UInt64)
    case finished(FinishedRecord)
    case executed(UInt64)
    case transferPages(TransferPages)
    case transferState(TransferState)
    case compare(CompareRequest)
    case verdict(Verdict)
    case rollback(RollbackRequest)
    case rolledBack(attempt: UInt32)
    /// Format version 1: `u8` version, `u64` generation (at least 1).
    case membership(generation: UInt64)

    public var type: MessageType {
        switch self {
        case .transferPages: .transferPages
        case .transferState: .transferState
        case .environmentValues: .environmentValues
        case .epochEnd: .epochEnd
        case .output: .output
        case .outputDone: .outputDone
        case .finished: .finished
        case .executed: .executed
        case .compare: .compare
        case .verdict: .verdict
        case .rollback: .rollback
        case .rolledBack: .rolledBack
        case .membership: .membership
        }
    }
}

/// A run of logged environment values inside a received buffer: 9 bytes each, every kind checked.
public struct LoggedValues: Equatable, Sendable {
    private var bytes: ByteBuffer

    /// Checks `payload` (a multiple of 9 bytes, every kind known) without copying it.
    init(payload: ByteBuffer) throws(WireError) {
        guard payload.readableBytes % MessageLimits.valueSize == 0 else {
            throw .badMessage(.environmentValues, "\(payload.readableBytes) bytes are not whole values")
        }
        var offset = payload.readerIndex
        while offset < payload.writerIndex {
            let code = payload.getInteger(at: offset, as: UInt8.self) ?? 0
            guard EnvironmentRead(wireCode: code) != nil else {
                throw .badMessage(.environmentValues, "environment read kind \(code)")
            }
            offset += MessageLimits.valueSize
        }
        bytes = payload
    }

    public init(_ values: [LoggedValue]) {
        var buffer = ByteBufferAllocator().buffer(capacity: values.count * MessageLimits.valueSize)
        for v in values { MessageWriter.writeValue(v, into: &buffer) }
        bytes = buffer
    }

    /// Values not yet taken.
    public var count: Int { bytes.readableBytes / MessageLimits.valueSize }

    /// Takes the next value.
    public mutating func next() -> LoggedValue? {
        guard let code = bytes.readInteger(as: UInt8.self),
              let value = bytes.readInteger(endianness: .little, as: UInt64.self),
              let read = EnvironmentRead(wireCode: code)
        else { return nil }
        return LoggedValue(read: read, value: value)
    }

    /// All remaining values (for tests and diagnostics).
    public var all: [LoggedValue] {
        var copy = self
        var out: [LoggedValue] = []
        while let v = copy.next() { out.append(v) }
        return out
    }

    public static func == (a: LoggedValues, b: LoggedValues) -> Bool { a.all == b.all }
}

extension EnvironmentRead {
    var wireCode: UInt8 {
        switch self {
        case .timestampCounter: 1
        case .randomNumber: 2
        case .intervalTimer: 3
        }
    }

    init?(wireCode: UInt8) {
        switch wireCode {
        case 1: self = .timestampCounter
        case 2: self = .randomNumber
        case 3: self = .intervalTimer
        default: return nil
        }
    }
}

/// Pages of RAM in a live state transfer, left in the received buffer (checked: a count of 1 to
/// `maximumCount` pages, each a page number and 4096 bytes; the page numbers are checked against
/// the machine's RAM by the receiver).
public struct TransferPages: Equatable, Sendable {
    /// Pages per message: 1 MiB of page data.
    public static let maximumCount = 256
    public static let entrySize = 8 + Int(GuestMemory.pageSize)
    private var bytes: ByteBuffer
    public let count: Int

    init(payload: ByteBuffer) throws(WireError) {
        var buffer = payload
        guard let n = buffer.readInteger(endianness: .little, as: UInt32.self) else {
            throw .badMessage(.transferPages, "truncated")
        }
        guard n >= 1, n <= Self.maximumCount else {
            throw .badMessage(.transferPages, "\(n) pages (1 to \(Self.maximumCount) per message)")
        }
        guard buffer.readableBytes == Int(n) * Self.entrySize else {
            throw .badMessage(.transferPages, "\(buffer.readableBytes) bytes do not hold \(n) pages")
        }
        bytes = buffer
        count = Int(n)
    }

    /// Calls `body` with each page number and its bytes, in order.
    public func forEach(_ body: (UInt64, ArraySlice<UInt8>) throws -> Void) rethrows {
        var buffer = bytes
        while let page = buffer.readInteger(endianness: .little, as: UInt64.self),
              let data = buffer.readBytes(length: Int(GuestMemory.pageSize))
        {
            try body(page, data[...])
        }
    }

    /// The page numbers, in order (for tests and diagnostics).
    public var pageNumbers: [UInt64] {
        var out: [UInt64] = []
        forEach { page, _ in out.append(page) }
        return out
    }

    public static func == (a: TransferPages, b: TransferPages) -> Bool { a.bytes == b.bytes }
}

/// The end of a live state transfer: where the joining backup starts following.
public struct TransferState: Equatable, Sendable {
    /// The next epoch the primary runs: the backup's first.
    public var epoch: UInt64
    /// The sequence number the primary's next output record gets.
    public var nextOutput: UInt64
    /// Console input bytes the primary's guest was given before this boundary (a replica that
    /// takes over skips as many of its own input).
    public var consoleBytesDelivered: UInt64
    /// The console line the primary holds without its newline (at most `OutputLog.partialLineBytes`).
    public var partialLine: [UInt8]
    /// The RAM digest the transferred pages must add up to.
    public var ramDigest: StateDigest
    /// `MachineState` in the snapshot's machine-record encoding (decoded and checked by the receiver).
    public var machine: [UInt8]

    /// The largest encoded machine state accepted (as a snapshot's machine record).
    public static let machineLimit = 16 << 20

    public init(epoch: UInt64, nextOutput: UInt64, consoleBytesDelivered: UInt64, partialLine: [UInt8],
                ramDigest: StateDigest, machine: [UInt8])
    {
        self.epoch = epoch
        self.nextOutput = nextOutput
        self.consoleBytesDelivered = consoleBytesDelivered
        self.partialLine = partialLine
        self.ramDigest = ramDigest
        self.machine = machine
    }
}
