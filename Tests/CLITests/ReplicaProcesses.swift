import Foundation
import Replication
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A primary and a backup started as separate `lockstep` processes by the test itself, so the
/// test can signal either one.
final class ReplicaProcesses {
    let primary: Process
    let backup: Process
    let primaryOutput: DataCollector
    let backupOutput: DataCollector
    let primaryErrors: DataCollector
    let backupErrors: DataCollector
    let backupStats: String

    /// With a `network`, the primary runs on its host A and the backup on host B; `route` may
    /// give the backup another way to the primary's HOST:PORT (a proxy).
    init(arguments: [String], input: String, timeoutMilliseconds: Int, network: TwoHostNetwork? = nil,
         route: ((String) throws -> String)? = nil) throws
    {
        let executable = try #require(Lockstep.executable, "lockstep is not built")
        let portFile = Scratch.path("port-\(UInt32.random(in: 0...UInt32.max))")
        backupStats = Scratch.path("backup-stats-\(UInt32.random(in: 0...UInt32.max)).json")
        func start(_ args: [String], on host: TwoHostNetwork.Host) throws -> (Process, DataCollector, DataCollector) {
            let started = try network?.start(on: host, executable, args, input: input)
                ?? Lockstep.start(executable, args, input: input)
            return (started.process, started.stdout, started.stderr)
        }
        let keyFile = Scratch.path("key-\(UInt32.random(in: 0...UInt32.max))")
        try ReplicationKey.generate().write(to: keyFile)
        let primaryHost = network == nil ? "127.0.0.1" : TwoHostNetwork.address(.a)
        let timeout = ["--timeout", "\(timeoutMilliseconds)", "--no-status-line", "--key-file", keyFile]
        (primary, primaryOutput, primaryErrors) = try start(
            ["primary", "--listen", "\(primaryHost):0", "--port-file", portFile] + timeout + arguments, on: .a)
        var port: String?
        let deadline = Date(timeIntervalSinceNow: 30)
        while port == nil && Date() < deadline && primary.isRunning {
            port = (try? String(contentsOfFile: portFile, encoding: .utf8))?.split(separator: "\n").first.map(String.init)
            Thread.sleep(forTimeInterval: 0.01)
        }
        let listening = try #require(port, "the primary did not start listening")
        let address = try route?("\(primaryHost):\(listening)") ?? "\(primaryHost):\(listening)"
        (backup, backupOutput, backupErrors) = try start(
            ["backup", "--connect", address, "--stats-json", backupStats] + timeout + arguments, on: .b)
    }

    /// Waits for both to exit (at most `seconds`), killing stragglers.
    func wait(seconds: TimeInterval = 120) {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while (primary.isRunning || backup.isRunning) && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        for p in [primary, backup] where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        primary.waitUntilExit()
        backup.waitUntilExit()
    }

    /// Waits until the backup is replicating (or gone).
    func waitUntilReplicating() {
        let deadline = Date(timeIntervalSinceNow: 30)
        while backup.isRunning && backupState != .replaying && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.005)
        }
    }

    /// The backup's state in its statistics file.
    var backupState: ReplicaState? { ReplicationStatus.Snapshot.load(backupStats)?.state }
}

/// The other single failures: the backup dies, or the primary freezes past the timeout. The
/// guests run on the host clock here, so the run lasts long enough to fail in the middle.
@Suite(.serialized) struct ReplicaFailureTests {
    static let cases: [FailoverCase] = ["parisc", "x86"].flatMap { arch in
        [
            FailoverCase(arch: arch, guest: "ticks", cmdline: "ticks=60", input: "", usesDisk: false, hostClock: true),
            FailoverCase(arch: arch, guest: "disk", cmdline: "blocks=16", input: "", usesDisk: true),
        ]
    }

    @Test("backup killed, the primary finishes alone on the emulator", arguments: cases.filter { $0.arch == "parisc" })
    func backupKilledPrimaryFinishesAloneOnTheEmulator(_ c: FailoverCase) throws { try backupKilledPrimaryFinishesAlone(c) }

    @Test("backup killed, the primary finishes alone on KVM", .enabled(if: Lockstep.hasKVM, "needs a usable /dev/kvm: the x86 cases are skipped"),
          arguments: cases.filter { $0.arch == "x86" })
    func backupKilledPrimaryFinishesAloneOnKVM(_ c: FailoverCase) throws { try backupKilledPrimaryFinishesAlone(c) }

    func backupKilledPrimaryFinishesAlone(_ c: FailoverCase) throws {
        try #require(c.available, "\(c): the guest is not built (scripts/build-guests)")
        let reference = try Lockstep.run(["run"] + c.arguments(disk: try c.freshDisk("ref-b")), input: c.input)
        try #require(reference.status == 0, "the unreplicated run failed: \(reference.stderr)")
        let disk = try c.freshDisk("backup-killed")
        let pair = try ReplicaProcesses(arguments: c.arguments(disk: disk), input: c.input, timeoutMilliseconds: 500)
        // Let replication get going, then kill the backup.
        pair.waitUntilReplicating()
        Thread.sleep(forTimeInterval: 0.1)
        kill(pair.backup.processIdentifier, SIGKILL)
        pair.wait()
        #expect(pair.primary.terminationStatus == reference.status, "primary: \(pair.primaryErrors.text()) backup: \(pair.backupErrors.text())")
        #expect(c.comparable(pair.primaryOutput.text()) == c.comparable(reference.stdout))
    }

