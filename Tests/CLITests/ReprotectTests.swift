import Foundation
import Replication
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Surviving failure after failure (issue 13), with real processes: `lockstep pair` kills the
/// leading replica five times in one run, each time once re-protection finished (a new backup
/// joined the running guest by live state transfer); the run must end with the fault-free
/// output (exactly: the pair's console writes a record a failover repeats once) and disk image. Also with two backups, the
/// primary and one backup killed at the same moment; and joining backups that die at every
/// point of their transfer leave the primary running and ready for the next one.
@Suite(.serialized) struct ReprotectTests {
    /// Guests that run long enough (in real time) for five failovers.
    static func cases(_ arch: String) -> [FailoverCase] {
        [
            FailoverCase(arch: arch, guest: "ticks", cmdline: "ticks=160 hz=20", input: "", usesDisk: false,
                         hostClock: true),
            // Long enough for five kills, each after a re-protection, on a loaded host (6000
            // x86 blocks, 0.8 s alone, once ended after four).
            FailoverCase(arch: arch, guest: "disk", cmdline: arch == "parisc" ? "blocks=300" : "blocks=15000", input: "",
                         usesDisk: true),
            FailoverCase(arch: arch, guest: "echo", cmdline: "",
                         input: (1...30).map { "line number \($0) of the re-protection test\n" }.joined() + "quit\n",
                         usesDisk: false),
        ]
    }

    @Test("five failovers in one run on the emulator", arguments: cases("parisc"))
    func fiveFailoversOnTheEmulator(_ c: FailoverCase) throws { try fiveFailovers(c) }

    @Test("five failovers in one run on KVM", .enabled(if: Lockstep.hasKVM, "needs a usable /dev/kvm: the x86 cases are skipped"),
          arguments: cases("x86"))
    func fiveFailoversOnKVM(_ c: FailoverCase) throws { try fiveFailovers(c) }

    func fiveFailovers(_ c: FailoverCase) throws {
        try #require(c.available, "\(c): the guest is not built (scripts/build-guests)")
        let referenceDisk = try Self.bigDisk(c, "reprotect-reference")
        // Typed a line at a time, as in the replicated run (all at once, echo's UART drops some).
        let reference = try Self.paced(["run"] + c.arguments(disk: referenceDisk), input: c.input, pacedBy: 0.05)
        try #require(reference.status == 0, "the unreplicated run failed: \(reference.stderr)")
        let referenceImage = try referenceDisk.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }

