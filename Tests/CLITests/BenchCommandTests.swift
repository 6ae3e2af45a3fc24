import Foundation
import Bench
import Testing

#if canImport(FoundationXML)
import FoundationXML
#endif

/// `lockstep bench`: the quick setting runs every experiment against the real binary (and
/// QEMU), writes sane CSV, JSON, SVG and Markdown, and skips what the host lacks with a reason.
/// The numbers themselves are not judged here: benchmarks are not pass/fail.
@Suite(.serialized) struct BenchCommandTests {
    static let guestsBuilt = ["cpu", "disk", "ticks", "hello"].allSatisfy { Lockstep.hasGuest("parisc", $0) }

    static func skipNote() -> Bool {
        if !guestsBuilt { print("BenchCommandTests: the PA-RISC guests are not built (run scripts/build-guests): skipped") }
        return guestsBuilt
    }

    /// A fresh output directory.
    static func outputDirectory(_ name: String) -> String {
        let path = Scratch.path("bench-\(name)-\(UInt32.random(in: 0...UInt32.max))")
        try? FileManager.default.removeItem(atPath: path)
        return path
    }

    @Test(.enabled(if: skipNote(), "needs the PA-RISC guests (scripts/build-guests)"))
    func quickRunWritesResults() throws {
        let output = Self.outputDirectory("quick")
        let result = try Lockstep.run(["bench", "--quick", "--output", output], timeout: 600)
        #expect(!result.timedOut)
        try #require(result.status == 0, "lockstep bench --quick failed: \(result.stderr.suffix(2000))")
        #expect(result.stdout.contains("## lockstep bench summary"))
        #expect(result.stdout.contains("| Experiment | Measure | Lockstep | Reference or peer | Ratio |"))

        // results.json: the machine, every experiment, no failed run.
        let json = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: output + "/results.json"))) as? [String: Any])
        let host = try #require(json["host"] as? [String: Any])
        #expect((host["cores"] as? Int ?? 0) >= 1)
        #expect(!(host["kernel"] as? String ?? "").isEmpty)
        #expect((json["experiments"] as? [String])?.count == Experiment.allCases.count)
        let problems = json["problems"] as? [String] ?? ["missing"]
        #expect(problems.isEmpty, "failed runs: \(problems)")
        let skipped = json["skipped"] as? [String] ?? []
        let hasKVM = Lockstep.hasKVM
        let hasQEMUHPPA = Self.which("qemu-system-hppa")

        // Snapshots: the booted guest's snapshot is small, the one with every page written is not.
        let snapshots = try CSV.load(output + "/snapshot.csv")
        #expect(snapshots.rows.count == (hasKVM ? 4 : 2))
        for row in snapshots.rows {
            let pages = try #require(Int(row["pages"] ?? ""), "pages in \(row)")
            #expect(row["contents"] == "booted" ? pages < 1024 : pages == 16384, "\(row)")
            #expect((Double(row["restore_seconds"] ?? "") ?? 0) > 0, "\(row)")
        }

        // The CPU-intensive experiment: every run correct, finite ratios. (A ratio needs a positive
        // baseline slope between rounds=1 and rounds=2; on a loaded machine one quick repetition
        // can measure none, and the bench then leaves that point out instead of dividing by it:
        // so the series must have run, not necessarily produced a point.)
        let epochs = try CSV.load(output + "/epochs.csv")
        for row in epochs.rows {
            let ratio = try #require(Double(row["ratio"] ?? ""), "ratio in \(row)")
            #expect(ratio.isFinite)
        }
        let epochRuns = try CSV.load(output + "/epochs-runs.csv")
        #expect(epochRuns.rows.count >= 6)
        #expect(epochRuns.rows.contains { $0["series"] == "emulator, recovery counter" && $0["mode"] == "pair" })
        #expect(epochRuns.rows.contains { $0["series"] == "emulator, recovery counter" && $0["mode"] == "run (default clock)" })
        for row in epochRuns.rows {
            #expect(row["ok"] == "1", "failed run \(row)")
            #expect((Double(row["seconds"] ?? "") ?? 0) > 0)
            #expect((Double(row["cpu_seconds"] ?? "") ?? 0) > 0, "no CPU time in \(row)")
        }
        // Replicated through the `lockstep pair` command too, not only primary + backup processes.
        #expect(epochRuns.rows.contains { $0["series"] == "emulator, recovery counter, via lockstep pair" && $0["mode"] == "pair" })
        let pairs = epochRuns.rows.filter { $0["mode"] == "pair" }
        #expect(!pairs.isEmpty && pairs.allSatisfy { (UInt64($0["epochs"] ?? "") ?? 0) > 0 && (UInt64($0["bytes_sent"] ?? "") ?? 0) > 0 })

        // Disk: a line per engine and mode, with positive time per request.
        let disk = try CSV.load(output + "/disk.csv")
        #expect(Set(disk.rows.compactMap { $0["mode"] }) == ["run", "pair"])
        for row in disk.rows { #expect((Double(row["seconds_per_request"] ?? "") ?? 0) > 0, "\(row)") }

        // Failover: each trial went live; SIGKILL is noticed at once, SIGSTOP after the timeout.
        let trials = try CSV.load(output + "/failover-trials.csv")
        #expect(trials.rows.count >= 2)
        // Every guest that runs long enough to be killed in the middle, not only ticks.
        for guest in ["ticks", "cpu", "disk", "echo"] {
            #expect(trials.rows.contains { $0["guest"] == guest && $0["failure"] == "SIGKILL" }, "no SIGKILL trial of \(guest)")
        }
        for row in trials.rows {
            #expect(row["ok"] == "1", "trial \(row)")
            let live = try #require(Double(row["live_s"] ?? ""), "no live time in \(row)")
            let timeout = Double(row["timeout_ms"] ?? "") ?? 0
            if row["failure"] == "SIGSTOP" {
                #expect(live > timeout / 1000 * 0.5, "a frozen primary was noticed before its timeout: \(row)")
            } else {
                // Noticed at once (the kernel closes the dead primary's connection); going live
                // also runs what the backup had not executed, which a loaded host can stretch.
                let detected = try #require(Double(row["detection_s"] ?? ""), "no detection time in \(row)")
                #expect(detected < timeout / 1000, "a killed primary was not noticed at once: \(row)")
            }
        }

        // Re-protection: transfers without and with the guest's memory writer, per engine; the
        // writer's runs carry its region (24 MiB at 32 MiB of RAM: 6144 pages).
        let transfers = try CSV.load(output + "/reprotect.csv")
        for engine in hasKVM ? ["emulator", "KVM"] : ["emulator"] {
            let rows = transfers.rows.filter { $0["engine"] == engine }
            #expect(rows.contains { $0["write_pages_per_second"] == "0" }, "no transfer without the writer on \(engine)")
            let writing = rows.filter { (Int($0["write_pages_per_second"] ?? "") ?? 0) > 0 }
            #expect(!writing.isEmpty, "no transfer with the writer on \(engine)")
            for row in writing { #expect((Int(row["pages"] ?? "") ?? 0) >= 6144, "\(row)") }
            for row in rows {
                #expect((Double(row["pause_seconds"] ?? "") ?? 0) > 0 && (Int(row["bytes"] ?? "") ?? 0) > 0, "\(row)")
                #expect((Int(row["rounds"] ?? "") ?? 0) >= 1, "\(row)")
            }
        }

        // Channel traffic from the replicated runs.
        let channel = try CSV.load(output + "/channel.csv")
        #expect(!channel.rows.isEmpty && channel.rows.allSatisfy { (Double($0["bytes_sent_per_epoch"] ?? "") ?? 0) > 0 })

        // The QEMU comparisons ran with the CPU model their probe found, or say why not.
        let probes = json["peerProbes"] as? [[String: Any]] ?? []
        func probe(_ peer: String) -> [String: Any]? { probes.first { $0["peer"] as? String == peer } }
        // The test log says which QEMU model each peer used, and what was skipped and why.
        for line in result.stdout.split(separator: "\n") where line.hasPrefix("- qemu-system") || skipped.contains(String(line.dropFirst(2))) {
            print("BenchCommandTests: \(line.dropFirst(2))")
        }
        for probe in probes {
            let peer = probe["peer"] as? String ?? "?"
            if let why = probe["skipped"] as? String {
                #expect(!why.isEmpty)
                #expect(skipped.contains { $0.contains(peer) && $0.contains(why) }, "\(peer) skipped, not reported: \(skipped)")
            } else {
                let cpu = try #require(probe["cpu"] as? String, "\(peer) has neither a model nor a reason")
                let tried = probe["tried"] as? [[String: Any]] ?? []
                #expect(tried.last?["cpu"] as? String == cpu && tried.last?["ok"] as? Bool == true, "\(probe)")
                #expect(result.stdout.contains("- \(peer): "), "the summary does not say which model \(peer) used")
            }
        }
        if hasQEMUHPPA, let parisc = probe("qemu-system-hppa"), parisc["skipped"] == nil || parisc["skipped"] is NSNull {
            let peers = try CSV.load(output + "/parisc-qemu.csv")
            // Lockstep's engines (the JIT where the host runs it) and both QEMU configurations.
            let engines = Set(peers.rows.compactMap { $0["engine"] })
            #expect(engines.isSuperset(of: ["lockstep run --emulator interpreter", "lockstep run --emulator threaded",
                                            "qemu-system-hppa (TCG)", "qemu-system-hppa -icount shift=0"]), "\(engines)")
            #if arch(x86_64)
            #expect(engines.contains("lockstep run --emulator jit"), "\(engines)")
            #endif
            #expect(peers.rows.allSatisfy { $0["outputs_correct"] == "1" })
        } else {
            #expect(skipped.contains { $0.hasPrefix("parisc-qemu") })
        }
        if hasKVM, Self.which("qemu-system-x86_64") {
            #expect(probe("qemu-system-x86_64 KVM microvm") != nil, "x86-qemu did not probe the microvm machine: \(probes)")
        } else {
            #expect(skipped.contains { $0.hasPrefix("x86-qemu") })
        }
        // The counter clock against single-step ran where this host has both, or says why not.
        if let counter = try? CSV.load(output + "/counter-clock.csv") {
            #expect(!counter.rows.isEmpty && counter.rows.allSatisfy { (Double($0["ratio"] ?? "") ?? 0) > 0 }, "\(counter.rows)")
        } else {
            #expect(skipped.contains { $0.hasPrefix("counter-clock") }, "\(skipped)")
        }

        // Every chart is well-formed SVG with axis labels and data marks.
        let charts = try FileManager.default.contentsOfDirectory(atPath: output).filter { $0.hasSuffix(".svg") }
        for name in ["epochs.svg", "disk.svg", "disk-fit.svg", "failover.svg", "channel.svg"] {
            #expect(charts.contains(name), "\(name) missing from \(charts)")
        }
        for name in charts {
            let data = try Data(contentsOf: URL(fileURLWithPath: output + "/" + name))
            let text = String(decoding: data, as: UTF8.self)
            #expect(Self.isWellFormedXML(data), "\(name) is not well-formed XML")
            #expect(text.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""), "\(name)")
            #expect(text.components(separatedBy: "<text").count > 6, "\(name) has too few labels")
            #expect(text.contains("<polyline") || text.contains("<rect x") || text.contains("<circle"), "\(name) draws no data")
        }
        #expect(try String(contentsOfFile: output + "/epochs.svg", encoding: .utf8).contains("Bressoud &amp; Schneider"))

        // The Markdown summary links its charts and shows the machine.
        let summary = try String(contentsOfFile: output + "/summary.md", encoding: .utf8)
        #expect(summary.contains("### Machine"))
        #expect(summary.contains("![epochs.svg](epochs.svg)"))
        #expect(summary.contains("| Epoch length (instructions) | Paper (HP PA-RISC, 1995) |"))
    }

    @Test(.enabled(if: skipNote(), "needs the PA-RISC guests (scripts/build-guests)"))
    func missingQEMUIsSkippedWithReason() throws {
        let output = Self.outputDirectory("noqemu")
        let result = try Lockstep.run(["bench", "--quick", "--experiments", "parisc-qemu,x86-qemu", "--output", output],
                                      environment: ["PATH": "/nonexistent-bench-path"], timeout: 120)
        try #require(result.status == 0, "\(result.stderr.suffix(2000))")
        #expect(result.stdout.contains("Skipped:"))
        #expect(result.stdout.contains("parisc-qemu: qemu-system-hppa is not installed"))
        let json = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: output + "/results.json"))) as? [String: Any])
        let skipped = json["skipped"] as? [String] ?? []
        #expect(skipped.contains { $0.hasPrefix("parisc-qemu:") && $0.contains("not installed") })
        #expect(skipped.contains { $0.hasPrefix("x86-qemu:") })
        #expect(!FileManager.default.fileExists(atPath: output + "/parisc-qemu.csv"))
        #expect(FileManager.default.fileExists(atPath: output + "/summary.md"))
    }

    /// A QEMU that is installed but cannot boot anything here (as `-cpu host` on some AMD
    /// hosts): the probe finds no model, the peer is skipped with the reason, the bench exits 0.
    @Test(.enabled(if: skipNote(), "needs the PA-RISC guests (scripts/build-guests)"))
    func unrunnableQEMUIsSkippedWithReason() throws {
        let output = Self.outputDirectory("badqemu")
        let result = try Lockstep.run(["bench", "--quick", "--experiments", "parisc-qemu,x86-qemu", "--output", output,
                                       "--qemu-hppa", "/bin/false", "--qemu-x86", "/bin/false"], timeout: 300)
        try #require(result.status == 0, "\(result.stderr.suffix(2000))")
        #expect(result.stdout.contains("parisc-qemu: qemu-system-hppa cannot run here: it does not boot the hello guest: exit status 1"),
                "\(result.stdout)")
        let json = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: output + "/results.json"))) as? [String: Any])
        #expect((json["problems"] as? [String])?.isEmpty == true)
        let skipped = json["skipped"] as? [String] ?? []
        #expect(skipped.contains { $0.hasPrefix("parisc-qemu:") && $0.contains("cannot run here") })
        #expect(!FileManager.default.fileExists(atPath: output + "/parisc-qemu.csv"))
        let probes = json["peerProbes"] as? [[String: Any]] ?? []
        #expect(probes.contains { $0["peer"] as? String == "qemu-system-hppa" && ($0["skipped"] as? String ?? "").contains("exit status 1") })
        if Lockstep.hasKVM {
            #expect(skipped.contains { $0.hasPrefix("x86-qemu: qemu-system-x86_64 KVM microvm cannot run here: no CPU model runs here: host: ") },
                    "\(skipped)")
            let microvm = try #require(probes.first { $0["peer"] as? String == "qemu-system-x86_64 KVM microvm" }, "\(probes)")
            #expect((microvm["tried"] as? [[String: Any]])?.compactMap { $0["cpu"] as? String } == ["host", "max", "qemu64"])
            #expect(!FileManager.default.fileExists(atPath: output + "/x86-qemu.csv"))
        }
    }

    @Test(.enabled(if: skipNote(), "needs the PA-RISC guests (scripts/build-guests)"))
    func missingKVMIsSkippedWithReason() throws {
        let output = Self.outputDirectory("nokvm")
        let result = try Lockstep.run(["bench", "--quick", "--experiments", "x86-qemu,failover", "--output", output],
                                      environment: ["LOCKSTEP_KVM_DEVICE": "/nonexistent/kvm"], timeout: 120)
        try #require(result.status == 0, "\(result.stderr.suffix(2000))")
        #expect(result.stdout.contains("/nonexistent/kvm does not exist"))
        let trials = try CSV.load(output + "/failover-trials.csv")
        #expect(!trials.rows.isEmpty)
        #expect(trials.rows.allSatisfy { $0["engine"] == "emulator" }, "KVM trials ran without KVM")
        let json = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: output + "/results.json"))) as? [String: Any])
        let skipped = json["skipped"] as? [String] ?? []
        #expect(skipped.contains { $0.hasPrefix("x86-qemu:") && $0.contains("/nonexistent/kvm") })
        #expect(skipped.contains { $0.hasPrefix("failover: KVM") })
    }

    @Test func unknownExperimentIsAUsageError() throws {
        let result = try Lockstep.run(["bench", "--experiments", "epochs,warp-drive", "--output", Self.outputDirectory("bad")])
        #expect(result.status == 64)
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        #expect(result.stderr.contains("--experiments"))
    }

    @Test(.enabled(if: skipNote(), "needs the PA-RISC guests (scripts/build-guests)"))
    func documentSectionIsReplacedInPlace() throws {
        let output = Self.outputDirectory("doc")
        let document = Scratch.path("bench-doc-\(UInt32.random(in: 0...UInt32.max)).md")
        let begin = "<!-- lockstep bench: generated section begins (do not edit by hand) -->"
        let end = "<!-- lockstep bench: generated section ends -->"
        try Data("# Title\n\nProse before.\n\n\(begin)\nold results\n\(end)\n\nProse after.\n".utf8)
            .write(to: URL(fileURLWithPath: document))
        let result = try Lockstep.run(["bench", "--quick", "--experiments", "channel", "--output", output, "--doc", document],
                                      timeout: 60)
        try #require(result.status == 0, "\(result.stderr)")
        let text = try String(contentsOfFile: document, encoding: .utf8)
        #expect(text.hasPrefix("# Title\n\nProse before.\n\n\(begin)\n"))
        #expect(text.hasSuffix("\(end)\n\nProse after.\n"))
        #expect(!text.contains("old results"))
        #expect(text.contains("## Results of the last run"))
        #expect(text.components(separatedBy: begin).count == 2)
    }

    static func which(_ name: String) -> Bool {
        (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
            .contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(name)") }
    }

    static func isWellFormedXML(_ data: Data) -> Bool {
        XMLParser(data: data).parse()
    }
}

