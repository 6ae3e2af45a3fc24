import Foundation
import Testing
import TestSupport

/// Fault injection with real processes: `lockstep pair` runs a primary and a backup as separate
/// processes; the primary is killed with SIGKILL at 20 different points per guest (epochs spread
/// over the run, each phase of the output-commit protocol). Every run must finish with the
/// fault-free run's status and console output (exactly: the pair's console writes the one record
/// a failover may perform again only once), and the disk image must equal the fault-free run's
/// byte for byte.
@Suite(.serialized) struct FailoverTests {
    static let cases: [FailoverCase] = ["parisc", "x86"].flatMap { arch in
        [
            FailoverCase(arch: arch, guest: "disk", cmdline: "blocks=16", input: "", usesDisk: true),
            FailoverCase(arch: arch, guest: "echo", cmdline: "",
                         input: (1...12).map { "line number \($0) of the echo test\n" }.joined() + "quit\n",
                         usesDisk: false),
            FailoverCase(arch: arch, guest: "ticks", cmdline: "ticks=12", input: "", usesDisk: false),
        ]
    }

    static let killPoints = 20

    @Test("primary killed at 20 points on the emulator", arguments: cases.filter { $0.arch == "parisc" })
    func primaryKilledAtTwentyPointsOnTheEmulator(_ c: FailoverCase) throws { try primaryKilledAtTwentyPoints(c) }

    @Test("primary killed at 20 points on KVM", .enabled(if: Lockstep.hasKVM, "needs a usable /dev/kvm: the x86 cases are skipped"),
          arguments: cases.filter { $0.arch == "x86" })
    func primaryKilledAtTwentyPointsOnKVM(_ c: FailoverCase) throws { try primaryKilledAtTwentyPoints(c) }

    func primaryKilledAtTwentyPoints(_ c: FailoverCase) throws {
        try #require(c.available, "\(c): the guest is not built (scripts/build-guests)")
        // The fault-free reference, unreplicated.
        let referenceDisk = try c.freshDisk("reference")
        let reference = try Lockstep.run(["run"] + c.arguments(disk: referenceDisk), input: c.input)
        try #require(reference.status == 0, "the unreplicated run failed: \(reference.stderr)")
        let referenceImage = try referenceDisk.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }

        // A fault-free replicated run: same output, same final state on both replicas.
        let statsPath = Scratch.path("\(c.arch)-\(c.guest)-stats.json")
        let disk = try c.freshDisk("pair")
        let clean = try Lockstep.run(["pair", "--stats-json", statsPath] + c.arguments(disk: disk), input: c.input)
        #expect(clean.status == reference.status, "\(clean.stderr)")
        #expect(clean.stdout == reference.stdout)
        if let disk { #expect(try Data(contentsOf: URL(fileURLWithPath: disk)) == referenceImage) }
        let stats = try PairStats.load(statsPath)
        let epochs = try #require(stats.primary?.epoch)
        let digest = try #require(stats.primary?.finalDigest)
        #expect(stats.backup?.finalDigest == digest, "final state differs between primary and backup")
        #expect(stats.backup?.primaryFinalDigest == digest)
        try #require(epochs >= 4, "the run has only \(epochs) epochs: too short to kill at 20 points")

        // Twenty failovers.
        let phases = ["boundary", "logged", "acknowledged", "performed"]
        var killed = 0
        for i in 0..<Self.killPoints {
            let epoch = UInt64(i) * (epochs - 1) / UInt64(Self.killPoints - 1)
            let point = "\(epoch):\(phases[i % phases.count])"
            let disk = try c.freshDisk("kill-\(i)")
            let path = Scratch.path("\(c.arch)-\(c.guest)-kill-\(i).json")
            let run = try Lockstep.run(["pair", "--kill-primary-at-epoch", point, "--stats-json", path]
                                       + c.arguments(disk: disk), input: c.input)
            #expect(!run.timedOut, "kill at \(point) hung")
            #expect(run.status == reference.status, "kill at \(point): status \(run.status): \(run.stderr)")
            #expect(run.stdout == reference.stdout,
                    "kill at \(point): output\n\(run.stdout)\ndiffers from\n\(reference.stdout)")
            if let disk {
                #expect(try Data(contentsOf: URL(fileURLWithPath: disk)) == referenceImage,
                        "kill at \(point): disk image differs")
            }
            if (try? PairStats.load(path))?.primaryKilled == true { killed += 1 }
        }
        #expect(killed == Self.killPoints, "only \(killed) of \(Self.killPoints) kill points killed the primary")
    }
}
