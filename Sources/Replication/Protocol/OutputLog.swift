import MachineCore

/// An output and what performing it means.
public struct PendingOutput: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        case console([UInt8])
        case disk(BlockRequest)
    }

    public let record: OutputRecord
    public let action: Action
}

/// Turns what a guest emits into numbered output records, the unit of output commit.
///
/// Console output is cut into whole lines: a line becomes a record at its newline, and a partial
/// line is held across epoch boundaries until then, so that the one record a failover may
/// repeat is a whole line, never a fragment. A partial line is let out early only when it must
/// be: when the guest idles (it waits for input or a timer, and a prompt must appear), when it
/// reaches `partialLineBytes` (a bound on what is held), before a disk record (outputs keep
/// their order), and at the end of the run. Each disk write or flush is a record of its own.
/// Both replicas cut the same byte stream at the same points (the stop kind an epoch ended with
/// is in its epoch record), so they number records identically.
public struct OutputLog: Sendable {
    public private(set) var nextSequence: UInt64 = 1
    private var partialLine: [UInt8] = []
    private var ready: [PendingOutput] = []

    public init() {}

    /// A log that goes on from another replica's (a backup that joined a running primary):
    /// the next record is `nextSequence`, and `partialLine` is the line held without its newline.
    public init(nextSequence: UInt64, partialLine: [UInt8]) {
        self.nextSequence = nextSequence
        self.partialLine = partialLine
    }

    /// The console bytes held without a newline.
    public var heldLine: [UInt8] { partialLine }

    /// The most console bytes held without a newline: a longer line is cut into records of
    /// this size (4 KiB, longer than any line a console guest prints in practice).
    public static let partialLineBytes = 4096

    public mutating func console(_ bytes: [UInt8], epoch: UInt64) {
        for byte in bytes {
            partialLine.append(byte)
            if byte == UInt8(ascii: "\n") || partialLine.count >= Self.partialLineBytes {
                closeLine(epoch: epoch)
            }
        }
    }

    public mutating func disk(_ request: BlockRequest, epoch: UInt64) {
        closeLine(epoch: epoch)
        var content = littleEndianBytes(request.sector)
        content += request.data
        append(.disk(request), kind: request.kind == .flush ? .diskFlush : .diskWrite,
               content: content, epoch: epoch)
    }

    /// Ends an epoch. A partial console line is held for its newline unless the guest is idle:
    /// then it becomes a record of its own, so a prompt is seen while the guest waits.
    public mutating func endEpoch(_ epoch: UInt64, idle: Bool) {
        if idle { closeLine(epoch: epoch) }
    }

    /// Ends the run (or this replica's part in it): a partial line becomes a record.
    public mutating func finish(_ epoch: UInt64) { closeLine(epoch: epoch) }

    /// Takes the records produced since the last call.
    public mutating func take() -> [PendingOutput] {
        defer { ready.removeAll() }
        return ready
    }

    private mutating func closeLine(epoch: UInt64) {
        guard !partialLine.isEmpty else { return }
        append(.console(partialLine), kind: .console, content: partialLine, epoch: epoch)
        partialLine.removeAll(keepingCapacity: true)
    }

    private mutating func append(_ action: PendingOutput.Action, kind: OutputKind, content: [UInt8],
                                 epoch: UInt64)
    {
        let record = OutputRecord(sequence: nextSequence, epoch: epoch, kind: kind,
                                  digest: StateDigest.of(content))
        nextSequence += 1
        ready.append(PendingOutput(record: record, action: action))
    }
}
