import Foundation

/// Replication channel traffic of one configuration (medians over its replicated runs).
struct ChannelPoint: Codable, Sendable {
    var workload: String
    var series: String
    var epochLength: UInt64?
    var work: Int
    var runs: Int
    var epochs: Double
    var bytesSentPerEpoch: Double
    var bytesReceivedPerEpoch: Double
    var bytesSentPerSecond: Double
}
