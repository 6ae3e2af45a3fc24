import Foundation

/// The machine a bench ran on, read from /proc and /sys.
struct HostDescription: Codable, Sendable {
    var cpuModel: String
    var cores: Int
    var kernel: String
    var memory: String
    /// KVM kernel modules present under /sys/module (e.g. kvm, kvm_intel, kvm_pvm).
    var kvmModules: [String]
    var kvmDevice: String
    /// The 1-, 5- and 15-minute load averages when the bench started (other work on the host
    /// makes the numbers noisier).
    var loadAverageAtStart: String
    var lockstepExecutable: String
    /// "release" or "debug", from the executable's path (.build/release or .build/debug).
    var lockstepBuild: String
    var qemuVersions: [String: String] = [:]
    var date: String

    static func current(executable: String, kvmDevice: String) -> HostDescription {
        func read(_ path: String) -> String {
            (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        }
        let cpuinfo = read("/proc/cpuinfo").split(separator: "\n")
        let model = cpuinfo.first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" }
            ?? "unknown"
        let memTotal = read("/proc/meminfo").split(separator: "\n").first { $0.hasPrefix("MemTotal") }
            .flatMap { line in line.split(separator: " ").dropFirst().first.flatMap { Double($0) } }
        let modules = ((try? FileManager.default.contentsOfDirectory(atPath: "/sys/module")) ?? [])
            .filter { $0 == "kvm" || $0.hasPrefix("kvm_") }.sorted()
        let build = executable.contains("/release/") ? "release" : executable.contains("/debug/") ? "debug" : "unknown"
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return HostDescription(
            cpuModel: model.isEmpty ? "unknown" : model,
            cores: ProcessInfo.processInfo.activeProcessorCount,
            kernel: read("/proc/sys/kernel/osrelease"),
            memory: memTotal.map { String(format: "%.1f GiB", $0 / 1024 / 1024) } ?? "unknown",
            kvmModules: modules,
            kvmDevice: kvmDevice,
            loadAverageAtStart: read("/proc/loadavg").split(separator: " ").prefix(3).joined(separator: " "),
            lockstepExecutable: executable,
            lockstepBuild: build,
            date: formatter.string(from: Date()))
    }

    /// The machine as a Markdown table.
    var table: Table {
        var t = Table(["Item", "Value"])
        t.append(["CPU", cpuModel])
        t.append(["Cores (online)", "\(cores)"])
        t.append(["Memory", memory])
        t.append(["Kernel", kernel])
        t.append(["KVM modules (/sys/module)", kvmModules.isEmpty ? "none" : kvmModules.joined(separator: ", ")])
        t.append(["KVM device", kvmDevice])
        t.append(["Load average at start (1, 5, 15 min)", loadAverageAtStart])
        t.append(["lockstep build", lockstepBuild])
        for (name, version) in qemuVersions.sorted(by: { $0.key < $1.key }) { t.append([name, version]) }
        t.append(["Date", date])
        return t
    }
}
