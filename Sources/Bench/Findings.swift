import Foundation

/// Sentences that read the results, generated from them (so every figure in the prose comes
/// from the run it describes).
enum Findings {
    static func lines(_ r: BenchResults) -> [String] {
        var out: [String] = []
        let f = NumberFormat.self

        if let series = r.epochs {
            for s in series where s.unit == "instructions" && !s.points.isEmpty {
                var text = "Epochs, \(s.name): "
                let paper = EpochExperiment.paperPoints.compactMap { p in
                    s.points.first { $0.epochLength == p.length }.map {
                        "\(f.ratio($0.ratio)) at \(f.binary(Double(p.length))) instructions (paper: \(f.ratio(p.ratio))"
                            + ($0.cpuRatio.map { "; CPU time of both replicas: \(f.ratio($0)) of the unreplicated run's" } ?? "") + ")"
                    }
                }
                if !paper.isEmpty { text += "replicated time is " + paper.joined(separator: " and ") + ". " }
                let sorted = s.points.sorted { $0.epochLength < $1.epochLength }
                if let first = sorted.first, let last = sorted.last {
                    text += "From \(f.binary(Double(first.epochLength))) to \(f.binary(Double(last.epochLength))) instructions the ratio goes from \(f.ratio(first.ratio)) to \(f.ratio(last.ratio)). "
                }
                if let within = sorted.firstIndex(where: { p in sorted.drop(while: { $0.epochLength < p.epochLength }).allSatisfy { $0.ratio <= 1.25 } }) {
                    text += "It stays within 1.25x of the unreplicated run from \(f.binary(Double(sorted[within].epochLength))) instructions on. "
                }
                let costs = sorted.filter { $0.epochLength <= 16384 }.compactMap(\.costPerEpochMicroseconds)
                if let cost = Summary(costs) {
                    text += "An epoch boundary costs about \(f.compact(cost.median)) µs of replicated time (median over lengths up to 16K; range \(f.compact(cost.minimum))–\(f.compact(cost.maximum)) µs)"
                    if let ipr = s.unitsPerRound, let base = s.baselineSecondsPerRound, base > 0 {
                        text += ", the time of about \(f.compact(cost.median * 1e-6 / (base / ipr))) guest instructions unreplicated"
                    }
                    text += ". "
                }
                if let p = sorted.first, let same = p.unreplicatedSameLengthRatio {
                    text += "Unreplicated runs with the same \(f.binary(Double(p.epochLength)))-instruction epochs take \(f.ratio(same)) of the default run"
                    // Which part of the overhead the boundaries alone explain, by this run's numbers.
                    text += same - 1 < (p.ratio - 1) / 2
                        ? ", so most of the cost is replication, not the epoch boundaries themselves."
                        : ", so the epoch boundaries themselves account for much of the cost."
                }
                out.append(text)
            }
            if let lifted = series.first(where: { $0.name == "emulator, recovery counter" }),
               let capped = series.first(where: { $0.name == "emulator, recovery counter, default --max-lag" })
            {
                let pairs = capped.points.compactMap { c in lifted.points.first { $0.epochLength == c.epochLength }.map { (c, $0) } }
                if !pairs.isEmpty {
                    out.append("Flow control: with the default `--max-lag` the replicated run takes " + pairs.map {
                        "\(f.ratio($0.0.ratio)) instead of \(f.ratio($0.1.ratio)) at \(f.binary(Double($0.0.epochLength)))"
                    }.joined(separator: ", ") + " (range with the default: " + pairs.map { "\(f.ratio($0.0.ratioLow))–\(f.ratio($0.0.ratioHigh))" }.joined(separator: ", ") + ").")
                }
            }
            if let direct = series.first(where: { $0.name == "emulator, recovery counter" }),
               let viaPair = series.first(where: { $0.name == "emulator, recovery counter, via lockstep pair" })
            {
                let pairs = viaPair.points.compactMap { c in direct.points.first { $0.epochLength == c.epochLength }.map { (c, $0) } }
                if !pairs.isEmpty {
                    out.append("Through the `lockstep pair` command the replicated run takes " + pairs.map {
                        "\(f.ratio($0.0.ratio)) instead of \(f.ratio($0.1.ratio)) at \(f.binary(Double($0.0.epochLength)))"
                    }.joined(separator: ", ") + " (CPU time " + pairs.map { p in
                        "\(p.0.cpuRatio.map(f.ratio) ?? "-") instead of \(p.1.cpuRatio.map(f.ratio) ?? "-")"
                    }.joined(separator: ", ") + ").")
                }
            }
            for s in series where s.unit == "exits" && !s.points.isEmpty {
                let ratios = s.points.map(\.ratio)
                let epochs = s.points.compactMap(\.epochsPerRound)
                out.append("Epochs, \(s.name): replicated time is \(f.ratio(ratios.min() ?? 0))–\(f.ratio(ratios.max() ?? 0)) of unreplicated whatever the length (\(s.points.map { "\($0.epochLength)" }.joined(separator: ", ")) exits): the cpu guest at CPL3 makes " + (epochs.isEmpty ? "few exits" : "\(f.compact(Summary(epochs)?.median ?? 0)) epochs per round at the shortest length") + ", so there are hardly any boundaries; the cost is running two replicas on the host's shared cores (and an interrupt could wait that long for delivery).")
            }
        }
        if let lines = r.disk {
            for series in Set(lines.map(\.series)).sorted() {
                guard let run = lines.first(where: { $0.series == series && $0.mode == "run" }),
                      let pair = lines.first(where: { $0.series == series && $0.mode == "pair" }) else { continue }
                out.append("Disk, \(series): a 4 KiB request takes \(f.microseconds(pair.secondsPerRequest)) µs replicated against \(f.microseconds(run.secondsPerRequest)) µs unreplicated (\(f.ratio(pair.secondsPerRequest / run.secondsPerRequest)); the paper's I/O workload: 1.67x at 4K-instruction epochs)" + (pair.channelBytesPerRequest.map { "; the primary ships \(f.compact($0)) bytes per request to the backup" } ?? "") + ".")
            }
        }
        if let points = r.failover {
            for engine in Set(points.map(\.engine)).sorted() {
                let kill = points.filter { $0.engine == engine && $0.guest == "ticks" && $0.failure == "SIGKILL" }.compactMap { p in p.live.map { (p, $0) } }
                let stop = points.filter { $0.engine == engine && $0.guest == "ticks" && $0.failure == "SIGSTOP" }.compactMap { p in p.live.map { (p, $0) } }
                if let killLive = Summary(kill.map(\.1.median)), let worst = kill.map(\.1.maximum).max() {
                    let perTimeout = kill.map { "\($0.0.timeoutMilliseconds) ms: \(f.milliseconds($0.1.median))" }.joined(separator: ", ")
                    // Independent of the timeout when every median stays far below the shortest timeout.
                    let shortest = kill.map { Double($0.0.timeoutMilliseconds) / 1000 }.min() ?? 0
                    let independent = kill.allSatisfy { $0.1.median < shortest / 4 }
                    out.append("Failover, \(engine), SIGKILL: the backup is live \(f.milliseconds(killLive.median)) ms after the kill (median of the per-timeout medians; worst single trial \(f.milliseconds(worst)) ms); per timeout: \(perTimeout)"
                        + (independent ? ". That is far below every timeout: the kernel closes the dead primary's connection, and the backup sees it at once." : "."))
                }
                let guests = points.filter { $0.engine == engine && $0.guest != "ticks" && $0.failure == "SIGKILL" }
                if !guests.isEmpty {
                    let parts = guests.map { p in
                        p.live.map { "\(p.guest) \(f.milliseconds($0.median)) / \(f.milliseconds($0.p99)) ms (\(p.succeeded)/\(p.trials) ok)" }
                            ?? "\(p.guest): no trial went live"
                    }
                    let under = guests.allSatisfy { p in
                        p.succeeded == p.trials && (p.live.map { $0.median < FailoverExperiment.targetSeconds && $0.p99 < FailoverExperiment.targetSeconds } ?? false)
                    }
                    out.append("Failover, \(engine), SIGKILL per guest, median / p99: " + parts.joined(separator: ", ")
                        + (under ? ": every guest under 100 ms." : ": not every guest under 100 ms."))
                }
                if !stop.isEmpty {
                    let over = stop.map { ($0.1.median - Double($0.0.timeoutMilliseconds) / 1000) }
                    out.append("Failover, \(engine), SIGSTOP: a silent primary is noticed when the timeout expires; live minus timeout is " + zip(stop, over).map { "\(f.milliseconds($0.1)) ms at \($0.0.0.timeoutMilliseconds) ms" }.joined(separator: ", ") + " (medians; worst: " + stop.map { "\(f.milliseconds($0.1.maximum)) ms" }.joined(separator: ", ") + " from the signal). The backup counts the silence from the last frame it received and checks it every heartbeat period (timeout/5), so \"live\" lands " + ratioRange(stop.map { $0.1.median / (Double($0.0.timeoutMilliseconds) / 1000) }) + " timeouts after the freeze in this run.")
                }
            }
        }
        if let channel = r.channel {
            let cpu = channel.filter { $0.workload.hasPrefix("cpu") && $0.series == "emulator, recovery counter" }
            if let perEpoch = Summary(cpu.map(\.bytesSentPerEpoch)), let fastest = cpu.max(by: { $0.bytesSentPerSecond < $1.bytesSentPerSecond }) {
                let flat = perEpoch.maximum < perEpoch.minimum * 1.5
                out.append("Channel, cpu guest on the emulator: the primary sends \(f.compact(perEpoch.minimum))–\(f.compact(perEpoch.maximum)) bytes per epoch"
                    + (flat ? " whatever the epoch length (an epoch end with no inputs, plus heartbeats), so the traffic follows the epoch rate" : "")
                    + ": up to \(f.compact(fastest.bytesSentPerSecond / 1024)) KiB/s at \(fastest.epochLength.map { f.binary(Double($0)) } ?? "-") instructions per epoch.")
            }
        }
        if let peers = r.peers {
            let parisc = peers.filter { $0.comparison == "parisc" && $0.workload == "cpu" }
            if let mine = parisc.first, let mips = mine.instructionsPerSecond {
                let others = parisc.dropFirst().compactMap { p in p.instructionsPerSecond.map { "\(p.engine) \(f.compact($0 / 1e6)) MIPS (\(f.ratio($0 / mips)) Lockstep's rate)" } }
                out.append("PA-RISC engines on the cpu guest: Lockstep's emulator (\(mine.engine)) runs \(f.compact(mips / 1e6)) MIPS; " + others.joined(separator: ", ") + ".")
            }
            let x86 = peers.filter { $0.comparison == "x86" }
            if !x86.isEmpty {
                let parts = x86.filter { $0.engine != x86.first?.engine }.compactMap { p -> String? in
                    guard let ratio = p.lockstepOverPeer else { return nil }
                    return "\(p.workload) against \(p.engine): Lockstep ÷ QEMU = \(f.ratio(ratio))"
                }
                if !parts.isEmpty { out.append("x86 on KVM: " + parts.joined(separator: "; ") + ".") }
            }
        }
        return out
    }

    /// "between about A and B", or "about A" when they agree to two digits.
    static func ratioRange(_ values: [Double]) -> String {
        guard let low = values.min(), let high = values.max() else { return "an unknown number of" }
        let a = String(format: "%.2f", low), b = String(format: "%.2f", high)
        return a == b ? "about \(a)" : "between about \(a) and \(b)"
    }
}
