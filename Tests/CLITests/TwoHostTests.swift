import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Today's `lockstep primary` and `backup` on two hosts: network namespaces joined by a link
/// (`TwoHostNetwork`), sharing a disk image and an arbiter directory through the file system.
@Suite(.serialized, .enabled(if: TwoHostNetwork.unavailableReason == nil, "\(TwoHostNetwork.unavailableReason ?? "")"))
struct TwoHostTests {
    /// A scratch directory both hosts see, for the arbiter.
    func sharedDirectory(_ name: String) throws -> String {
        let path = Scratch.path("two-host-\(name)-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    func reference(_ c: FailoverCase) throws -> (result: Lockstep.Result, disk: Data?) {
        let disk = try c.freshDisk("two-host-reference")
        let result = try Lockstep.run(["run"] + c.arguments(disk: disk), input: c.input)
        try #require(result.status == 0, "the unreplicated run failed: \(result.stderr)")
        return (result, disk.flatMap { FileManager.default.contents(atPath: $0) })
    }

    @Test func aPairRunsAcrossTheLinkAsOnOneHost() throws {
        let c = FailoverCase(arch: "parisc", guest: "disk", cmdline: "blocks=16", input: "", usesDisk: true)
        try #require(c.available, "\(c): the guest is not built (scripts/build-guests)")
        let expected = try reference(c)
        let network = try TwoHostNetwork()
        defer { network.tearDown() }
        let arbiter = try sharedDirectory("run")
        defer { try? FileManager.default.removeItem(atPath: arbiter) }
        let disk = try #require(try c.freshDisk("two-host"))
        let pair = try ReplicaProcesses(arguments: ["--arbiter-dir", arbiter] + c.arguments(disk: disk), input: c.input,
                                        timeoutMilliseconds: 1000, network: network)
        pair.wait(seconds: 60)
        #expect(pair.primary.terminationStatus == 0, "primary: \(pair.primaryErrors.text())")
        #expect(pair.backup.terminationStatus == 0, "backup: \(pair.backupErrors.text())")
        #expect(pair.primaryOutput.text() == expected.result.stdout)
        #expect(pair.backupOutput.text().isEmpty)
        #expect(FileManager.default.contents(atPath: disk) == expected.disk)
    }

    /// The link goes down past the timeout and comes back: the arbiter lets exactly one replica
    /// go on; the other stops with 78, and the output is the fault-free one.
    @Test func aPartitionLeavesExactlyOneReplicaLive() throws {
        let c = FailoverCase(arch: "parisc", guest: "ticks", cmdline: "ticks=150", input: "", usesDisk: false, hostClock: true)
        try #require(c.available, "\(c): the guest is not built (scripts/build-guests)")
        let expected = try reference(c)
        let network = try TwoHostNetwork()
        defer { network.tearDown() }
        let arbiter = try sharedDirectory("partition")
        defer { try? FileManager.default.removeItem(atPath: arbiter) }
        let pair = try ReplicaProcesses(arguments: ["--arbiter-dir", arbiter] + c.arguments(disk: nil), input: c.input,
                                        timeoutMilliseconds: 500, network: network)
        pair.waitUntilReplicating()
        Thread.sleep(forTimeInterval: 0.3)
        try network.cut()
        Thread.sleep(forTimeInterval: 1.5)
        try network.heal()
        pair.wait(seconds: 60)
        let statuses = [pair.primary.terminationStatus, pair.backup.terminationStatus].sorted()
        let report = "primary \(pair.primary.terminationStatus): \(pair.primaryErrors.text()) backup \(pair.backup.terminationStatus): \(pair.backupErrors.text())"
        #expect(statuses == [0, 78], "\(report)")
        let output = pair.primaryOutput.text() + pair.backupOutput.text()
        #expect(OutputComparison.equalUpToOneRepeatedLine(c.comparable(output), c.comparable(expected.result.stdout)),
                "output \(output) differs from \(expected.result.stdout); \(report)")
    }

    /// A slow, lossy link (5 ms each way through a delaying proxy, 1 % of packets dropped at
    /// each end): replication still ends with the fault-free output and disk.
    @Test func aSlowLossyLinkStillGivesTheFaultFreeRun() throws {
        let c = FailoverCase(arch: "parisc", guest: "disk", cmdline: "blocks=16", input: "", usesDisk: true)
        try #require(c.available, "\(c): the guest is not built (scripts/build-guests)")
        let expected = try reference(c)
        let network = try TwoHostNetwork()
        defer { network.tearDown() }
        try network.setLoss(0.01)
        let arbiter = try sharedDirectory("lossy")
        defer { try? FileManager.default.removeItem(atPath: arbiter) }
        let disk = try #require(try c.freshDisk("two-host-lossy"))
        let pair = try ReplicaProcesses(arguments: ["--arbiter-dir", arbiter] + c.arguments(disk: disk), input: c.input,
                                        timeoutMilliseconds: 2000, network: network) { primary in
            let proxy = try network.startDelayProxy(on: .b, listenPort: 7000, target: primary, milliseconds: 5)
            _ = proxy
            return "\(TwoHostNetwork.address(.b)):7000"
        }
        pair.wait(seconds: 90)
        #expect(pair.primary.terminationStatus == 0, "primary: \(pair.primaryErrors.text())")
        #expect(pair.backup.terminationStatus == 0, "backup: \(pair.backupErrors.text())")
        #expect(pair.primaryOutput.text() == expected.result.stdout)
        #expect(FileManager.default.contents(atPath: disk) == expected.disk)
    }
}
