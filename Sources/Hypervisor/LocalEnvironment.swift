import MachineCore

/// The environment of an unreplicated run: environment instructions get the machine's own
/// deterministic values, console output goes straight to the host console, and disk requests are
/// performed at once on the host image, their completions held for the next epoch boundary.
public final class LocalEnvironment: GuestEnvironment {
    public let console: HostConsole
    public let disk: HostDisk?
    private var completions: [BoundaryEvent] = []

    public init(console: HostConsole, disk: HostDisk?) {
        self.console = console
        self.disk = disk
    }

    public func environmentValue(_ read: EnvironmentRead, proposed: UInt64) throws(EnvironmentError)
        -> UInt64
    {
        proposed
    }

    public func consoleOutput(_ bytes: [UInt8]) { console.write(bytes) }

    public func submitBlockRequest(_ request: BlockRequest) {
        let completion = disk?.perform(request) ?? BlockCompletion(id: request.id, status: .ioError)
        completions.append(.blockCompletion(completion))
    }

    /// Whether a boundary would deliver something now.
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
