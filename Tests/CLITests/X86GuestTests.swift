@testable import Bench
import Foundation
import Testing

/// The x86 guests through the real `lockstep run` binary on /dev/kvm, as a user runs them.
@Suite("x86 guests through lockstep run", .serialized,
       .enabled(if: X86CLI.ready, "needs /dev/kvm, a built lockstep and scripts/build-guests"))
struct X86GuestTests {
    func guest(_ name: String) -> String { Lockstep.guest("x86", name) }

    func expectClean(_ result: Lockstep.Result, status: Int32 = 0,
                     sourceLocation: SourceLocation = #_sourceLocation)
    {
        #expect(!result.timedOut, "hung", sourceLocation: sourceLocation)
        #expect(!result.killedBySignal, "crashed: \(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.status == status, "status \(result.status): \(result.stderr)", sourceLocation: sourceLocation)
    }

    @Test("hello", arguments: ["", "ring0"])
    func hello(commandLine: String) throws {
        let result = try Lockstep.run(["run", "--cmdline", commandLine, guest("hello")])
        expectClean(result)
        #expect(result.stdout == "Hello from x86\n")
        #expect(result.stderr.isEmpty, "\(result.stderr)")
    }

    @Test("echo through standard input")
    func echo() throws {
        let result = try Lockstep.run(["run", guest("echo")], input: "hello\r\nlockstep\nquit\n")
        expectClean(result)
        #expect(result.stdout == "echo ready\necho n=1 len=5 rev=olleh\necho n=2 len=8 rev=petskcol\necho bye n=2\n")
    }

    @Test("echo with standard input closed: the idle guest cannot be woken, lockstep stops")
    func echoWithoutInput() throws {
        let result = try Lockstep.run(["run", guest("echo")], timeout: 20)
        expectClean(result)
        #expect(result.stdout == "echo ready\n")
    }

    @Test("disk with --disk: the image holds the guest's pattern afterwards")
    func disk() throws {
        let image = FileManager.default.temporaryDirectory.appendingPathComponent("lockstep-x86-cli-\(getpid()).img")
        try Data(count: 128 * 512).write(to: image)
        defer { try? FileManager.default.removeItem(at: image) }
        let result = try Lockstep.run(["run", "--disk", image.path, "--cmdline", "blocks=24 seed=5", guest("disk")])
        expectClean(result)
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.prefix(3) == ["disk capacity=128 blocks=24 seed=5", "disk write ok", "disk read ok"])
        #expect(lines.last?.hasPrefix("disk verify ok sha256=") == true, "\(result.stdout)")
        let bytes = [UInt8](try Data(contentsOf: image))
        #expect(Array(bytes.prefix(24 * 512)) == GuestExpectations.pattern(seed: 5, count: 24 * 512))
        #expect(bytes.dropFirst(24 * 512).allSatisfy { $0 == 0 })
    }

    @Test("disk with and without --no-coalesced-writes: the same output and final state, fewer KVM exits with (--stats-json)")
    func diskCoalescedWrites() throws {
        let image = FileManager.default.temporaryDirectory.appendingPathComponent("lockstep-x86-coalesce-\(getpid()).img")
        let stats = FileManager.default.temporaryDirectory.appendingPathComponent("lockstep-x86-coalesce-\(getpid()).json")
        defer {
            try? FileManager.default.removeItem(at: image)
            try? FileManager.default.removeItem(at: stats)
        }
        var runs: [(stdout: String, digest: String, figures: [String: Any])] = []
        for flag in [[], ["--no-coalesced-writes"]] {
            try Data(count: 128 * 512).write(to: image)
            let result = try Lockstep.run(["run", "--disk", image.path, "--cmdline", "blocks=64", "--print-state-digest",
                                           "--stats-json", stats.path] + flag + [guest("disk")])
            expectClean(result)
            let object = try JSONSerialization.jsonObject(with: Data(contentsOf: stats)) as? [String: Any]
            let figures = try #require(object?["x86"] as? [String: Any], "\(String(describing: object))")
            #expect(object?["exitStatus"] as? Int == 0)
            runs.append((result.stdout, result.stderr, figures))
        }
        #expect(runs[0].stdout == runs[1].stdout)
        #expect(runs[0].digest.contains("final state digest") && runs[0].digest == runs[1].digest)
        let withRing = try #require(runs[0].figures["runs"] as? Int), without = try #require(runs[1].figures["runs"] as? Int)
        #expect(runs[1].figures["coalescedWrites"] as? Int == 0)
        #expect(runs[0].figures["deferredWrites"] as? Int == runs[1].figures["deferredWrites"] as? Int)
        if let buffered = runs[0].figures["coalescedWrites"] as? Int, buffered > 0 {
            #expect(withRing == without - buffered, "every buffered write is an exit saved")
        }
    }

