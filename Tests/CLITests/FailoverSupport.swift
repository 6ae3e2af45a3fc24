import Foundation
import Testing

/// One guest, as the failover tests run it.
struct FailoverCase: CustomTestStringConvertible, Sendable {
    let arch: String
    let guest: String
    let cmdline: String
    let input: String
    let usesDisk: Bool

    var testDescription: String { "\(arch)/\(guest)" }

    var available: Bool {
        Lockstep.hasGuest(arch, guest) && (arch == "parisc" || Lockstep.hasKVM)
    }

    /// A fresh zeroed disk image, if this guest uses one.
    func freshDisk(_ name: String) throws -> String? {
        guard usesDisk else { return nil }
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("lockstep-failover-\(getpid())-\(arch)-\(name).img")
        try Data(count: 64 * 512).write(to: url)
        return url.path
    }

    func arguments(disk: String?) -> [String] {
        (disk.map { ["--disk", $0] } ?? []) + ["--cmdline", cmdline, Lockstep.guest(arch, guest)]
    }
}

/// The combined statistics `lockstep pair --stats-json` writes.
struct PairStats: Decodable {
    struct Replica: Decodable {
        let state: String
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
