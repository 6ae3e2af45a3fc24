import Foundation

/// A least-squares line y = intercept + slope * x, used to separate a fixed cost (process start,
/// boot, connection) from the cost per unit of work (a round of hashing, a disk request).
struct LinearFit: Codable, Sendable, Equatable {
    let slope: Double
    let intercept: Double
    let points: Int

    /// nil unless there are at least two distinct x values.
    init?(_ points: [(x: Double, y: Double)]) {
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
