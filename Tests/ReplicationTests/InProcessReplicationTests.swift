import Foundation
import Hypervisor
import MachineCore
import Testing
import TestSupport

@testable import Replication

/// Replication with real machines in one process: same state at the end, divergence detected,
/// a damaged channel ending replication cleanly.
@Suite(.serialized) struct InProcessReplicationTests {
    static let arch = "parisc"

    static func options(_ guest: String, _ cmdline: String, disk: String? = nil) -> RunOptions {
        RunOptions(guestPath: InProcessPair.guest(arch, guest), commandLine: cmdline, diskPath: disk,
                   epochLength: 2000)
    }

    static var available: Bool { InProcessPair.hasGuest(arch, "echo") }
    static let echoInput = (1...8).map { "echo line \($0)\n" }.joined() + "quit\n"

    @Test(.enabled(if: available, "PA-RISC guests are not built (scripts/build-guests)"))
    func faultFreeReplicasEndInTheSameState() throws {
        let options = Self.options("echo", "")
        let reference = try InProcessPair.reference(options, input: Self.echoInput)
        let (primary, backup) = try InProcessPair.run(options, input: Self.echoInput, digestEvery: 4)
        #expect(try primary.outcome.get().stop == .exited(status: 0))
        #expect(try backup.outcome.get().stop == .exited(status: 0))
        #expect(primary.output == reference.output)
        #expect(backup.output.isEmpty, "a backup that never went live printed: \(backup.output)")
    }

    @Test(.enabled(if: available, "PA-RISC guests are not built (scripts/build-guests)"))
    func outputIsCommittedBeforeThePrimaryWaitsForInput() throws {
        // The console stays open: the guest prints its prompt and idles. The prompt must be
        // visible before anything is typed, and each answer before the next line.
        let console = ConsoleCapture(input: "", interactive: true)
        let typist = ResultBox<[String]>()
        Thread.detachNewThread {
            var missing: [String] = []
            for (wanted, line) in [("echo ready", "one\n"), ("rev=eno", "quit\n")] {
                if !console.waitForOutput(containing: wanted, seconds: 30) { missing.append(wanted) }
                console.type(line)
            }
            console.closeInput()
            typist.put(missing)
        }
        let (primary, backup) = try InProcessPair.run(Self.options("echo", ""), primaryConsole: console)
        #expect(typist.take() == [], "output the primary held back while it waited for input")
        #expect(try primary.outcome.get().stop == .exited(status: 0))
        #expect(try backup.outcome.get().stop == .exited(status: 0))
        #expect(primary.output.hasSuffix("echo bye n=1\n"))
    }

    @Test(.enabled(if: available, "PA-RISC guests are not built (scripts/build-guests)"))
    func aGuestLeftWaitingForClosedInputEndsAlikeOnBothReplicas() throws {
        // No "quit": the guest waits for input that can never come. Like an unreplicated run,
        // both replicas end with status 0, and the backup sees no divergence.
        let options = Self.options("echo", "")
        let input = "only line\n"
        let reference = try InProcessPair.reference(options, input: input)
        #expect(try reference.outcome.get().stop == .exited(status: 0))
        let (primary, backup) = try InProcessPair.run(options, input: input, digestEvery: 1)
        #expect(try primary.outcome.get().stop == .exited(status: 0))
        #expect(try backup.outcome.get().stop == .exited(status: 0))
        #expect(primary.output == reference.output)
        #expect(backup.output.isEmpty)
    }

