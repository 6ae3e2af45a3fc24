import Foundation
import Replication

/// The channel figures of one replicated run, from the primary's statistics.
struct ChannelFigures: Codable, Sendable {
    /// Epochs the primary executed.
    var epochs: UInt64
    /// Bytes the primary sent to the backup (log, epoch ends, outputs, heartbeats, framing).
    var bytesSent: UInt64
    /// Bytes the primary received (acknowledgements, heartbeats).
    var bytesReceived: UInt64
    /// From the primary entering "replicating" to its "finished".
    var replicatingSeconds: Double

    init?(_ stats: PairStatistics) {
        guard let p = stats.primary, p.epoch > 0 else { return nil }
        epochs = p.epoch
        bytesSent = p.bytesSent
        bytesReceived = p.bytesReceived
        if let start = p.stateEnteredAt[.replicating], let end = p.stateEnteredAt[.finished], end > start {
            replicatingSeconds = end - start
        } else {
            replicatingSeconds = p.elapsedSeconds
        }
    }

    var bytesPerEpoch: Double { Double(bytesSent) / Double(max(epochs, 1)) }
    var bytesPerSecond: Double { replicatingSeconds > 0 ? Double(bytesSent) / replicatingSeconds : 0 }
}
