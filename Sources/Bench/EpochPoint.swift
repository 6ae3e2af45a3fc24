import Foundation

/// One epoch length of a series.
struct EpochPoint: Codable, Sendable {
    var epochLength: UInt64
    /// Seconds per round replicated: the estimate from the fastest runs.
    var pairSecondsPerRound: Double
    /// Per repetition (the spread shows the noise).
    var pairSecondsPerRoundByRepetition: Summary?
    /// Replicated / unreplicated time per round, from the fastest runs of each.
    var ratio: Double
    /// The range of the ratio over the repetitions of the replicated run.
    var ratioLow: Double
    var ratioHigh: Double
    /// The same ratio for CPU time (both replicas' CPU for the pair).
    var cpuRatio: Double?
    /// Whole-process times at the larger round count (start-up and boot included).
    var wholeRunRatio: Double?
    /// Epochs the primary ran per round of work.
    var epochsPerRound: Double?
    /// (replicated - unreplicated time per round) / epochs per round.
    var costPerEpochMicroseconds: Double?
    /// `lockstep run` with this clock and length, per round, over the baseline.
    var unreplicatedSameLengthRatio: Double?
    var bytesPerEpoch: Double?
    var bytesPerSecond: Double?
}
