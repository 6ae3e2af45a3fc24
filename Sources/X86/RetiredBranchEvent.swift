/// The host PMU event that counts retired conditional branches on one CPU family, and how late
/// its overflow interrupt can arrive (its skid): what the `pmu` epoch clock counts with.
///
/// Retired conditional branches, not retired instructions: the instruction count is not
/// deterministic on x86 (interrupts and faults over-count it; Weaver, Terpstra and Moore,
/// "Non-Determinism and Overcount on Modern Hardware Performance Counter Implementations",
/// ISPASS 2013), while the conditional-branch count is, which is why rr and VMware's replay
/// count it. The event numbers and skids below are rr's (rr-debugger/rr, src/PerfCounters.cc,
/// `pmu_configs`), which come from Intel's and AMD's event tables. None of them has been run by
/// Lockstep: the hosts it was developed on have no PMU.
public struct RetiredBranchEvent: Hashable, Sendable, Codable {
    /// The microarchitecture ("Intel Emerald Rapids", "AMD Zen").
    public var microarchitecture: String
    /// The event's name in the vendor's table.
    public var eventName: String
    /// `perf_event_attr.config` for `PERF_TYPE_RAW`: event select (bits 0-7) and unit mask
    /// (bits 8-15). The privilege-level bits come from `exclude_*`, not from here.
    public var rawConfig: UInt64
    /// Branches the overflow may arrive after the programmed count (rr's `skid_size`).
    public var skid: UInt64
    /// Whether the skid is only typical: rr has seen AMD Zen exceed it in rare cases.
    public var skidIsUnbounded: Bool

    /// The event for `cpu`, or nil if its family has no known conditional-branch event.
    public static func forCPU(_ cpu: HostCPU) -> RetiredBranchEvent? {
        switch cpu.vendor {
        case "GenuineIntel":
            guard cpu.family == 6, let entry = intelFamily6.first(where: { $0.models.contains(cpu.model) }) else {
                return nil
            }
            return RetiredBranchEvent(microarchitecture: "Intel \(entry.name)", eventName: entry.event,
                                      rawConfig: entry.config, skid: entry.skid, skidIsUnbounded: false)
        case "AuthenticAMD":
            // Zen (family 17h), Zen 3 and Zen 4 (19h), Zen 5 (1Ah): RETIRED_CONDITIONAL_BRANCH_INSTRUCTIONS.
            guard [0x17, 0x19, 0x1A].contains(cpu.family) else { return nil }
            return RetiredBranchEvent(microarchitecture: "AMD Zen (family \(hexFamily(cpu.family)))",
                                      eventName: "Retired Conditional Branch Instructions (PMCx0D1)",
                                      rawConfig: 0x00D1, skid: 10_000, skidIsUnbounded: true)
        default:
            return nil
        }
    }

    static func hexFamily(_ family: Int) -> String {
        String(family, radix: 16, uppercase: true) + "h"
    }

    /// Intel family 6 models by microarchitecture (display model numbers, as /proc/cpuinfo gives
    /// them). Event C4h: umask 01h BR_INST_RETIRED.CONDITIONAL up to Comet Lake, 11h
    /// BR_INST_RETIRED.COND from Ice Lake, 7Eh BR_INST_RETIRED.JCC on the Atom cores.
    static let intelFamily6: [(name: String, models: Set<Int>, event: String, config: UInt64, skid: UInt64)] = {
        let conditional = "BR_INST_RETIRED.CONDITIONAL"
        let cond = "BR_INST_RETIRED.COND"
        let jcc = "BR_INST_RETIRED.JCC"
        return [
            ("Nehalem", [0x1A, 0x1E, 0x2E], conditional, 0x01C4, 100),
            ("Westmere", [0x25, 0x2C, 0x2F], conditional, 0x01C4, 100),
            ("Sandy Bridge", [0x2A, 0x2D, 0x3E], conditional, 0x01C4, 100),
            ("Ivy Bridge", [0x3A], conditional, 0x01C4, 100),
            ("Haswell", [0x3C, 0x3F, 0x45, 0x46], conditional, 0x01C4, 100),
            ("Broadwell", [0x3D, 0x47, 0x4F, 0x56], conditional, 0x01C4, 100),
            ("Skylake", [0x4E, 0x5E, 0x55], conditional, 0x01C4, 100),
            ("Kaby Lake", [0x8E, 0x9E], conditional, 0x01C4, 100),
            ("Comet Lake", [0xA5, 0xA6], conditional, 0x01C4, 100),
            ("Silvermont", [0x37, 0x4C, 0x57], jcc, 0x7EC4, 100),
            ("Goldmont", [0x5C, 0x5F, 0x7A], jcc, 0x7EC4, 100),
            ("Tremont", [0x9C], jcc, 0x7EC4, 100),
            ("Ice Lake", [0x7E, 0x6A, 0x86], cond, 0x11C4, 100),
            ("Tiger Lake", [0x8C, 0x8D], cond, 0x11C4, 100),
            ("Rocket Lake", [0xA7], cond, 0x11C4, 100),
            ("Alder Lake", [0x97, 0x9A], cond, 0x11C4, 125),
            ("Raptor Lake", [0xB7, 0xBA, 0xBF], cond, 0x11C4, 125),
            ("Sapphire Rapids", [0x8F], cond, 0x11C4, 125),
            ("Emerald Rapids", [0xCF], cond, 0x11C4, 125),
            ("Meteor Lake", [0xAA], cond, 0x11C4, 125),
        ]
    }()
}
