import Foundation

/// One axis of a chart: its label, its scale and how its tick values read.
struct ChartAxis {
    enum Scale {
        case linear
        /// Ticks at powers of two (epoch lengths).
        case log2
        /// Ticks at powers of ten.
        case log10
    }

    var label: String
    var scale: Scale = .linear
    /// Whether a linear axis starts at zero whatever the data.
    var includesZero = true
    var format: (Double) -> String = NumberFormat.compact

    /// The range to draw for `values`, and the tick positions in it.
    func layout(_ values: [Double]) -> (low: Double, high: Double, ticks: [Double]) {
        let finite = values.filter { $0.isFinite && (scale == .linear || $0 > 0) }
        guard var low = finite.min(), var high = finite.max() else { return (0, 1, [0, 1]) }
        switch scale {
        case .linear:
            if includesZero { low = min(low, 0); high = max(high, 0) }
            if high == low { high = low + 1 }
            let step = Self.niceStep((high - low) / 5)
            low = (low / step).rounded(.down) * step
            high = (high / step).rounded(.up) * step
            var ticks: [Double] = []
            var t = low
            while t <= high + step / 2 {
                ticks.append(abs(t) < step / 1e6 ? 0 : t)
                t += step
            }
            return (low, high, ticks)
        case .log2, .log10:
            let base: Double = scale == .log2 ? 2 : 10
            let lowExponent = (log(low) / log(base)).rounded(.down)
            var highExponent = (log(high) / log(base)).rounded(.up)
            if highExponent == lowExponent { highExponent += 1 }
            let count = Int(highExponent - lowExponent)
            let stride = max(1, Int((Double(count) / 10).rounded(.up)))
            let ticks = Swift.stride(from: Int(lowExponent), through: Int(highExponent), by: stride)
                .map { pow(base, Double($0)) }
            return (pow(base, lowExponent), pow(base, highExponent), ticks)
        }
    }

    /// Where `value` falls between `low` (0) and `high` (1).
    func fraction(_ value: Double, low: Double, high: Double) -> Double {
        switch scale {
        case .linear: return (value - low) / (high - low)
        case .log2, .log10:
            guard value > 0 else { return 0 }
            return (log(value) - log(low)) / (log(high) - log(low))
        }
    }

    /// 1, 2 or 5 times a power of ten, at least `rough`.
    static func niceStep(_ rough: Double) -> Double {
        guard rough > 0, rough.isFinite else { return 1 }
        let magnitude = pow(10, (log10(rough)).rounded(.down))
        for m in [1.0, 2, 5, 10] where m * magnitude >= rough { return m * magnitude }
        return 10 * magnitude
    }
}
