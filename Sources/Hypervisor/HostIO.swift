import MachineCore

/// The host side of a machine's I/O: the console, the disk image, and the completions of disk
/// requests performed on it, held for the next epoch boundary.
public final class HostIO {
    public let console: HostConsole
    public let disk: HostDisk?
    private var completions: [BoundaryEvent] = []
    /// Events carried over from a snapshot (other than console input), delivered before anything
    /// else.
    private var carried: [BoundaryEvent] = []
    /// Console input carried over from a snapshot, delivered before the console's own input and,
    /// like it, only as fast as the guest's UART takes it.
    private var carriedInput: [UInt8] = []

    public init(console: HostConsole, disk: HostDisk?) {
        self.console = console
        self.disk = disk
    }

    /// Performs `request` on the disk image now (an I/O error without a disk); its completion
    /// waits for the next boundary.
    public func perform(_ request: BlockRequest) {
        let completion = disk?.perform(request) ?? BlockCompletion(id: request.id, status: .ioError)
        completions.append(.blockCompletion(completion))
    }

    /// Whether a boundary would deliver a disk completion (or a carried event) now.
    public var hasPendingEvents: Bool { !completions.isEmpty || !carried.isEmpty }

    /// Whether a boundary would deliver console input now, to a UART with `room` for it.
    public func hasInput(room: Int) -> Bool { room > 0 && (!carriedInput.isEmpty || console.hasInput) }

    /// Events taken from the host and not yet delivered (for a snapshot's host state). Console
    /// input the guest has not been given yet stays with the console.
    public var heldEvents: [BoundaryEvent] {
        (carriedInput.isEmpty ? [] : [.consoleInput(carriedInput)]) + carried + completions
    }

    /// Delivers `events` (a restored snapshot's pending events) at the next boundaries, before
    /// any new input or completion: console input as fast as the UART takes it, the other
    /// events at the next boundary whatever `takeEvents`'s byte limit.
    public func carry(_ events: [BoundaryEvent]) {
        for event in events {
            if case .consoleInput(let bytes) = event { carriedInput += bytes } else { carried.append(event) }
        }
    }

    /// A rollback to a checkpoint (output comparison): the completions and carried events held
    /// belong to the epochs undone (the restored guest submits its requests again), and `input`,
    /// the console bytes delivered since the checkpoint, is delivered again before anything else,
    /// as fast as the UART takes it.
    public func rollBack(redelivering input: [UInt8]) {
        completions.removeAll()
        carried.removeAll()
        carriedInput = input + carriedInput
    }

    /// The events for this boundary: console input, at most `consoleRoom` bytes (what the
    /// guest's UART can take now, `Machine.consoleInputRoom`: the rest waits, so no input is
    /// lost), then finished disk requests.
    ///
    /// With a `byteLimit` (a primary, whose events must fit in one replication frame), at most
    /// that many input bytes are taken, and completions only while the data they carry stay
    /// within the limit, except that one completion is always taken; the rest wait, in order,
    /// for a later boundary.
    public func takeEvents(consoleRoom: Int, byteLimit: Int = .max) -> [BoundaryEvent] {
        var events = carried
        carried = []
        let room = max(0, min(consoleRoom, byteLimit))
        var input = Array(carriedInput.prefix(room))
        carriedInput.removeFirst(input.count)
        if input.count < room { input += console.takeInput(limit: room - input.count) }
        if !input.isEmpty { events.append(.consoleInput(input)) }
        var bytes = input.count
        var taken = 0
        for event in completions {
            let size = if case .blockCompletion(let c) = event { c.data.count } else { 0 }
            if taken > 0 && size > byteLimit - bytes { break }
            events.append(event)
            bytes += size
            taken += 1
        }
        completions.removeFirst(taken)
        return events
    }
}
