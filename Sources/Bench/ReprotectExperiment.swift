import Foundation
import Replication

/// One live state transfer measured in a `lockstep pair` run with re-protection.
struct ReprotectPoint: Codable, Sendable {
    /// "this build", or "baseline" (the binary given with `--baseline`).
    var binary: String
    /// "KVM" or "emulator".
    var engine: String
    var memoryBytes: UInt64
    /// The guest's write rate (pages per second of the `ticks` guest's memory writer; 0: no writer).
    var writePagesPerSecond: Int
    /// The primary's pause for the final copy.
    var pauseSeconds: Double
    /// Its parts, when the binary reports them: ending the last round (harvesting its dirty
    /// pages), capturing the machine's state, the last dirty pages (harvest and copy), the
    /// state message (RAM digest and encoding), handing it all to the connection.
    var lastRoundSeconds: Double?
    var captureSeconds: Double?
    var pagesSeconds: Double?
    var stateSeconds: Double?
    var sendSeconds: Double?
    /// From the failover (the new leader unprotected) to a new backup following it.
    var reprotectSeconds: Double?
    /// The whole transfer, from the backup's arrival to its final copy.
    var transferSeconds: Double
    var rounds: Int
    var pages: Int
    var finalPages: Int
    var bytes: UInt64
}

/// Re-protection after failures (issue 13): `lockstep pair` kills the leading replica twice,
/// each time once a backup follows it again; each transfer's figures come from the replicas'
/// statistics. Swept over guest memory size and the guest's write rate (the `ticks` guest's
/// memory writer, `dirty=P span=M`), and with `--baseline` the pause of another binary too.
enum ReprotectExperiment {
    static let title = "Re-protection: live state transfer to a new backup after each failover"

    /// The guest's timer rate: the writer writes `rate / hz` pages per tick.
    static let hz = 20
    /// The writer's region starts at 8 MiB (above the guest image) and ends this far below the
    /// end of RAM.
    static let spanMargin: UInt64 = 8 << 20

    /// One configuration: a binary, an engine, a memory size, a write rate.
    struct Configuration {
        var binary: String
        var driver: LockstepDriver
        var engine: (name: String, arch: String)
        var memoryBytes: UInt64
        var rate: Int
    }

    static func run(_ context: BenchContext) -> (ExperimentReport, [ReprotectPoint]) {
        let (engines, skipped) = context.engines(running: "ticks")
        let quick = context.configuration.quick
        // The pause against memory size (no writer), and bytes against memory size and write rate.
        let sizes: [UInt64] = quick ? [64 << 20] : [64 << 20, 256 << 20, 512 << 20]
        // Smaller RAM for the writer: every page it writes travels in round 1, and a rate the
        // transfer cannot keep up with makes every round as long (see `guestSeconds`).
        let rateSizes: [UInt64] = quick ? [32 << 20] : [32 << 20, 64 << 20]
        let rates: [Int] = quick ? [0, 1000] : [0, 1000, 4000, 16000]
        var binaries: [(name: String, driver: LockstepDriver)] = [("this build", context.driver)]
        if let baseline = context.configuration.baseline {
            binaries.append(("baseline", context.driver.driving(baseline)))
        }
        var configurations: [Configuration] = []
        for engine in engines {
            for size in sizes {
                for (name, driver) in binaries {
                    configurations.append(Configuration(binary: name, driver: driver, engine: engine, memoryBytes: size, rate: 0))
                }
            }
            for size in rateSizes {
                for rate in rates where rate > 0 {
                    configurations.append(Configuration(binary: "this build", driver: context.driver, engine: engine,
                                                        memoryBytes: size, rate: rate))
                }
            }
        }
        var points: [ReprotectPoint] = []
        // Repetitions outermost, so a slow spell of the host spreads over every configuration
        // (and over both binaries alike).
        for rep in 0..<context.plan.repetitions {
            // The writer's runs last seconds each: two repetitions of them at most.
            for c in configurations where c.rate == 0 || rep < 2 {
                points += measure(c, repetition: rep, context)
            }
        }
        return (report(context, points: points, engines: engines.map(\.name), sizes: sizes, rateSizes: rateSizes,
                       rates: rates, binaries: binaries.map(\.name), skipped: skipped), points)
    }

    /// The guest's command line for a write rate.
    static func commandLine(rate: Int, memoryBytes: UInt64) -> String {
        guard rate > 0 else { return "ticks=100 hz=\(hz)" }
        return "ticks=\(hz * guestSeconds(rate: rate, memoryBytes: memoryBytes)) hz=\(hz) dirty=\(max(1, rate / hz)) span=\((memoryBytes - spanMargin) >> 20)"
    }

