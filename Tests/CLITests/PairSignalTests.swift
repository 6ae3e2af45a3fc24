import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `lockstep pair` stopped from outside: its replicas stop with it and nothing is left behind.
@Suite(.serialized) struct PairSignalTests {
    /// The processes whose parent is `pid`, from /proc.
    static func children(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { candidate in
            guard let stat = try? String(contentsOfFile: "/proc/\(candidate)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")")
            else { return false }
            // After "pid (comm)" come the state and the parent's pid.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid
        }
    }

    @Test(.enabled(if: Lockstep.hasGuest("parisc", "ticks"), "guests are not built (scripts/build-guests)"),
          arguments: [SIGTERM, SIGINT])
    func aSignalStopsBothReplicasAndCleansUp(_ signal: Int32) throws {
        let executable = try #require(Lockstep.executable, "lockstep is not built")
        let arbiterDirectory = Scratch.path("pair-signal-\(signal)")
        try FileManager.default.createDirectory(atPath: arbiterDirectory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: arbiterDirectory) }
        // Long enough to be stopped in the middle: 100 s of host time.
        let started = try Lockstep.start(executable, [
            "pair", "--no-status-line", "--clock", "host", "--cmdline", "ticks=10000",
            "--arbiter-dir", arbiterDirectory, Lockstep.guest("parisc", "ticks"),
        ])
        let (pair, output, errors) = (started.process, started.stdout, started.stderr)
        defer { if pair.isRunning { kill(pair.processIdentifier, SIGKILL) } }
        let deadline = Date(timeIntervalSinceNow: 30)
        while !output.snapshot().contains("ticks hz=") && pair.isRunning && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.01)
        }
        let replicas = Self.children(of: pair.processIdentifier)
        #expect(replicas.count == 2, "pair's children: \(replicas); stderr: \(errors.snapshot())")

        kill(pair.processIdentifier, signal)
        let stopBy = Date(timeIntervalSinceNow: 15)
        while pair.isRunning && Date() < stopBy { Thread.sleep(forTimeInterval: 0.01) }
        #expect(!pair.isRunning, "pair did not stop on signal \(signal)")
        pair.waitUntilExit()
        #expect(pair.terminationReason == .exit)
        #expect(pair.terminationStatus == 128 + signal)
        for replica in replicas {
            #expect(kill(replica, 0) != 0, "replica \(replica) outlived pair")
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())
            .filter { $0.hasPrefix("lockstep-pair-\(pair.processIdentifier)-") }
        #expect(leftovers.isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: arbiterDirectory).isEmpty)
    }
}
