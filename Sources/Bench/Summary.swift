import Foundation

/// Median, extremes and mean of repeated measurements.
public struct Summary: Codable, Sendable, Equatable {
    public let count: Int
    public let median: Double
    public let minimum: Double
    public let maximum: Double
    public let mean: Double

    /// nil for no values.
    public init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        count = sorted.count
        let mid = sorted.count / 2
        median = sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
        minimum = sorted[0]
        maximum = sorted[sorted.count - 1]
        mean = sorted.reduce(0, +) / Double(sorted.count)
    }
}

/// A least-squares line y = intercept + slope * x, used to separate a fixed cost (process start,
/// boot, connection) from the cost per unit of work (a round of hashing, a disk request).
public struct LinearFit: Codable, Sendable, Equatable {
    public let slope: Double
    public let intercept: Double
    public let points: Int

    /// nil unless there are at least two distinct x values.
    public init?(_ points: [(x: Double, y: Double)]) {
        guard points.count >= 2 else { return nil }
        let n = Double(points.count)
        let mx = points.map(\.x).reduce(0, +) / n
        let my = points.map(\.y).reduce(0, +) / n
        let sxx = points.map { ($0.x - mx) * ($0.x - mx) }.reduce(0, +)
        guard sxx > 0 else { return nil }
        let sxy = points.map { ($0.x - mx) * ($0.y - my) }.reduce(0, +)
        slope = sxy / sxx
        intercept = my - slope * mx
        self.points = points.count
    }
}
