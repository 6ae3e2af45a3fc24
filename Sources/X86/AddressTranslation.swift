import KVM
import MachineCore

/// A software walk of the guest's page tables, for reading guest code at a linear address in
/// diagnostics (the bytes of an instruction KVM could not emulate).
///
/// Handles paging off, 32-bit paging (4 KiB and, with CR4.PSE, 4 MiB pages), PAE paging and
/// 4-level long-mode paging (4 KiB, 2 MiB and 1 GiB pages). Permission bits are not checked.
struct AddressTranslation {
    let cr0: UInt64
    let cr3: UInt64
    let cr4: UInt64
    let efer: UInt64
    let memory: GuestMemory

    init(_ sregs: SpecialRegisters, memory: GuestMemory) {
        cr0 = sregs.cr0
        cr3 = sregs.cr3
        cr4 = sregs.cr4
        efer = sregs.efer
        self.memory = memory
    }

    /// The guest-physical address of `linear`, or nil if it is not mapped.
    func physicalAddress(of linear: UInt64) -> UInt64? {
        guard cr0 & 0x8000_0000 != 0 else { return linear & 0xFFFF_FFFF }
        let present: UInt64 = 1
        let largePage: UInt64 = 0x80
        let frame: UInt64 = 0x000F_FFFF_FFFF_F000
        func entry64(_ table: UInt64, _ index: UInt64) -> UInt64? {
            let e = try? memory.load(UInt64.self, at: GuestAddress((table & frame) + index * 8), order: .little)
            guard let e, e & present != 0 else { return nil }
            return e
        }
        if efer & 0x400 != 0 {
            guard let pml4e = entry64(cr3, (linear >> 39) & 0x1FF),
                  let pdpte = entry64(pml4e, (linear >> 30) & 0x1FF)
            else { return nil }
            if pdpte & largePage != 0 { return (pdpte & 0x000F_FFFF_C000_0000) | (linear & 0x3FFF_FFFF) }
            guard let pde = entry64(pdpte, (linear >> 21) & 0x1FF) else { return nil }
            if pde & largePage != 0 { return (pde & 0x000F_FFFF_FFE0_0000) | (linear & 0x1F_FFFF) }
            guard let pte = entry64(pde, (linear >> 12) & 0x1FF) else { return nil }
            return (pte & frame) | (linear & 0xFFF)
        }
        if cr4 & 0x20 != 0 {
            let pdptBase = cr3 & 0xFFFF_FFE0
            guard let pdpte = try? memory.load(UInt64.self, at: GuestAddress(pdptBase + ((linear >> 30) & 3) * 8), order: .little),
                  pdpte & present != 0,
                  let pde = entry64(pdpte, (linear >> 21) & 0x1FF)
            else { return nil }
            if pde & largePage != 0 { return (pde & 0x000F_FFFF_FFE0_0000) | (linear & 0x1F_FFFF) }
            guard let pte = entry64(pde, (linear >> 12) & 0x1FF) else { return nil }
            return (pte & frame) | (linear & 0xFFF)
        }
        func entry32(_ table: UInt64, _ index: UInt64) -> UInt64? {
            let e = try? memory.load(UInt32.self, at: GuestAddress((table & 0xFFFF_F000) + index * 4), order: .little)
            guard let e, e & 1 != 0 else { return nil }
            return UInt64(e)
        }
        guard let pde = entry32(cr3, (linear >> 22) & 0x3FF) else { return nil }
        if pde & largePage != 0, cr4 & 0x10 != 0 { return (pde & 0xFFC0_0000) | (linear & 0x3F_FFFF) }
        guard let pte = entry32(pde, (linear >> 12) & 0x3FF) else { return nil }
        return (pte & 0xFFFF_F000) | (linear & 0xFFF)
    }

    /// Up to `count` bytes at `linear`, stopping at the first unmapped byte.
    func read(at linear: UInt64, count: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        for i in 0..<count {
            guard let physical = physicalAddress(of: linear &+ UInt64(i)),
                  let byte = try? memory.read(at: GuestAddress(physical), count: 1)
            else { break }
            bytes += byte
        }
        return bytes
    }
}

extension X86Machine {
    /// Up to `count` bytes of guest code at RIP-relative linear `rip` (CS base added), through
    /// the guest's current page tables.
    func readGuestCode(at rip: UInt64, count: Int) throws -> [UInt8] {
        let sregs: SpecialRegisters
        do { sregs = try vcpu.specialRegisters() } catch { throw X86Error.kvm(error) }
        return AddressTranslation(sregs, memory: memory).read(at: sregs.cs.base &+ rip, count: count)
    }

    /// Up to `count` bytes at guest linear address `linear`.
    func readGuestLinear(at linear: UInt64, count: Int) throws -> [UInt8] {
        let sregs: SpecialRegisters
        do { sregs = try vcpu.specialRegisters() } catch { throw X86Error.kvm(error) }
        return AddressTranslation(sregs, memory: memory).read(at: linear, count: count)
    }
}