    /// Under the exits clock the x86 cpu guest's whole computation is one epoch (it makes no
    /// exit): before the backup ran epochs alongside the primary, a killed primary left it to
    /// replay up to that whole epoch before going live (a median 1.48 s in issue 16).
    @Test("primary killed inside a long x86 epoch: the backup is live at once and finishes the run",
          .enabled(if: Lockstep.hasKVM, "needs a usable /dev/kvm"))
    func killedInsideALongEpoch() throws {
        let c = FailoverCase(arch: "x86", guest: "cpu", cmdline: "rounds=5000", input: "", usesDisk: false,
                             extraArguments: ["--epoch-clock", "exits"])
        try #require(c.available, "\(c): the guest is not built (scripts/build-guests)")
        let reference = try Lockstep.run(["run"] + c.arguments(disk: nil), input: "")
        try #require(reference.status == 0, "the unreplicated run failed: \(reference.stderr)")
        let pair = try ReplicaProcesses(arguments: c.arguments(disk: nil), input: "", timeoutMilliseconds: 1000)
        pair.waitUntilReplicating()
        Thread.sleep(forTimeInterval: 0.3)
        let killedAt = Date().timeIntervalSince1970
        kill(pair.primary.processIdentifier, SIGKILL)
        pair.wait()
        let stats = try #require(ReplicationStatus.Snapshot.load(pair.backupStats), "no backup statistics: \(pair.backupErrors.text())")
        let live = try #require(stats.stateEnteredAt[.live], "the backup never went live: \(pair.backupErrors.text())")
        #expect(pair.backup.terminationStatus == 0, "\(pair.backupErrors.text())")
        #expect(pair.backupOutput.text() == reference.stdout)
        // The computation lasts about 1.7 s here: replaying it would take far longer than this.
        let seconds = live - killedAt
        #expect(seconds < 0.4, "live \(seconds) s after the kill")
        print("ReplicaFailureTests: x86 cpu, exits clock: live \(Int(seconds * 1000)) ms after the kill, \(stats.epoch) epochs")
    }

    @Test("frozen primary wakes to find it lost on the emulator", arguments: cases.filter { $0.arch == "parisc" })
    func frozenPrimaryWakesToFindItLostOnTheEmulator(_ c: FailoverCase) throws { try frozenPrimaryWakesToFindItLost(c) }

    @Test("frozen primary wakes to find it lost on KVM", .enabled(if: Lockstep.hasKVM, "needs a usable /dev/kvm: the x86 cases are skipped"),
          arguments: cases.filter { $0.arch == "x86" })
    func frozenPrimaryWakesToFindItLostOnKVM(_ c: FailoverCase) throws { try frozenPrimaryWakesToFindItLost(c) }

    func frozenPrimaryWakesToFindItLost(_ c: FailoverCase) throws {
        try #require(c.available, "\(c): the guest is not built (scripts/build-guests)")
        let referenceDisk = try c.freshDisk("ref-s")
        let reference = try Lockstep.run(["run"] + c.arguments(disk: referenceDisk), input: c.input)
        try #require(reference.status == 0, "the unreplicated run failed: \(reference.stderr)")
        let referenceImage = try referenceDisk.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
        let disk = try c.freshDisk("frozen")
        let pair = try ReplicaProcesses(arguments: c.arguments(disk: disk), input: c.input, timeoutMilliseconds: 1000)
        pair.waitUntilReplicating()
        Thread.sleep(forTimeInterval: 0.1)
        kill(pair.primary.processIdentifier, SIGSTOP)
        // Past the timeout, the backup goes live (or finishes the run if it already had the whole log).
        let deadline = Date(timeIntervalSinceNow: 30)
        while pair.backup.isRunning && pair.backupState != .live && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.01)
        }
        // The primary cannot write while it is stopped, but what it wrote before may still be in
        // its pipe, not yet read by the collector: let the collector drain it, so that only what
        // the primary writes after SIGCONT counts as "after".
        var primaryBefore = pair.primaryOutput.snapshot()
        while true {
            Thread.sleep(forTimeInterval: 0.3)
            let now = pair.primaryOutput.snapshot()
            if now.count == primaryBefore.count { break }
            primaryBefore = now
        }
        kill(pair.primary.processIdentifier, SIGCONT)
        pair.wait()
        let primaryAfter = String(pair.primaryOutput.text().dropFirst(primaryBefore.count))
        let backupOutput = pair.backupOutput.text()
        if pair.backupState == .finishedLive || !backupOutput.isEmpty {
            // The backup went live: the primary must not have produced anything after waking.
            #expect(primaryAfter.isEmpty, "the woken primary printed: \(primaryAfter)")
            #expect(pair.primary.terminationStatus == 78, "primary: \(pair.primaryErrors.text()) backup: \(pair.backupErrors.text())")
            #expect(pair.backup.terminationStatus == reference.status)
            #expect(OutputComparison.equalUpToOneRepeatedRecord(c.comparable(primaryBefore + backupOutput),
                                                                c.comparable(reference.stdout)),
                    "output \(primaryBefore + backupOutput) differs from \(reference.stdout)")
            // Nor written to the disk: the image ends as the fault-free run's.
            if let disk {
                #expect(try Data(contentsOf: URL(fileURLWithPath: disk)) == referenceImage, "the disk image differs")
            }
        } else {
            // The run ended before the freeze mattered: the primary finished it.
            #expect(pair.primary.terminationStatus == reference.status, "primary: \(pair.primaryErrors.text()) backup: \(pair.backupErrors.text()) state \(pair.backupState.map { "\($0)" } ?? "none")")
            #expect(c.comparable(pair.primaryOutput.text()) == c.comparable(reference.stdout))
        }
    }
}
