import Testing
@testable import X86

/// The host CPU as /proc/cpuinfo describes it, and the PMU event and skid the `pmu` clock would
/// use for it (rr's table).
@Suite("host CPU and retired-branch events")
struct RetiredBranchEventTests {
    static let cpuinfo = """
        processor\t: 0
        vendor_id\t: GenuineIntel
        cpu family\t: 6
        model\t\t: 207
        model name\t: Intel(R) Xeon(R) Processor
        flags\t\t: fpu vme

        processor\t: 1
        vendor_id\t: AuthenticAMD
        cpu family\t: 25
        model\t\t: 17

        """

    @Test("/proc/cpuinfo: the first processor's vendor, family, model and name")
    func parse() throws {
        let cpu = try #require(HostCPU.parse(Self.cpuinfo))
        #expect(cpu == HostCPU(vendor: "GenuineIntel", family: 6, model: 207, name: "Intel(R) Xeon(R) Processor"))
        #expect(cpu.summary == "GenuineIntel family 6 model 207 (Intel(R) Xeon(R) Processor)")
        #expect(HostCPU.parse("processor : 0\nvendor_id : GenuineIntel\n") == nil, "no family or model")
        #expect(HostCPU.parse("") == nil)
        #expect(HostCPU.parse("vendor_id : X\ncpu family : six\nmodel : 1\n") == nil)
    }

    @Test("this host's CPU parses")
    func thisHost() {
        #expect(HostCPU.current() != nil)
    }

    @Test("Intel: the conditional-branch event and skid by microarchitecture",
          arguments: [(0xCF, "Intel Emerald Rapids", UInt64(0x11C4), UInt64(125)),
                      (0x8F, "Intel Sapphire Rapids", 0x11C4, 125),
                      (0x97, "Intel Alder Lake", 0x11C4, 125),
                      (0x7E, "Intel Ice Lake", 0x11C4, 100),
                      (0x5E, "Intel Skylake", 0x01C4, 100),
                      (0x3C, "Intel Haswell", 0x01C4, 100),
                      (0x5C, "Intel Goldmont", 0x7EC4, 100)])
    func intel(_ model: Int, _ name: String, _ config: UInt64, _ skid: UInt64) throws {
        let event = try #require(RetiredBranchEvent.forCPU(HostCPU(vendor: "GenuineIntel", family: 6, model: model, name: "")))
        #expect(event.microarchitecture == name)
        #expect(event.rawConfig == config && event.skid == skid && !event.skidIsUnbounded)
        #expect(event.eventName.hasPrefix("BR_INST_RETIRED."))
    }

    @Test("AMD Zen families: event D1h, skid 10000, not a bound", arguments: [0x17, 0x19, 0x1A])
    func amd(_ family: Int) throws {
        let event = try #require(RetiredBranchEvent.forCPU(HostCPU(vendor: "AuthenticAMD", family: family, model: 1, name: "")))
        #expect(event.rawConfig == 0xD1 && event.skid == 10_000 && event.skidIsUnbounded)
    }

    @Test("unknown CPUs have no event (the pmu clock is refused)")
    func unknown() {
        #expect(RetiredBranchEvent.forCPU(HostCPU(vendor: "GenuineIntel", family: 6, model: 0xC6, name: "")) == nil, "Arrow Lake")
        #expect(RetiredBranchEvent.forCPU(HostCPU(vendor: "GenuineIntel", family: 15, model: 4, name: "")) == nil)
        #expect(RetiredBranchEvent.forCPU(HostCPU(vendor: "AuthenticAMD", family: 0x15, model: 2, name: "")) == nil)
        #expect(RetiredBranchEvent.forCPU(HostCPU(vendor: "HygonGenuine", family: 0x18, model: 0, name: "")) == nil)
        if case .available = CounterAvailability.branchCounter(cpu: nil) { Issue.record("an unknown CPU offered a branch counter") }
    }

    @Test("skid histogram: power-of-two buckets, count and largest")
    func skidHistogram() {
        var histogram = SkidHistogram()
        for skid: UInt64 in [0, 1, 2, 3, 100, 130, 5000] { histogram.record(skid) }
        #expect(histogram.count == 7 && histogram.largest == 5000)
        #expect(histogram.description == "0: 1, 1: 1, 2-3: 2, 64-127: 1, 128-255: 1, 4096-8191: 1")
    }
}
