import Foundation

/// Everything a bench run measured, as written to results.json.
struct BenchResults: Codable, Sendable {
    var host: HostDescription
    var command: String
    var quick: Bool
    var repetitions: Int
    var experiments: [String]
    var durationSeconds: Double
    var loadAverageAtEnd: String
    var epochs: [EpochSeriesResult]?
    var disk: [DiskLine]?
    var failover: [FailoverPoint]?
    var failoverTrials: [FailoverTrial]?
    var channel: [ChannelPoint]?
    var boundary: BoundaryExperiment.Result?
    var peers: [PeerResult]?
    var counterClock: CounterClockResult?
    /// The QEMU configurations probed: the CPU model each used, or why it was skipped.
    var peerProbes: [PeerProbe]?
    var snapshots: [SnapshotPoint]?
    var reprotect: [ReprotectPoint]?
    /// Parts not run, with the reason ("parisc-qemu: qemu-system-hppa is not installed ...").
    var skipped: [String]
    /// Runs that failed, with their command lines.
    var problems: [String]
    /// The summary rows: experiment, measure, Lockstep, reference, ratio.
    var summary: [[String]]
}
