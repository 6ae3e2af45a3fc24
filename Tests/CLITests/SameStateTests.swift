import Foundation
import Testing

/// At the end of a fault-free replicated run, guest RAM, CPU and device state hash equal on the
/// primary and the backup, for every guest, and the output is the unreplicated run's.
@Suite(.serialized) struct SameStateTests {
    static let cases: [FailoverCase] = ["parisc", "x86"].flatMap { arch in
        [
            FailoverCase(arch: arch, guest: "hello", cmdline: "", input: "", usesDisk: false),
            FailoverCase(arch: arch, guest: "cpu", cmdline: "rounds=2", input: "", usesDisk: false),
            FailoverCase(arch: arch, guest: "ticks", cmdline: "ticks=5", input: "", usesDisk: false),
            FailoverCase(arch: arch, guest: "echo", cmdline: "", input: "one\ntwo\nquit\n", usesDisk: false),
            FailoverCase(arch: arch, guest: "disk", cmdline: "blocks=8", input: "", usesDisk: true),
            FailoverCase(arch: arch, guest: "hello", cmdline: "ring0", input: "", usesDisk: false),
        ]
    } + [
        // x86 with the exact single-step epoch clock (CPL0 guests only on this host).
        FailoverCase(arch: "x86", guest: "hello", cmdline: "ring0", input: "", usesDisk: false,
                     extraArguments: ["--epoch-clock", "single-step", "--epoch-length", "2000"]),
    ]

    @Test("replicas end in the same state on the emulator", arguments: cases.filter { $0.arch == "parisc" })
    func replicasEndInTheSameStateOnTheEmulator(_ c: FailoverCase) throws { try replicasEndInTheSameState(c) }

    @Test("replicas end in the same state on KVM", .enabled(if: Lockstep.hasKVM, "needs a usable /dev/kvm: the x86 cases are skipped"),
          arguments: cases.filter { $0.arch == "x86" })
    func replicasEndInTheSameStateOnKVM(_ c: FailoverCase) throws { try replicasEndInTheSameState(c) }

    func replicasEndInTheSameState(_ c: FailoverCase) throws {
        try #require(c.available, "\(c): the guest is not built (scripts/build-guests)")
        let reference = try Lockstep.run(["run"] + c.arguments(disk: try c.freshDisk("same-ref")), input: c.input)
        try #require(reference.status == 0, "the unreplicated run failed: \(reference.stderr)")
        let statsPath = Scratch.path("same-\(c.arch)-\(c.guest)-\(c.cmdline.hashValue).json")
        let pair = try Lockstep.run(["pair", "--stats-json", statsPath]
                                    + c.arguments(disk: try c.freshDisk("same-pair")), input: c.input)
        #expect(pair.status == 0, "\(pair.stderr)")
        #expect(pair.stdout == reference.stdout)
        let stats = try PairStats.load(statsPath)
        let primary = try #require(stats.primary?.finalDigest)
        #expect(stats.backup?.finalDigest == primary, "the backup's final state differs from the primary's")
        #expect(stats.backup?.primaryFinalDigest == primary)
        #expect(stats.backup?.state == .finished)
    }
}
