import Foundation

/// The paper's I/O-intensive experiment, measured as the marginal time of a disk request.
enum DiskExperiment {
    /// Sectors per virtio request in the disk guest (CHUNK and MAX_SECTORS_PER_REQUEST).
    static let sectorsPerRequest = 8

    static func requests(blocks: Int) -> Int { 2 * ((blocks + sectorsPerRequest - 1) / sectorsPerRequest) }

    static func run(_ context: BenchContext) -> (ExperimentReport, [DiskLine]) {
        var engines: [(name: String, arch: String, lengths: [UInt64?])] = []
        var skipped: [String] = []
        if context.driver.guests.has("parisc", "disk") {
            engines.append(("emulator", "parisc", context.plan.diskEpochLengths))
        } else {
            skipped.append("emulator: guests/build/parisc/disk.elf is missing")
        }
        switch context.tools.kvm {
        case .success where context.driver.guests.has("x86", "disk"): engines.append(("KVM", "x86", [nil]))
        case .success: skipped.append("KVM: guests/build/x86/disk.elf is missing")
        case .failure(let why): skipped.append("KVM: \(why)")
        }
        let blocks = context.plan.diskBlocks
        let sectors = max(2048, blocks.max() ?? 0)
        var ms: [Measurement] = []
        for rep in 0..<context.plan.repetitions {
            for engine in engines {
                for length in engine.lengths {
                    let series = "\(engine.name), epoch length " + (length.map { NumberFormat.binary(Double($0)) } ?? "default")
                    for n in blocks {
                        let expected = GuestExpectations.diskLine(blocks: n)
                        for mode in ["run", "pair"] {
                            do {
                                let disk = try context.driver.freshDisk(sectors: sectors)
                                defer { try? FileManager.default.removeItem(atPath: disk) }
                                let options = ["--disk", disk] + (length.map { ["--epoch-length", "\($0)"] } ?? [])
                                if mode == "run" {
                                    let outcome = try context.driver.run(arch: engine.arch, guest: "disk", cmdline: "blocks=\(n)", options: options)
                                    ms.append(context.record(.disk, series: series, mode: mode, epochLength: length, work: n,
                                                             repetition: rep, outcome: outcome, expectedOutput: expected))
                                } else {
                                    let (outcome, stats) = try context.driver.replicate(arch: engine.arch, guest: "disk", cmdline: "blocks=\(n)", options: options)
                                    ms.append(context.record(.disk, series: series, mode: mode, epochLength: length, work: n,
                                                             repetition: rep, outcome: outcome, expectedOutput: expected,
                                                             channel: stats.flatMap(ChannelFigures.init)))
                                }
                            } catch {
                                context.problem("disk: \(error)")
                            }
                        }
                    }
                }
            }
        }
        var lines: [DiskLine] = []
        for series in uniqueSeries(ms) {
            for mode in ["run", "pair"] {
                let group = ms.filter { $0.series == series && $0.mode == mode && $0.ok }
                // The fastest run at each block count (other work on the host only adds time).
                let fastest = Set(group.map(\.work)).sorted().compactMap { n in
                    group.filter { $0.work == n }.map(\.seconds).min().map { [Double(requests(blocks: n)), $0] }
                }
                guard let fit = LinearFit(fastest.map { ($0[0], $0[1]) }), fit.slope > 0 else { continue }
                var channelPerRequest: Double?
                if mode == "pair", let low = blocks.min(), let high = blocks.max(), high > low {
                    let lowBytes = Summary(group.filter { $0.work == low }.compactMap { $0.channel.map { Double($0.bytesSent) } })
                    let highBytes = Summary(group.filter { $0.work == high }.compactMap { $0.channel.map { Double($0.bytesSent) } })
                    if let lowBytes, let highBytes {
                        channelPerRequest = (highBytes.median - lowBytes.median) / Double(requests(blocks: high) - requests(blocks: low))
                    }
                }
                lines.append(DiskLine(series: series, mode: mode, epochLength: group.first?.epochLength,
                                      secondsPerRequest: fit.slope, fixedSeconds: fit.intercept,
                                      bytesPerSecond: Double(sectorsPerRequest * 512) / fit.slope,
                                      channelBytesPerRequest: channelPerRequest, fastest: fastest))
            }
        }
        return (report(lines, measured: ms, skipped: skipped, blocks: blocks), lines)
    }

    static func uniqueSeries(_ ms: [Measurement]) -> [String] {
        var seen: [String] = []
        for m in ms where !seen.contains(m.series) { seen.append(m.series) }
        return seen
    }