    @Test(.enabled(if: available, "PA-RISC guests are not built (scripts/build-guests)"))
    func divergenceIsDetectedAtTheNextDigest() throws {
        let options = Self.options("echo", "")
        let (primary, backup) = try InProcessPair.run(options, input: Self.echoInput, digestEvery: 1) { machine in
            // One byte of the backup's RAM that the guest never touches: execution stays the
            // same, the state does not.
            let memory = try #require(Mirror(reflecting: machine).descendant("memory") as? GuestMemory)
            try memory.store(UInt8(0x5A), at: GuestAddress(12 << 20), order: .little)
        }
        #expect {
            try backup.outcome.get()
        } throws: { error in
            guard case ReplicationError.divergence(let epoch, let detail) = error else { return false }
            return epoch == 0 && detail.contains("state digest")
        }
        // The primary carries on alone and finishes the job.
        #expect(try primary.outcome.get().stop == .exited(status: 0))
    }

    @Test(.enabled(if: available, "PA-RISC guests are not built (scripts/build-guests)"),
          arguments: [100, 600, 2000])
    func aCorruptedFrameEndsReplicationWithoutATakeover(_ offset: Int) throws {
        let options = Self.options("echo", "")
        let reference = try InProcessPair.reference(options, input: Self.echoInput)
        let (primary, backup) = try InProcessPair.run(options, input: Self.echoInput,
                                                      damage: .flipBit(atOffset: offset))
        #expect(backup.output.isEmpty)
        if case .failure(let error) = backup.outcome, let failure = error as? HandshakeFailure {
            // The damage hit the primary's sealed identity: the backup cannot authenticate it,
            // and the primary never starts the guest for that connection.
            #expect(failure == .authenticationFailed)
            #expect(primary.output.isEmpty)
            return
        }
        #expect {
            try backup.outcome.get()
        } throws: { error in
            // A flipped bit in a sealed body fails authentication; one in a frame's header
            // (magic, type, length: checked before the body is opened) is refused as malformed.
            // Which one the offset hits depends on how heartbeats interleaved.
            guard case .channel(.protocolError(let wire))? = error as? ReplicationError else { return false }
            switch wire {
            case .authenticationFailed, .badMagic, .unsupportedVersion, .unknownFrameType, .badFrameLength: return true
            default: return false
            }
        }
        // The primary carries on alone and finishes the job.
        #expect(try primary.outcome.get().stop == .exited(status: 0))
        #expect(primary.output == reference.output)
    }

    @Test(.enabled(if: available, "PA-RISC guests are not built (scripts/build-guests)"),
          arguments: [500, 900, 1500])
    func aTruncatedStreamLeavesExactlyOneReplicaProducingOutput(_ bytes: Int) throws {
        let options = Self.options("echo", "")
        let reference = try InProcessPair.reference(options, input: Self.echoInput)
        let (primary, backup) = try InProcessPair.run(options, input: Self.echoInput, damage: .cut(afterBytes: bytes))
        // The connection broke mid-frame: each side sees its peer gone, and the arbiter picks one.
        let primaryWon = (try? primary.outcome.get()) != nil
        let backupWon = (try? backup.outcome.get()) != nil
        #expect(primaryWon != backupWon, "primary \(primary.outcome), backup \(backup.outcome)")
        let loser = primaryWon ? backup : primary
        #expect {
            try loser.outcome.get()
        } throws: { error in
            switch error as? ReplicationError {
            case .lostArbiter?, .handshakeFailed?: true
            default: false
            }
        }
        // Together they printed the reference output, up to one repeated record.
        #expect(OutputComparison.equalUpToOneRepeatedRecord(primary.output + backup.output, reference.output),
                "primary printed \(primary.output), backup \(backup.output)")
    }

    @Test(.enabled(if: available, "PA-RISC guests are not built (scripts/build-guests)"))
    func aStuckPrimaryGoesSilentAndTheBackupTakesOver() throws {
        // The primary's machine thread hangs in host work at epoch 3 for four timeouts (as in a
        // console write that blocks): its connection stops heartbeating, the backup takes over
        // and finishes the run, and the primary, when it wakes, finds the arbiter taken.
        let options = Self.options("echo", "")
        let reference = try InProcessPair.reference(options, input: Self.echoInput)
        let stalled = ResultBox<Bool>()
        let faults = FaultInjection { phase, epoch in
            guard phase == .boundary, epoch == 3 else { return }
            Thread.sleep(forTimeInterval: 2.0)
            stalled.put(true)
        }
        let (primary, backup) = try InProcessPair.run(options, input: Self.echoInput, timeoutMilliseconds: 500, faults: faults)
        #expect(stalled.take())
        #expect(try backup.outcome.get().stop == .exited(status: 0))
        #expect {
            try primary.outcome.get()
        } throws: { error in
            guard case .lostArbiter? = error as? ReplicationError else { return false }
            return true
        }
        #expect(OutputComparison.equalUpToOneRepeatedRecord(primary.output + backup.output, reference.output),
                "primary printed \(primary.output), backup \(backup.output)")
    }
}