        let disk = try Self.bigDisk(c, "reprotect-pair")
        let stats = Scratch.path("\(c.arch)-\(c.guest)-reprotect.json")
        let run = try Self.pair(["--timeout", "300", "--kill-primary-times", "5", "--kill-primary-after", "0.2",
                                 "--stats-json", stats] + c.arguments(disk: disk), input: c.input, pacedBy: 0.4)
        #expect(!run.timedOut, "the run hung: \(run.stderr)")
        #expect(run.status == reference.status, "status \(run.status): \(run.stderr)")
        let failovers = run.stderr.components(separatedBy: "fault injection: killed the leading replica").count - 1
        #expect(failovers == 5, "\(failovers) kills: \(run.stderr)")
        #expect(run.stderr.components(separatedBy: "protected again after").count - 1 >= 5, "\(run.stderr)")
        #expect(c.comparable(run.stdout) == c.comparable(reference.stdout),
                "output\n\(run.stdout)\ndiffers from\n\(reference.stdout)")
        if let disk { #expect(try Data(contentsOf: URL(fileURLWithPath: disk)) == referenceImage, "disk image differs") }
    }

    @Test("two backups: the primary and a backup killed at the same moment, twice")
    func twoBackupsPrimaryAndBackupKilledTogether() throws {
        let c = Self.cases("parisc")[0]
        try #require(c.available, "\(c): the guest is not built (scripts/build-guests)")
        let reference = try Lockstep.run(["run"] + c.arguments(disk: nil))
        try #require(reference.status == 0, "the unreplicated run failed: \(reference.stderr)")
        let run = try Self.pair(["--backups", "2", "--timeout", "300", "--kill-primary-times", "2",
                                 "--kill-a-backup-too", "--kill-primary-after", "0.2"] + c.arguments(disk: nil), input: "",
                                pacedBy: 0)
        #expect(!run.timedOut, "the run hung: \(run.stderr)")
        #expect(run.status == 0, "status \(run.status): \(run.stderr)")
        #expect(run.stderr.components(separatedBy: "killed the leading replica").count - 1 == 2, "\(run.stderr)")
        #expect(c.comparable(run.stdout) == c.comparable(reference.stdout),
                "output\n\(run.stdout)\ndiffers from\n\(reference.stdout)")
    }

    /// With two backups and the leader killed twice, the backup that loses the arbiter re-joins
    /// the winner itself each time, in the same process (its name stays; `pair` numbers each
    /// process it starts), keeping the console input it read: typed lines arrive before, between
    /// and after the failovers (a loser of the first may win the second, and then types on with
    /// the console it kept), and the output is exactly the fault-free one.
    @Test("two backups: the backup that loses the arbiter re-joins the winner in the same process")
    func losingBackupRejoinsTheWinner() throws {
        let c = FailoverCase(arch: "parisc", guest: "echo", cmdline: "",
                             input: (1...14).map { "line \($0) typed around the failovers\n" }.joined() + "quit\n",
                             usesDisk: false)
        try #require(c.available, "\(c): the guest is not built (scripts/build-guests)")
        let reference = try Self.paced(["run"] + c.arguments(disk: nil), input: c.input, pacedBy: 0.05)
        try #require(reference.status == 0, "the unreplicated run failed: \(reference.stderr)")
        let run = try Self.pair(["--backups", "2", "--timeout", "300", "--kill-primary-times", "2",
                                 "--kill-primary-after", "0.2"] + c.arguments(disk: nil), input: c.input, pacedBy: 0.3)
        #expect(!run.timedOut, "the run hung: \(run.stderr)")
        #expect(run.status == reference.status, "status \(run.status): \(run.stderr)")
        #expect(run.stderr.components(separatedBy: "killed the leading replica").count - 1 == 2, "\(run.stderr)")
        let lines = run.stderr.split(separator: "\n").map(String.init)
        let rejoining = lines.filter { $0.contains("this backup re-joins the winner") }
        #expect(rejoining.count == 2, "\(run.stderr)")
        // "lockstep backupN: ...": the same process then joins the winner and follows it.
        for line in rejoining {
            guard let name = line.split(separator: ":").first else { continue }
            let after = lines.drop { $0 != line }
            #expect(after.contains { $0.hasPrefix(name + ":") && $0.contains("joined the running primary") },
                    "\(name) did not follow the winner: \(run.stderr)")
            #expect(!after.contains { $0.hasPrefix(name + ":") && $0.contains("lost the arbiter") }, "\(run.stderr)")
        }
        #expect(c.comparable(run.stdout) == c.comparable(reference.stdout),
                "output\n\(run.stdout)\ndiffers from\n\(reference.stdout)")
    }

    /// A primary whose boot backup is gone runs alone; backups that join it are killed at
    /// moments spread over their handshake, transfer and first epochs; the primary runs on
    /// unharmed each time and takes the next one, and the last one follows it to the end.
    @Test("a joining backup that dies at any point of its transfer leaves the primary running")
    func joinersDyingAtEveryPoint() throws {
        let c = FailoverCase(arch: "parisc", guest: "ticks", cmdline: "ticks=140 hz=20", input: "", usesDisk: false,
                             hostClock: true)
        try #require(c.available, "\(c): the guest is not built (scripts/build-guests)")
        let lockstep = try #require(Lockstep.executable)
        let reference = try Lockstep.run(["run"] + c.arguments(disk: nil))
        try #require(reference.status == 0)
        let key = Scratch.path("reprotect-key")
        try? FileManager.default.removeItem(atPath: key)
        #expect(try Lockstep.run(["keygen", key]).status == 0)
        let primaryStats = Scratch.path("reprotect-primary.json")
        let common = ["--key-file", key, "--timeout", "300", "--no-status-line"]
        let (primary, endpoint) = try startPrimary(lockstep, portFile: Scratch.path("reprotect-port"),
                                                   ["--stats-json", primaryStats] + common + c.arguments(disk: nil))
        // The boot backup, killed once it follows: the primary goes on alone.
        let boot = try Lockstep.start(lockstep, ["backup", "--connect", endpoint] + common + c.arguments(disk: nil))
        try Self.waitFor(primaryStats) { $0.state == .replicating && $0.epoch > 2 }
        kill(boot.process.processIdentifier, SIGKILL)
        try Self.waitFor(primaryStats) { $0.state == .alone }

        var statesSeen: Set<ReplicaState> = []
        for delay in [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.45, 0.7] {
            let stats = Scratch.path("reprotect-joiner.json")
            try? FileManager.default.removeItem(atPath: stats)
            let joiner = try Lockstep.start(lockstep, ["backup", "--connect", endpoint, "--join", "--stats-json", stats]
                                            + common + c.arguments(disk: nil))
            Thread.sleep(forTimeInterval: delay)
            if let state = ReplicationStatus.Snapshot.load(stats)?.state { statesSeen.insert(state) }
            kill(joiner.process.processIdentifier, SIGKILL)
            joiner.process.waitUntilExit()
            #expect(primary.process.isRunning, "the primary stopped after a joiner died \(delay) s after it started")
            // The primary is back to running alone (or never left it) before the next one.
            try Self.waitFor(primaryStats) { $0.state == .alone || $0.state == .finished }
        }
        // The last one joins and follows to the end.
        let last = try Lockstep.start(lockstep, ["backup", "--connect", endpoint, "--join"] + common + c.arguments(disk: nil))
        primary.process.waitUntilExit()
        last.process.waitUntilExit()
        let output = primary.stdout.text()
        #expect(primary.process.terminationStatus == 0, "\(primary.stderr.text())")
        #expect(c.comparable(output) == c.comparable(reference.stdout), "output\n\(output)\ndiffers from\n\(reference.stdout)")
        #expect(last.process.terminationStatus == 0, "the last joiner: \(last.stderr.text())")
        let final = try #require(ReplicationStatus.Snapshot.load(primaryStats))
        #expect(final.transfers.count >= 1, "no completed transfer recorded")
        print("joiner states seen when killed: \(statesSeen.map(\.rawValue).sorted()); transfers completed: \(final.transfers.count)")
    }

    /// The ticks guest's memory writer (`dirty=P span=M`, what the bench's write-rate sweep
    /// runs): it runs, replicates, and a backup joins it while it writes; the transfer carries
    /// its region and records where the pause went.
    @Test("the memory writer replicates and a backup joins it while it writes", arguments: ["parisc", "x86"])
    func memoryWriterJoin(_ arch: String) throws {
        if arch == "x86" && !Lockstep.hasKVM {
            try Test.cancel("the x86 case needs a usable /dev/kvm (lockstep doctor fails here)")
        }
        let c = FailoverCase(arch: arch, guest: "ticks", cmdline: "ticks=80 hz=20 dirty=100 span=16", input: "",
                             usesDisk: false, hostClock: true, extraArguments: ["--memory", "32M"])
        try #require(c.available, "\(c): the guest is not built (scripts/build-guests)")
        let reference = try Lockstep.run(["run"] + c.arguments(disk: nil))
        try #require(reference.status == 0, "the unreplicated run failed: \(reference.stderr)")
        #expect(reference.stdout.contains("ticks dirty=100 span=16\n"), "\(reference.stdout)")
        let stats = Scratch.path("\(arch)-writer-reprotect.json")
        let run = try Self.pair(["--timeout", "300", "--kill-primary-times", "1", "--kill-primary-after", "0.2",
                                 "--stats-json", stats] + c.arguments(disk: nil), input: "", pacedBy: 0)
        #expect(!run.timedOut, "the run hung: \(run.stderr)")
        #expect(run.status == 0, "status \(run.status): \(run.stderr)")
        #expect(c.comparable(run.stdout) == c.comparable(reference.stdout),
                "output\n\(run.stdout)\ndiffers from\n\(reference.stdout)")
        let data = try #require(FileManager.default.contents(atPath: stats), "no statistics")
        let document = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let transfers = (document["replicas"] as? [[String: Any]] ?? []).compactMap { replica in
            (replica["stats"] as? [String: Any]).flatMap { try? JSONSerialization.data(withJSONObject: $0) }
                .flatMap { try? JSONDecoder().decode(ReplicationStatus.Snapshot.self, from: $0) }
        }.flatMap(\.transfers)
        // The region is 16 MiB, 4096 pages, every one written before the transfer began.
        #expect(transfers.count == 1 && transfers.allSatisfy { $0.pages >= 4096 && $0.pauseSteps != nil },
                "transfers: \(transfers)")
    }

    // MARK: Support

    /// A fresh disk image large enough for the case's blocks.
    static func bigDisk(_ c: FailoverCase, _ name: String) throws -> String? {
        guard let path = try c.freshDisk(name) else { return nil }
        let blocks = c.cmdline.split(separator: " ").compactMap { $0.hasPrefix("blocks=") ? Int($0.dropFirst(7)) : nil }.first ?? 64
        try Data(count: max(blocks, 64) * 512).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// `lockstep pair ARGS`, its input typed one line every `interval` seconds (0: all at once).
    static func pair(_ arguments: [String], input: String, pacedBy interval: Double) throws -> Lockstep.Result {
        try paced(["pair", "--no-status-line"] + arguments, input: input, pacedBy: interval)
    }

    /// `lockstep ARGS`, its input typed one line every `interval` seconds (0: all at once).
    static func paced(_ arguments: [String], input: String, pacedBy interval: Double) throws -> Lockstep.Result {
        let executable = try #require(Lockstep.executable)
        let started = try Lockstep.start(executable, arguments,
                                         input: interval > 0 ? "" : input, keepInputOpen: interval > 0)
        if let handle = started.input {
            let lines = input.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { $0 + "\n" }
            Thread.detachNewThread {
                for line in lines {
                    Thread.sleep(forTimeInterval: interval)
                    try? handle.write(contentsOf: Data(line.utf8))
                }
                try? handle.close()
            }
        }
        let deadline = Date(timeIntervalSinceNow: 120)
        while started.process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        let timedOut = started.process.isRunning
        if timedOut { started.process.terminate() }
        started.process.waitUntilExit()
        return Lockstep.Result(status: started.process.terminationStatus, stdout: started.stdout.text(),
                               stderr: started.stderr.text(), timedOut: timedOut,
                               killedBySignal: started.process.terminationReason == .uncaughtSignal)
    }

    static func waitFor(_ stats: String, timeout: Double = 20,
                        _ condition: (ReplicationStatus.Snapshot) -> Bool) throws
    {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while Date() < deadline {
            if let snapshot = ReplicationStatus.Snapshot.load(stats), condition(snapshot) { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        Issue.record("\(stats): the condition did not hold within \(timeout) s (\(String(describing: ReplicationStatus.Snapshot.load(stats)?.state)))")
        throw CancellationError()
    }
}

/// Starts `lockstep primary --listen 127.0.0.1:0 --port-file PORTFILE ARGUMENTS` and waits
/// (up to 10 s) for the port it writes; returns the process and the address to connect to.
func startPrimary(_ lockstep: URL, portFile: String, _ arguments: [String]) throws -> (Lockstep.Started, String) {
    try? FileManager.default.removeItem(atPath: portFile)
    let primary = try Lockstep.start(lockstep, ["primary", "--listen", "127.0.0.1:0", "--port-file", portFile] + arguments)
    var port: Int?
    for _ in 0..<1000 where port == nil {
        if let text = try? String(contentsOfFile: portFile, encoding: .utf8), let first = text.split(separator: "\n").first {
            port = Int(first)
        }
        if port == nil { Thread.sleep(forTimeInterval: 0.01) }
    }
    return (primary, "127.0.0.1:\(try #require(port, "the primary wrote no port"))")
}
