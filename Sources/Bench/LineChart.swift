import Foundation

/// A line chart with axes, tick labels, axis titles, a legend, optional error bars and
/// horizontal reference lines, rendered as SVG by hand.
struct LineChart {
    struct Point {
        var x: Double
        var y: Double
        /// An error bar from `low` to `high` (e.g. the fastest and slowest repetition).
        var low: Double? = nil
        var high: Double? = nil
        /// A tooltip.
        var note: String? = nil
    }

    struct Series {
        var name: String
        var points: [Point]
        /// Markers only, no connecting line (e.g. a paper's reported values).
        var markersOnly = false
        var dashed = false
        var marker: MarkerShape = .circle
        /// A colour; nil takes the next one of the palette.
        var color: String? = nil
    }

    var title: String
    var subtitle: String? = nil
    var xAxis: ChartAxis
    var yAxis: ChartAxis
    var series: [Series]
    /// Horizontal lines, e.g. y = 1 for "as fast as unreplicated".
    var references: [(y: Double, label: String)] = []
    var width: Double = 860
    var height: Double = 480

    func svg() -> String {
        let left = 78.0, right = 250.0, top = subtitle == nil ? 44.0 : 62.0, bottom = 62.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        var doc = SVGDocument(width: width, height: height)
        doc.text(title, x: left, y: 24, size: 16, weight: "bold")
        if let subtitle { doc.text(subtitle, x: left, y: 44, size: 12, fill: "#555") }

        let xs = series.flatMap { $0.points.map(\.x) }
        let ys = series.flatMap { $0.points.flatMap { [$0.y, $0.low ?? $0.y, $0.high ?? $0.y] } } + references.map(\.y)
        let (xLow, xHigh, xTicks) = xAxis.layout(xs)
        let (yLow, yHigh, yTicks) = yAxis.layout(ys)
        func px(_ x: Double) -> Double { left + xAxis.fraction(x, low: xLow, high: xHigh) * plotWidth }
        func py(_ y: Double) -> Double { top + plotHeight - yAxis.fraction(y, low: yLow, high: yHigh) * plotHeight }

        // Grid, ticks and tick labels.
        for t in yTicks {
            doc.line(x1: left, y1: py(t), x2: left + plotWidth, y2: py(t), stroke: "#e3e3e3")
            doc.text(yAxis.format(t), x: left - 8, y: py(t) + 4, size: 11, anchor: .end)
        }
        for t in xTicks {
            doc.line(x1: px(t), y1: top, x2: px(t), y2: top + plotHeight, stroke: "#eeeeee")
            doc.line(x1: px(t), y1: top + plotHeight, x2: px(t), y2: top + plotHeight + 5, stroke: "#444")
            doc.text(xAxis.format(t), x: px(t), y: top + plotHeight + 19, size: 11, anchor: .middle)
        }
        doc.line(x1: left, y1: top + plotHeight, x2: left + plotWidth, y2: top + plotHeight, stroke: "#444")
        doc.line(x1: left, y1: top, x2: left, y2: top + plotHeight, stroke: "#444")
        doc.text(xAxis.label, x: left + plotWidth / 2, y: height - 16, size: 13, anchor: .middle)
        doc.text(yAxis.label, x: 20, y: top + plotHeight / 2, size: 13, anchor: .middle, rotate: -90)

        for reference in references {
            doc.line(x1: left, y1: py(reference.y), x2: left + plotWidth, y2: py(reference.y),
                     stroke: "#666", width: 1, dash: "6 4")
            doc.text(reference.label, x: left + plotWidth - 4, y: py(reference.y) - 5, size: 10, anchor: .end, fill: "#555")
        }

        // Series. One that coincides with a series drawn before it (a marker within a few pixels
        // of one of its markers) is drawn with hollow, larger markers and a dotted line, so that
        // no series hides another.
        var legendY = top + 6
        var drawn: [(Double, Double)] = []
        var anyCovering = false
        for (index, s) in series.enumerated() {
            let color = s.color ?? SVGDocument.palette[index % SVGDocument.palette.count]
            let points = s.points.sorted { $0.x < $1.x }
            let pixels = points.map { (px($0.x), py($0.y)) }
            let covers = pixels.contains { p in drawn.contains { abs($0.0 - p.0) < 5 && abs($0.1 - p.1) < 5 } }
            anyCovering = anyCovering || covers
            drawn += pixels
            let dash: String? = covers ? "2 4" : (s.dashed ? "7 4" : nil)
            let size = (s.marker == .star ? 4.5 : 3.6) + (covers ? 3 : 0)
            if !s.markersOnly {
                doc.polyline(pixels, stroke: color, width: 2, dash: dash)
            }
            for p in points {
                if let low = p.low, let high = p.high, high > low {
                    doc.line(x1: px(p.x), y1: py(low), x2: px(p.x), y2: py(high), stroke: color, width: 1.2)
                    doc.line(x1: px(p.x) - 4, y1: py(low), x2: px(p.x) + 4, y2: py(low), stroke: color, width: 1.2)
                    doc.line(x1: px(p.x) - 4, y1: py(high), x2: px(p.x) + 4, y2: py(high), stroke: color, width: 1.2)
                }
                doc.marker(s.marker, x: px(p.x), y: py(p.y), size: size, fill: color, hollow: covers,
                           title: p.note ?? "\(s.name): \(xAxis.format(p.x)), \(NumberFormat.compact(p.y))")
            }
            // Legend entry.
            let lx = left + plotWidth + 18
            if !s.markersOnly {
                doc.line(x1: lx, y1: legendY, x2: lx + 26, y2: legendY, stroke: color, width: 2, dash: dash)
            }
            doc.marker(s.marker, x: lx + 13, y: legendY, size: size, fill: color, hollow: covers)
            for (i, line) in Self.wrap(s.name, width: 30).enumerated() {
                doc.text(line, x: lx + 34, y: legendY + 4 + Double(i) * 14, size: 11)
            }
            legendY += 14 * Double(Self.wrap(s.name, width: 30).count) + 10
        }
        if anyCovering {
            for (i, line) in Self.wrap("Hollow markers, dotted: a series that coincides with one drawn before it.", width: 36).enumerated() {
                doc.text(line, x: left + plotWidth + 18, y: legendY + 4 + Double(i) * 13, size: 10, fill: "#555")
            }
        }
        return doc.rendered()
    }

    /// Splits a legend label into lines of at most about `width` characters at spaces.
    static func wrap(_ text: String, width: Int) -> [String] {
        var lines: [String] = []
        var current = ""
        for word in text.split(separator: " ") {
            if !current.isEmpty && current.count + 1 + word.count > width {
                lines.append(current)
                current = String(word)
            } else {
                current += current.isEmpty ? String(word) : " " + word
            }
        }
        if !current.isEmpty { lines.append(current) }
        return lines.isEmpty ? [""] : lines
    }
}
