import Foundation

/// The replication channel: bytes per epoch and per second, from the statistics of the
/// replicated runs of the epochs and disk experiments.
enum ChannelAnalysis {
    static func run(_ context: BenchContext) -> (ExperimentReport, [ChannelPoint]) {
        let title = "Replication channel traffic"
        let pairs = context.measurements.filter {
            $0.ok && $0.mode == "pair" && $0.channel != nil
                && ($0.experiment == Experiment.epochs.rawValue || $0.experiment == Experiment.disk.rawValue)
        }
        guard !pairs.isEmpty else {
            return (.skipped(.channel, title: title,
                             reason: "it reads the replicated runs of the epochs and disk experiments, and none ran (add them to --experiments)"), [])
        }
        var points: [ChannelPoint] = []
        var keys: [String] = []
        for m in pairs {
            let key = "\(m.experiment)|\(m.series)|\(m.epochLength.map(String.init) ?? "")|\(m.work)"
            if !keys.contains(key) { keys.append(key) }
        }
        for key in keys {
            let group = pairs.filter { "\($0.experiment)|\($0.series)|\($0.epochLength.map(String.init) ?? "")|\($0.work)" == key }
            guard let first = group.first else { continue }
            let figures = group.compactMap(\.channel)
            func median(_ f: (ChannelFigures) -> Double) -> Double { Summary(figures.map(f))?.median ?? 0 }
            points.append(ChannelPoint(
                workload: first.experiment == Experiment.epochs.rawValue ? "cpu rounds=\(first.work)" : "disk blocks=\(first.work)",
                series: first.series, epochLength: first.epochLength, work: first.work, runs: group.count,
                epochs: median { Double($0.epochs) },
                bytesSentPerEpoch: median(\.bytesPerEpoch),
                bytesReceivedPerEpoch: median { Double($0.bytesReceived) / Double(max($0.epochs, 1)) },
                bytesSentPerSecond: median(\.bytesPerSecond)))
        }
        var table = Table(["Workload", "Series", "Epoch length", "Epochs", "Sent per epoch (B)", "Received per epoch (B)", "Sent per second (KiB/s)"],
                          numericColumns: Set(2...6))
        var csv = Table(["workload", "series", "epoch_length", "work", "runs", "epochs", "bytes_sent_per_epoch",
                         "bytes_received_per_epoch", "bytes_sent_per_second"])
        for p in points {
            table.append([p.workload, p.series, p.epochLength.map { NumberFormat.binary(Double($0)) } ?? "default",
                          NumberFormat.compact(p.epochs), NumberFormat.compact(p.bytesSentPerEpoch),
                          NumberFormat.compact(p.bytesReceivedPerEpoch), NumberFormat.compact(p.bytesSentPerSecond / 1024)])
            csv.append([p.workload, p.series, p.epochLength.map(String.init) ?? "", "\(p.work)", "\(p.runs)", "\(p.epochs)",
                        "\(p.bytesSentPerEpoch)", "\(p.bytesReceivedPerEpoch)", "\(p.bytesSentPerSecond)"])
        }
        // Charts: the cpu workload at its larger round count, against the epoch length.
        var perEpoch: [LineChart.Series] = []
        var perSecond: [LineChart.Series] = []
        let cpuSeries = Set(points.filter { $0.workload.hasPrefix("cpu") }.map(\.series)).sorted()
        var summary: [[String]] = []
        for s in cpuSeries {
            guard let work = points.filter({ $0.series == s && $0.workload.hasPrefix("cpu") }).map(\.work).max() else { continue }
            let group = points.filter { $0.series == s && $0.work == work && $0.workload.hasPrefix("cpu") && $0.epochLength != nil }
                .sorted { $0.epochLength! < $1.epochLength! }
            perEpoch.append(LineChart.Series(name: "\(s) (cpu rounds=\(work))",
                                             points: group.map { LineChart.Point(x: Double($0.epochLength!), y: $0.bytesSentPerEpoch) }))
            perSecond.append(LineChart.Series(name: "\(s) (cpu rounds=\(work))",
                                              points: group.map { LineChart.Point(x: Double($0.epochLength!), y: $0.bytesSentPerSecond / 1024) }))
            if let shortest = group.first, let longest = group.last {
                if shortest.epochLength == longest.epochLength {
                    summary.append(["channel", "cpu guest, \(s): primary → backup bytes per epoch at \(NumberFormat.binary(Double(shortest.epochLength!)))",
                                    "\(NumberFormat.compact(shortest.bytesSentPerEpoch)) B", "-", "-"])
                } else {
                    summary.append(["channel", "cpu guest, \(s): primary → backup bytes per epoch at \(NumberFormat.binary(Double(shortest.epochLength!))) and \(NumberFormat.binary(Double(longest.epochLength!)))",
                                    "\(NumberFormat.compact(shortest.bytesSentPerEpoch)) B and \(NumberFormat.compact(longest.bytesSentPerEpoch)) B",
                                    "-", "-"])
                }
                summary.append(["channel", "cpu guest, \(s): primary → backup throughput at \(NumberFormat.binary(Double(shortest.epochLength!)))",
                                "\(NumberFormat.compact(shortest.bytesSentPerSecond / 1024)) KiB/s", "-", "-"])
            }
        }
        var charts: [String: String] = [:]
        let units = Set(context.measurements.filter { $0.experiment == Experiment.epochs.rawValue }.map(\.series))
        let xLabel = units.contains { $0.contains("exits") } && units.count == 1 ? "epoch length (exits, log scale)" : "epoch length (instructions, or exits for the KVM exits clock; log scale)"
        if !perEpoch.isEmpty {
            charts["channel.svg"] = LineChart(
                title: "Replication channel: bytes the primary sends per epoch",
                subtitle: "cpu guest, replicated; all frames: environment values, epoch ends, outputs, heartbeats",
                xAxis: ChartAxis(label: xLabel, scale: .log2, format: NumberFormat.binary),
                yAxis: ChartAxis(label: "bytes per epoch (log scale)", scale: .log10, format: { NumberFormat.compact($0) }),
                series: perEpoch).svg()
            charts["channel-rate.svg"] = LineChart(
                title: "Replication channel: primary → backup throughput",
                subtitle: "bytes sent over the time the primary was replicating",
                xAxis: ChartAxis(label: xLabel, scale: .log2, format: NumberFormat.binary),
                yAxis: ChartAxis(label: "KiB per second (log scale)", scale: .log10, format: { NumberFormat.compact($0) }),
                series: perSecond).svg()
        }
        for p in points where p.workload.hasPrefix("disk") {
            if p.work == (points.filter { $0.series == p.series && $0.workload.hasPrefix("disk") }.map(\.work).max() ?? -1) {
                summary.append(["channel", "disk guest, \(p.series), blocks=\(p.work): primary → backup",
                                "\(NumberFormat.compact(p.bytesSentPerSecond / 1024)) KiB/s, \(NumberFormat.compact(p.bytesSentPerEpoch)) B/epoch", "-", "-"])
            }
        }
        let markdown: (String) -> String = { prefix in
            var text = """
                Method: every replicated run of the epochs and disk experiments wrote its statistics JSON \
                (`--stats-json` of the primary and the backup); these are the primary's byte counters (every frame: header, payload, \
                CRC) divided by its epoch count, and by the time from entering "replicating" to "finished". Medians \
                over the repetitions. Received bytes are the backup's acknowledgements and heartbeats.


                """
            text += charts.keys.sorted().map { "![\($0)](\(prefix)\($0))\n" }.joined() + "\n"
            text += table.markdown()
            return text
        }
        return (ExperimentReport(experiment: .channel, title: title, markdown: markdown, charts: charts,
                                 csv: ["channel.csv": csv], summary: summary), points)
    }
}
