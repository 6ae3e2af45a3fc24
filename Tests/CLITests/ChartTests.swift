import Foundation
import Testing

@testable import Bench

/// The bench's charts: unlike quantities on axes of their own, no series hidden under another,
/// the failover chart's frozen-primary lines clear of the timeout.
@Suite struct ChartTests {
    /// The height attributes of the bars (the rects painted in a palette colour), in order.
    static func barHeights(_ svg: String) -> [Double] {
        let colours = Set(SVGDocument.palette.map { "fill=\"\($0)\"" })
        return svg.split(separator: "\n").flatMap { $0.components(separatedBy: "<rect ").dropFirst() }.compactMap { rect in
            guard colours.contains(where: { rect.contains($0) }), !rect.contains("width=\"14.00\""),
                  let range = rect.range(of: "height=\"") else { return nil }
            return Double(rect[range.upperBound...].prefix { $0 != "\"" })
        }
    }

    @Test func panelsGiveBootAndPerRoundTimeTheirOwnAxes() {
        // Boot in tens of milliseconds, a round in tens of microseconds: one axis flattens the rounds.
        let series = [BarChart.Series(name: "lockstep", values: [40, 0.02]), BarChart.Series(name: "qemu", values: [30, 0.01])]
        var chart = BarChart(title: "t", yAxis: ChartAxis(label: "milliseconds"), categories: ["hello guest", "cpu guest"],
                             series: series)
        let shared = Self.barHeights(chart.svg())
        #expect(shared.count == 4)
        // Bars category by category: lockstep boot, qemu boot, lockstep cpu, qemu cpu.
        #expect(shared[2] < 1, "on one axis the per-round bar is flat: \(shared)")
        chart.panels = [BarChart.Panel(heading: "boot to first output", categories: 0..<1),
                        BarChart.Panel(heading: "cpu: time per round", categories: 1..<2)]
        let svg = chart.svg()
        let split = Self.barHeights(svg)
        #expect(split.count == 4)
        #expect(split[2] > split[0] / 2, "the per-round bar is as readable as the boot bar: \(split)")
        #expect(split[3] > split[1] / 4)
        #expect(svg.contains("boot to first output") && svg.contains("cpu: time per round"))
        #expect(svg.contains("0.02") && svg.contains(">40<"))
    }

    @Test func aSeriesOnTopOfAnotherIsDrawnHollow() {
        let points = [LineChart.Point(x: 1, y: 10), LineChart.Point(x: 2, y: 20)]
        let chart = LineChart(title: "t", xAxis: ChartAxis(label: "x"), yAxis: ChartAxis(label: "y"),
                              series: [LineChart.Series(name: "a", points: points), LineChart.Series(name: "b", points: points)])
        let svg = chart.svg()
        func hollow(_ colour: String) -> Bool { svg.contains("fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.8\"") }
        #expect(hollow(SVGDocument.palette[1]), "the second series' markers are hollow")
        #expect(!hollow(SVGDocument.palette[0]), "the first's are not")
        #expect(svg.contains("Hollow markers"))
        let apart = LineChart(title: "t", xAxis: ChartAxis(label: "x"), yAxis: ChartAxis(label: "y"),
                              series: [LineChart.Series(name: "a", points: points),
                                       LineChart.Series(name: "b", points: points.map { LineChart.Point(x: $0.x, y: $0.y * 3) })])
        #expect(!apart.svg().contains("Hollow markers"), "series apart are drawn as they are")
    }

    /// The committed results of the last bench run, rendered again: SIGSTOP trials plot the
    /// time beyond the timeout, so they are no longer under the timeout's line.
    @Test func failoverChartPlotsAFreezeBeyondTheTimeout() throws {
        let path = Lockstep.root.appendingPathComponent("docs/bench/results.json").path
        let results = try JSONDecoder().decode(BenchResults.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        let points = try #require(results.failover)
        let stopped = try #require(points.first { $0.failure == "SIGSTOP" && $0.live != nil })
        let report = FailoverExperiment.report(points, trials: results.failoverTrials ?? [], skipped: [], main: 1000)
        let svg = try #require(report.charts["failover.svg"])
        #expect(svg.contains("SIGSTOP, to live minus the timeout"))
        #expect(!svg.contains("the detection timeout itself"))
        let beyond = stopped.live!.median * 1000 - Double(stopped.timeoutMilliseconds)
        #expect(svg.contains("SIGSTOP, to live minus the timeout: median (bars: best to worst): \(stopped.timeoutMilliseconds), \(NumberFormat.compact(beyond))"),
                "the tooltip of the point gives the time beyond the timeout (\(beyond) ms)")
        #expect(report.markdown("").contains("minus the timeout"))
    }
}
