import Foundation
import Replication
import Hypervisor
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Issue 12 with real processes on one host: the handshake's proof that both replicas share the
/// arbiter and the disk image, the backup that runs the guest itself when its primary died
/// before it joined, and `lockstep pair` leaving nothing behind in etcd.
@Suite(.serialized) struct SharingTests {
    static let disk = FailoverCase(arch: "parisc", guest: "disk", cmdline: "blocks=16", input: "", usesDisk: true)
    let bad = BadInputTests()

    func directory(_ name: String) throws -> String {
        let path = Scratch.path("sharing-\(name)-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Starts `lockstep primary` for `c`; returns it, its port and its session (from the port file).
    func startPrimary(_ c: FailoverCase, key: String, arguments: [String]) throws -> (Lockstep.Started, Int, String) {
        let executable = try #require(Lockstep.executable)
        let portFile = Scratch.path("port-\(UInt32.random(in: 0...UInt32.max))")
        let started = try Lockstep.start(executable, ["primary", "--listen", "127.0.0.1:0", "--port-file", portFile,
                                                      "--key-file", key, "--no-status-line"] + arguments)
        let deadline = Date(timeIntervalSinceNow: 30)
        while Date() < deadline && started.process.isRunning {
            let lines = ((try? String(contentsOfFile: portFile, encoding: .utf8)) ?? "").split(separator: "\n")
            if lines.count >= 3, let port = Int(lines[0]) { return (started, port, String(lines[2])) }
            Thread.sleep(forTimeInterval: 0.01)
        }
        Issue.record("the primary did not start listening: \(started.stderr.snapshot())")
        throw CancellationError()
    }

    func backup(port: Int, key: String, arguments: [String]) throws -> Lockstep.Result {
        try Lockstep.run(["backup", "--connect", "127.0.0.1:\(port)", "--key-file", key, "--no-status-line",
                          "--connect-timeout", "10"] + arguments)
    }

    /// Each replica given its own arbiter directory: the backup refuses at start with one line
    /// naming the arbiter, the primary logs the refusal and goes on waiting (it never started).
    @Test func separateArbiterDirectoriesAreRefusedAtStart() throws {
        let c = Self.disk
        try #require(c.available, "\(c): the guest is not built (scripts/build-guests)")
        let key = try Replicas.keyFile()
        let (a, b) = (try directory("a"), try directory("b"))
        let disk = try #require(try c.freshDisk("separate-arbiters"))
        let (primary, port, _) = try startPrimary(c, key: key, arguments: ["--arbiter-dir", a] + c.arguments(disk: disk))
        defer { Replicas.wait(primary.process, seconds: 0) }
        let refused = try backup(port: port, key: key, arguments: ["--arbiter-dir", b] + c.arguments(disk: disk))
        bad.expectOneLine(refused, status: 76, mentioning: ["the arbiter is not shared", b])
        let deadline = Date(timeIntervalSinceNow: 10)
        while !primary.stderr.snapshot().contains("the arbiter is not shared") && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.02)
        }
        #expect(primary.stderr.snapshot().contains("the peer refused: the arbiter is not shared"), "\(primary.stderr.snapshot())")
        #expect(primary.process.isRunning, "the primary waits on for a backup that shares its arbiter")
        #expect(primary.stdout.snapshot().isEmpty, "the primary never started the guest")
    }

