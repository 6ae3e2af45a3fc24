import Foundation
import Hypervisor
import Replication

#if canImport(Glibc)
import Glibc
#endif

/// Failover: time from the primary's death to the backup going live, against the detection timeout.
enum FailoverExperiment {
    /// The guests of the per-guest series besides `ticks` (whose SIGKILL trials at the main
    /// timeout are the sweep's), and the bundled guests left out, with the reason.
    static let otherGuests = ["cpu", "disk", "echo"]
    static let guestsLeftOut = ["hello: it prints one line and exits within milliseconds: there is no middle to kill it in",
                                "trap: a test guest that stops on a deliberate exception"]

    static func run(_ context: BenchContext) -> (ExperimentReport, [FailoverPoint], [FailoverTrial]) {
        let (engines, skipped) = context.engines(running: "ticks")
        let plan = context.plan
        var trials: [FailoverTrial] = []
        func log(_ t: FailoverTrial) {
            let live = t.liveSeconds.map { "\(NumberFormat.milliseconds($0)) ms to live" } ?? "no takeover"
            context.log.line("failover \(t.engine) \(t.guest) \(t.failure) timeout \(t.timeoutMilliseconds) ms trial \(t.trial + 1): \(live)\(t.ok ? "" : " (\(t.note))")")
        }
        for engine in engines {
            for timeout in plan.failoverTimeouts {
                let count = timeout == plan.failoverMainTimeout ? plan.failoverTrials : plan.failoverSweepTrials
                for index in 0..<count {
                    for failure in ["SIGKILL", "SIGSTOP"] {
                        let seconds = plan.failoverDelay + (failure == "SIGSTOP" ? Double(timeout) / 1000 : 0) + 0.6
                        let workload = FailoverWorkload.ticks(arch: engine.arch, seconds: seconds, guests: context.driver.guests)
                        let t = trial(context, engine: engine.name, arch: engine.arch, workload: workload, failure: failure,
                                      timeout: timeout, index: index)
                        log(t)
                        trials.append(t)
                    }
                }
            }
        }
        // Every other guest: SIGKILL at the main timeout, each long enough to be killed in the middle.
        var guestSkipped = guestsLeftOut
        for engine in engines {
            for guest in otherGuests {
                guard context.driver.guests.has(engine.arch, guest) else {
                    guestSkipped.append("\(engine.name) \(guest): guests/build/\(engine.arch)/\(guest).elf is missing")
                    continue
                }
                let workload: FailoverWorkload
                do {
                    workload = try FailoverWorkload.make(guest, arch: engine.arch, seconds: plan.failoverDelay + 0.75, context: context)
                } catch {
                    context.problem("failover \(engine.name) \(guest): \(error)")
                    continue
                }
                context.log.line("failover \(engine.name) \(guest): \(workload.description)")
                for index in 0..<plan.failoverGuestTrials {
                    let t = trial(context, engine: engine.name, arch: engine.arch, workload: workload, failure: "SIGKILL",
                                  timeout: plan.failoverMainTimeout, index: index)
                    log(t)
                    trials.append(t)
                }
            }
        }
        var points: [FailoverPoint] = []
        for engine in engines {
            for guest in ["ticks"] + otherGuests {
                for failure in ["SIGKILL", "SIGSTOP"] {
                    for timeout in plan.failoverTimeouts {
                        let group = trials.filter {
                            $0.engine == engine.name && $0.guest == guest && $0.failure == failure && $0.timeoutMilliseconds == timeout
                        }
                        guard !group.isEmpty else { continue }
                        let good = group.filter(\.ok)
                        points.append(FailoverPoint(engine: engine.name, guest: guest, failure: failure, timeoutMilliseconds: timeout,
                                                    trials: group.count, succeeded: good.count,
                                                    live: Summary(good.compactMap(\.liveSeconds)),
                                                    detection: Summary(good.compactMap(\.detectionSeconds))))
                    }
                }
            }
        }
        return (report(points, trials: trials, skipped: skipped + guestSkipped, main: plan.failoverMainTimeout), points, trials)
    }

    /// Reads a replica's statistics file.
    static func snapshot(_ path: String) -> ReplicationStatus.Snapshot? { ReplicationStatus.Snapshot.load(path) }

