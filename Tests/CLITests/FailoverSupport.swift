import Foundation
import Replication
import Testing

/// One guest, as the failover tests run it.
struct FailoverCase: CustomTestStringConvertible, Sendable {
    let arch: String
    let guest: String
    let cmdline: String
    let input: String
    let usesDisk: Bool
    var hostClock = false
    var extraArguments: [String] = []

    var testDescription: String { "\(arch)/\(guest)" + (cmdline.isEmpty ? "" : " \(cmdline)") + (extraArguments.isEmpty ? "" : " \(extraArguments.joined(separator: " "))") }

    /// Whether the guest is built (scripts/build-guests); KVM is a condition of the test itself.
    var available: Bool { Lockstep.hasGuest(arch, guest) }

    /// A fresh zeroed disk image, if this guest uses one.
    func freshDisk(_ name: String) throws -> String? {
        guard usesDisk else { return nil }
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("lockstep-failover-\(getpid())-\(arch)-\(name).img")
        try Data(count: 64 * 512).write(to: url)
        return url.path
    }

    /// Output in a form comparable across runs: on the host clock, time values differ from run
    /// to run, so they are masked (the count of ticks stays).
    func comparable(_ output: String) -> String {
        guard hostClock else { return output }
        return output.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.split(separator: " ").map { word in
                if word.hasPrefix("count=") || word.hasPrefix("target=") || word.hasPrefix("hz=") {
                    return String(word)
                }
                var masked = ""
                for ch in word where !(ch.isNumber && masked.last == "#") {
                    masked.append(ch.isNumber ? "#" : ch)
                }
                return masked
            }.joined(separator: " ")
        }.joined(separator: "\n")
    }

    func arguments(disk: String?) -> [String] {
        // Short PA-RISC epochs, so that even a short run has many boundaries to fail at.
        (disk.map { ["--disk", $0] } ?? []) + (hostClock ? ["--clock", "host"] : [])
            + (arch == "parisc" && !extraArguments.contains("--epoch-length") ? ["--epoch-length", "2000"] : [])
            + extraArguments
            + ["--cmdline", cmdline, Lockstep.guest(arch, guest)]
    }
}

/// The combined statistics `lockstep pair --stats-json` writes.
struct PairStats: Decodable {
    struct Replica: Decodable {
        let state: ReplicaState
        let epoch: UInt64
        let finalDigest: String?
        let primaryFinalDigest: String?
    }
    let primary: Replica?
    let backup: Replica?
    let primaryKilled: Bool
    let status: Int

    static func load(_ path: String) throws -> PairStats {
        let data = try #require(FileManager.default.contents(atPath: path), "no stats at \(path)")
        return try JSONDecoder().decode(PairStats.self, from: data)
    }
}

enum Scratch {
    static func path(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("lockstep-\(getpid())-\(name)").path
    }
}
