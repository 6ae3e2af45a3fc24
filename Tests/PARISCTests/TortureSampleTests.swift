import Foundation
import Testing

/// The 50-test sample of the GCC torture suite (scripts/parisc/torture-sample50.txt) on
/// Lockstep's CPU and, when installed, qemu-hppa-static. Needs the sources and the soft-float
/// library that `scripts/torture-parisc` caches in ~/.cache/lockstep/parisc-torture; the ELFs are
/// built once into .build/parisc-torture-sample.
@Suite("PA-RISC GCC torture sample",
       .enabled(if: TortureCache.available,
                "the torture sources are not cached: run scripts/torture-parisc --sample once (needs hppa-linux-gnu-gcc and apt-get download gcc-12-source)"))
struct TortureSampleTests {
    typealias Cache = TortureCache

    @Test("the sample passes on Lockstep wherever it passes under qemu-hppa")
    func sample() throws {
        // Without the hosted headers most of the sample does not build: HostedHeadersTests
        // fails with the reason, once.
        if let problem = Toolchain.hostedHeadersProblem { try Test.cancel(Comment(rawValue: problem)) }
        let output = Toolchain.repository.appendingPathComponent(".build/parisc-torture-sample")
        let build = try Toolchain.run("/usr/bin/python3", [
            Toolchain.support.appendingPathComponent("torture.py").path, Cache.sources.path,
            Cache.softfp.path, output.path, "--no-run", "--jobs", "1", "--tests",
            Toolchain.support.appendingPathComponent("torture-sample50.txt").path,
        ], timeout: 600)
        #expect(build.status == 0)
        let data = try Data(contentsOf: output.appendingPathComponent("qemu.json"))
        let results = try JSONSerialization.jsonObject(with: data) as? [[String: Any]] ?? []
        var passed = 0, failures: [String] = []
        let unbuilt = results.filter { $0["stage"] as? String != "linked" }
            .map { "\($0["test"] as? String ?? "?") (\($0["stage"] as? String ?? "?"): \($0["err"] as? String ?? ""))" }
        for result in results where result["stage"] as? String == "linked" {
            guard let name = result["test"] as? String, let elf = result["elf"] as? String else { continue }
            let process = try UserModeProcess(path: elf)
            let outcome = try process.run(limit: 500_000_000)
            var qemuStatus: Int32? = nil
            if Toolchain.hasQEMUUser { qemuStatus = try Toolchain.run(Toolchain.qemuUser, [elf], timeout: 20).status }
            if outcome == .exited(0) {
                passed += 1
            } else if qemuStatus == nil || qemuStatus == 0 {
                failures.append("\(name): \(outcome)")
            }
        }
        print("torture sample: \(results.count) tests, \(passed) pass on Lockstep"
            + (Toolchain.hasQEMUUser ? "" : " (qemu-hppa-static not installed: not compared)"))
        #expect(failures.isEmpty, "\(failures)")
        #expect(passed >= 45, "\(unbuilt.count) of \(results.count) did not build: \(unbuilt.prefix(3).joined(separator: "; "))")
    }
}

/// The regression check for a fresh machine: the hppa cross compiler must come with its hosted
/// C headers (Debian's libc6-dev-hppa-cross, which gcc-hppa-linux-gnu only recommends).
@Suite("hppa cross toolchain")
struct HostedHeadersTests {
    @Test("hppa-linux-gnu-gcc compiles a hosted C file (libc6-dev-hppa-cross)",
          .enabled(if: Toolchain.hasCompiler, "hppa-linux-gnu-gcc is not installed (gcc-hppa-linux-gnu; scripts/install-deps)"))
    func hostedHeaders() {
        if let problem = Toolchain.hostedHeadersProblem { Issue.record(Comment(rawValue: problem)) }
    }
}

/// Where scripts/torture-parisc keeps the GCC torture sources and the soft-float library.
enum TortureCache {
    static let cache = URL(fileURLWithPath: ProcessInfo.processInfo.environment["LOCKSTEP_CACHE"]
        ?? (NSHomeDirectory() + "/.cache/lockstep")).appendingPathComponent("parisc-torture")
    static let sources = cache.appendingPathComponent("gcc-12.2.0/gcc/testsuite/gcc.c-torture/execute")
    static let softfp = cache.appendingPathComponent("softfp/libsoftfp.a")

    static var available: Bool {
        Toolchain.hasCompiler && FileManager.default.fileExists(atPath: sources.path)
            && FileManager.default.fileExists(atPath: softfp.path)
    }
}
