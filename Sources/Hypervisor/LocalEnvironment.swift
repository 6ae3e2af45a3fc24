import MachineCore

/// The environment of an unreplicated run: environment instructions get the machine's own
/// deterministic values, console output goes straight to the host console, and disk requests are
/// performed at once on the host image, their completions held for the next epoch boundary.
public final class LocalEnvironment: SessionEnvironment {
    public let host: HostIO

    public init(host: HostIO) { self.host = host }

    public func environmentValue(_ read: EnvironmentRead, proposed: UInt64) throws(EnvironmentError)
        -> UInt64
    {
        proposed
    }

    public func consoleOutput(_ bytes: [UInt8]) { host.console.write(bytes) }

    public func submitBlockRequest(_ request: BlockRequest) { host.perform(request) }
}
