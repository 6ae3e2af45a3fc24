import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The arbiter, disk-cache and image-lock options as a user meets them: one line for bad
/// values, a refused image in use, and a failover decided by a real etcd.
@Suite struct HostStorageCLITests {
    let bad = BadInputTests()

    @Test(arguments: [
        (["--arbiter", "etcd://nowhere"], "missing :PORT"),
        (["--arbiter", "/shared/dir"], "expected file:DIR or etcd://HOST:PORT[/PREFIX]"),
        (["--arbiter", "file:/a", "--arbiter-dir", "/b"], "give one of them"),
    ])
    func badArbiterOptionsAreOneLine(_ arguments: [String], _ reason: String) throws {
        for command in [["pair"], ["primary", "--listen", "127.0.0.1:0"], ["backup", "--connect", "127.0.0.1:9"]] {
            bad.expectOneLine(try Lockstep.run(command + arguments + ["/nonexistent"]), status: 64, mentioning: [reason])
        }
    }

    @Test func anEtcdThatDoesNotAnswerIsFoundAtStart() throws {
        try #require(Lockstep.hasGuest("parisc", "hello"), "guests are not built: run scripts/build-guests")
        bad.expectOneLine(try Lockstep.run(["primary", "--listen", "127.0.0.1:0", "--arbiter", "etcd://127.0.0.1:1",
                                            Lockstep.guest("parisc", "hello")]),
                          status: 68, mentioning: ["cannot reach the arbiter at etcd://127.0.0.1:1/lockstep"])
    }

    @Test(arguments: ["none", "directsync", "sometimes"])
    func badDiskCacheModesAreOneLine(_ mode: String) throws {
        bad.expectOneLine(try Lockstep.run(["run", "--disk-cache", mode, "--disk", "/nonexistent", "/nonexistent"]),
                          status: 64, mentioning: ["--disk-cache \(mode)"])
    }

    /// A second virtual machine on an image in use is refused with one line (68), whether it is a
    /// plain run or a pair's primary; the first is not disturbed.
    @Test func anImageInUseIsRefused() throws {
        try #require(Lockstep.hasGuest("parisc", "echo"), "guests are not built: run scripts/build-guests")
        let executable = try #require(Lockstep.executable)
        let image = Scratch.path("in-use-\(UInt32.random(in: 0...UInt32.max)).img")
        try Data(count: 64 * 512).write(to: URL(fileURLWithPath: image))
        defer { unlink(image) }
        // The echo guest waits for input: a process that holds the image until it is killed.
        let first = try Lockstep.start(executable, ["run", "--disk", image, Lockstep.guest("parisc", "echo")],
                                       input: "", keepInputOpen: true)
        defer {
            kill(first.process.processIdentifier, SIGKILL)
            first.process.waitUntilExit()
        }
        let deadline = Date(timeIntervalSinceNow: 30)
        while !first.stdout.snapshot().contains("echo ready") && first.process.isRunning && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.01)
        }
        try #require(first.process.isRunning, "the first run stopped: \(first.stderr.snapshot())")
        for command in [["run"], ["primary", "--listen", "127.0.0.1:0"]] {
            bad.expectOneLine(try Lockstep.run(command + ["--disk", image, Lockstep.guest("parisc", "disk")]),
                              status: 68, mentioning: [image, "disk image is in use by"])
        }
        #expect(first.process.isRunning)
    }

    /// The pair on one host with the etcd arbiter: the primary killed at several points, the
    /// backup waits for the primary's lease to expire (and says so), goes live, and the run ends
    /// as the fault-free one did.
    @Test(.enabled(if: EtcdServer.binary != nil, "\(EtcdServer.unavailableReason ?? "")"))
    func aFailoverDecidedByEtcd() throws {
        let c = FailoverCase(arch: "parisc", guest: "disk", cmdline: "blocks=16", input: "", usesDisk: true)
        try #require(c.available, "\(c): the guest is not built (scripts/build-guests)")
        let referenceDisk = try #require(try c.freshDisk("etcd-reference"))
        let reference = try Lockstep.run(["run"] + c.arguments(disk: referenceDisk))
        try #require(reference.status == 0, "the unreplicated run failed: \(reference.stderr)")
        let referenceImage = FileManager.default.contents(atPath: referenceDisk)
        let etcd = try EtcdServer()
        defer { etcd.shutDown() }
        for point in ["3:performed", "12:boundary"] {
            let disk = try #require(try c.freshDisk("etcd-kill"))
            let run = try Lockstep.run(["pair", "--kill-primary-at-epoch", point, "--arbiter", "etcd://\(etcd.address)/cli"]
                                       + c.arguments(disk: disk))
            #expect(run.status == 0, "kill at \(point): \(run.stderr)")
            #expect(run.stderr.contains("waiting for the arbiter: the primary's lease"), "kill at \(point): \(run.stderr)")
            #expect(run.stdout == reference.stdout, "kill at \(point): \(run.stdout) differs from \(reference.stdout)")
            #expect(FileManager.default.contents(atPath: disk) == referenceImage, "kill at \(point): disk differs")
        }
    }

    /// etcd killed during a run, then the primary killed too: the backup does not go live while
    /// etcd is down (it says it waits for the arbiter); once etcd is back and the primary's lease
    /// has run out, it goes live and the run ends as the fault-free one did.
    @Test(.enabled(if: EtcdServer.binary != nil, "\(EtcdServer.unavailableReason ?? "")"))
    func aFailoverWhileEtcdIsDownWaitsForIt() throws {
        let c = FailoverCase(arch: "parisc", guest: "ticks", cmdline: "ticks=200", input: "", usesDisk: false, hostClock: true)
        try #require(c.available, "\(c): the guest is not built (scripts/build-guests)")
        let reference = try Lockstep.run(["run"] + c.arguments(disk: nil))
        try #require(reference.status == 0, "the unreplicated run failed: \(reference.stderr)")
        let etcd = try EtcdServer()
        defer { etcd.shutDown() }
        let pair = try ReplicaProcesses(arguments: ["--arbiter", "etcd://\(etcd.address)/cli"] + c.arguments(disk: nil),
                                        input: "", timeoutMilliseconds: 500)
        defer { pair.wait(seconds: 0) }
        pair.waitUntilReplicating()
        Thread.sleep(forTimeInterval: 0.2)
        etcd.kill()
        kill(pair.primary.processIdentifier, SIGKILL)
        let deadline = Date(timeIntervalSinceNow: 20)
        while !pair.backupErrors.snapshot().contains("waiting for the arbiter: etcd at") && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
        }
        #expect(pair.backupErrors.snapshot().contains("waiting for the arbiter: etcd at"), "\(pair.backupErrors.snapshot())")
        Thread.sleep(forTimeInterval: 2.5)
        #expect(pair.backup.isRunning && pair.backupState != .live, "the backup went live while etcd was down")
        try etcd.start()
        pair.wait(seconds: 60)
        #expect(pair.backup.terminationStatus == 0, "backup: \(pair.backupErrors.text())")
        let output = pair.primaryOutput.text() + pair.backupOutput.text()
        #expect(OutputComparison.equalUpToOneRepeatedLine(c.comparable(output), c.comparable(reference.stdout)),
                "output \(output) differs from \(reference.stdout)")
    }
}
