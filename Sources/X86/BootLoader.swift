import KVM
import Loader
import MachineCore

/// How a kernel is entered.
public enum BootProtocol: Hashable, Sendable, CustomStringConvertible {
    /// Multiboot v1: 32-bit protected mode, paging off, flat segments, EAX = 0x2BADB002,
    /// EBX = the information block.
    case multiboot
    /// An ELF64 kernel without a Multiboot header: 64-bit long mode at CPL0 with Lockstep's
    /// identity map and GDT (Firecracker style; see `BootLoader`).
    case longMode

    public var description: String {
        switch self {
        case .multiboot: "multiboot"
        case .longMode: "long-mode"
        }
    }
}

/// The vCPU state at the kernel's first instruction.
public struct EntryState: Hashable, Sendable {
    public var protocolKind: BootProtocol
    public var registers: Registers
    public var cs: Segment
    public var data: Segment
    public var tr: Segment
    public var gdt: DescriptorTable
    public var cr0: UInt64
    public var cr3: UInt64
    public var cr4: UInt64
    public var efer: UInt64

    /// Copies the entry state into `sregs` (KVM's defaults for everything else).
    public func apply(to sregs: inout SpecialRegisters) {
        sregs.cs = cs
        sregs.ds = data; sregs.es = data; sregs.fs = data; sregs.gs = data; sregs.ss = data
        sregs.tr = tr
        sregs.ldt = Segment(base: 0, limit: 0xFFFF, selector: 0, type: 2, present: false, s: false,
                            unusable: true)
        sregs.gdt = gdt
        sregs.idt = DescriptorTable(base: 0, limit: 0)
        sregs.cr0 = cr0; sregs.cr3 = cr3; sregs.cr4 = cr4; sregs.efer = efer
    }
}

/// Places a kernel in guest RAM and computes its entry state.
///
/// Both protocols load each PT_LOAD segment at its p_paddr (zero-filling up to p_memsz) and build
/// a Multiboot v1 information block at 0x9000 (PC memory map, the command line, loader name
/// "lockstep"); Lockstep's GDT and TSS are at 0x7000 and the boot stack tops at 0x8FF0.
///
/// - Multiboot (any ELF with a Multiboot header in its first 8 KiB; ELF64 too, whose entry is
///   still 32-bit code): EIP = e_entry (below 4 GiB), 32-bit protected mode, paging off,
///   CS = 0x18 flat 32-bit code, DS/ES/FS/GS/SS = 0x10 flat data, EAX = 0x2BADB002,
///   EBX = the information block, ESP = 0x8FF0, EFLAGS = 0x2 (IF = 0), CR0 = PE|ET. The header's
///   a.out address fields are not used: the ELF program headers say where everything goes.
/// - Long mode (ELF64 without a Multiboot header): RIP = e_entry, CS = 0x08 64-bit code at CPL0,
///   DS/ES/FS/GS/SS = 0x10, TR = 0x20 (busy 64-bit TSS), CR0 = PG|WP|NE|ET|MP|PE,
///   CR4 = PAE, EFER = LME|LMA, CR3 = 0x1000: 0-4 GiB identity-mapped with 2 MiB pages
///   (PML4 0x1000, PDPT 0x2000, page directories 0x3000-0x6FFF); RSP = 0x8FF0,
///   RFLAGS = 0x2 (IF = 0), RAX = 0x2BADB002 and RBX = RSI = the information block, all other
///   registers 0. No IDT (IDTR limit 0): the kernel installs its own before enabling interrupts.
public enum BootLoader {
    /// Loads `image` into `memory` and returns the entry state. `commandLine` is the complete
    /// command line the guest sees.
    public static func load(_ image: ELFImage, into memory: GuestMemory, commandLine: String)
        throws(X86Error) -> EntryState
    {
        // The boot structures live below 640 KiB and the PC memory map starts RAM proper at 1 MiB.
        guard memory.base == GuestAddress(0), memory.size >= 0x10_0000 else {
            throw .layout("guest RAM must start at 0 and be at least 1 MiB for an x86 guest (it is \(memory.size) bytes at \(memory.base))")
        }
        let header: MultibootHeader?
        do { header = try MultibootHeader.find(in: image.fileBytes, path: image.path) } catch {
            throw .image(error)
        }
        let protocolKind: BootProtocol
        if header != nil {
            protocolKind = .multiboot
        } else if image.is64Bit {
            protocolKind = .longMode
        } else {
            throw .layout("\(image.path): a 32-bit x86 kernel needs a Multiboot header (none in its first 8 KiB)")
        }
        let reserved = (protocolKind == .multiboot ? X86Platform.gdtAddress : X86Platform.pml4Address)
            ..< X86Platform.bootInfoLimit
        for segment in image.segments where segment.memorySize > 0 {
            let start = segment.physicalAddress
            let (end, overflow) = start.addingReportingOverflow(segment.memorySize)
            if overflow || (start < reserved.upperBound && reserved.lowerBound < end) {
                throw .layout("\(image.path): segment at \(hex(start)) (\(segment.memorySize) bytes) overlaps Lockstep's boot structures at \(hex(reserved.lowerBound))-\(hex(reserved.upperBound))")
            }
        }
        do { try image.load(into: memory) { $0.physicalAddress } } catch { throw .image(error) }

        let info = MultibootInfo(commandLine: commandLine,
                                 memoryMap: MultibootInfo.pcMemoryMap(ramSize: memory.size))
        let infoBytes: [UInt8]
        do {
            infoBytes = try info.encode(
                at: UInt32(X86Platform.bootInfoAddress),
                limit: Int(X86Platform.bootInfoLimit - X86Platform.bootInfoAddress))
        } catch { throw .image(error) }
        try write(infoBytes, at: X86Platform.bootInfoAddress, memory)
        try write(gdtBytes(), at: X86Platform.gdtAddress, memory)
        try write([UInt8](repeating: 0, count: Int(X86Platform.tssLimit) + 1),
                  at: X86Platform.tssAddress, memory)

        let gdt = DescriptorTable(base: X86Platform.gdtAddress, limit: UInt16(gdtEntries.count * 8 - 1))
        let tr = Segment(base: X86Platform.tssAddress, limit: X86Platform.tssLimit,
                         selector: X86Platform.tssSelector, type: 0xB, present: true, s: false)
        let data = Segment(base: 0, limit: 0xFFFF_FFFF, selector: X86Platform.dataSelector,
                           type: 0x3, present: true, db: true, s: true, g: true)
        var registers = Registers()
        registers.rflags = 0x2
        registers.rsp = X86Platform.bootStackTop
        registers.rax = UInt64(MultibootHeader.bootloaderMagic)
        registers.rbx = X86Platform.bootInfoAddress

        switch protocolKind {
        case .multiboot:
            guard image.entry <= UInt64(UInt32.max) else {
                throw .layout("\(image.path): the Multiboot entry point \(hex(image.entry)) is above 4 GiB")
            }
            registers.rip = image.entry
            return EntryState(
                protocolKind: .multiboot, registers: registers,
                cs: Segment(base: 0, limit: 0xFFFF_FFFF, selector: X86Platform.code32Selector,
                            type: 0xB, present: true, db: true, s: true, g: true),
                data: data, tr: tr, gdt: gdt, cr0: 0x11, cr3: 0, cr4: 0, efer: 0)
        case .longMode:
            try write(identityMap(), at: X86Platform.pml4Address, memory)
            registers.rip = image.entry
            registers.rsi = X86Platform.bootInfoAddress
            return EntryState(
                protocolKind: .longMode, registers: registers,
                cs: Segment(base: 0, limit: 0xFFFF_FFFF, selector: X86Platform.code64Selector,
                            type: 0xB, present: true, db: false, s: true, l: true, g: true),
                data: data, tr: tr, gdt: gdt, cr0: 0x8005_0033, cr3: X86Platform.pml4Address,
                cr4: 0x20, efer: 0x500)
        }
    }

