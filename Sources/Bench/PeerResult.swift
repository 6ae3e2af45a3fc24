import Foundation

/// One engine of a comparison on one workload.
struct PeerResult: Codable, Sendable {
    /// "parisc" or "x86".
    var comparison: String
    /// "cpu", "cpu (ring0)", "boot (hello)".
    var workload: String
    var engine: String
    /// Marginal seconds per cpu round: the slope between the fastest runs at two round counts.
    var secondsPerRound: Double?
    /// The same per repetition (the spread shows the noise).
    var secondsPerRoundByRepetition: Summary?
    /// Guest instructions per second, where the instruction count per round is known.
    var instructionsPerSecond: Double?
    /// Seconds from process start to the guest's first line.
    var bootToOutput: Summary?
    /// Whole-process seconds of the boot run.
    var wholeSeconds: Summary?
    /// Lockstep's time over this engine's (per round, or to first output): above 1, the peer is faster.
    var lockstepOverPeer: Double?
    /// Whether every run printed the line the bench computed itself.
    var outputsCorrect: Bool
}
