import Foundation

/// A grouped bar chart: categories along x, one bar per series in each, a value label on every
/// bar, a y axis from zero, optional whiskers, and a legend; rendered as SVG by hand.
struct BarChart {
    struct Series {
        var name: String
        /// One value per category; nil leaves a gap (not measured).
        var values: [Double?]
        /// Whiskers (e.g. fastest and slowest repetition), one per category.
        var ranges: [(low: Double, high: Double)?] = []
    }

    var title: String
    var subtitle: String? = nil
    var yAxis: ChartAxis
    var categories: [String]
    var series: [Series]
    var valueFormat: (Double) -> String = NumberFormat.compact
    var width: Double = 860
    var height: Double = 480

    func svg() -> String {
        let left = 78.0, right = 250.0, top = subtitle == nil ? 44.0 : 62.0, bottom = 70.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        var doc = SVGDocument(width: width, height: height)
        doc.text(title, x: left, y: 24, size: 16, weight: "bold")
        if let subtitle { doc.text(subtitle, x: left, y: 44, size: 12, fill: "#555") }

        var axis = yAxis
        axis.includesZero = true
        let values = series.flatMap { s in s.values.compactMap { $0 } + s.ranges.compactMap { $0?.high } }
        let (yLow, yHigh, yTicks) = axis.layout(values.isEmpty ? [0, 1] : values)
        func py(_ y: Double) -> Double { top + plotHeight - axis.fraction(y, low: yLow, high: yHigh) * plotHeight }

        for t in yTicks {
            doc.line(x1: left, y1: py(t), x2: left + plotWidth, y2: py(t), stroke: "#e3e3e3")
            doc.text(axis.format(t), x: left - 8, y: py(t) + 4, size: 11, anchor: .end)
        }
        doc.line(x1: left, y1: top, x2: left, y2: top + plotHeight, stroke: "#444")
        doc.line(x1: left, y1: py(0), x2: left + plotWidth, y2: py(0), stroke: "#444")
        doc.text(axis.label, x: 20, y: top + plotHeight / 2, size: 13, anchor: .middle, rotate: -90)

        let groupWidth = plotWidth / Double(max(1, categories.count))
        let barWidth = min(56, groupWidth * 0.8 / Double(max(1, series.count)))
        for (c, category) in categories.enumerated() {
            let groupLeft = left + groupWidth * Double(c) + (groupWidth - barWidth * Double(series.count)) / 2
            for (s, entry) in series.enumerated() {
                guard c < entry.values.count, let value = entry.values[c] else { continue }
                let color = SVGDocument.palette[s % SVGDocument.palette.count]
                let x = groupLeft + barWidth * Double(s)
                doc.rect(x: x + 1, y: py(max(value, 0)), width: barWidth - 2, height: abs(py(value) - py(0)), fill: color)
                if c < entry.ranges.count, let range = entry.ranges[c], range.high > range.low {
                    let mx = x + barWidth / 2
                    doc.line(x1: mx, y1: py(range.low), x2: mx, y2: py(range.high), stroke: "#222", width: 1.2)
                    doc.line(x1: mx - 4, y1: py(range.high), x2: mx + 4, y2: py(range.high), stroke: "#222", width: 1.2)
                    doc.line(x1: mx - 4, y1: py(range.low), x2: mx + 4, y2: py(range.low), stroke: "#222", width: 1.2)
                }
                let labelY = min(py(max(value, 0)), c < entry.ranges.count ? entry.ranges[c].map { py($0.high) } ?? .infinity : .infinity) - 4
                doc.text(valueFormat(value), x: x + barWidth / 2, y: labelY, size: 10, anchor: .middle)
            }
            for (i, line) in LineChart.wrap(category, width: max(8, Int(groupWidth / 7))).prefix(3).enumerated() {
                doc.text(line, x: left + groupWidth * (Double(c) + 0.5), y: top + plotHeight + 18 + Double(i) * 13,
                         size: 11, anchor: .middle)
            }
        }

        var legendY = top + 6
        for (s, entry) in series.enumerated() {
            let lx = left + plotWidth + 18
            doc.rect(x: lx, y: legendY - 6, width: 14, height: 12, fill: SVGDocument.palette[s % SVGDocument.palette.count])
            let lines = LineChart.wrap(entry.name, width: 30)
            for (i, line) in lines.enumerated() {
                doc.text(line, x: lx + 22, y: legendY + 4 + Double(i) * 14, size: 11)
            }
            legendY += 14 * Double(lines.count) + 10
        }
        return doc.rendered()
    }
}
