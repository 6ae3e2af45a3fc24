import Foundation
import KVM
import Loader
import MachineCore
import Testing
@testable import X86

/// The load-time rewriting of environment instructions, on hand-made byte sequences (no KVM).
@Suite("environment-instruction patcher")
struct EnvironmentPatcherTests {
    static let base: UInt64 = 0x40_0000

    func sites(_ bytes: [UInt8]) throws -> [PatchSite] {
        try EnvironmentPatcher.findSites(inCode: bytes, at: Self.base)
    }

    func only(_ bytes: [UInt8]) throws -> PatchSite {
        let found = try sites(bytes)
        try #require(found.count == 1, "expected one site in \(bytes.map(hexByte)), found \(found)")
        return found[0]
    }

    @Test("each instruction form is found, classified and rewritten to out %al,$0xe7 + NOPs",
          arguments: [
              ([0x0F, 0x31], "rdtsc", [0xE6, 0xE7]),
              ([0x0F, 0x01, 0xF9], "rdtscp", [0xE6, 0xE7, 0x90]),
              ([0x0F, 0xA2], "cpuid", [0xE6, 0xE7]),
              ([0x0F, 0xC7, 0xF0], "rdrand", [0xE6, 0xE7, 0x90]),
              ([0x0F, 0xC7, 0xFA], "rdseed", [0xE6, 0xE7, 0x90]),
              ([0xF3, 0x0F, 0xC7, 0xF8], "rdpid", [0xE6, 0xE7, 0x90, 0x90]),
              // Legacy prefixes are part of the instruction in both modes: rewritten with it.
              ([0x66, 0x0F, 0x31], "rdtsc", [0xE6, 0xE7, 0x90]),
              ([0x2E, 0x0F, 0xA2], "cpuid", [0xE6, 0xE7, 0x90]),
              ([0x66, 0x0F, 0xC7, 0xF3], "rdrand", [0xE6, 0xE7, 0x90, 0x90]),
              ([0xF2, 0x0F, 0x31], "rdtsc", [0xE6, 0xE7, 0x90]),
              // A REX byte (an INC/DEC in 32-bit code) and what precedes it are kept.
              ([0x48, 0x0F, 0x31], "rdtsc", [0x48, 0xE6, 0xE7]),
              ([0x66, 0x66, 0x48, 0x0F, 0x31], "rdtsc", [0x66, 0x66, 0x48, 0xE6, 0xE7]),
              ([0x48, 0x0F, 0xC7, 0xF1], "rdrand", [0x48, 0xE6, 0xE7, 0x90]),
              ([0x41, 0x0F, 0xC7, 0xFD], "rdseed", [0x41, 0xE6, 0xE7, 0x90]),
              ([0xF3, 0x48, 0x0F, 0xC7, 0xF9], "rdpid", [0xF3, 0x48, 0xE6, 0xE7, 0x90]),
          ] as [([UInt8], String, [UInt8])])
    func instructionForms(bytes: [UInt8], kind: String, patched: [UInt8]) throws {
        let site = try only(bytes)
        #expect(site.instruction.description == kind)
        #expect(site.address == Self.base)
        #expect(site.originalBytes == bytes)
        #expect(site.patchedBytes == patched)
        #expect(site.patchedBytes.count == bytes.count)
        #expect(site.nextInstruction == Self.base + UInt64(bytes.count))
        #expect(site.trapEnd == Self.base + UInt64(patched.firstIndex(of: 0xE6)! + 2))
    }

    @Test("RDRAND/RDSEED/RDPID destinations: register number and width in each mode")
    func destinations() throws {
        func operand(_ bytes: [UInt8]) throws -> EnvironmentInstruction.RegisterOperand {
            switch try only(bytes).instruction {
            case .rdrand(let o), .rdseed(let o), .rdpid(let o): return o
            case .rdtsc, .rdtscp, .cpuid: throw Failure("not a register form: \(bytes)")
            }
        }
        // rdrand %eax
        #expect(try operand([0x0F, 0xC7, 0xF0]).destinationPair(longMode: true) == [0, 4])
        // rdrand %rcx: 64-bit in long mode; in 32-bit code 0x48 is DEC EAX and this is rdrand %ecx.
        #expect(try operand([0x48, 0x0F, 0xC7, 0xF1]).destinationPair(longMode: true) == [1, 8])
        #expect(try operand([0x48, 0x0F, 0xC7, 0xF1]).destinationPair(longMode: false) == [1, 4])
        // rdseed %r13d (REX.B)
        #expect(try operand([0x41, 0x0F, 0xC7, 0xFD]).destinationPair(longMode: true) == [13, 4])
        #expect(try operand([0x41, 0x0F, 0xC7, 0xFD]).destinationPair(longMode: false) == [5, 4])
        // rdrand %bx
        #expect(try operand([0x66, 0x0F, 0xC7, 0xF3]).destinationPair(longMode: true) == [3, 2])
        #expect(try operand([0x66, 0x0F, 0xC7, 0xF3]).destinationPair(longMode: false) == [3, 2])
        // 0x66 before a REX byte belongs to the INC/DEC in 32-bit code.
        #expect(try operand([0x66, 0x41, 0x0F, 0xC7, 0xF7]).destinationPair(longMode: true) == [15, 2])
        #expect(try operand([0x66, 0x41, 0x0F, 0xC7, 0xF7]).destinationPair(longMode: false) == [7, 4])
    }

