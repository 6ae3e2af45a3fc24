import Foundation

/// Everything a bench run measured, as written to results.json.
public struct BenchResults: Codable, Sendable {
    public var host: HostDescription
    public var command: String
    public var quick: Bool
    public var repetitions: Int
    public var experiments: [String]
    public var durationSeconds: Double
    public var loadAverageAtEnd: String
    public var epochs: [EpochSeriesResult]?
    public var disk: [DiskLine]?
    public var failover: [FailoverPoint]?
    public var failoverTrials: [FailoverTrial]?
    public var channel: [ChannelPoint]?
    public var peers: [PeerResult]?
    /// Parts not run, with the reason ("parisc-qemu: qemu-system-hppa is not installed ...").
    public var skipped: [String]
    /// Runs that failed, with their command lines.
    public var problems: [String]
    /// The summary rows: experiment, measure, Lockstep, reference, ratio.
    public var summary: [[String]]
}

/// What the caller of `Benchmark.run` gets back.
public struct BenchOutcome: Sendable {
    /// The summary (Markdown) to print.
    public var summary: String
    /// The files written.
    public var files: [String]
    public var problems: [String]
    public var skipped: [String]
}