    /// Each replica given its own copy of the disk image: refused at start, naming the image.
    @Test func separateDiskCopiesAreRefusedAtStart() throws {
        let c = Self.disk
        try #require(c.available, "\(c): the guest is not built (scripts/build-guests)")
        let key = try Replicas.keyFile()
        let arbiter = try directory("shared")
        let (one, copy) = (try #require(try c.freshDisk("copy-1")), try #require(try c.freshDisk("copy-2")))
        let (primary, port, _) = try startPrimary(c, key: key, arguments: ["--arbiter-dir", arbiter] + c.arguments(disk: one))
        defer { Replicas.wait(primary.process, seconds: 0) }
        let refused = try backup(port: port, key: key, arguments: ["--arbiter-dir", arbiter] + c.arguments(disk: copy))
        bad.expectOneLine(refused, status: 76, mentioning: ["the disk image is not shared", copy])
        #expect(primary.process.isRunning)
        #expect(primary.stdout.snapshot().isEmpty)
    }

    /// The primary dies before its backup joined: the backup, given the session, holds the
    /// arbiter and runs the guest itself; the run ends as the fault-free one did.
    @Test(arguments: ["file", "etcd"])
    func aPrimaryThatDiesBeforeItsBackupJoinedLeavesTheRunToTheBackup(_ backend: String) throws {
        let c = Self.disk
        try #require(c.available, "\(c): the guest is not built (scripts/build-guests)")
        if backend == "etcd" {
            try #require(EtcdServer.binary != nil, "\(EtcdServer.unavailableReason ?? "")")
        }
        let referenceDisk = try #require(try c.freshDisk("prejoin-reference"))
        let reference = try Lockstep.run(["run"] + c.arguments(disk: referenceDisk))
        try #require(reference.status == 0, "the unreplicated run failed: \(reference.stderr)")
        let etcd = backend == "etcd" ? try EtcdServer() : nil
        defer { etcd?.shutDown() }
        let arbiter = try etcd.map { ["--arbiter", "etcd://\($0.address)/prejoin"] } ?? ["--arbiter-dir", try directory("prejoin")]
        let key = try Replicas.keyFile()
        let disk = try #require(try c.freshDisk("prejoin"))
        let (primary, port, session) = try startPrimary(c, key: key, arguments: arbiter + c.arguments(disk: disk))
        kill(primary.process.processIdentifier, SIGKILL)
        primary.process.waitUntilExit()
        let run = try backup(port: port, key: key, arguments: ["--session", session, "--timeout", "500"] + arbiter
                             + c.arguments(disk: disk))
        #expect(run.status == reference.status, "\(run.stderr)")
        #expect(run.stderr.contains("before this backup joined"), "\(run.stderr)")
        #expect(run.stdout == reference.stdout)
        #expect(FileManager.default.contents(atPath: disk) == FileManager.default.contents(atPath: referenceDisk))
    }

    /// Without the session, a backup cannot know its primary's arbiter: it gives up after
    /// --connect-timeout as before, with one line.
    @Test func aBackupWithoutTheSessionDoesNotRunAlone() throws {
        let c = Self.disk
        try #require(c.available, "\(c): the guest is not built (scripts/build-guests)")
        let key = try Replicas.keyFile()
        let arbiter = try directory("nosession")
        let disk = try #require(try c.freshDisk("nosession"))
        let (primary, port, _) = try startPrimary(c, key: key, arguments: ["--arbiter-dir", arbiter] + c.arguments(disk: disk))
        kill(primary.process.processIdentifier, SIGKILL)
        primary.process.waitUntilExit()
        let run = try Lockstep.run(["backup", "--connect", "127.0.0.1:\(port)", "--key-file", key, "--no-status-line",
                                    "--connect-timeout", "1", "--quiet", "--arbiter-dir", arbiter] + c.arguments(disk: disk))
        // --quiet: only the failure itself (not "waiting for the primary ...").
        bad.expectOneLine(run, status: ExitStatus.unavailable, mentioning: ["cannot reach the primary"])
        #expect(run.stdout.isEmpty)
    }

    /// `lockstep pair` with etcd removes the session's keys once both replicas exited, after a
    /// failover as after a fault-free run.
    @Test(.enabled(if: EtcdServer.binary != nil, "\(EtcdServer.unavailableReason ?? "")"))
    func pairLeavesNoKeysInEtcd() throws {
        let c = Self.disk
        try #require(c.available, "\(c): the guest is not built (scripts/build-guests)")
        let etcd = try EtcdServer()
        defer { etcd.shutDown() }
        for kill in [[], ["--kill-primary-at-epoch", "3:performed"]] {
            let disk = try #require(try c.freshDisk("pair-etcd"))
            let run = try Lockstep.run(["pair", "--arbiter", "etcd://\(etcd.address)/clean"] + kill + c.arguments(disk: disk))
            #expect(run.status == 0, "\(run.stderr)")
            let keys = try Lockstep.runProcess(URL(fileURLWithPath: "/usr/bin/etcdctl"),
                                               ["--endpoints", etcd.address, "get", "--prefix", "/clean", "--keys-only"],
                                               environment: ["ETCDCTL_API": "3"])
            #expect(keys.status == 0, "\(keys.stderr)")
            #expect(keys.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "left in etcd: \(keys.stdout)")
        }
    }
}
