import Bench
import Foundation
import KVM
import Loader
import MachineCore
import Testing
@testable import X86

/// The bundled guests (guests/README.md) booted through X86Machine on the real /dev/kvm, with a
/// recording environment. Workloads are kept small: CPL0 code runs at about 1 µs per instruction
/// on this host.
@Suite("x86 guests", .serialized, .enabled(if: Host.hasGuests, "needs /dev/kvm and scripts/build-guests"))
struct GuestTests {
    // MARK: - hello

    @Test("hello prints its line and exits 0", arguments: ["", "ring0"])
    func hello(commandLine: String) async throws {
        let result = try await runGuest("hello", commandLine: commandLine)
        #expect(result.output == "Hello from x86\n")
        #expect(result.stop == .exited(status: 0))
        #expect(result.unknownAccesses.isEmpty, "\(result.unknownAccesses)")
    }

    @Test("an ELF64 kernel with a Multiboot header (hello before objcopy) boots through its 32-bit entry")
    func elf64Multiboot() async throws {
        let path = Guests.path("hello") + ".64"
        guard FileManager.default.fileExists(atPath: path) else {
            try Test.cancel("\(path) is not built (run scripts/build-guests)")
        }
        let output = try await onMachineThread { () -> String in
            let environment = RecordingEnvironment()
            let image = try ELFImage.load(contentsOf: path)
            try #require(image.is64Bit)
            let machine = try X86Machine(image: image, memorySize: 16 << 20, environment: environment)
            try #require(machine.entryState.protocolKind == .multiboot)
            let result = try drive(machine, environment)
            try #require(result.stop == .exited(status: 0))
            return result.output
        }
        #expect(output == "Hello from x86\n")
    }

    // MARK: - ticks

