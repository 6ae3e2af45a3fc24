import Foundation

/// One line of the CPU-intensive experiment: an engine with one epoch clock.
struct EpochSeriesSpec {
    var name: String
    var arch: String
    /// Run the workload at CPL0 (`ring0` token): the single-step clock needs it on this host.
    var ring0: Bool
    var clock: String
    /// What the epoch length counts: "instructions" or "exits".
    var unit: String
    var lengths: [UInt64]
    var rounds: (Int, Int)
    /// Also time `lockstep run` with this clock at each length (separates the cost of epochs
    /// from the cost of replication).
    var runAtEachLength: Bool
    /// Options for the replicas besides the clock and length.
    var pairOptions: [String] = []
    /// Repetitions, if fewer than the plan's (a slow clock).
    var repetitions: Int? = nil
    /// Replicate through `lockstep pair` instead of starting the primary and backup directly.
    var viaPairCommand = false

    /// The distinct round counts (one when both are equal: whole-process times are compared).
    var roundCounts: [Int] { rounds.0 == rounds.1 ? [rounds.0] : [rounds.0, rounds.1] }

    /// How the time per round is obtained.
    var method: String {
        rounds.0 == rounds.1
            ? "whole-process time at rounds=\(rounds.0) (start-up is small beside it)"
            : "slope between rounds=\(rounds.0) and rounds=\(rounds.1)"
    }

    var cmdlinePrefix: String { ring0 ? "ring0 " : "" }
}
