import Foundation

/// The measured series.
struct EpochSeriesResult: Codable, Sendable {
    var name: String
    var arch: String
    var clock: String
    var unit: String
    var ring0: Bool
    var rounds: [Int]
    /// How the time per round was obtained.
    var method: String
    /// `lockstep run` with the engine's default clock: seconds per round (fastest runs).
    var baselineSecondsPerRound: Double?
    /// Guest instructions (or exits) per round, from the epoch count at the shortest length.
    var unitsPerRound: Double?
    var points: [EpochPoint]
}