    @Test("ticks: two deterministic runs are byte-identical, and every TSC it printed came from the environment")
    func ticksDeterministic() async throws {
        let first = try await runGuest("ticks", commandLine: "ticks=5 hz=200")
        let second = try await runGuest("ticks", commandLine: "ticks=5 hz=200")
        #expect(first.stop == .exited(status: 0))
        #expect(first.output == second.output)
        #expect(first.digest == second.digest)
        #expect(first.progress == second.progress)
        #expect(first.values == second.values)
        let printed = Self.tscValues(in: first.output)
        #expect(printed.count == 7, "first, last and five samples in: \(first.output)")
        for value in printed { #expect(first.values.contains(value), "\(value) was not supplied") }
        #expect(first.output.hasPrefix("ticks hz=200 target=5 clock=tsc\nticks count=5 "))
        // The virtual TSC is virtual time: ticks are one PIT period apart (5966 / 1193182 Hz).
        let perTick = first.output.split(separator: "per_tick=").last.flatMap { UInt64($0.prefix { $0.isNumber }) }
        let period = 5966 * 1_000_000_000 / 1_193_182
        #expect(perTick.map { $0 >= period - 1 && $0 <= period + 1 } == true, "\(first.output)")
    }

    @Test("ticks: the TSC values the guest prints are exactly the environment's answers")
    func ticksUseEnvironmentValues() async throws {
        let offset: UInt64 = 7_000_000_000_000
        let result = try await runGuest("ticks", commandLine: "ticks=3 hz=500", answer: { read, proposed in
            read == .timestampCounter ? proposed + offset : proposed
        })
        #expect(result.stop == .exited(status: 0))
        let printed = Self.tscValues(in: result.output)
        #expect(!printed.isEmpty)
        for value in printed {
            #expect(value > offset)
            #expect(result.values.contains(value))
        }
    }

    @Test("ticks at CPL0")
    func ticksRing0() async throws {
        let result = try await runGuest("ticks", commandLine: "ring0 ticks=3 hz=500")
        #expect(result.stop == .exited(status: 0))
        #expect(result.output.contains("ticks count=3 "))
        #expect(result.statistics.interruptsInjected >= 3)
    }

    /// The decimal numbers after `first=`, `last=` and in `ticks samples k:T`.
    static func tscValues(in output: String) -> [UInt64] {
        var values: [UInt64] = []
        for line in output.split(separator: "\n") {
            for field in line.split(separator: " ") {
                if field.hasPrefix("first=") || field.hasPrefix("last="), let v = UInt64(field.split(separator: "=")[1]) {
                    values.append(v)
                }
                if line.hasPrefix("ticks samples"), let colon = field.firstIndex(of: ":"),
                   let v = UInt64(field[field.index(after: colon)...])
                {
                    values.append(v)
                }
            }
        }
        return values
    }

    // MARK: - cpu

    @Test("cpu: the documented digest (64 rounds at CPL3)")
    func cpuDocumentedDigest() async throws {
        let result = try await runGuest("cpu")
        #expect(result.stop == .exited(status: 0))
        #expect(result.output == "cpu rounds=64 seed=1 buffer=16384 sha256=78c4e947741917792719f0288dafc4cda2e78ea4ea195fe56c56a31e4d7a8c01\n")
    }

    @Test("cpu: CPL3 and CPL0 runs compute the digest a host-side SHA-256 chain gives")
    func cpuRounds() async throws {
        let expected = GuestExpectations.cpuDigest(rounds: 1, seed: 3)
        let user = try await runGuest("cpu", commandLine: "rounds=1 seed=3")
        let kernel = try await runGuest("cpu", commandLine: "ring0 rounds=1 seed=3")
        #expect(user.output == "cpu rounds=1 seed=3 buffer=16384 sha256=\(expected)\n")
        #expect(kernel.output == user.output)
        #expect(kernel.stop == .exited(status: 0))
    }

    // MARK: - disk

    @Test("disk: writes, reads back and verifies a fresh image; the image holds the pattern afterwards")
    func disk() async throws {
        let image = ImageCapture()
        let result = try await runGuest("disk", commandLine: "blocks=20 seed=7", diskSectors: 64,
                                        inspectDisk: { image.bytes = $0 })
        let written = GuestExpectations.pattern(seed: 7, count: 20 * 512)
        #expect(result.stop == .exited(status: 0))
        #expect(result.output == """
            disk capacity=64 blocks=20 seed=7
            disk write ok
            disk read ok
            disk verify ok sha256=\(StateDigest.of(written))

            """)
        #expect(image.bytes.count == 64 * 512)
        #expect(Array(image.bytes.prefix(20 * 512)) == written)
        #expect(image.bytes.dropFirst(20 * 512).allSatisfy { $0 == 0 })
    }

    @Test("disk: 2 KVM_RUN exits and 1 interrupt per 4 KiB request where KVM coalesces writes; without, the same run with 5 exits")
    func diskExitsPerRequest() async throws {
        // 16 sectors are two write and two read requests, 64 eight of each (and the guest
        // prints as many digits for both).
        func perRequest(coalescing: Bool) async throws -> (GuestResult, [String: Double]) {
            let small = try await runGuest("disk", commandLine: "blocks=16", diskSectors: 64, coalescing: coalescing)
            let large = try await runGuest("disk", commandLine: "blocks=64", diskSectors: 64, coalescing: coalescing)
            try #require(small.stop == .exited(status: 0) && large.stop == .exited(status: 0), "\(large.output)")
            func per(_ field: KeyPath<X86Machine.Statistics, UInt64>) -> Double {
                Double(large.statistics[keyPath: field] - small.statistics[keyPath: field]) / 12
            }
            return (large, ["runs": per(\.runs), "interrupts": per(\.interruptsInjected), "deferred": per(\.deferredWrites),
                            "coalesced": per(\.coalescedWrites)])
        }
        let (exiting, before) = try await perRequest(coalescing: false)
        let (coalesced, after) = try await perRequest(coalescing: true)
        print("X86Tests: disk per 4 KiB request: \(before) without coalescing, \(after) with")
        // Notify, HLT, InterruptStatus read, InterruptACK, EOI; then the ACK, EOI and notify
        // are deferred to the HLT and the status read.
        #expect(before["runs"] == 5 && before["interrupts"] == 1 && before["coalesced"] == 0)
        #expect(before["deferred"] == 3 && after["deferred"] == 3)
        if try Self.hostCoalescesWrites() {
            #expect(after["runs"] == 2 && after["interrupts"] == 1 && after["coalesced"] == 3)
        } else {
            print("X86Tests: this host's KVM has no KVM_CAP_COALESCED_MMIO and _PIO: the deferred writes exit (checked: same run)")
        }
        // The guest cannot tell: the same epochs, the same boundaries, the same final state.
        #expect(coalesced.boundaries == exiting.boundaries)
        #expect(coalesced.progress == exiting.progress)
        #expect(coalesced.output == exiting.output)
        #expect(coalesced.digest == exiting.digest)
    }

    static func hostCoalescesWrites() throws -> Bool {
        let vm = try KVMSystem(path: X86Machine.defaultKVMPath).createVM()
        return vm.checkExtension(.coalescedMMIO) > 0 && vm.checkExtension(.coalescedPIO) > 0
    }

    @Test("disk at CPL0")
    func diskRing0() async throws {
        let image = ImageCapture()
        let result = try await runGuest("disk", commandLine: "ring0 blocks=2 seed=2", diskSectors: 8,
                                        inspectDisk: { image.bytes = $0 })
        #expect(result.stop == .exited(status: 0))
        #expect(result.output.hasSuffix("disk verify ok sha256=\(StateDigest.of(GuestExpectations.pattern(seed: 2, count: 1024)))\n"))
        #expect(Array(image.bytes.prefix(1024)) == GuestExpectations.pattern(seed: 2, count: 1024))
    }

    @Test("disk without a disk: the guest finds no device and exits 3")
    func noDisk() async throws {
        let result = try await runGuest("disk")
        #expect(result.stop == .exited(status: 3))
        #expect(result.output.hasSuffix("disk error: no usable disk\n"))
    }

    // MARK: - echo

    @Test("echo answers lines delivered as console input at epoch boundaries", arguments: ["", "ring0"])
    func echo(commandLine: String) async throws {
        let script = ScriptedInput([("echo ready\n", "hello\r\nab"), ("rev=olleh\n", "c\nquit\n")])
        let result = try await runGuest("echo", commandLine: commandLine, input: script.next)
        #expect(result.output == "echo ready\necho n=1 len=5 rev=olleh\necho n=2 len=3 rev=cba\necho bye n=2\n")
        #expect(result.stop == .exited(status: 0))
    }

    // MARK: - trap

    @Test("trap: an exception in the guest is reported by its kernel, which exits 64 + vector")
    func trap() async throws {
        let result = try await runGuest("trap", commandLine: "trap=pf")
        #expect(result.stop == .exited(status: 64 + 14))
        #expect(result.output.contains("exception vector=14 (#PF)"))
    }

    // MARK: - Epoch clocks

    @Test("single-step clock on a CPL0 guest: deterministic, one unit per step")
    func singleStepClock() async throws {
        let first = try await runGuest("hello", commandLine: "ring0", epochClock: .singleStep, epochLength: 4096)
        let second = try await runGuest("hello", commandLine: "ring0", epochClock: .singleStep, epochLength: 777)
        #expect(first.output == "Hello from x86\n")
        #expect(first.stop == .exited(status: 0))
        #expect(first.statistics.steps > 1000, "\(first.statistics)")
        #expect(first.progress == second.progress, "epoch length does not change where the guest stops")
        #expect(first.digest != StateDigest(bytes: [UInt8](repeating: 0, count: 32)))
        #expect(first.output == second.output)
    }

    @Test("single-step clock on a CPL3 guest stops with one clear line")
    func singleStepAtCPL3() async throws {
        do {
            _ = try await runGuest("hello", epochClock: .singleStep)
            Issue.record("a CPL3 guest ran under the single-step clock")
        } catch let error as X86Error {
            guard case .needsCPL0(.singleStep, _) = error else { Issue.record("unexpected \(error)"); return }
            #expect(error.description.contains("ring0"))
            #expect(!error.description.contains("\n"))
        }
    }

    // MARK: - Replication in one process

    @Test("a backup fed the primary's environment values passes the same boundaries and ends in the same state")
    func primaryAndBackup() async throws {
        let log = ValueLog()
        // The primary's environment answers with something the backup's machine would not
        // propose (a TSC far from its own virtual time).
        let primary = try await runGuest("ticks", commandLine: "ticks=3 hz=500", answer: { read, proposed in
            let value = read == .timestampCounter ? proposed &* 3 &+ 12345 : proposed
            log.append(value)
            return value
        })
        let replay = log.reader()
        let backup = try await runGuest("ticks", commandLine: "ticks=3 hz=500", answer: { _, _ in replay.next() })
        #expect(backup.output == primary.output)
        #expect(backup.digest == primary.digest)
        #expect(backup.progress == primary.progress)
        #expect(backup.epochs == primary.epochs)
        #expect(backup.boundaries == primary.boundaries)
        let unreplicated = try await runGuest("ticks", commandLine: "ticks=3 hz=500")
        #expect(unreplicated.output != primary.output, "the primary's values did reach the guest")
    }
}

/// Console input that appears once its trigger has been printed, each chunk once.
final class ScriptedInput: @unchecked Sendable {
    private var steps: [(trigger: String, input: String)]
    private let lock = NSLock()

    init(_ steps: [(String, String)]) { self.steps = steps.map { ($0.0, $0.1) } }

    /// The input for this boundary, given the output so far.
    func next(_ output: String) -> [UInt8]? {
        lock.withLock {
            guard let step = steps.first, output.contains(step.trigger) else { return nil }
            steps.removeFirst()
            return Array(step.input.utf8)
        }
    }
}

/// The bytes of a disk image, captured on the machine thread.
final class ImageCapture: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [UInt8] = []
    var bytes: [UInt8] {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

/// The environment values a primary returned, replayed in order to a backup.
final class ValueLog: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [UInt64] = []
    private var position = 0

    func append(_ value: UInt64) { lock.withLock { values.append(value) } }

    func reader() -> ValueLog {
        let copy = ValueLog()
        lock.withLock { copy.values = values }
        return copy
    }

    func next() -> UInt64 {
        lock.withLock {
            defer { position += 1 }
            return position < values.count ? values[position] : 0
        }
    }
}
