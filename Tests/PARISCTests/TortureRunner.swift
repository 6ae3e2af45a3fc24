import Foundation
import Testing

/// The Lockstep side of scripts/torture-parisc: LOCKSTEP_PARISC_TORTURE_LIST names a file of
/// `name<TAB>elf` lines (GCC torture tests built by scripts/parisc/torture.py); each runs in the
/// user-mode harness and one `name<TAB>status<TAB>instructions<TAB>detail` line per test goes to
/// LOCKSTEP_PARISC_TORTURE_RESULTS. Skipped in the normal test run.
@Suite("PA-RISC GCC torture runner")
struct TortureRunner {
    static let environment = ProcessInfo.processInfo.environment
    static let list = environment["LOCKSTEP_PARISC_TORTURE_LIST"]

    @Test("run LOCKSTEP_PARISC_TORTURE_LIST", .enabled(if: list != nil, "run by scripts/torture-parisc (LOCKSTEP_PARISC_TORTURE_LIST)"))
    func run() throws {
        let limit = UInt64(Self.environment["LOCKSTEP_PARISC_TORTURE_LIMIT"] ?? "") ?? 4_000_000_000
        let resultsPath = Self.environment["LOCKSTEP_PARISC_TORTURE_RESULTS"] ?? "/dev/stdout"
        let lines = try String(contentsOfFile: Self.list!, encoding: .utf8).split(separator: "\n")
        var results: [String] = []
        for line in lines {
            let fields = line.split(separator: "\t")
            guard fields.count == 2 else { continue }
            let name = String(fields[0]), path = String(fields[1])
            let status: String, detail: String, count: UInt64
            do {
                let process = try UserModeProcess(path: path)
                let outcome = try process.run(limit: limit)
                count = process.cpu.progress
                switch outcome {
                case .exited(let code): (status, detail) = ("\(code)", "")
                case .crashed(let reason): (status, detail) = ("crash", reason)
                case .timedOut: (status, detail) = ("timeout", "")
                }
            } catch {
                (status, detail, count) = ("error", "\(error)", 0)
            }
            results.append("\(name)\t\(status)\t\(count)\t\(detail.replacingOccurrences(of: "\t", with: " "))")
        }
        try (results.joined(separator: "\n") + "\n").write(toFile: resultsPath, atomically: true, encoding: .utf8)
        print("torture-runner: \(results.count) tests run")
    }
}
