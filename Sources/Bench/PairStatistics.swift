import Foundation
import Replication

/// The combined statistics `lockstep pair --stats-json` writes: both replicas' snapshots, and
/// what the pair saw of the primary's end.
struct PairStatistics: Decodable {
    let primary: ReplicationStatus.Snapshot?
    let backup: ReplicationStatus.Snapshot?
    let primaryKilled: Bool
    let primaryExitedAt: Double?
    let status: Int

    static func load(_ path: String) -> PairStatistics? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(PairStatistics.self, from: data)
    }
}

/// The channel figures of one replicated run, from the primary's statistics.
public struct ChannelFigures: Codable, Sendable {
    /// Epochs the primary executed.
    public var epochs: UInt64
    /// Bytes the primary sent to the backup (log, epoch ends, outputs, heartbeats, framing).
    public var bytesSent: UInt64
    /// Bytes the primary received (acknowledgements, heartbeats).
    public var bytesReceived: UInt64
    /// From the primary entering "replicating" to its "finished".
    public var replicatingSeconds: Double

    init?(_ stats: PairStatistics) {
        guard let p = stats.primary, p.epoch > 0 else { return nil }
        epochs = p.epoch
        bytesSent = p.bytesSent
        bytesReceived = p.bytesReceived
        if let start = p.stateEnteredAt["replicating"], let end = p.stateEnteredAt["finished"], end > start {
            replicatingSeconds = end - start
        } else {
            replicatingSeconds = p.elapsedSeconds
        }
    }

    public var bytesPerEpoch: Double { Double(bytesSent) / Double(max(epochs, 1)) }
    public var bytesPerSecond: Double { replicatingSeconds > 0 ? Double(bytesSent) / replicatingSeconds : 0 }
}
