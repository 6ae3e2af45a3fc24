import Foundation
import Replication

/// One live state transfer measured in a `lockstep pair` run with re-protection.
struct ReprotectPoint: Codable, Sendable {
    /// "KVM" or "emulator".
    var engine: String
    var memoryBytes: UInt64
    /// The primary's pause for the final copy.
    var pauseSeconds: Double
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
/// statistics.
enum ReprotectExperiment {
    static let title = "Re-protection: live state transfer to a new backup after each failover"

    static func run(_ context: BenchContext) -> (ExperimentReport, [ReprotectPoint]) {
        let (engines, skipped) = context.engines(running: "ticks")
        let sizes: [UInt64] = context.configuration.quick ? [64 << 20] : [64 << 20, 256 << 20, 512 << 20]
        var points: [ReprotectPoint] = []
        for engine in engines {
            for size in sizes {
                for rep in 0..<context.plan.repetitions {
                    let stats = context.driver.scratchPath("reprotect") + ".json"
                    defer { try? FileManager.default.removeItem(atPath: stats) }
                    let options = ["--stats-json", stats, "--no-status-line", "--arbiter-dir", context.driver.scratch,
                                   "--kill-primary-times", "2", "--kill-primary-after", "0.3", "--timeout", "300",
                                   "--clock", "host", "--memory", "\(size >> 20)M"]
                        + (engine.arch == "parisc" ? ["--epoch-length", "2000"] : [])
                    let outcome: ProcessOutcome
                    do {
                        outcome = try RunningProcess.run(
                            context.driver.executable,
                            ["pair"] + context.driver.guestArguments(arch: engine.arch, guest: "ticks",
                                                                    cmdline: "ticks=100 hz=20", options: options),
                            timeout: context.driver.timeout)
                    } catch {
                        context.problem("reprotect \(engine.name) \(size): \(error)")
                        continue
                    }
                    guard outcome.status == 0, !outcome.signaled, !outcome.timedOut else {
                        context.problem("reprotect \(engine.name) \(size): \(outcome.command.joined(separator: " ")) exited \(outcome.status): \(outcome.stderr.suffix(400))")
                        continue
                    }
                    let found = Self.points(stats, engine: engine.name, memory: size)
                    if found.isEmpty { context.problem("reprotect \(engine.name) \(size): no transfer recorded") }
                    for p in found {
                        context.log.line("reprotect \(engine.name) \(SnapshotExperiment.size(Double(size))) rep \(rep + 1): pause \(NumberFormat.milliseconds(p.pauseSeconds)) ms, re-protected in \(p.reprotectSeconds.map { NumberFormat.milliseconds($0) } ?? "-") ms, \(p.pages) pages in \(p.rounds) rounds, \(p.bytes) bytes")
                    }
                    points += found
                }
            }
        }
        var table = Table(["Engine", "Guest RAM", "Transfers", "Final pause, median (ms)", "Final pause, max (ms)",
                           "Re-protect, median (ms)", "Transfer (ms)", "Rounds", "Pages", "Bytes sent"],
                          numericColumns: Set(2...9))
        var csv = Table(["engine", "memory_bytes", "pause_seconds", "reprotect_seconds", "transfer_seconds", "rounds",
                         "pages", "final_pages", "bytes"])
        for p in points {
            csv.append([p.engine, "\(p.memoryBytes)", "\(p.pauseSeconds)", p.reprotectSeconds.map { "\($0)" } ?? "",
                        "\(p.transferSeconds)", "\(p.rounds)", "\(p.pages)", "\(p.finalPages)", "\(p.bytes)"])
        }
        var bars = BarChart(title: "Re-protection: the primary's pause for the final copy",
                            subtitle: "ticks guest, lockstep pair killing the leader twice; median of the transfers, whiskers min-max",
                            yAxis: ChartAxis(label: "milliseconds"),
                            categories: sizes.map { SnapshotExperiment.size(Double($0)) }, series: [])
        var summary: [[String]] = []
        for engine in engines.map(\.name) {
            var series = BarChart.Series(name: engine, values: [])
            for size in sizes {
                let group = points.filter { $0.engine == engine && $0.memoryBytes == size }
                guard !group.isEmpty else {
                    series.values.append(nil)
                    series.ranges.append(nil)
                    continue
                }
                let pauses = group.map(\.pauseSeconds).sorted()
                let reprotects = group.compactMap(\.reprotectSeconds).sorted()
                let median = pauses[pauses.count / 2]
                series.values.append(median * 1e3)
                series.ranges.append((pauses.first! * 1e3, pauses.last! * 1e3))
                let last = group.last!
                table.append([engine, SnapshotExperiment.size(Double(size)), "\(group.count)",
                              NumberFormat.milliseconds(median), NumberFormat.milliseconds(pauses.last!),
                              reprotects.isEmpty ? "-" : NumberFormat.milliseconds(reprotects[reprotects.count / 2]),
                              NumberFormat.milliseconds(group.map(\.transferSeconds).sorted()[group.count / 2]),
                              "\(last.rounds)", "\(last.pages)", SnapshotExperiment.size(Double(last.bytes))])
                if size == 64 << 20 {
                    summary.append(["reprotect", "\(engine): final-copy pause at 64 MiB (median; goal 10 ms)",
                                    "\(NumberFormat.milliseconds(median)) ms", "10 ms",
                                    NumberFormat.fixed(median / 0.010, 2)])
                }
            }
            bars.series.append(series)
        }
        let report = ExperimentReport(
            experiment: .reprotect, title: title,
            markdown: { prefix in
                """
                Each run is `lockstep pair --kill-primary-times 2 --kill-primary-after 0.3 --clock host \
                --memory M --cmdline "ticks=100 hz=20" ticks.elf`: the leading replica is killed \
                (SIGKILL) twice, each time 0.3 s after a backup follows it; the backup that takes over \
                leads, and `pair` starts a backup that joins it (`backup --join`). The primary's \
                `--stats-json` records each transfer: the pause is the time the guest is stopped for \
                the final copy (capture, last dirty pages, state handed to the connection); re-protect \
                is from the new leader's takeover to the new backup following. The booted guest has few \
                pages that are not zero, so what is sent does not grow with RAM; a guest that writes \
                memory at a given rate is not measured yet (no bundled guest does). \
                \(context.plan.repetitions) run(s) per configuration.

                ![final pause](\(prefix)reprotect-pause.svg)


                """ + table.markdown()
            },
            charts: ["reprotect-pause.svg": bars.svg()],
            csv: ["reprotect.csv": csv], summary: summary, skipped: skipped)
        return (report, points)
    }

    /// The transfers recorded in `pair --stats-json`'s replicas.
    static func points(_ path: String, engine: String, memory: UInt64) -> [ReprotectPoint] {
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
                points.append(ReprotectPoint(engine: engine, memoryBytes: memory, pauseSeconds: t.pauseMilliseconds / 1e3,
                                             reprotectSeconds: reprotect, transferSeconds: t.seconds, rounds: t.rounds,
                                             pages: t.pages, finalPages: t.finalPages, bytes: t.bytes))
            }
        }
        return points
    }
}