    /// The GDT entries: null, 64-bit code, data, 32-bit code (all flat, DPL 0, accessed), then
    /// the 16-byte busy TSS descriptor.
    static var gdtEntries: [UInt64] {
        let base = X86Platform.tssAddress
        let limit = UInt64(X86Platform.tssLimit)
        let tssLow = limit & 0xFFFF | (base & 0xFF_FFFF) << 16 | 0x8B << 40 | (limit >> 16 & 0xF) << 48
            | (base >> 24 & 0xFF) << 56
        return [0, 0x00AF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF, 0x00CF_9B00_0000_FFFF,
                tssLow, base >> 32]
    }

    static func gdtBytes() -> [UInt8] { gdtEntries.flatMap(littleEndianBytes) }

    /// PML4 (one entry), PDPT (four entries), four page directories of 512 2 MiB pages each:
    /// 0-4 GiB identity-mapped, present and writable, supervisor only.
    static func identityMap() -> [UInt8] {
        let present: UInt64 = 0x3
        var entries = [UInt64](repeating: 0, count: 512 * 6)
        entries[0] = X86Platform.pdptAddress | present
        for i in 0..<4 { entries[512 + i] = (X86Platform.pageDirectoryAddress + UInt64(i) * 0x1000) | present }
        for i in 0..<(4 * 512) { entries[1024 + i] = UInt64(i) << 21 | present | 0x80 }
        return entries.flatMap(littleEndianBytes)
    }

    private static func write(_ bytes: [UInt8], at address: UInt64, _ memory: GuestMemory)
        throws(X86Error)
    {
        do { try memory.write(bytes, at: GuestAddress(address)) } catch {
            throw .layout("guest RAM is too small for Lockstep's boot structures: \(error)")
        }
    }

    /// The virtual address range of the Multiboot header inside the image's code, if it is
    /// there (the patcher must not sweep it).
    static func multibootHeaderRange(in image: ELFImage) -> [Range<UInt64>] {
        guard let header = try? MultibootHeader.find(in: image.fileBytes, path: image.path) else {
            return []
        }
        let length = header.addresses == nil ? 12 : 32
        let needle = Array(image.fileBytes[header.fileOffset..<min(header.fileOffset + length, image.fileBytes.count)])
        var ranges: [Range<UInt64>] = []
        for section in image.codeSections where section.bytes.count >= needle.count {
            var offset = 0
            while offset + needle.count <= section.bytes.count {
                if section.bytes[offset] == needle[0], Array(section.bytes[offset..<offset + needle.count]) == needle {
                    let start = section.address + UInt64(offset)
                    ranges.append(start..<start + UInt64(needle.count))
                }
                offset += 4
            }
        }
        return ranges
    }
}
