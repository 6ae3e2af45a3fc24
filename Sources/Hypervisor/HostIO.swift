import MachineCore

/// The host side of a machine's I/O: the console, the disk image, and the completions of disk
/// requests performed on it, held for the next epoch boundary.
public final class HostIO {
    public let console: HostConsole
    public let disk: HostDisk?
    private var completions: [BoundaryEvent] = []

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

    /// Whether a boundary would deliver a disk completion now.
    public var hasPendingEvents: Bool { !completions.isEmpty }

    /// The events for this boundary: console input typed so far, then finished disk requests.
    public func takeEvents() -> [BoundaryEvent] {
        var events: [BoundaryEvent] = []
        let input = console.takeInput()
        if !input.isEmpty { events.append(.consoleInput(input)) }
        events += completions
        completions.removeAll()
        return events
    }
}
