import Foundation
import Testing

/// `lockstep run --snapshot-at/--snapshot-file` and `--restore`, as real processes: a machine
/// saved at a boundary and continued in another process gives the uninterrupted run's output,
/// exit status, final state digest and disk image, for every bundled guest on both engines.
@Suite(.serialized) struct SnapshotTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let arch: String
        let guest: String
        var cmdline = ""
        var input = ""
        var usesDisk = false
        var extraArguments: [String] = []

        var testDescription: String {
            "\(arch)/\(guest)" + (cmdline.isEmpty ? "" : " \(cmdline)")
                + (extraArguments.isEmpty ? "" : " \(extraArguments.joined(separator: " "))")
        }

        func arguments(disk: String?) -> [String] {
            // Short PA-RISC epochs, so that every guest has several boundaries.
            (disk.map { ["--disk", $0] } ?? [])
                + (arch == "parisc" ? ["--epoch-length", "2000"] : []) + extraArguments
                + ["--cmdline", cmdline, Lockstep.guest(arch, guest)]
        }

        /// The boundary to snapshot at, given the uninterrupted run's epoch count. echo waits
        /// for input from its first epochs on, and the saving run has none, so it is saved early.
        /// Single-step boundaries where the guest idles cannot be saved (docs/architecture.md);
        /// this guest's first boundary is a full epoch.
        func snapshotEpoch(of epochs: UInt64) -> UInt64 {
            guest == "echo" || extraArguments.contains("single-step") ? 1 : max(1, epochs / 2)
        }
    }

    static let cases: [Case] = ["parisc", "x86"].flatMap { arch in
        [
            Case(arch: arch, guest: "hello"),
            Case(arch: arch, guest: "cpu", cmdline: "rounds=2"),
            Case(arch: arch, guest: "ticks", cmdline: "ticks=5"),
            Case(arch: arch, guest: "echo", input: "one\ntwo\nquit\n"),
            Case(arch: arch, guest: "disk", cmdline: "blocks=8", usesDisk: true),
            Case(arch: arch, guest: "trap"),
        ]
    } + [
        // The single-step clock carries the engine's step position across.
        Case(arch: "x86", guest: "ticks", cmdline: "ticks=3 ring0",
             extraArguments: ["--epoch-clock", "single-step", "--epoch-length", "2000"]),
    ]

    @Test("a snapshot continues in another process on the emulator", arguments: cases.filter { $0.arch == "parisc" })
    func continuesOnTheEmulator(_ c: Case) throws { try continuesInAnotherProcess(c) }

    @Test("a snapshot continues in another process on KVM",
          .enabled(if: Lockstep.hasKVM, "needs a usable /dev/kvm: the x86 cases are skipped"),
          arguments: cases.filter { $0.arch == "x86" })
    func continuesOnKVM(_ c: Case) throws { try continuesInAnotherProcess(c) }

    func continuesInAnotherProcess(_ c: Case) throws {
        try #require(Lockstep.hasGuest(c.arch, c.guest), "\(c): the guest is not built (scripts/build-guests)")
        let tag = "\(c.arch)-\(c.guest)-\(abs(c.testDescription.hashValue))"
        let referenceDisk = try freshDisk(c, "\(tag)-ref")
        let reference = try Lockstep.run(["run", "--print-state-digest"] + c.arguments(disk: referenceDisk),
                                         input: c.input)
        let (digest, epochs) = try #require(Self.finalDigest(reference.stderr), "no digest: \(reference.stderr)")
        let at = c.snapshotEpoch(of: epochs)
        let file = Scratch.path("\(tag).snap")
        defer { try? FileManager.default.removeItem(atPath: file) }

        // Saved and stopped, then continued in a new process from the file.
        let disk = try freshDisk(c, "\(tag)-split")
        let saving = try Lockstep.run(["run", "--snapshot-at", "\(at)", "--snapshot-file", file, "--snapshot-stop"]
                                      + c.arguments(disk: disk))
        try #require(saving.status == 0, "the saving run failed: \(saving.stderr)")
        #expect(saving.stderr.contains("saved \(file) at epoch \(at)"))
        let restored = try Lockstep.run(["run", "--restore", file, "--print-state-digest"] + c.arguments(disk: disk),
                                        input: c.input)
        #expect(restored.status == reference.status, "\(restored.stderr)")
        #expect(saving.stdout + restored.stdout == reference.stdout)
        // Typed input reaches the guest at whichever boundary the host has read it by, so a
        // guest that reads input (echo) ends in the same output but not always in the same state
        // or epoch as another run; the in-process tests deliver its input at a fixed boundary.
        let restoredDigest = Self.finalDigest(restored.stderr)
        if c.input.isEmpty {
            #expect(restoredDigest?.digest == digest, "restored: \(restored.stderr)")
            #expect(restoredDigest?.epochs == epochs)
        }
        if let disk, let referenceDisk {
            #expect(FileManager.default.contents(atPath: disk) == FileManager.default.contents(atPath: referenceDisk),
                    "the disk image differs from the uninterrupted run's")
        }

        // Saved while running on: the run itself is not disturbed by taking the snapshot.
        let onDisk = try freshDisk(c, "\(tag)-on")
        let running = try Lockstep.run(["run", "--snapshot-at", "\(at)", "--snapshot-file", file, "--print-state-digest"]
                                       + c.arguments(disk: onDisk), input: c.input)
        #expect(running.status == reference.status)
        #expect(running.stdout == reference.stdout)
        if c.input.isEmpty { #expect(Self.finalDigest(running.stderr)?.digest == digest, "\(running.stderr)") }
    }

    @Test("a snapshot of another guest, another configuration or a damaged file is refused in one line")
    func refusals() throws {
        try #require(Lockstep.hasGuest("parisc", "cpu") && Lockstep.hasGuest("parisc", "ticks"), "the PA-RISC guests are not built")
        let file = Scratch.path("refusals.snap")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let cpu = Lockstep.guest("parisc", "cpu")
        let saving = try Lockstep.run(["run", "--epoch-length", "2000", "--cmdline", "rounds=1", "--snapshot-at", "2",
                                       "--snapshot-file", file, "--snapshot-stop", cpu])
        try #require(saving.status == 0, "\(saving.stderr)")
        let good = try #require(FileManager.default.contents(atPath: file))

        func refused(_ arguments: [String], status: Int32 = 66, saying text: String) throws {
            let result = try Lockstep.run(["run"] + arguments)
            #expect(result.status == status, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(text), "\(arguments): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(arguments): \(result.stderr)")
            #expect(result.stdout.isEmpty)
        }
        let same = ["--epoch-length", "2000", "--cmdline", "rounds=1", "--restore", file]
        try refused(same.dropLast(2) + ["--restore", file, Lockstep.guest("parisc", "ticks")],
                    saying: "it is of another guest image")
        try refused(["--memory", "128M"] + same + [cpu], saying: "it was taken with memory=67108864, this run has memory=134217728")
        try refused(["--epoch-length", "3000", "--cmdline", "rounds=1", "--restore", file, cpu],
                    saying: "epoch-length=2000")
        try refused(same + ["--snapshot-at", "1", "--snapshot-file", file, cpu], status: 64,
                    saying: "the restored run starts after epoch 2")

        // Damage: a flipped payload byte, a cut file, a foreign file, a missing one.
        var flipped = good
        flipped[good.count / 2] ^= 0x40
        try flipped.write(to: URL(fileURLWithPath: file))
        try refused(same + [cpu], saying: "damaged (checksum mismatch)")
        try good.prefix(good.count - 100).write(to: URL(fileURLWithPath: file))
        try refused(same + [cpu], saying: "truncated")
        try Data("not a snapshot at all".utf8).write(to: URL(fileURLWithPath: file))
        try refused(same + [cpu], saying: "not a Lockstep machine snapshot")
        try FileManager.default.removeItem(atPath: file)
        try refused(same + [cpu], saying: "no such snapshot file")
        try refused(["--snapshot-at", "3", cpu], status: 64, saying: "--snapshot-at needs --snapshot-file")
        try refused(["--snapshot-at", "0", "--snapshot-file", file, cpu], status: 64, saying: "expected a whole number of at least 1")
    }

    /// The digest and epoch count of a run's `--print-state-digest` line.
    static func finalDigest(_ stderr: String) -> (digest: String, epochs: UInt64)? {
        for line in stderr.split(separator: "\n") where line.hasPrefix("lockstep: final state digest ") {
            let words = line.split(separator: " ")
            guard words.count == 8, let epochs = UInt64(words[6]) else { return nil }
            return (String(words[4]), epochs)
        }
        return nil
    }

    func freshDisk(_ c: Case, _ name: String) throws -> String? {
        guard c.usesDisk else { return nil }
        let path = Scratch.path("snapshot-\(name).img")
        try Data(count: 64 * 512).write(to: URL(fileURLWithPath: path))
        return path
    }
}
