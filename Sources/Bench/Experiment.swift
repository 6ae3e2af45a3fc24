import Foundation

/// The experiments `lockstep bench` can run.
public enum Experiment: String, CaseIterable, Codable, Sendable, CustomStringConvertible {
    /// The paper's CPU-intensive experiment: replicated / unreplicated time against epoch length.
    case epochs
    /// The paper's I/O-intensive experiment: disk request latency and throughput.
    case disk
    /// Time from the primary's death (SIGKILL) or freeze (SIGSTOP) to the backup going live.
    case failover
    /// Replication channel traffic, from the epochs and disk runs' statistics.
    case channel
    /// What an epoch boundary costs replication: host instructions (callgrind), sealing, pair/run
    /// ratios; against `--baseline` when given.
    case boundary
    /// Lockstep's PA-RISC emulator against qemu-system-hppa (TCG and -icount shift=0).
    case pariscQEMU = "parisc-qemu"
    /// Lockstep on KVM against qemu-system-x86_64 with KVM (pc and microvm).
    case x86QEMU = "x86-qemu"
    /// The x86 counter-driven epoch clock (emulation-counter) against single-step, and its skid.
    case counterClock = "counter-clock"
    /// Machine snapshot save and restore time and size against guest memory size.
    case snapshot
    /// Re-protection after failovers: the final-copy pause, time to re-protect, bytes sent.
    case reprotect

    /// The name on the command line.
    public var description: String { rawValue }

    /// Parses "epochs,disk" or "all".
    public static func list(_ text: String) -> [Experiment]? {
        if text == "all" { return allCases }
        var chosen: [Experiment] = []
        for name in text.split(separator: ",") {
            guard let e = Experiment(rawValue: name.trimmingCharacters(in: .whitespaces)) else { return nil }
            if !chosen.contains(e) { chosen.append(e) }
        }
        return chosen.isEmpty ? nil : chosen
    }
}