    static func report(_ lines: [DiskLine], measured: [Measurement], skipped: [String], blocks: [Int]) -> ExperimentReport {
        let series = uniqueSeries(measured)
        var table = Table(["Series", "Unreplicated per request (µs)", "Replicated per request (µs)", "Replicated / unreplicated",
                           "Unreplicated MB/s", "Replicated MB/s", "Fixed cost run / pair (ms)", "Channel bytes per request"],
                          numericColumns: Set(1...7))
        var csv = Table(["series", "mode", "epoch_length", "seconds_per_request", "fixed_seconds", "bytes_per_second", "channel_bytes_per_request"])
        var summary: [[String]] = []
        var bars = BarChart(title: "I/O-intensive workload: time per 4 KiB disk request",
                            subtitle: "disk guest, slope of wall time over requests (blocks=\(blocks.map(String.init).joined(separator: ", ")))",
                            yAxis: ChartAxis(label: "microseconds per request"), categories: series,
                            series: [BarChart.Series(name: "lockstep run (unreplicated)", values: []),
                                     BarChart.Series(name: "lockstep primary + backup (replicated)", values: [])])
        var fitSeries: [LineChart.Series] = []
        for s in series {
            let run = lines.first { $0.series == s && $0.mode == "run" }
            let pair = lines.first { $0.series == s && $0.mode == "pair" }
            bars.series[0].values.append(run.map { $0.secondsPerRequest * 1e6 })
            bars.series[1].values.append(pair.map { $0.secondsPerRequest * 1e6 })
            let ratio = run.flatMap { r in pair.map { $0.secondsPerRequest / r.secondsPerRequest } }
            table.append([s, run.map { NumberFormat.microseconds($0.secondsPerRequest) } ?? "-",
                          pair.map { NumberFormat.microseconds($0.secondsPerRequest) } ?? "-",
                          ratio.map(NumberFormat.ratio) ?? "-",
                          run.map { NumberFormat.compact($0.bytesPerSecond / 1e6) } ?? "-",
                          pair.map { NumberFormat.compact($0.bytesPerSecond / 1e6) } ?? "-",
                          "\(run.map { NumberFormat.milliseconds($0.fixedSeconds) } ?? "-") / \(pair.map { NumberFormat.milliseconds($0.fixedSeconds) } ?? "-")",
                          pair?.channelBytesPerRequest.map(NumberFormat.compact) ?? "-"])
            if let ratio, let run, let pair {
                summary.append(["disk", "disk guest, \(s): time per 4 KiB request, pair vs run",
                                "\(NumberFormat.microseconds(pair.secondsPerRequest)) µs vs \(NumberFormat.microseconds(run.secondsPerRequest)) µs",
                                s.contains("4K") ? "paper 1.67x at 4K" : "-", NumberFormat.ratio(ratio)])
            }
            for (line, dashed) in [(run, false), (pair, true)] {
                guard let line else { continue }
                fitSeries.append(LineChart.Series(name: "\(s), \(line.mode)",
                                                  points: line.fastest.map { LineChart.Point(x: $0[0], y: $0[1]) },
                                                  dashed: dashed, marker: dashed ? .square : .circle))
            }
        }
        for line in lines {
            csv.append([line.series, line.mode, line.epochLength.map(String.init) ?? "", "\(line.secondsPerRequest)",
                        "\(line.fixedSeconds)", "\(line.bytesPerSecond)", line.channelBytesPerRequest.map { "\($0)" } ?? ""])
        }
        var charts: [String: String] = [:]
        if !lines.isEmpty {
            charts["disk.svg"] = bars.svg()
            charts["disk-fit.svg"] = LineChart(
                title: "I/O-intensive workload: wall time against disk requests",
                subtitle: "fastest run per block count; the slope is the time per request, the intercept the fixed cost",
                xAxis: ChartAxis(label: "virtio requests (2 per 8 sectors: write, then read back)"),
                yAxis: ChartAxis(label: "seconds"), series: fitSeries).svg()
        }
        let markdown: (String) -> String = { prefix in
            var text = """
                Method: the `disk` guest writes `blocks` sectors to its virtio-mmio disk in 4 KiB requests, reads them \
                back, verifies them and prints their SHA-256 (checked against the bench's own computation). It runs with \
                several block counts, several times each; a least-squares line through the fastest wall time at each \
                block count against the number of requests (2 per 8 \
                sectors) gives the marginal time per request (its slope: guest driver, device emulation, the host's \
                pwrite/pread, and when replicated the output commit of each write and the shipping of each read's data \
                to the backup) and the fixed cost (its intercept: start-up, boot, handshake). Throughput is 4 KiB over \
                the time per request. For reference, the paper reports 1.67x for its I/O workload at 4K-instruction \
                epochs, and raw disk writes of 26 ms unreplicated against 27 ms replicated, reads 24.2 ms against 33.4 ms \
                (a 1995 SCSI disk: these are absolute times of a different device, not comparable in size).


                """
            text += charts.keys.sorted().map { "![\($0)](\(prefix)\($0))\n" }.joined() + "\n"
            text += table.markdown()
            if !skipped.isEmpty { text += "\n" + skipped.map { "- Skipped: \($0)\n" }.joined() }
            return text
        }
        return ExperimentReport(experiment: .disk, title: "I/O-intensive workload: disk request latency and throughput",
                                markdown: markdown, charts: charts,
                                csv: ["disk.csv": csv, "disk-runs.csv": Measurement.table(measured)],
                                summary: summary, skipped: skipped)
    }
}