    @Test("not sites: other instructions whose immediates or displacements hold the opcode bytes",
          arguments: [
              [0xB8, 0x0F, 0x31, 0x00, 0x00],                                  // mov $0x310f, %eax
              [0x48, 0xB8, 0x0F, 0xA2, 0x0F, 0x31, 0x0F, 0xC7, 0xF0, 0x00],    // movabs $..., %rax
              [0x8B, 0x80, 0x0F, 0x31, 0x0F, 0xA2],                            // mov 0xa20f310f(%rax), %eax
              [0x68, 0x0F, 0x01, 0xF9, 0x00],                                  // push $0xf9010f
              [0x66, 0x3D, 0x0F, 0x31],                                        // cmp $0x310f, %ax
          ] as [[UInt8]])
    func immediatesAreNotSites(bytes: [UInt8]) throws {
        #expect(try sites(bytes).isEmpty)
    }

    @Test("not sites: forms that are not these instructions or would fault anyway",
          arguments: [
              [0x0F, 0xC7, 0x30],          // vmptrld (%rax): memory operand
              [0xF2, 0x0F, 0xC7, 0xF0],    // F2 + 0F C7 /6: not RDRAND (NFx)
              [0xF3, 0x0F, 0xC7, 0xF0],    // F3 + 0F C7 /6: SENDUIPI, not RDRAND
              [0xE6, 0xE7],                // an already rewritten site
              [0x0F, 0x01, 0xF8],          // swapgs
          ] as [[UInt8]])
    func otherForms(bytes: [UInt8]) throws {
        #expect(try sites(bytes).isEmpty)
    }

    @Test("LOCK-prefixed forms (#UD) stay #UD: untouched, or rewritten behind the kept LOCK byte",
          arguments: [[0xF0, 0x0F, 0xC7, 0xF0], [0xF0, 0x0F, 0x31]] as [[UInt8]])
    func lockPrefix(bytes: [UInt8]) throws {
        for site in try sites(bytes) {
            // Capstone takes a lone LOCK as its own instruction; the site then starts after it,
            // and `lock out` is #UD just like the original.
            #expect(site.address == Self.base + 1)
        }
    }

    @Test("a sweep finds every site between other instructions, at the right addresses")
    func sweepFindsEverySite() throws {
        let code: [UInt8] = [
            0x90,                           // nop
            0x0F, 0x31,                     // rdtsc            @1
            0xB8, 0x0F, 0x31, 0x00, 0x00,   // mov $0x310f, %eax
            0x0F, 0xA2,                     // cpuid            @8
            0x48, 0x0F, 0xC7, 0xF0,         // rdrand %rax      @10
            0xC3,                           // ret
            0x0F, 0x01, 0xF9,               // rdtscp           @15
        ]
        let found = try sites(code)
        #expect(found.map { $0.address - Self.base } == [1, 8, 10, 15])
        #expect(found.map(\.instruction.description) == ["rdtsc", "cpuid", "rdrand", "rdtscp"])

        let table = PatchSiteTable(found)
        #expect(table.site(trappedAt: Self.base + 3)?.site.address == Self.base + 1)
        #expect(table.site(trappedAt: Self.base + 3)?.next == Self.base + 3)
        #expect(table.site(trappedAt: Self.base + 13)?.site.address == Self.base + 10)
        #expect(table.site(trappedAt: Self.base + 13)?.next == Self.base + 14)
        #expect(table.site(trappedAt: Self.base + 17)?.next == Self.base + 18)
        #expect(table.site(trappedAt: Self.base + 5) == nil)
    }

    @Test("sites are found at their virtual address and patched at their physical one")
    func physicalAddresses() throws {
        let found = try EnvironmentPatcher.findSites(inCode: [0x90, 0x0F, 0x31], at: 0xFFFF_FFFF_8100_0000,
                                                     physicalAddress: 0x100_0000)
        let site = try #require(found.first)
        #expect(site.address == 0xFFFF_FFFF_8100_0001)
        #expect(site.physicalAddress == 0x100_0001)
        let table = PatchSiteTable(found)
        #expect(table.site(trappedAt: 0xFFFF_FFFF_8100_0003)?.next == 0xFFFF_FFFF_8100_0003)
        #expect(table.site(trappedAt: 0x100_0003)?.next == 0x100_0003)
    }

    @Test("the bundled hello guest: every site is a real RDTSC, the Multiboot header is not swept")
    func helloImage() throws {
        let path = Guests.path("hello")
        guard FileManager.default.fileExists(atPath: path) else {
            try Test.cancel("\(path) is not built (run scripts/build-guests)")
        }
        let image = try ELFImage.load(contentsOf: path)
        let header = BootLoader.multibootHeaderRange(in: image)
        #expect(header.count == 1)
        #expect(header.first?.count == 12)
        let found = try EnvironmentPatcher.findSites(in: image, excluding: header)
        #expect(!found.isEmpty, "plat_time_read uses rdtsc")
        for site in found {
            #expect(site.instruction == .rdtsc)
            let section = try #require(image.codeSections.first { site.address >= $0.address && site.address < $0.address + UInt64($0.bytes.count) })
            let offset = Int(site.address - section.address)
            #expect(Array(section.bytes[offset..<offset + 2]) == [0x0F, 0x31])
            #expect(site.physicalAddress == site.address)
            #expect(!header.contains { $0.contains(site.address) })
        }
        // Deterministic: the same image always gives the same sites.
        #expect(try EnvironmentPatcher.findSites(in: image, excluding: header) == found)
    }
}

struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension EnvironmentInstruction.RegisterOperand {
    /// `destination(longMode:)` as [register, width], for comparisons.
    func destinationPair(longMode: Bool) -> [Int] {
        let d = destination(longMode: longMode)
        return [d.register, d.width]
    }
}