    /// How long the writer's guest runs: long enough for one transfer of its whole region,
    /// which on this host moves about 25 MiB/s while the guest runs, in every round a fast
    /// writer forces (up to `BackupPeerStateMachine`'s 8).
    static func guestSeconds(rate: Int, memoryBytes: UInt64) -> Int {
        let regionSeconds = Double((memoryBytes - spanMargin) >> 20) / 25
        return 4 + Int((regionSeconds * (rate >= 4000 ? 9 : 2)).rounded(.up))
    }

    static func measure(_ c: Configuration, repetition: Int, _ context: BenchContext) -> [ReprotectPoint] {
        let label = "reprotect \(c.binary == "baseline" ? "baseline " : "")\(c.engine.name) \(SnapshotExperiment.size(Double(c.memoryBytes))) \(c.rate) pages/s"
        let stats = c.driver.scratchPath("reprotect") + ".json"
        defer { try? FileManager.default.removeItem(atPath: stats) }
        // Without the writer the leader is killed twice; with it once (its transfers are long).
        let options = ["--stats-json", stats, "--no-status-line", "--arbiter-dir", c.driver.scratch,
                       "--kill-primary-times", c.rate == 0 ? "2" : "1", "--kill-primary-after", "0.3", "--timeout", "300",
                       "--clock", "host", "--memory", "\(c.memoryBytes >> 20)M"]
            + (c.engine.arch == "parisc" ? ["--epoch-length", "2000"] : [])
        let outcome: ProcessOutcome
        do {
            outcome = try RunningProcess.run(
                c.driver.executable,
                ["pair"] + c.driver.guestArguments(arch: c.engine.arch, guest: "ticks",
                                                   cmdline: commandLine(rate: c.rate, memoryBytes: c.memoryBytes),
                                                   options: options),
                timeout: c.driver.timeout)
        } catch {
            context.problem("\(label): \(error)")
            return []
        }
        guard outcome.status == 0, !outcome.signaled, !outcome.timedOut else {
            context.problem("\(label): \(outcome.command.joined(separator: " ")) exited \(outcome.status): \(outcome.stderr.suffix(400))")
            return []
        }
        let found = points(stats, binary: c.binary, engine: c.engine.name, memory: c.memoryBytes, rate: c.rate)
        if found.isEmpty { context.problem("\(label): no transfer recorded") }
        for p in found {
            context.log.line("\(label) rep \(repetition + 1): pause \(NumberFormat.milliseconds(p.pauseSeconds)) ms (capture \(p.captureSeconds.map { NumberFormat.milliseconds($0) } ?? "-") ms), re-protected in \(p.reprotectSeconds.map { NumberFormat.milliseconds($0) } ?? "-") ms, \(p.pages) pages in \(p.rounds) rounds (\(p.finalPages) in the final copy), \(p.bytes) bytes")
        }
        return found
    }