    @Test("two deterministic runs of ticks and cpu are byte-identical",
          arguments: [("ticks", "ticks=6 hz=250"), ("cpu", "rounds=3"), ("ticks", "ring0 ticks=3")])
    func deterministic(name: String, commandLine: String) throws {
        let first = try Lockstep.run(["run", "--clock", "deterministic", "--cmdline", commandLine, guest(name)])
        let second = try Lockstep.run(["run", "--clock", "deterministic", "--cmdline", commandLine, guest(name)])
        expectClean(first)
        expectClean(second)
        #expect(!first.stdout.isEmpty)
        #expect(first.stdout == second.stdout)
    }

    @Test("cpu prints the documented digest")
    func cpu() throws {
        let result = try Lockstep.run(["run", guest("cpu")])
        expectClean(result)
        #expect(result.stdout == "cpu rounds=64 seed=1 buffer=16384 sha256=78c4e947741917792719f0288dafc4cda2e78ea4ea195fe56c56a31e4d7a8c01\n")
    }

    @Test("a guest's exception: its kernel reports it and lockstep exits with the guest's status, as QEMU would")
    func trap() throws {
        let result = try Lockstep.run(["run", "--cmdline", "trap=gp", guest("trap")])
        // The guest writes 64 + 13 to isa-debug-exit: (value << 1) | 1, modulo 256.
        expectClean(result, status: ((64 + 13) << 1 | 1) & 0xFF)
        #expect(result.stdout.contains("exception vector=13 (#GP)"))
    }

    @Test("single-step epoch clock on a ring0 guest")
    func singleStep() throws {
        let result = try Lockstep.run(["run", "--epoch-clock", "single-step", "--cmdline", "ring0", guest("hello")])
        expectClean(result)
        #expect(result.stdout == "Hello from x86\n")
    }

    @Test("single-step epoch clock on a CPL3 guest: one clear line, exit 68")
    func singleStepAtCPL3() throws {
        let result = try Lockstep.run(["run", "--epoch-clock", "single-step", guest("hello")])
        #expect(!result.timedOut && !result.killedBySignal)
        #expect(result.status == 68)
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        #expect(result.stderr.hasPrefix("lockstep: ") && result.stderr.contains("ring0"))
    }

    @Test("the pmu epoch clock without a PMU: one line, exit 68")
    func pmuRefused() throws {
        if X86CLI.hasPMU {
            try Test.cancel("this host has a PMU (/sys/bus/event_source/devices/cpu): the refusal without one cannot happen here")
        }
        let result = try Lockstep.run(["run", "--epoch-clock", "pmu", guest("hello")])
        #expect(result.status == 68, "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        #expect(result.stderr.contains("pmu") && result.stdout.isEmpty)
    }

    @Test("a missing KVM device: one line, exit 68", arguments: [["run", "HELLO"], ["doctor"]])
    func missingKVM(arguments: [String]) throws {
        let args = arguments.map { $0 == "HELLO" ? guest("hello") : $0 }
        let result = try Lockstep.run(args, environment: ["LOCKSTEP_KVM_DEVICE": "/nonexistent"])
        #expect(result.status == 68, "\(result.stderr)")
        #expect(result.stderr == "lockstep: KVM is not available: /nonexistent: no such device (is KVM enabled?); open: errno 2\n")
        #expect(result.stdout.isEmpty)
    }

    @Test("a triple fault: one line, exit 72")
    func tripleFault() throws {
        let path = try X86CLI.tinyKernel("triple-fault", code: [0x90, 0x0F, 0x0B])  // nop; ud2; no IDT
        let result = try Lockstep.run(["run", path])
        #expect(result.status == 72, "\(result.stderr)")
        #expect(result.stderr == "lockstep: guest crashed: triple fault at RIP 0x200001\n")
    }

