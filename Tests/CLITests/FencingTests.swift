import Foundation
import Hypervisor
import Replication
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Issue 13's split-brain gap, with real processes: a primary with two backups; one backup is
/// frozen (SIGSTOP) until the primary drops it for its silence, and the primary goes on with
/// the other, releasing outputs the frozen one never saw. Then the primary is killed and the
/// frozen backup resumed: it finds the connection ended and claims the arbiter, which refuses
/// it (the primary recorded a later membership generation); the member goes live and finishes
/// the run with the fault-free output. With the file arbiter and with etcd.
@Suite(.serialized) struct FencingTests {
    @Test("a backup the primary dropped cannot go live later; the member does", arguments: ["file", "etcd"])
    func droppedBackupIsFenced(_ backend: String) throws {
        if backend == "etcd" { try #require(EtcdServer.binary != nil, "\(EtcdServer.unavailableReason ?? "")") }
        let c = FailoverCase(arch: "parisc", guest: "ticks", cmdline: "ticks=60 hz=20", input: "", usesDisk: false,
                             hostClock: true)
        try #require(c.available, "\(c): the guest is not built (scripts/build-guests)")
        let lockstep = try #require(Lockstep.executable)
        let reference = try Lockstep.run(["run"] + c.arguments(disk: nil))
        try #require(reference.status == 0)
        let etcd = backend == "etcd" ? try EtcdServer() : nil
        defer { etcd?.shutDown() }
        let key = Scratch.path("fencing-key-\(backend)")
        try? FileManager.default.removeItem(atPath: key)
        #expect(try Lockstep.run(["keygen", key]).status == 0)
        let primaryStats = Scratch.path("fencing-primary-\(backend).json")
        try? FileManager.default.removeItem(atPath: primaryStats)
        let arbiter = etcd.map { ["--arbiter", "etcd://\($0.address)/fencing"] } ?? []
        let common = ["--key-file", key, "--timeout", "300", "--no-status-line"] + arbiter
        let (primary, endpoint) = try startPrimary(lockstep, portFile: Scratch.path("fencing-port-\(backend)"),
                                                   ["--backups", "2", "--stats-json", primaryStats] + common + c.arguments(disk: nil))
        let member = try Lockstep.start(lockstep, ["backup", "--connect", endpoint] + common + c.arguments(disk: nil))
        let dropped = try Lockstep.start(lockstep, ["backup", "--connect", endpoint] + common + c.arguments(disk: nil))
        try ReprotectTests.waitFor(primaryStats) { $0.state == .replicating && $0.backups == 2 && $0.epoch > 5 }
        kill(dropped.process.processIdentifier, SIGSTOP)
        // The primary drops it, records the new generation, and releases outputs without it.
        let deadline = Date(timeIntervalSinceNow: 20)
        while !primary.stderr.text().contains("dropped the backup"), Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        #expect(primary.stderr.text().contains("dropped the backup"), "\(primary.stderr.text())")
        Thread.sleep(forTimeInterval: 0.3)
        kill(primary.process.processIdentifier, SIGKILL)
        kill(dropped.process.processIdentifier, SIGCONT)
        primary.process.waitUntilExit()
        member.process.waitUntilExit()
        dropped.process.waitUntilExit()
        let droppedLog = dropped.stderr.text()
        #expect(dropped.process.terminationStatus == ExitStatus.lostArbiter, "the dropped backup: \(droppedLog)")
        #expect(droppedLog.contains("taking over"), "the dropped backup never claimed: the test proves nothing: \(droppedLog)")
        #expect(droppedLog.contains("membership generation 1"), "\(droppedLog)")
        #expect(dropped.stdout.text().isEmpty, "the dropped backup released output")
        #expect(member.process.terminationStatus == 0, "the member: \(member.stderr.text())")
        // The primary was killed mid-run: the rest of the output is the member's, gone live.
        let output = primary.stdout.text() + member.stdout.text()
        #expect(OutputComparison.equalUpToOneRepeatedLine(c.comparable(output), c.comparable(reference.stdout)),
                "output\n\(output)\ndiffers from\n\(reference.stdout)")
    }
}
