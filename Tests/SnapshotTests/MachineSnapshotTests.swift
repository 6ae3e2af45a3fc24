import Foundation
import Hypervisor
import MachineCore
import Testing
import X86

/// Snapshots of real guests in one process: taken at a boundary while the guest runs on,
/// restored into a freshly built machine, both continued to the end. (The CLI tests cover every
/// guest, cpu included, across processes.)
@Suite("Machine snapshots of the bundled guests", .serialized)
struct MachineSnapshotTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let arch: String
        let guest: String
        var cmdline = ""
        var disk = false
        /// Console input, delivered at the first boundary (the same boundary in every run, so
        /// unlike typed input it leaves the runs comparable state for state).
        var input = ""
        var clock: EpochClock?
        var testDescription: String {
            "\(arch)/\(guest) \(cmdline)" + (clock.map { " \($0)" } ?? "")
        }
    }

    static let cases: [Case] = ["parisc", "x86"].flatMap { arch in
        [
            Case(arch: arch, guest: "hello"),
            Case(arch: arch, guest: "ticks", cmdline: "ticks=4"),
            Case(arch: arch, guest: "disk", cmdline: "blocks=8", disk: true),
            Case(arch: arch, guest: "trap"),
            Case(arch: arch, guest: "echo", input: "one\ntwo words\nquit\n"),
        ]
    } + [Case(arch: "x86", guest: "ticks", cmdline: "ticks=3 ring0", clock: .singleStep),
         Case(arch: "x86", guest: "ticks", cmdline: "ticks=3 ring0", clock: .emulationCounter)]

    @Test("saved at three boundaries and restored, the machine continues to the same output and digests",
          arguments: cases)
    func continuesIdentically(_ c: Case) throws {
        guard c.arch == "parisc" || Host.hasKVM else { return }
        func make(disk: Data?) throws -> GuestRun {
            try GuestRun(c.arch, c.guest, cmdline: c.cmdline, disk: disk) { options in
                if let clock = c.clock {
                    options.epochClock = .specific(clock)
                    options.epochLength = 2000
                }
            }
        }
        let blank = c.disk ? Data(count: 64 * 512) : nil
        let reference = try make(disk: blank)
        var trace: [UInt64: (progress: UInt64, digest: StateDigest)] = [:]
        let referenceSession = reference.session()
        referenceSession.boundaryObserver = { epoch in
            trace[epoch] = (reference.machine.progress, try reference.machine.stateDigest())
            return .proceed
        }
        if !c.input.isEmpty { reference.environment.host.carry([.consoleInput(Array(c.input.utf8))]) }
        let end = try referenceSession.run()
        if !c.input.isEmpty { #expect(reference.text.contains("rev=sdrow owt"), "echo did not answer: \(reference.text)") }
        let finalDigest = try reference.machine.stateDigest()
        #expect(try reference.machine.fullStateDigest() == finalDigest, "incremental and full digests differ")
        print("SnapshotTests: \(c.testDescription): \(end.epochs) epochs")

        // One run takes a snapshot at each of a few boundaries and must still end as the
        // reference did; then each snapshot is continued in a freshly built machine.
        let points = Set([1, end.epochs / 2, end.epochs - 1].filter { $0 >= 1 && $0 < end.epochs })
        let original = try make(disk: blank)
        var saved: [UInt64: (buffer: SnapshotBuffer, output: Data, disk: Data?)] = [:]
        let session = original.session()
        session.boundaryObserver = { epoch in
            guard points.contains(epoch) else { return .proceed }
            let buffer = SnapshotBuffer()
            do {
                _ = try MachineSnapshot.write(original.machine, identity: original.setup.snapshotIdentity,
                                              host: SnapshotHostState(epoch: epoch, pendingEvents: original.environment.host.heldEvents),
                                              to: buffer)
                saved[epoch] = (buffer, original.output.contents, original.disk?.contents)
            } catch let error as SnapshotError {
                Issue.record("boundary \(epoch) could not be saved: \(error)")
            }
            return .proceed
        }
        if !c.input.isEmpty { original.environment.host.carry([.consoleInput(Array(c.input.utf8))]) }
        #expect(try session.run() == end, "taking snapshots changed the run")
        #expect(original.output.contents == reference.output.contents)
        #expect(try original.machine.stateDigest() == finalDigest)
        #expect(!saved.isEmpty, "no boundary could be saved")

        for (at, snapshot) in saved.sorted(by: { $0.key < $1.key }) {
            let restored = try make(disk: snapshot.disk)
            let reader = try SnapshotReader(input: snapshot.buffer)
            #expect(reader.identity == restored.setup.snapshotIdentity)
            #expect(reader.host.epoch == at)
            try reader.restore(into: restored.machine)
            #expect(restored.machine.progress == trace[at]?.progress)
            // (On KVM capturing completes the exit the vCPU stopped at, so the digest is the one
            // recorded at capture, which restoreState checked, not the reference's at `at`.)
            if c.arch == "parisc" {
                #expect(try restored.machine.stateDigest() == trace[at]?.digest, "restored at \(at)")
            }
            restored.environment.host.carry(reader.host.eventsForFirstBoundary(outstanding: restored.machine.outstandingBlockRequests))
            let restoredSession = restored.session()
            var diverged: UInt64?
            restoredSession.boundaryObserver = { epoch in
                if diverged == nil, trace[epoch]?.progress != restored.machine.progress { diverged = epoch }
                return .proceed
            }
            let restoredEnd = try restoredSession.run(epochs: at)
            #expect(diverged == nil, "restored at \(at): progress differs from epoch \(diverged ?? 0) on")
            #expect(restoredEnd == end, "restored at \(at)")
            #expect(snapshot.output + restored.output.contents == reference.output.contents, "restored at \(at)")
            #expect(try restored.machine.stateDigest() == finalDigest, "restored at \(at)")
            #expect(try restored.machine.fullStateDigest() == finalDigest)
            if c.disk { #expect(restored.disk?.contents == reference.disk?.contents, "restored at \(at)") }
        }
    }

    @Test("the incremental state digest equals the digest of every page, at boundaries and at the end of every bundled guest",
          arguments: ["parisc", "x86"])
    func incrementalDigestIsTheFullDigest(_ arch: String) throws {
        guard arch == "parisc" || Host.hasKVM else { return }
        for (guest, cmdline) in [("hello", ""), ("cpu", "rounds=1"), ("ticks", "ticks=4"), ("disk", "blocks=8"),
                                 ("echo", ""), ("trap", "")] {
            let run = try GuestRun(arch, guest, cmdline: cmdline, disk: guest == "disk" ? Data(count: 64 * 512) : nil) {
                $0.memorySize = 16 << 20
                if guest == "cpu" { $0.epochLength = nil }
            }
            let session = run.session()
            var compared = 0
            session.boundaryObserver = { epoch in
                if epoch % 7 == 1, compared < 8 {
                    let incremental = try run.machine.stateDigest()
                    #expect(try incremental == run.machine.fullStateDigest(), "\(arch)/\(guest) at \(epoch)")
                    compared += 1
                }
                return .proceed
            }
            _ = try session.run()
            #expect(try run.machine.stateDigest() == run.machine.fullStateDigest(), "\(arch)/\(guest) at the end")
        }
    }
}
