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
/// Console output is cut into lines (and the partial line left at an epoch boundary), so a
/// failover can repeat at most one line; each disk write or flush is a record of its own. Both
/// replicas cut the same byte stream at the same points, so they number records identically.
public struct OutputLog: Sendable {
    public private(set) var nextSequence: UInt64 = 1
    private var partialLine: [UInt8] = []
    /// The epoch in which the partial line began.
    private var partialLineEpoch: UInt64?
    private var ready: [PendingOutput] = []

    public init() {}

    public mutating func console(_ bytes: [UInt8], epoch: UInt64) {
        for byte in bytes {
            if partialLine.isEmpty { partialLineEpoch = epoch }
            partialLine.append(byte)
            if byte == UInt8(ascii: "\n") { closeLine(epoch: epoch) }
        }
    }

    public mutating func disk(_ request: BlockRequest, epoch: UInt64) {
        closeLine(epoch: epoch)
        var content = littleEndianBytes(request.sector)
        content += request.data
        append(.disk(request), kind: request.kind == .flush ? .diskFlush : .diskWrite,
               content: content, epoch: epoch)
    }

    /// A partial console line waits for its end at most this many epochs...
    public static let partialLineEpochs: UInt64 = 8
    /// ... or until it is this long.
    public static let partialLineBytes = 256

    /// Ends an epoch. A partial console line is held for its newline, so that a failover never
    /// cuts a line into repeated pieces, unless the guest is idle (a prompt must be seen), the line
    /// has waited `partialLineEpochs` epochs, or it reached `partialLineBytes`: then it becomes a
    /// record of its own. Both replicas decide alike (the stop kind is in the epoch record).
    public mutating func endEpoch(_ epoch: UInt64, idle: Bool) {
        guard let since = partialLineEpoch else { return }
        if idle || epoch - since + 1 >= Self.partialLineEpochs || partialLine.count >= Self.partialLineBytes {
            closeLine(epoch: epoch)
        }
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
        partialLine.removeAll()
        partialLineEpoch = nil
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
