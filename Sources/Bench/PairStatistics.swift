import Foundation
import Replication

/// The combined statistics `lockstep pair --stats-json` writes (or the bench gathers from a primary
/// and a backup it started): both replicas' snapshots, and
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
