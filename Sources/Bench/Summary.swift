import Foundation

/// Median, extremes and mean of repeated measurements.
struct Summary: Codable, Sendable, Equatable {
    let count: Int
    let median: Double
    let minimum: Double
    let maximum: Double
    let mean: Double
    /// The 99th percentile, nearest rank (of 20 values, the largest; of 200, the second largest).
    let p99: Double

    /// nil for no values.
    init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        count = sorted.count
        let mid = sorted.count / 2
        median = sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
        minimum = sorted[0]
        maximum = sorted[sorted.count - 1]
        mean = sorted.reduce(0, +) / Double(sorted.count)
        p99 = sorted[(99 * sorted.count + 99) / 100 - 1]  // rank ceil(0.99 n)
    }
}
