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

    private enum CodingKeys: String, CodingKey { case count, median, minimum, maximum, mean, p99 }

    /// Results written before the p99 was recorded lack it: up to 100 values their nearest-rank
    /// p99 is the maximum, which they hold. Beyond that it cannot be known.
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        count = try c.decode(Int.self, forKey: .count)
        median = try c.decode(Double.self, forKey: .median)
        minimum = try c.decode(Double.self, forKey: .minimum)
        maximum = try c.decode(Double.self, forKey: .maximum)
        mean = try c.decode(Double.self, forKey: .mean)
        if let p99 = try c.decodeIfPresent(Double.self, forKey: .p99) {
            self.p99 = p99
        } else if count <= 100 {
            p99 = maximum
        } else {
            throw DecodingError.keyNotFound(CodingKeys.p99, .init(codingPath: c.codingPath,
                                                                  debugDescription: "no p99 for \(count) values"))
        }
    }
}
