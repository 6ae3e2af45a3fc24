import Foundation
import Testing

/// COVERT's done-means with real processes: a bit flipped in one replica's copy of the buffer the
/// `cpu` guest hashes. Unreplicated, the wrong digest line is printed; with `lockstep pair
/// --compare` the mismatch is found before the line is released, both replicas roll back to
/// their last agreed checkpoint and run again (the soft error does not recur), and the console
/// shows exactly the fault-free line, with one report on standard error naming the epoch and the
/// output.
@Suite(.serialized) struct SoftErrorDetectionTests {
    struct Case: CustomStringConvertible, Sendable {
        let arch: String
        let arguments: [String]
        /// An epoch inside the hashing loop, after the buffer was filled.
        let epoch: UInt64
        /// The replicas to inject into (KVM's instruction-counted clock is slow: the primary only).
        var replicas = ["primary", "backup"]
        var description: String { arch }
    }

    static let parisc = Case(arch: "parisc", arguments: ["--cmdline", "rounds=4"], epoch: 100)
    // KVM: the exits clock would put the whole computation in one epoch; instruction-counted
    // epochs put a boundary inside the loop.
    static let x86 = Case(arch: "x86", arguments: ["--epoch-clock", "emulation-counter", "--cmdline", "rounds=2 ring0"],
                          epoch: 30, replicas: ["primary"])

    @Test("a flipped bit in the hashed buffer is withheld on the emulator")
    func emulator() throws { try detected(Self.parisc) }

    @Test("a flipped bit in the hashed buffer is withheld on KVM", .enabled(if: Lockstep.hasKVM, "needs a usable /dev/kvm"))
    func kvm() throws { try detected(Self.x86) }

    func detected(_ c: Case) throws {
        try #require(Lockstep.hasGuest(c.arch, "cpu"), "the cpu guest is not built (scripts/build-guests)")
        let guest = Lockstep.guest(c.arch, "cpu")
        let clean = try Lockstep.run(["run"] + c.arguments + [guest], timeout: 120)
        try #require(clean.status == 0, "the fault-free run failed: \(clean.stderr)")
        let line = try #require(clean.stdout.split(separator: "\n").first { $0.hasPrefix("cpu ") })

        // Unreplicated, the soft error reaches the console as a wrong digest: the fault matters.
        let fault = "sym:buffer+5:2"
        let faulty = try Lockstep.run(["run", "--inject-fault", "primary:\(c.epoch):\(fault)"] + c.arguments + [guest],
                                      timeout: 120)
        #expect(faulty.status == 0)
        #expect(faulty.stdout.contains("cpu ") && !faulty.stdout.contains(line), "the flip changed nothing: \(faulty.stdout)")

        // Compared, in either replica: only the fault-free output ever reaches the console.
        for replica in c.replicas {
            let pair = try Lockstep.run(["pair", "--no-status-line", "--compare", "--inject-fault", "\(replica):\(c.epoch):\(fault)"]
                                        + c.arguments + [guest], timeout: 180)
            #expect(pair.status == 0, "\(replica): \(pair.stderr)")
            #expect(pair.stdout == clean.stdout, "\(replica): \(pair.stdout)")
            let report = pair.stderr.split(separator: "\n").filter { $0.contains("output mismatch at epoch ") }
            #expect(report.count == 1, "\(replica): \(pair.stderr)")
            #expect(report.first?.contains("output 1 (console line)") == true, "\(replica): \(pair.stderr)")
            #expect(report.first?.contains("rolling both replicas back to epoch 0") == true, "\(replica): \(pair.stderr)")
        }

        // The same pair without a fault releases the fault-free line.
        guard c.replicas.count > 1 else { return }
        let compared = try Lockstep.run(["pair", "--no-status-line", "--compare", "--digest-every", "8"] + c.arguments + [guest],
                                        timeout: 180)
        #expect(compared.status == 0, "\(compared.stderr)")
        #expect(compared.stdout.contains(line))
    }
}
