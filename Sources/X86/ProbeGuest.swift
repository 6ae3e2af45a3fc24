import Foundation
import KVM
import MachineCore

/// A tiny VM for `HostProbe`: 4 MiB of RAM, 64-bit long mode at CPL0 or CPL3 (entered directly
/// through the special registers), identity-mapped with user-accessible 2 MiB pages, no IDT, and
/// one piece of code at 0x10000.
///
/// The probe programs end with a write to the unbacked address 0xC0000000, an MMIO exit that
/// marks "the program finished" at either privilege level.
final class ProbeGuest {
    static let codeAddress: UInt64 = 0x10000
    static let markerAddress: UInt64 = 0xC000_0000
    static let memorySize: UInt64 = 4 << 20

    let vm: VirtualMachine
    let vcpu: VCPU
    let memory: GuestMemory
    let entry: Registers

    init(system: KVMSystem, cpl: Int, code: [UInt8], dirtyLogging: Bool = false) throws {
        memory = try GuestMemory(size: Self.memorySize)
        vm = try system.createVM()
        try vm.setUserMemoryRegion(
            UserMemoryRegion(slot: 0, guestPhysicalAddress: 0, size: memory.size,
                             userspaceAddress: memory.hostAddress,
                             flags: dirtyLogging ? [.logDirtyPages] : []),
            owner: memory)
        vcpu = try vm.createVCPU()
        try vcpu.setCPUID(CPUIDTable().kvmEntries(supported: try system.supportedCPUID()))
        // PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000: the first 1 GiB in 2 MiB pages, and
        // PD 0x4000 for 3-4 GiB (the marker address); P|RW|US everywhere.
        let flags: UInt64 = 0x67  // P|RW|US, accessed and dirty already set (the CPU would write them)
        try memory.store(UInt64(0x2000) | flags, at: GuestAddress(0x1000), order: .little)
        try memory.store(UInt64(0x3000) | flags, at: GuestAddress(0x2000), order: .little)
        try memory.store(UInt64(0x4000) | flags, at: GuestAddress(0x2000 + 3 * 8), order: .little)
        for i in 0..<512 {
            try memory.store(UInt64(i) << 21 | flags | 0x80, at: GuestAddress(0x3000 + UInt64(i) * 8), order: .little)
            try memory.store((3 << 30) + UInt64(i) << 21 | flags | 0x80, at: GuestAddress(0x4000 + UInt64(i) * 8), order: .little)
        }
        // GDT at 0x5000: null, 0x08 kernel code64, 0x10 kernel data, 0x18 unused,
        // 0x20 user data, 0x28 user code64, 0x30 TSS (16 bytes) at 0x6000.
        let tssLow: UInt64 = 0x67 | UInt64(0x6000) << 16 | 0x8B << 40
        let gdt: [UInt64] = [0, 0x00AF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF, 0,
                             0x00CF_F300_0000_FFFF, 0x00AF_FB00_0000_FFFF, tssLow, 0]
        try memory.write(gdt.flatMap(littleEndianBytes), at: GuestAddress(0x5000))
        try memory.write(code, at: GuestAddress(Self.codeAddress))

        var sregs = try vcpu.specialRegisters()
        let user = cpl == 3
        sregs.cs = Segment(base: 0, limit: 0xFFFF_FFFF, selector: user ? 0x2B : 0x08, type: 0xB,
                           dpl: user ? 3 : 0, l: true, g: true)
        let data = Segment(base: 0, limit: 0xFFFF_FFFF, selector: user ? 0x23 : 0x10, type: 0x3,
                           dpl: user ? 3 : 0, db: true, g: true)
        sregs.ds = data; sregs.es = data; sregs.fs = data; sregs.gs = data; sregs.ss = data
        sregs.tr = Segment(base: 0x6000, limit: 0x67, selector: 0x30, type: 0xB, s: false)
        sregs.gdt = DescriptorTable(base: 0x5000, limit: UInt16(gdt.count * 8 - 1))
        sregs.idt = DescriptorTable(base: 0, limit: 0)
        sregs.cr0 = 0x8005_0033
        sregs.cr3 = 0x1000
        sregs.cr4 = 0x20
        sregs.efer = 0x500
        try vcpu.setSpecialRegisters(sregs)
        var r = Registers()
        r.rip = Self.codeAddress
        r.rsp = 0x8000
        r.rflags = 0x2
        entry = r
        try vcpu.setRegisters(r)
    }

    /// Starts the program again from its first instruction with RCX = `rcx` (and interrupts
    /// enabled if `interrupts`: there is no IDT, so nothing may then be injected).
    func restart(rcx: UInt64 = 0, interrupts: Bool = false) throws {
        var r = entry
        r.rcx = rcx
        if interrupts { r.rflags |= 0x200 }
        try vcpu.setRegisters(r)
    }

    /// Runs to the next exit that is not a stray signal, with its host time in nanoseconds.
    func run() throws -> (exit: VCPUExit, nanoseconds: UInt64) {
        for _ in 0..<100 {
            let start = DispatchTime.now().uptimeNanoseconds
            let exit = try vcpu.run()
            let elapsed = DispatchTime.now().uptimeNanoseconds - start
            if exit != .interrupted { return (exit, elapsed) }
        }
        return (.interrupted, 0)
    }

    /// Whether `exit` is the program's end marker.
    static func isMarker(_ exit: VCPUExit) -> Bool {
        if case .mmioWrite(let address, _) = exit, address == markerAddress { return true }
        return false
    }

    // MARK: - Programs

    /// `mov %al, 0xc0000000` (movabs): the end marker.
    static let marker: [UInt8] = [0xA2] + littleEndianBytes(markerAddress)

    /// A counted loop of 2 × RCX instructions, then the marker:
    /// `1: dec %rcx; jnz 1b; movabs %al, 0xc0000000`. Executes 2 × RCX + 1 instructions.
    static let loop: [UInt8] = [0x48, 0xFF, 0xC9, 0x75, 0xFB] + marker

    /// The address of the `jnz` in `loop` (for a breakpoint that fires every iteration).
    static let loopBranchAddress = codeAddress + 3

    /// Writes one byte to each of `pages` (guest-physical page numbers), then the marker.
    static func writes(to pages: [UInt64]) -> [UInt8] {
        pages.flatMap { [0xA2] + littleEndianBytes($0 << 12) } + marker
    }
}
