import KVM
import Testing
@testable import X86

/// The fixed CPUID table: host-independent, conservative, no hypervisor leaves, 1 GHz TSC.
@Suite("CPUID table")
struct CPUIDTableTests {
    let table = CPUIDTable()

    func string(_ words: [UInt32]) -> String {
        let bytes = words.flatMap { w in (0..<4).map { UInt8(truncatingIfNeeded: w >> (8 * $0)) } }
        return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    @Test("leaf 0: maximum leaf 0x16 and the vendor GenuineIntel (EBX, EDX, ECX)")
    func vendor() {
        let r = table.lookup(leaf: 0, subleaf: 0)
        #expect(r.eax == 0x16)
        #expect(string([r.ebx, r.edx, r.ecx]) == "GenuineIntel")
    }

    @Test("leaf 1: APIC ID 0, one logical CPU, no hypervisor bit, no RDRAND, no XSAVE/AVX, no APIC")
    func features() {
        let r = table.lookup(leaf: 1, subleaf: 0)
        #expect(r.ebx >> 24 == 0, "APIC ID must not leak the host CPU")
        #expect((r.ebx >> 16) & 0xFF == 1)
        #expect(r.ecx & (1 << 31) == 0, "hypervisor bit")
        #expect(r.ecx & (1 << 30) == 0, "RDRAND")
        #expect(r.ecx & (1 << 26) == 0 && r.ecx & (1 << 27) == 0 && r.ecx & (1 << 28) == 0, "XSAVE/OSXSAVE/AVX")
        #expect(r.ecx & (1 << 21) == 0 && r.ecx & (1 << 24) == 0 && r.ecx & (1 << 3) == 0, "x2APIC/TSC-deadline/MONITOR")
        #expect(r.edx & (1 << 9) == 0, "no local APIC")
        for bit in [0, 4, 5, 6, 8, 15, 23, 24, 25, 26] { #expect(r.edx & (1 << UInt32(bit)) != 0, "EDX bit \(bit)") }
        for bit in [0, 9, 13, 19, 20, 23] { #expect(r.ecx & (1 << UInt32(bit)) != 0, "ECX bit \(bit)") }
    }

    @Test("leaf 7: no RDSEED, RDPID or other optional extensions")
    func structuredExtendedFeatures() {
        let r = table.lookup(leaf: 7, subleaf: 0)
        #expect(r == CPUIDTable.Result())
        #expect(table.lookup(leaf: 7, subleaf: 1) == CPUIDTable.Result())
    }

    @Test("leaves 0x15 and 0x16 advertise a 1 GHz TSC")
    func tscFrequency() {
        let r = table.lookup(leaf: 0x15, subleaf: 0)
        #expect(UInt64(r.ecx) * UInt64(r.ebx) / UInt64(r.eax) == 1_000_000_000)
        #expect(table.lookup(leaf: 0x16, subleaf: 0).eax == 1000)
        #expect(table.lookup(leaf: 0x8000_0007, subleaf: 0).edx & (1 << 8) != 0, "invariant TSC")
    }

    @Test("extended leaves: long mode, NX, SYSCALL, LAHF; no RDTSCP; brand string")
    func extendedLeaves() {
        #expect(table.lookup(leaf: 0x8000_0000, subleaf: 0).eax == 0x8000_0008)
        let r = table.lookup(leaf: 0x8000_0001, subleaf: 0)
        #expect(r.edx & (1 << 29) != 0 && r.edx & (1 << 20) != 0 && r.edx & (1 << 11) != 0)
        #expect(r.edx & (1 << 27) == 0, "RDTSCP")
        #expect(r.ecx & 1 != 0)
        let brand = (0..<3).flatMap { i -> [UInt32] in
            let b = table.lookup(leaf: 0x8000_0002 + UInt32(i), subleaf: 0)
            return [b.eax, b.ebx, b.ecx, b.edx]
        }
        #expect(string(brand) == "Lockstep virtual CPU @ 1.00GHz")
        #expect(table.lookup(leaf: 0x8000_0008, subleaf: 0).eax == 0x3027)
    }

    @Test("no hypervisor leaves: 0x40000000 and other out-of-range leaves return the highest basic leaf")
    func outOfRange() {
        let highest = table.lookup(leaf: 0x16, subleaf: 0)
        #expect(table.lookup(leaf: 0x4000_0000, subleaf: 0) == highest)
        #expect(table.lookup(leaf: 0x4000_0001, subleaf: 0) == highest)
        #expect(table.lookup(leaf: 0x8000_0009, subleaf: 0) == highest)
        #expect(table.lookup(leaf: 0x17, subleaf: 0) == highest)
        #expect(table.lookup(leaf: 0xD, subleaf: 0) == CPUIDTable.Result(), "in range, not present: zeros")
    }

    @Test("the KVM table ANDs feature leaves with what KVM supports and keeps the rest")
    func kvmIntersection() {
        let supported = [
            CPUIDEntry(function: 1, ecx: 0xFFFF_FFFF, edx: 1 << 4),
            CPUIDEntry(function: 0x8000_0001, ecx: 0, edx: 0xFFFF_FFFF),
        ]
        let entries = table.kvmEntries(supported: supported)
        let leaf1 = entries.first { $0.function == 1 }
        #expect(leaf1?.edx == 1 << 4)
        #expect(leaf1?.ecx == CPUIDTable.leaf1ECX)
        #expect(leaf1?.ebx == table.lookup(leaf: 1, subleaf: 0).ebx)
        #expect(entries.first { $0.function == 0x8000_0001 }?.edx == CPUIDTable.extendedEDX)
        #expect(entries.first { $0.function == 0x8000_0007 }?.edx == 0, "KVM did not list it")
        #expect(entries.first { $0.function == 0 }?.eax == 0x16)
        #expect(entries.first { $0.function == 0x15 }?.ecx == 1_000_000_000)
        #expect(entries.first { $0.function == 7 }?.flags == 1, "leaf 7 has significant subleaves")
        #expect(Set(entries.map(\.function)).count == entries.count)
    }

    @Test("this host's KVM accepts the table and keeps long mode", .enabled(if: Host.hasKVM, "needs a usable /dev/kvm"))
    func kvmAcceptsTable() throws {
        let system = try KVMSystem(path: X86Machine.defaultKVMPath)
        let vm = try system.createVM()
        let vcpu = try vm.createVCPU()
        let entries = table.kvmEntries(supported: try system.supportedCPUID())
        try vcpu.setCPUID(entries)
        let back = try vcpu.cpuid()
        let extended = try #require(back.first { $0.function == 0x8000_0001 })
        #expect(extended.edx & (1 << 29) != 0, "KVM refuses EFER.LME without LM")
        #expect(((back.first { $0.function == 1 }?.ecx ?? 0) & (1 << 31)) == 0)
        #expect(!back.contains { $0.function == 0x4000_0000 })
    }
}