    static func trial(_ context: BenchContext, engine: String, arch: String, workload: FailoverWorkload, failure: String,
                      timeout: Int, index: Int) -> FailoverTrial {
        var result = FailoverTrial(engine: engine, guest: workload.guest, failure: failure, timeoutMilliseconds: timeout,
                                   trial: index, primarySignaled: false, ok: false, note: "")
        let plan = context.plan
        let driver = context.driver
        let directory = driver.scratchPath("failover")
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            result.note = "cannot create \(directory): \(error)"
            context.problem("failover: \(result.note)")
            return result
        }
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // The guest runs for a little longer than the failure takes to be noticed, so the
        // backup goes live in the middle of the run and then finishes it.
        let seconds = plan.failoverDelay + (failure == "SIGSTOP" ? Double(timeout) / 1000 : 0) + 0.6
        var disk: String?
        if let sectors = workload.diskSectors {
            do { disk = try driver.freshDisk(sectors: sectors) } catch {
                result.note = "\(error)"
                context.problem("failover: \(error)")
                return result
            }
        }
        defer { if let disk { try? FileManager.default.removeItem(atPath: disk) } }
        let common = driver.keyArguments + ["--timeout", "\(timeout)", "--no-status-line", "--arbiter-dir", directory]
            + (disk.map { ["--disk", $0] } ?? []) + workload.arguments
        let portFile = directory + "/port", primaryStats = directory + "/primary.json", backupStats = directory + "/backup.json"
        let primary: RunningProcess
        do {
            primary = try RunningProcess(executable: driver.executable,
                                         arguments: ["primary", "--listen", "127.0.0.1:0", "--port-file", portFile,
                                                     "--stats-json", primaryStats] + common,
                                         keepsInputOpen: workload.typesInput)
        } catch {
            result.note = "\(error)"
            context.problem("failover: \(error)")
            return result
        }
        var port: String?
        let portDeadline = BenchClock.now() + 30
        while port == nil && primary.isRunning && BenchClock.now() < portDeadline {
            port = (try? String(contentsOfFile: portFile, encoding: .utf8))?.split(separator: "\n").first.map(String.init)
            if port == nil { usleep(5000) }
        }
        guard let port else {
            let outcome = primary.wait(timeout: 0)
            result.note = "the primary did not start listening (\(outcome.ending)): \(outcome.lastErrorLine)"
            context.problem("failover: `\(outcome.command.map(BenchContext.shellQuoted).joined(separator: " "))`: \(result.note)")
            return result
        }
        let backup: RunningProcess
        do {
            backup = try RunningProcess(executable: driver.executable,
                                        arguments: ["backup", "--connect", "127.0.0.1:\(port)", "--stats-json", backupStats] + common,
                                        keepsInputOpen: workload.typesInput)
        } catch {
            primary.send(SIGKILL)
            _ = primary.wait(timeout: 5)
            result.note = "\(error)"
            context.problem("failover: \(error)")
            return result
        }
        let replicatingDeadline = BenchClock.now() + 30
        while backup.isRunning && snapshot(backupStats)?.state != .replaying && BenchClock.now() < replicatingDeadline {
            usleep(2000)
        }
        // Both replicas read the same console input (as `lockstep pair` gives them).
        if let text = workload.inputAtStart {
            primary.type(text)
            backup.type(text)
        }
        usleep(UInt32(plan.failoverDelay * 1e6))
        let signalledAt = BenchClock.wall()
        primary.send(failure == "SIGKILL" ? SIGKILL : SIGSTOP)
        // Wait for the backup to go live (or end).
        let liveDeadline = BenchClock.now() + Double(timeout) / 1000 + 20
        var state: ReplicationStatus.Snapshot?
        while BenchClock.now() < liveDeadline {
            state = snapshot(backupStats)
            if let s = state, s.stateEnteredAt[.live] != nil || s.state.isFinal { break }
            if !backup.isRunning { state = snapshot(backupStats); break }
            usleep(2000)
        }
        if failure == "SIGSTOP" { primary.send(SIGCONT) }
        if let text = workload.inputWhenLive { backup.type(text) }
        backup.closeInput()
        primary.closeInput()
        let backupOutcome = backup.wait(timeout: backup.startedAt - primary.startedAt + seconds + Double(timeout) / 1000 + 60)
        let primaryOutcome = primary.wait(timeout: seconds + Double(timeout) / 1000 + 60)
        state = snapshot(backupStats) ?? state
        result.detectionSeconds = state?.stateEnteredAt[.takingOver].map { $0 - signalledAt }
        result.liveSeconds = state?.stateEnteredAt[.live].map { $0 - signalledAt }
        result.backupStatus = backupOutcome.signaled ? nil : backupOutcome.status
        result.primaryStatus = primaryOutcome.signaled ? nil : primaryOutcome.status
        result.primarySignaled = primaryOutcome.signaled
        // The backup must go live and finish the guest (status 0); a killed primary stays dead,
        // a frozen one wakes to find the arbiter taken and stops (78) without output.
        var problems: [String] = []
        if result.liveSeconds == nil { problems.append("the backup never went live (state \(state.map { "\($0.state)" } ?? "unknown"))") }
        if !backupOutcome.exited(with: 0) { problems.append("backup \(backupOutcome.ending): \(backupOutcome.lastErrorLine)") }
        if !backupOutcome.stdout.contains(workload.expected) && !primaryOutcome.stdout.contains(workload.expected) {
            problems.append("neither replica printed \"\(workload.expected.prefix(60))\"")
        }
        if failure == "SIGSTOP" && !primaryOutcome.exited(with: ExitStatus.lostArbiter) {
            problems.append("the woken primary: \(primaryOutcome.ending) (expected \(ExitStatus.lostArbiter), lost the arbiter): \(primaryOutcome.lastErrorLine)")
        }
        if failure == "SIGKILL" && !primaryOutcome.signaled { problems.append("the primary was not killed: \(primaryOutcome.ending)") }
        result.ok = problems.isEmpty
        result.note = problems.joined(separator: "; ")
        if !result.ok {
            context.problem("failover \(engine) \(workload.guest) \(failure) timeout \(timeout) ms trial \(index + 1): \(result.note) (command: lockstep primary/backup \(common.map(BenchContext.shellQuoted).joined(separator: " ")))")
        }
        return result
    }

    /// The issue 16 bar: SIGKILL to live, median and p99, for every guest on both engines.
    static let targetSeconds = 0.1

    static func report(_ points: [FailoverPoint], trials: [FailoverTrial], skipped: [String], main: Int) -> ExperimentReport {
        var table = Table(["Engine", "Guest", "Failure", "Timeout (ms)", "Trials ok", "Detected, median (ms)", "Live, median (ms)",
                           "Live, p99 (ms)", "Live, best (ms)", "Live, worst (ms)"],
                          numericColumns: Set(3...9))
        var csv = Table(["engine", "guest", "failure", "timeout_ms", "trials", "succeeded", "live_median_s", "live_p99_s", "live_min_s",
                         "live_max_s", "detection_median_s"])
        var summary: [[String]] = []
        for p in points {
            table.append([p.engine, p.guest, p.failure, "\(p.timeoutMilliseconds)", "\(p.succeeded)/\(p.trials)",
                          p.detection.map { NumberFormat.milliseconds($0.median) } ?? "-",
                          p.live.map { NumberFormat.milliseconds($0.median) } ?? "-",
                          p.live.map { NumberFormat.milliseconds($0.p99) } ?? "-",
                          p.live.map { NumberFormat.milliseconds($0.minimum) } ?? "-",
                          p.live.map { NumberFormat.milliseconds($0.maximum) } ?? "-"])
            csv.append([p.engine, p.guest, p.failure, "\(p.timeoutMilliseconds)", "\(p.trials)", "\(p.succeeded)",
                        p.live.map { "\($0.median)" } ?? "", p.live.map { "\($0.p99)" } ?? "", p.live.map { "\($0.minimum)" } ?? "",
                        p.live.map { "\($0.maximum)" } ?? "", p.detection.map { "\($0.median)" } ?? ""])
            if p.timeoutMilliseconds == main, let live = p.live, p.failure == "SIGKILL" || p.guest == "ticks" {
                let verdict = p.failure == "SIGKILL"
                    ? (live.median < targetSeconds && live.p99 < targetSeconds && p.succeeded == p.trials ? ", under 100 ms" : ", NOT under 100 ms")
                    : ""
                summary.append(["failover", "\(p.engine), \(p.guest), \(p.failure), --timeout \(main): death to live, median / p99 of \(p.succeeded)/\(p.trials)",
                                "\(NumberFormat.milliseconds(live.median)) ms / \(NumberFormat.milliseconds(live.p99)) ms\(verdict)", "-", "-"])
            }
        }
        var trialTable = Table(["engine", "guest", "failure", "timeout_ms", "trial", "detection_s", "live_s", "backup_status", "primary_status", "primary_signaled", "ok", "note"])
        for t in trials {
            trialTable.append([t.engine, t.guest, t.failure, "\(t.timeoutMilliseconds)", "\(t.trial)",
                               t.detectionSeconds.map { "\($0)" } ?? "", t.liveSeconds.map { "\($0)" } ?? "",
                               t.backupStatus.map { "\($0)" } ?? "", t.primaryStatus.map { "\($0)" } ?? "",
                               t.primarySignaled ? "1" : "0", t.ok ? "1" : "0", t.note])
        }
        // A frozen primary is noticed only once the timeout has passed, so SIGSTOP trials plot the
        // time to "live" minus the timeout (on one axis with the timeout itself, the lines would
        // lie under it); SIGKILL trials, noticed at once, plot the time to "live".
        var series: [LineChart.Series] = []
        let timeouts = Set(points.map(\.timeoutMilliseconds)).sorted()
        for engine in Set(points.map(\.engine)).sorted() {
            for failure in ["SIGKILL", "SIGSTOP"] {
                let group = points.filter { $0.engine == engine && $0.guest == "ticks" && $0.failure == failure }.sorted { $0.timeoutMilliseconds < $1.timeoutMilliseconds }
                func y(_ seconds: Double, _ p: FailoverPoint) -> Double {
                    seconds * 1000 - (failure == "SIGSTOP" ? Double(p.timeoutMilliseconds) : 0)
                }
                let median = group.compactMap { p in p.live.map { LineChart.Point(x: Double(p.timeoutMilliseconds), y: y($0.median, p), low: y($0.minimum, p), high: y($0.maximum, p)) } }
                let worst = group.compactMap { p in p.live.map { LineChart.Point(x: Double(p.timeoutMilliseconds), y: y($0.maximum, p)) } }
                guard !median.isEmpty else { continue }
                let what = failure == "SIGKILL" ? "SIGKILL, to live" : "SIGSTOP, to live minus the timeout"
                series.append(LineChart.Series(name: "\(engine), \(what): median (bars: best to worst)", points: median,
                                               marker: failure == "SIGKILL" ? .circle : .square))
                series.append(LineChart.Series(name: "\(engine), \(what): worst", points: worst, dashed: true,
                                               marker: failure == "SIGKILL" ? .circle : .square))
            }
        }
        if !timeouts.isEmpty {
            series.append(LineChart.Series(name: "one heartbeat period (timeout / 5): how late a silence can be noticed",
                                           points: timeouts.map { LineChart.Point(x: Double($0), y: Double($0) / 5) },
                                           dashed: true, marker: .diamond, color: "#999999"))
        }
        var charts: [String: String] = [:]
        if !trials.isEmpty {
            charts["failover.svg"] = LineChart(
                title: "Failover: primary's death or freeze to backup live",
                subtitle: "ticks guest, host clock; SIGKILL closes the connection at once, SIGSTOP is noticed after the timeout",
                xAxis: ChartAxis(label: "--timeout (ms, log scale)", scale: .log10, format: { NumberFormat.compact($0) }),
                yAxis: ChartAxis(label: "ms to \"live\" (SIGSTOP: beyond the timeout)", format: { NumberFormat.compact($0) }),
                series: series,
                references: [(y: 0, label: "SIGSTOP: live exactly at the timeout")]).svg()
        }
        let markdown: (String) -> String = { prefix in
            var text = """
                Method: for each trial the bench starts `lockstep primary` and `lockstep backup` itself (the `ticks` \
                guest on the host clock, so the run lasts long enough to fail in the middle), waits until the backup is \
                replicating, sends SIGKILL or SIGSTOP to the primary, and reads from the backup's statistics file when it \
                entered "taking over" (failure detected) and "live" (arbiter won, outputs released). Times are from the \
                signal; the chart plots a SIGSTOP trial's time minus the timeout, the part that is not waiting for it \
                (negative when the silence was noticed before the timeout had passed since the freeze: the backup \
                measures it from the last frame it received). The timeout sweep uses `ticks`; every other \
                bundled guest that runs long enough to be killed in \
                the middle (`cpu` and `disk` sized from two unreplicated runs to last about a second, `echo` waiting for \
                its input) gets the same number of SIGKILL trials at the main timeout: median and p99 (nearest rank), \
                against the 100 ms bar. A trial counts only if the backup then finished the guest with status 0 and, for SIGSTOP, the \
                woken primary stopped with status \(ExitStatus.lostArbiter) (it lost the arbiter) — never both replicas live. A SIGKILLed \
                primary's kernel closes its TCP connection, so the backup notices at once whatever the timeout; a \
                frozen primary is noticed only when the timeout expires without heartbeats.


                """
            text += charts.keys.sorted().map { "![\($0)](\(prefix)\($0))\n" }.joined() + "\n"
            text += table.markdown()
            if !skipped.isEmpty { text += "\n" + skipped.map { "- Skipped: \($0)\n" }.joined() }
            return text
        }
        return ExperimentReport(experiment: .failover, title: "Failover time", markdown: markdown, charts: charts,
                                csv: ["failover.csv": csv, "failover-trials.csv": trialTable], summary: summary, skipped: skipped)
    }
}