    @Test("an unknown port is logged once and the run goes on")
    func unknownPort() throws {
        // in $0x99,%al (twice); mov $5,%eax; out %eax,$0xf4
        let path = try X86CLI.tinyKernel("unknown-port", code: [0xE4, 0x99, 0xE4, 0x99, 0xB8, 0x05, 0, 0, 0, 0xE7, 0xF4])
        let result = try Lockstep.run(["run", path])
        #expect(result.status == 5 << 1 | 1, "\(result.stderr)")
        let lines = result.stderr.split(separator: "\n").filter { $0.contains("pio 0x99") }
        #expect(lines.count == 1, "\(result.stderr)")
    }

    @Test("lockstep doctor reports every item in sections, recommends a clock; --json has the same items")
    func doctor() throws {
        let result = try Lockstep.run(["doctor"], timeout: 60)
        expectClean(result)
        for item in ["Host", "  KVM", "  CPU", "Execution", "  CPL0 code", "  CPL3 code", "Debugging", "  single-step",
                     "  hw breakpoints", "Counters", "  PMU", "  insn_emulation", "Dirty logging", "Epoch clocks",
                     "  exits", "  emulation-counter", "  pmu", "  recovery-counter", "Recommendations", "  - "] {
            #expect(result.stdout.contains("\n\(item)"), "\(item) missing from:\n\(result.stdout)")
        }
        #expect(result.stdout.split(separator: "\n").allSatisfy { $0.count <= 120 }, "\(result.stdout)")
        if !X86CLI.hasPMU { #expect(result.stdout.contains("\n  pmu                not available: ")) }

        let json = try Lockstep.run(["doctor", "--json"], timeout: 60)
        expectClean(json)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let clocks = (object?["epochClocks"] as? [[String: Any]]) ?? []
        #expect(clocks.compactMap { $0["name"] as? String }
                == ["exits", "single-step", "emulation-counter", "pmu", "recovery-counter"], "\(json.stdout)")
        #expect(clocks.allSatisfy { $0["available"] is Bool && $0["cost"] is String })
        #expect(((object?["recommendations"] as? [String]) ?? []).count >= 2)
        if !X86CLI.hasPMU { #expect(object?["automaticX86Clock"] as? String == "exits") }
    }
}

enum X86CLI {
    /// Whether the x86 guest tests can run; the first time they cannot, says why.
    static let ready: Bool = {
        guard Lockstep.hasKVM else {
            print("CLITests: skipping the x86 guest tests: /dev/kvm is not usable")
            return false
        }
        guard Lockstep.executable != nil else {
            print("CLITests: skipping the x86 guest tests: lockstep is not built (swift build)")
            return false
        }
        guard ["hello", "ticks", "cpu", "disk", "echo", "trap"].allSatisfy({ Lockstep.hasGuest("x86", $0) }) else {
            print("CLITests: skipping the x86 guest tests: the guests are not built (scripts/build-guests)")
            return false
        }
        return true
    }()

    /// Whether perf_event_open has a hardware PMU here (no `cpu` event source means none).
    static var hasPMU: Bool { FileManager.default.fileExists(atPath: "/sys/bus/event_source/devices/cpu") }


    /// Writes an ELF64 x86-64 kernel without a Multiboot header (entered in long mode at CPL0)
    /// holding `code` at 0x200000, and returns its path.
    static func tinyKernel(_ name: String, code: [UInt8]) throws -> String {
        var bytes: [UInt8] = []
        func le(_ value: UInt64, _ size: Int) { for i in 0..<size { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) } }
        let address: UInt64 = 0x20_0000
        bytes += [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1, 0] + [UInt8](repeating: 0, count: 8)
        le(2, 2); le(62, 2); le(1, 4); le(address, 8); le(64, 8); le(0, 8)
        le(0, 4); le(64, 2); le(56, 2); le(1, 2); le(64, 2); le(0, 2); le(0, 2)
        le(1, 4); le(7, 4); le(0x1000, 8); le(address, 8); le(address, 8)
        le(UInt64(code.count), 8); le(UInt64(code.count), 8); le(0x1000, 8)
        bytes += [UInt8](repeating: 0, count: 0x1000 - bytes.count) + code
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lockstep-\(name)-\(getpid()).elf")
        try Data(bytes).write(to: url)
        return url.path
    }
}

