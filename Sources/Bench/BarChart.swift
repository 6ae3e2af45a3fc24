import Foundation

/// A grouped bar chart: categories along x, one bar per series in each, a value label on every
/// bar, a y axis from zero, optional whiskers, and a legend; rendered as SVG by hand.
///
/// Categories measured in unlike quantities (a boot time and a time per round) go in separate
/// panels, side by side, each with a y axis of its own: one axis would flatten the smaller one.
struct BarChart {
    struct Series {
        var name: String
        /// One value per category; nil leaves a gap (not measured).
        var values: [Double?]
        /// Whiskers (e.g. fastest and slowest repetition), one per category.
        var ranges: [(low: Double, high: Double)?] = []
    }

    /// A group of consecutive categories that share a y axis, with a heading above it.
    struct Panel {
        var heading: String
        var categories: Range<Int>
    }

    var title: String
    var subtitle: String? = nil
    var yAxis: ChartAxis
    var categories: [String]
    var series: [Series]
    /// The panels; nil: one panel, no heading, for all the categories.
    var panels: [Panel]? = nil
    var valueFormat: (Double) -> String = NumberFormat.compact
    var width: Double = 860
    var height: Double = 480

    func svg() -> String {
        let headed = panels != nil
        let left = 78.0, right = 250.0, bottom = 70.0
        let top = (subtitle == nil ? 44.0 : 62.0) + (headed ? 22 : 0)
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        var doc = SVGDocument(width: width, height: height)
        doc.text(title, x: left, y: 24, size: 16, weight: "bold")
        if let subtitle { doc.text(subtitle, x: left, y: 44, size: 12, fill: "#555") }
        doc.text(yAxis.label, x: 20, y: top + plotHeight / 2, size: 13, anchor: .middle, rotate: -90)

        let layout = panels ?? [Panel(heading: "", categories: 0..<categories.count)]
        let gap = layout.count > 1 ? 64.0 : 0
        let slotWidth = (plotWidth - gap * Double(layout.count - 1)) / Double(max(1, categories.count))
        let barWidth = min(56, slotWidth * 0.8 / Double(max(1, series.count)))
        var panelLeft = left
        for panel in layout {
            let panelWidth = slotWidth * Double(panel.categories.count)
            var axis = yAxis
            axis.includesZero = true
            let values = series.flatMap { s in
                panel.categories.flatMap { c in
                    [c < s.values.count ? s.values[c] : nil, c < s.ranges.count ? s.ranges[c]?.high : nil].compactMap { $0 }
                }
            }
            let (yLow, yHigh, yTicks) = axis.layout(values.isEmpty ? [0, 1] : values)
            func py(_ y: Double) -> Double { top + plotHeight - axis.fraction(y, low: yLow, high: yHigh) * plotHeight }

            for t in yTicks {
                doc.line(x1: panelLeft, y1: py(t), x2: panelLeft + panelWidth, y2: py(t), stroke: "#e3e3e3")
                doc.text(axis.format(t), x: panelLeft - 8, y: py(t) + 4, size: 11, anchor: .end)
            }
            doc.line(x1: panelLeft, y1: top, x2: panelLeft, y2: top + plotHeight, stroke: "#444")
            doc.line(x1: panelLeft, y1: py(0), x2: panelLeft + panelWidth, y2: py(0), stroke: "#444")
            if headed {
                for (i, line) in LineChart.wrap(panel.heading, width: max(10, Int(panelWidth / 6.5))).prefix(2).enumerated() {
                    doc.text(line, x: panelLeft + panelWidth / 2, y: top - 22 + Double(i) * 13, size: 11, anchor: .middle,
                             weight: "bold")
                }
            }
            for (slot, c) in panel.categories.enumerated() {
                let slotLeft = panelLeft + slotWidth * Double(slot)
                let groupLeft = slotLeft + (slotWidth - barWidth * Double(series.count)) / 2
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
                for (i, line) in LineChart.wrap(categories[c], width: max(8, Int(slotWidth / 7))).prefix(3).enumerated() {
                    doc.text(line, x: slotLeft + slotWidth / 2, y: top + plotHeight + 18 + Double(i) * 13,
                             size: 11, anchor: .middle)
                }
            }
            panelLeft += panelWidth + gap
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
