import Foundation
import KVM
import MachineCore
import Testing
@testable import X86

/// The counter-driven epoch clocks on this host's KVM: `emulation-counter` (insn_emulation, a
/// kick timer and interrupt-window runs, then single-steps) against `single-step`, the
/// reference, on the bundled ring0 guests.
@Suite("counter-driven epoch clocks", .serialized,
       .enabled(if: Host.hasGuests && CounterClockHost.hasEmulationCounter,
                "needs /dev/kvm, scripts/build-guests and a KVM that interprets CPL0 code (insn_emulation)"))
struct CounterClockTests {
    /// The ring0 workloads: name, command line, disk sectors, epochs compared (nil: the whole run).
    static let workloads: [(String, String, UInt64?, Int?)] = [
        ("ticks", "ring0 ticks=3 hz=500", nil, nil),
        ("disk", "ring0 blocks=2 seed=2", 8, nil),
        // The whole cpu run is 1.4 M instructions, a minute of single-steps in a debug build:
        // its first 40 epochs (boot, the buffer fill and the first SHA-256 blocks) are compared.
        ("cpu", "ring0 rounds=1", nil, 40),
    ]

    @Test("emulation-counter and single-step end every epoch at the same instruction, in the same state",
          arguments: workloads)
    func sameBoundaries(_ workload: (String, String, UInt64?, Int?)) async throws {
        let (name, commandLine, disk, epochs) = workload
        let length: UInt64 = 4096
        let maxEpochs = epochs ?? 200_000
        let reference = try await runGuest(name, commandLine: commandLine, epochClock: .singleStep, epochLength: length,
                                           maxEpochs: maxEpochs, diskSectors: disk, memorySize: 16 << 20)
        let counter = try await runGuest(name, commandLine: commandLine, epochClock: .emulationCounter, epochLength: length,
                                         maxEpochs: maxEpochs, diskSectors: disk, memorySize: 16 << 20)
        #expect(reference.boundaries.count >= min(maxEpochs - 1, 2))
        #expect(counter.boundaries.count == reference.boundaries.count)
        for (index, (mine, theirs)) in zip(counter.boundaries, reference.boundaries).enumerated() where mine != theirs {
            Issue.record("boundary \(index): emulation-counter at (progress, time, RIP) \(mine), single-step at \(theirs)")
            break
        }
        #expect(counter.stop == reference.stop)
        #expect(counter.progress == reference.progress)
        #expect(counter.output == reference.output)
        #expect(counter.digest == reference.digest, "the machines differ after the same epochs")
        if epochs == nil { #expect(counter.stop == .exited(status: 0), "\(counter.stop): \(counter.output)") }
        let s = counter.statistics
        print("X86Tests: \(name): \(counter.boundaries.count) boundaries equal; emulation-counter: \(s.boundedRuns) bounded runs (largest \(s.largestBoundedRun) instructions), \(s.freeRuns) free runs, \(s.steps) steps; single-step: \(reference.statistics.steps) steps")
        #expect(s.steps < reference.statistics.steps, "the counter clock steps only near the ends of epochs")
    }

    @Test("a backup with the emulation-counter clock stops where the primary did, and both end in the same state",
          arguments: workloads)
    func backupFollows(_ workload: (String, String, UInt64?, Int?)) async throws {
        let (name, commandLine, disk, _) = workload
        let length: UInt64 = 32768
        let log = ValueLog()
        let primary = try await runGuest(name, commandLine: commandLine, epochClock: .emulationCounter, epochLength: length,
                                         diskSectors: disk, memorySize: 16 << 20, answer: { read, proposed in
            // Answers the backup's machine would not propose, so replay is visible.
            let value = read == .timestampCounter ? proposed &* 3 &+ 12345 : proposed
            log.append(value)
            return value
        })
        #expect(primary.stop == .exited(status: 0), "\(primary.stop): \(primary.output)")
        let replay = log.reader()
        let backup = try await onMachineThread { () -> GuestResult in
            let temporary = try disk.map { try TemporaryDisk(sectors: $0) }
            let environment = RecordingEnvironment(disk: temporary)
            environment.answer = { _, _ in replay.next() }
            let machine = try X86Machine(image: try Guests.image(name), memorySize: 16 << 20, commandLine: commandLine,
                                         diskSectors: disk, epochClock: .emulationCounter, environment: environment)
            return try follow(machine, environment, primary: primary)
        }
        #expect(backup.boundaries == primary.boundaries)
        #expect(backup.stop == primary.stop)
        #expect(backup.progress == primary.progress)
        #expect(backup.output == primary.output)
        #expect(backup.digest == primary.digest)
        print("X86Tests: \(name): backup followed \(primary.boundaries.count) boundaries; primary \(primary.statistics.boundedRuns) bounded runs (largest \(primary.statistics.largestBoundedRun)), \(primary.statistics.freeRuns) free runs, \(primary.statistics.steps) steps; backup \(backup.statistics.boundedRuns) bounded runs (largest \(backup.statistics.largestBoundedRun)), \(backup.statistics.freeRuns) free runs, \(backup.statistics.steps) steps")
    }

    @Test("a backup whose KVM exits on the deferred writes stops where a primary whose KVM buffers them did (disk, emulation-counter)")
    func backupWithoutCoalescing() async throws {
        let (commandLine, sectors, length): (String, UInt64, UInt64) = ("ring0 blocks=2 seed=3", 8, 4096)
        let primary = try await runGuest("disk", commandLine: commandLine, epochClock: .emulationCounter, epochLength: length,
                                         diskSectors: sectors, memorySize: 16 << 20, coalescing: true)
        #expect(primary.stop == .exited(status: 0), "\(primary.stop): \(primary.output)")
        let backup = try await onMachineThread { () -> GuestResult in
            let environment = RecordingEnvironment(disk: try TemporaryDisk(sectors: sectors))
            let machine = try X86Machine(image: try Guests.image("disk"), memorySize: 16 << 20, commandLine: commandLine,
                                         diskSectors: sectors, epochClock: .emulationCounter, environment: environment,
                                         coalescing: false)
            return try follow(machine, environment, primary: primary)
        }
        #expect(backup.boundaries == primary.boundaries)
        #expect(backup.stop == primary.stop)
        #expect(backup.output == primary.output)
        #expect(backup.digest == primary.digest)
        #expect(backup.statistics.deferredWrites == primary.statistics.deferredWrites)
        #expect(backup.statistics.coalescedWrites == 0)
        if try GuestTests.hostCoalescesWrites() { #expect(primary.statistics.coalescedWrites > 0) }
        print("X86Tests: disk: \(primary.boundaries.count) boundaries equal; \(primary.statistics.deferredWrites) deferred writes, \(primary.statistics.coalescedWrites) of them buffered by the primary's KVM; KVM_RUN calls \(primary.statistics.runs) primary, \(backup.statistics.runs) backup")
    }

    @Test("the emulation-counter clock on a CPL3 guest stops with one clear line")
    func cpl3Guest() async throws {
        do {
            _ = try await runGuest("hello", epochClock: .emulationCounter, epochLength: 4096)
            Issue.record("a CPL3 guest ran under the emulation-counter clock")
        } catch let error as X86Error {
            guard case .needsCPL0(.emulationCounter, _) = error else { Issue.record("unexpected \(error)"); return }
            #expect(error.description.contains("ring0") && !error.description.contains("\n"))
        }
    }
}

/// Whether this host's KVM counts CPL0 instructions in `insn_emulation`.
enum CounterClockHost {
    static let hasEmulationCounter: Bool = {
        guard Host.hasKVM else { return false }
        if case .unavailable(let why) = CounterAvailability.emulationCounter(kvmPath: X86Machine.defaultKVMPath) {
            print("X86Tests: skipping the emulation-counter tests: \(why)")
            return false
        }
        return true
    }()
}

/// Runs a backup machine to each of the primary's boundaries in turn, as Replication's backup
/// does: the budget is the primary's progress there minus its own, then the primary's boundary
/// time is applied; at the end it runs to the primary's final progress.
func follow(_ machine: X86Machine, _ environment: RecordingEnvironment, primary: GuestResult) throws -> GuestResult {
    var boundaries: [[UInt64]] = []
    for boundary in primary.boundaries {
        guard boundary[0] > machine.progress else { throw Failure("the primary's boundary \(boundary) is not ahead of the backup at \(machine.progress)") }
        let stop = try machine.run(budget: boundary[0] - machine.progress)
        guard stop == .epochEnd || stop == .idle, machine.progress == boundary[0] else {
            throw Failure("the backup stopped (\(stop)) at \(machine.progress) where the primary's epoch ended at \(boundary)")
        }
        try machine.applyBoundary(time: VirtualTime(nanoseconds: boundary[1]), events: environment.takeCompletions())
        boundaries.append([machine.progress, machine.clock.now.nanoseconds, try machine.registers().rip])
    }
    let stop = primary.progress > machine.progress ? try machine.run(budget: primary.progress - machine.progress) : .epochEnd
    return GuestResult(stop: stop, output: environment.text, epochs: boundaries.count + 1, progress: machine.progress,
                       digest: try machine.stateDigest(), values: environment.values.map(\.value),
                       unknownAccesses: machine.unknownAccesses.locations, statistics: machine.statistics,
                       boundaries: boundaries)
}