/// The same x86 guest ELF files under qemu-system-x86_64 -kernel (TCG; microvm for the
/// virtio-mmio disk), through scripts/qemu-run-guest: the console output must be Lockstep's.
/// QEMU is probed once per machine (scripts/qemu-run-guest --probe); a machine it cannot run
/// here cancels its cases with the probe's reason.
@Suite("x86 guests against qemu-system-x86_64", .serialized,
       .enabled(if: X86CLI.ready, "needs /dev/kvm, a built lockstep and scripts/build-guests"))
struct X86QEMUComparisonTests {
    @Test("same console output and status", arguments: [
        ("hello", "", "", false),
        ("hello", "ring0", "", false),
        ("cpu", "rounds=3", "", false),
        ("echo", "", "one\ntwo words\r\nquit\n", false),
        ("disk", "blocks=16 seed=3", "", true),
    ])
    func sameOutput(name: String, commandLine: String, input: String, disk: Bool) throws {
        let cpu = try X86QEMU.cpu(microvm: disk)
        let image = FileManager.default.temporaryDirectory.appendingPathComponent("lockstep-qemu-cmp-\(getpid()).img")
        try Data(count: 64 * 512).write(to: image)
        defer { try? FileManager.default.removeItem(at: image) }
        // Input is typed after the guest's first line: QEMU clears its UART's receiver when the
        // guest turns the FIFOs on, so bytes piped before that may be lost under QEMU (never
        // under Lockstep, whose UART keeps them; see guests/README.md).
        let arguments = ["run", "--cmdline", commandLine] + (disk ? ["--disk", image.path] : []) + [Lockstep.guest("x86", name)]
        let lockstep = input.isEmpty ? try Lockstep.run(arguments)
            : try Lockstep.runTyping(input, after: "\n", try #require(Lockstep.executable), arguments)
        #expect(lockstep.status == 0, "lockstep: \(lockstep.stderr)")

        try Data(count: 64 * 512).write(to: image)
        let qemu = try X86QEMU.run(name, cpu: cpu, commandLine: commandLine, input: input, disk: disk ? image.path : nil)
        #expect(qemu.status == 0, "qemu: \(qemu.stderr)")
        #expect(X86QEMU.normalized(qemu.stdout) == X86QEMU.normalized(lockstep.stdout),
                "lockstep:\n\(lockstep.stdout)\nqemu:\n\(qemu.stdout)")
    }
}

enum X86QEMU {
    static let script = Lockstep.root.appendingPathComponent("scripts/qemu-run-guest").path

    /// The probes of the two TCG machines the comparison uses (run once, when first needed).
    static let pc = PeerProbe.run(script: script, arch: "x86", qemu: "qemu-system-x86_64")
    static let microvm = PeerProbe.run(script: script, arch: "x86", microvm: true, qemu: "qemu-system-x86_64")

    /// The CPU model the probe found for the machine; cancels the test when QEMU cannot run it here.
    static func cpu(microvm: Bool) throws -> String {
        let probe = microvm ? Self.microvm : pc
        switch probe.verdict {
        case .runs(let model, _): return model
        case .cannotRun(let why): try Test.cancel("\(probe.peer) cannot run here: \(why)")
        }
    }

    static func run(_ name: String, cpu: String, commandLine: String, input: String, disk: String?) throws -> Lockstep.Result {
        let arguments = ["--timeout", "60", "--cpu", cpu] + (disk.map { ["--microvm", "--disk", $0] } ?? [])
            + ["x86", name] + commandLine.split(separator: " ").map(String.init)
        if input.isEmpty { return try Lockstep.runProcess(URL(fileURLWithPath: script), arguments, timeout: 90) }
        return try Lockstep.runTyping(input, after: "\n", URL(fileURLWithPath: script), arguments, timeout: 90)
    }

    /// Line endings as a terminal shows them (QEMU's serial stdio may add carriage returns).
    static func normalized(_ text: String) -> String {
        text.replacingOccurrences(of: "\r\n", with: "\n")
    }
}
