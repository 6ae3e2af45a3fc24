import Foundation
import Hypervisor
import MachineCore
import Testing

@testable import Replication

@Suite struct ArbiterTests {
    @Test func exactlyOneClaimantWins() throws {
        let directory = FileManager.default.temporaryDirectory.path
        let arbiter = Arbiter(directory: directory, session: (0..<16).map { _ in UInt8.random(in: 0...255) })
        defer { arbiter.release() }
        #expect(!arbiter.isClaimed)
        #expect(try arbiter.acquire(claimant: "backup pid 1") == .won)
        #expect(try arbiter.acquire(claimant: "primary pid 2") == .lost(holder: "backup pid 1"))
        #expect(arbiter.isClaimed)
        #expect(arbiter.holder == "backup pid 1")
    }

    @Test func concurrentClaimsHaveOneWinner() throws {
        let arbiter = Arbiter(directory: FileManager.default.temporaryDirectory.path,
                              session: (0..<16).map { _ in UInt8.random(in: 0...255) })
        defer { arbiter.release() }
        let wins = LockedLines()
        DispatchQueue.concurrentPerform(iterations: 16) { i in
            if (try? arbiter.acquire(claimant: "claimant \(i)")) == .won { wins.append("\(i)") }
        }
        #expect(wins.lines.count == 1)
    }

    @Test func unusableDirectoryIsAnErrorNotALoss() {
        let arbiter = Arbiter(directory: "/nonexistent-directory", session: [1])
        #expect(throws: ArbiterError.self) { try arbiter.acquire(claimant: "x") }
        #expect(throws: ArbiterError.self) { try Arbiter.checkDirectory("/nonexistent-directory") }
    }

    @Test func checkingADirectoryLeavesNothingBehind() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lockstep-arbiter-check-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Arbiter.checkDirectory(directory.path)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }
}

@Suite struct IdentityTests {
    @Test func differencesAreNamed() {
        var options = RunOptions(guestPath: "/other/path/g")  // paths do not matter
        let same = ReplicaIdentity(imageBytes: [1, 2, 3], options: options, engine: .emulator,
                                   epochClock: .recoveryCounter, epochLength: 100, diskSectors: nil)
        #expect(identity.refusal(of: same.message(role: .backup, session: []), expecting: .backup) == nil)
        options.memorySize = 128 << 20
        let bigger = ReplicaIdentity(imageBytes: [1, 2, 3], options: options, engine: .emulator,
                                     epochClock: .recoveryCounter, epochLength: 100, diskSectors: nil)
        let reason = identity.refusal(of: bigger.message(role: .backup, session: []), expecting: .backup)
        #expect(reason?.contains("configuration differs") == true)
        #expect(reason?.contains("memory=134217728") == true)
        #expect(identity.refusal(of: same.message(role: .primary, session: testSession), expecting: .backup) != nil)
        // A peer's configuration text is shown sanitised.
        var hostile = same.message(role: .backup, session: [])
        hostile.configurationDigest = digestA
        hostile.configuration = "\u{1B}]0;owned\u{7}"
        #expect(identity.refusal(of: hostile, expecting: .backup)?.contains("\u{1B}") == false)
    }
}