    /// The value at quantile `q` of `sorted` (the nearest rank, halves rounded up: the median of
    /// two values is the larger).
    static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        sorted[min(sorted.count - 1, max(0, Int((q * Double(sorted.count - 1)).rounded())))]
    }

    static func report(_ context: BenchContext, points: [ReprotectPoint], engines: [String], sizes: [UInt64],
                       rateSizes: [UInt64], rates: [Int], binaries: [String], skipped: [String]) -> ExperimentReport
    {
        var csv = Table(["binary", "engine", "memory_bytes", "write_pages_per_second", "pause_seconds", "last_round_seconds", "capture_seconds",
                         "pages_seconds", "state_seconds", "send_seconds", "reprotect_seconds", "transfer_seconds",
                         "rounds", "pages", "final_pages", "bytes"])
        func optional(_ v: Double?) -> String { v.map { "\($0)" } ?? "" }
        for p in points {
            csv.append([p.binary, p.engine, "\(p.memoryBytes)", "\(p.writePagesPerSecond)", "\(p.pauseSeconds)",
                        optional(p.lastRoundSeconds), optional(p.captureSeconds), optional(p.pagesSeconds), optional(p.stateSeconds),
                        optional(p.sendSeconds), optional(p.reprotectSeconds), "\(p.transferSeconds)", "\(p.rounds)",
                        "\(p.pages)", "\(p.finalPages)", "\(p.bytes)"])
        }
        func group(_ binary: String, _ engine: String, _ size: UInt64, _ rate: Int) -> [ReprotectPoint] {
            points.filter { $0.binary == binary && $0.engine == engine && $0.memoryBytes == size && $0.writePagesPerSecond == rate }
        }
        func median(_ values: [Double]) -> Double? { values.isEmpty ? nil : quantile(values.sorted(), 0.5) }
        func ms(_ v: Double?) -> String { v.map { NumberFormat.milliseconds($0) } ?? "-" }

        // The pause against memory size, without a writer (and the baseline's, if measured).
        var pauseTable = Table(["Engine", "Guest RAM", "Binary", "Transfers", "Pause median (ms)", "p90 (ms)", "max (ms)",
                                "Capture median (ms)", "Ratio to baseline", "Re-protect median (ms)"],
                               numericColumns: Set(3...9))
        var bars = BarChart(title: "Re-protection: the primary's pause for the final copy",
                            subtitle: "ticks guest (no writer), lockstep pair killing the leader twice; median of the transfers, whiskers min-max",
                            yAxis: ChartAxis(label: "milliseconds"),
                            categories: sizes.map { SnapshotExperiment.size(Double($0)) }, series: [])
        var summary: [[String]] = []
        for engine in engines {
            for binary in binaries {
                var series = BarChart.Series(name: binaries.count > 1 ? "\(engine), \(binary)" : engine, values: [])
                for size in sizes {
                    let g = group(binary, engine, size, 0)
                    let pauses = g.map(\.pauseSeconds).sorted()
                    guard !pauses.isEmpty else {
                        series.values.append(nil)
                        series.ranges.append(nil)
                        continue
                    }
                    let mid = quantile(pauses, 0.5)
                    series.values.append(mid * 1e3)
                    series.ranges.append((pauses.first! * 1e3, pauses.last! * 1e3))
                    let base = binary == "baseline" ? nil : median(group("baseline", engine, size, 0).map(\.pauseSeconds))
                    pauseTable.append([engine, SnapshotExperiment.size(Double(size)), binary, "\(g.count)", ms(mid),
                                       ms(quantile(pauses, 0.9)), ms(pauses.last), ms(median(g.compactMap(\.captureSeconds))),
                                       base.map { NumberFormat.ratio(mid / $0) } ?? "-",
                                       ms(median(g.compactMap(\.reprotectSeconds)))])
                    if size == 64 << 20, binary == "this build" {
                        summary.append(["reprotect", "\(engine): final-copy pause at 64 MiB (median; goal 10 ms)",
                                        "\(NumberFormat.milliseconds(mid)) ms", "10 ms", NumberFormat.fixed(mid / 0.010, 2)])
                    }
                }
                bars.series.append(series)
            }
        }

        // Bytes, rounds and pause against memory size and write rate.
        var rateTable = Table(["Engine", "Guest RAM", "Writes (pages/s)", "Transfers", "Rounds (max)", "Pages sent",
                               "Sent (MiB)", "Final pages", "Pause median (ms)", "Pause max (ms)", "Transfer (ms)",
                               "Re-protect median (ms)"], numericColumns: Set(2...11))
        let rateLabels = rates.map { $0 == 0 ? "none" : "\(NumberFormat.compact(Double($0)))/s" }
        var bytesBars = BarChart(title: "Re-protection: bytes sent to the new backup against the guest's write rate",
                                 subtitle: "ticks guest writing pages at the rate shown (every page above 8 MiB written first); median, whiskers min-max",
                                 yAxis: ChartAxis(label: "MiB sent (pre-copy rounds and final copy)"),
                                 categories: rateLabels, series: [])
        var rateBars = BarChart(title: "Re-protection: the final-copy pause against the guest's write rate",
                                subtitle: "same runs; median of the transfers, whiskers min-max",
                                yAxis: ChartAxis(label: "milliseconds"), categories: rateLabels, series: [])
        for engine in engines {
            for size in rateSizes {
                let name = "\(engine), \(SnapshotExperiment.size(Double(size)))"
                var bytesSeries = BarChart.Series(name: name, values: [])
                var pauseSeries = BarChart.Series(name: name, values: [])
                for rate in rates {
                    let g = group("this build", engine, size, rate)
                    guard !g.isEmpty else {
                        bytesSeries.values.append(nil)
                        bytesSeries.ranges.append(nil)
                        pauseSeries.values.append(nil)
                        pauseSeries.ranges.append(nil)
                        continue
                    }
                    let pauses = g.map(\.pauseSeconds).sorted()
                    let bytes = g.map { Double($0.bytes) }.sorted()
                    bytesSeries.values.append(quantile(bytes, 0.5) / 1048576)
                    bytesSeries.ranges.append((bytes.first! / 1048576, bytes.last! / 1048576))
                    pauseSeries.values.append(quantile(pauses, 0.5) * 1e3)
                    pauseSeries.ranges.append((pauses.first! * 1e3, pauses.last! * 1e3))
                    rateTable.append([engine, SnapshotExperiment.size(Double(size)), "\(rate)", "\(g.count)",
                                      "\(g.map(\.rounds).max()!)",
                                      "\(Int(quantile(g.map { Double($0.pages) }.sorted(), 0.5)))",
                                      NumberFormat.fixed(quantile(bytes, 0.5) / 1048576, 1),
                                      "\(Int(quantile(g.map { Double($0.finalPages) }.sorted(), 0.5)))",
                                      ms(quantile(pauses, 0.5)), ms(pauses.last),
                                      ms(median(g.map(\.transferSeconds))), ms(median(g.compactMap(\.reprotectSeconds)))])
                }
                bytesBars.series.append(bytesSeries)
                rateBars.series.append(pauseSeries)
            }
        }
        let maximumRounds = BackupPeerStateMachine.joining(pages: []).maximumRounds
        return ExperimentReport(
            experiment: .reprotect, title: title,
            markdown: { prefix in
                """
                Each run is `lockstep pair --kill-primary-times 2 --kill-primary-after 0.3 --clock host \
                --memory M --cmdline "ticks=100 hz=\(hz)" ticks.elf`: the leading replica is killed \
                (SIGKILL) twice, each time 0.3 s after a backup follows it; the backup that takes over \
                leads, and `pair` starts a backup that joins it (`backup --join`). The primary's \
                `--stats-json` records each transfer: the pause is the time the guest is stopped for \
                the final copy (from the harvest that ends the last round: capture, last dirty pages, \
                state handed to the connection; a baseline binary may count from the capture); re-protect \
                is from the new leader's takeover to the new backup following. \
                \(context.plan.repetitions) run(s) per configuration\(binaries.count > 1 ? "; \"baseline\" is the binary given with `--baseline`, run in turn with this one" : "").

                ![final pause](\(prefix)reprotect-pause.svg)

                \(pauseTable.markdown())
                With the guest's memory writer (`ticks=N hz=\(hz) dirty=P span=M`: it writes every page \
                of M MiB from 8 MiB up, M = RAM - 8 MiB, then P pages of it per tick, cycling, so \
                P × \(hz) pages per second; the leader is killed once, N is long enough for the \
                transfer), the bytes sent grow with RAM (round 1 carries every page that is not zero) \
                and with the write rate (each later round carries the pages written during the one \
                before). A guest that writes faster than the transfer carries never converges: after \
                \(maximumRounds) rounds the final copy takes whatever is dirty, and the pause grows with it.

                ![bytes against write rate](\(prefix)reprotect-bytes.svg)

                ![pause against write rate](\(prefix)reprotect-rate-pause.svg)

                \(rateTable.markdown())
                """
            },
            charts: ["reprotect-pause.svg": bars.svg(), "reprotect-bytes.svg": bytesBars.svg(),
                     "reprotect-rate-pause.svg": rateBars.svg()],
            csv: ["reprotect.csv": csv], summary: summary, skipped: skipped)
    }

    /// The transfers recorded in `pair --stats-json`'s replicas.
    static func points(_ path: String, binary: String, engine: String, memory: UInt64, rate: Int) -> [ReprotectPoint] {
        guard let data = FileManager.default.contents(atPath: path),
              let document = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let replicas = document["replicas"] as? [[String: Any]]
        else { return [] }
        var points: [ReprotectPoint] = []
        for replica in replicas {
            guard let stats = replica["stats"], !(stats is NSNull),
                  let encoded = try? JSONSerialization.data(withJSONObject: stats),
                  let snapshot = try? JSONDecoder().decode(ReplicationStatus.Snapshot.self, from: encoded)
            else { continue }
            // The first transfer of a replica that took over is its re-protection.
            for (index, t) in snapshot.transfers.enumerated() {
                let reprotect = index < snapshot.protectedAgainAfter.count && snapshot.role == .backup
                    ? snapshot.protectedAgainAfter[index] : nil
                let steps = t.pauseSteps
                points.append(ReprotectPoint(
                    binary: binary, engine: engine, memoryBytes: memory, writePagesPerSecond: rate,
                    pauseSeconds: t.pauseMilliseconds / 1e3, lastRoundSeconds: steps.map { $0.lastRound / 1e3 }, captureSeconds: steps.map { $0.capture / 1e3 },
                    pagesSeconds: steps.map { $0.pages / 1e3 }, stateSeconds: steps.map { $0.state / 1e3 },
                    sendSeconds: steps.map { $0.send / 1e3 }, reprotectSeconds: reprotect, transferSeconds: t.seconds,
                    rounds: t.rounds, pages: t.pages, finalPages: t.finalPages, bytes: t.bytes))
            }
        }
        return points
    }
}