/// A CSV file as header-keyed rows (RFC 4180 quoting).
struct CSV {
    let header: [String]
    let rows: [[String: String]]

    static func load(_ path: String) throws -> CSV {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var records: [[String]] = []
        var field = "", record: [String] = []
        var quoted = false
        var iterator = Array(text).makeIterator()
        var pending: Character?
        while let ch = pending ?? iterator.next() {
            pending = nil
            if quoted {
                if ch == "\"" {
                    if let next = iterator.next() {
                        if next == "\"" { field.append("\"") } else { quoted = false; pending = next }
                    } else { quoted = false }
                } else { field.append(ch) }
            } else if ch == "\"" {
                quoted = true
            } else if ch == "," {
                record.append(field); field = ""
            } else if ch == "\n" {
                record.append(field); field = ""
                records.append(record); record = []
            } else {
                field.append(ch)
            }
        }
        if !field.isEmpty || !record.isEmpty { record.append(field); records.append(record) }
        let header = try #require(records.first, "\(path) is empty")
        for (i, r) in records.enumerated() {
            #expect(r.count == header.count, "\(path) line \(i + 1) has \(r.count) fields, the header \(header.count)")
        }
        return CSV(header: header, rows: records.dropFirst().map { Dictionary(uniqueKeysWithValues: zip(header, $0)) })
    }
}
