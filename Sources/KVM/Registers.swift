import CKVM

/// The general-purpose registers, RIP and RFLAGS of a vCPU.
///
/// The corresponding C struct is `struct kvm_regs` (`KVM_GET_REGS` / `KVM_SET_REGS`).
public struct Registers: Hashable, Sendable, Codable {
    /// RAX, RBX, RCX, RDX.
    public var rax: UInt64 = 0, rbx: UInt64 = 0, rcx: UInt64 = 0, rdx: UInt64 = 0
    /// RSI, RDI, RSP, RBP.
    public var rsi: UInt64 = 0, rdi: UInt64 = 0, rsp: UInt64 = 0, rbp: UInt64 = 0
    /// R8–R11.
    public var r8: UInt64 = 0, r9: UInt64 = 0, r10: UInt64 = 0, r11: UInt64 = 0
    /// R12–R15.
    public var r12: UInt64 = 0, r13: UInt64 = 0, r14: UInt64 = 0, r15: UInt64 = 0
    /// The instruction pointer (an offset into CS).
    public var rip: UInt64 = 0
    /// RFLAGS; bit 1 is always set on x86.
    public var rflags: UInt64 = 0x2

    /// All registers zero, RFLAGS = 0x2.
    public init() {}

    init(_ c: kvm_regs) {
        rax = c.rax; rbx = c.rbx; rcx = c.rcx; rdx = c.rdx
        rsi = c.rsi; rdi = c.rdi; rsp = c.rsp; rbp = c.rbp
        r8 = c.r8; r9 = c.r9; r10 = c.r10; r11 = c.r11
        r12 = c.r12; r13 = c.r13; r14 = c.r14; r15 = c.r15
        rip = c.rip; rflags = c.rflags
    }

    var c: kvm_regs {
        kvm_regs(
            rax: rax, rbx: rbx, rcx: rcx, rdx: rdx, rsi: rsi, rdi: rdi, rsp: rsp, rbp: rbp,
            r8: r8, r9: r9, r10: r10, r11: r11, r12: r12, r13: r13, r14: r14, r15: r15,
            rip: rip, rflags: rflags)
    }
}

/// A segment register with its hidden descriptor cache.
///
/// The corresponding C struct is `struct kvm_segment`.
public struct Segment: Hashable, Sendable, Codable {
    /// The linear base address.
    public var base: UInt64 = 0
    /// The limit in bytes (already scaled by `g`).
    public var limit: UInt32 = 0
    /// The visible selector.
    public var selector: UInt16 = 0
    /// The 4-bit descriptor type (e.g. 0xB: execute/read code, accessed; 0x3: read/write data).
    public var type: UInt8 = 0
    /// The P bit.
    public var present: Bool = false
    /// Descriptor privilege level, 0...3.
    public var dpl: UInt8 = 0
    /// Default operation size: 1 for 32-bit segments.
    public var db: Bool = false
    /// 1 for code/data segments, 0 for system segments (TSS, LDT).
    public var s: Bool = false
    /// 64-bit code segment.
    public var l: Bool = false
    /// Granularity: the limit counts 4 KiB units.
    public var g: Bool = false
    /// The AVL bit.
    public var avl: Bool = false
    /// The segment is unusable (a null selector in protected mode).
    public var unusable: Bool = false

    /// All zero.
    public init() {}

    /// A segment with the given descriptor cache (present, S = 1 by default).
    public init(
        base: UInt64, limit: UInt32, selector: UInt16, type: UInt8, present: Bool = true,
        dpl: UInt8 = 0, db: Bool = false, s: Bool = true, l: Bool = false, g: Bool = false,
        avl: Bool = false, unusable: Bool = false
    ) {
        self.base = base; self.limit = limit; self.selector = selector; self.type = type
        self.present = present; self.dpl = dpl; self.db = db; self.s = s; self.l = l
        self.g = g; self.avl = avl; self.unusable = unusable
    }

    init(_ c: kvm_segment) {
        base = c.base; limit = c.limit; selector = c.selector; type = c.type
        present = c.present != 0; dpl = c.dpl; db = c.db != 0; s = c.s != 0; l = c.l != 0
        g = c.g != 0; avl = c.avl != 0; unusable = c.unusable != 0
    }

    var c: kvm_segment {
        var c = kvm_segment()
        c.base = base; c.limit = limit; c.selector = selector; c.type = type
        c.present = present ? 1 : 0; c.dpl = dpl; c.db = db ? 1 : 0; c.s = s ? 1 : 0
        c.l = l ? 1 : 0; c.g = g ? 1 : 0; c.avl = avl ? 1 : 0; c.unusable = unusable ? 1 : 0
        return c
    }

    /// A real-mode segment: base = selector × 16, limit 0xFFFF, read/write (or code) present.
    public static func realMode(selector: UInt16, code: Bool = false) -> Segment {
        Segment(base: UInt64(selector) << 4, limit: 0xFFFF, selector: selector, type: code ? 0xB : 0x3)
    }
}

/// A descriptor-table register (GDTR or IDTR).
///
/// The corresponding C struct is `struct kvm_dtable`.
public struct DescriptorTable: Hashable, Sendable, Codable {
    /// The linear base address.
    public var base: UInt64 = 0
    /// The table limit in bytes minus one.
    public var limit: UInt16 = 0

    /// A table at `base` of `limit + 1` bytes.
    public init(base: UInt64 = 0, limit: UInt16 = 0) {
        self.base = base
        self.limit = limit
    }

    init(_ c: kvm_dtable) { base = c.base; limit = c.limit }

    var c: kvm_dtable {
        var c = kvm_dtable()
        c.base = base
        c.limit = limit
        return c
    }
}

/// The system registers of a vCPU: segments, descriptor tables, control registers, EFER,
/// the APIC base and the pending-interrupt bitmap.
///
/// The corresponding C struct is `struct kvm_sregs` (`KVM_GET_SREGS` / `KVM_SET_SREGS`).
public struct SpecialRegisters: Hashable, Sendable, Codable {
    /// The segment registers.
    public var cs = Segment(), ds = Segment(), es = Segment(), fs = Segment(), gs = Segment(), ss = Segment()
    /// The task register.
    public var tr = Segment()
    /// The LDT register.
    public var ldt = Segment()
    /// GDTR and IDTR.
    public var gdt = DescriptorTable(), idt = DescriptorTable()
    /// The control registers.
    public var cr0: UInt64 = 0, cr2: UInt64 = 0, cr3: UInt64 = 0, cr4: UInt64 = 0, cr8: UInt64 = 0
    /// IA32_EFER (LME, LMA, SCE, NXE).
    public var efer: UInt64 = 0
    /// IA32_APIC_BASE.
    public var apicBase: UInt64 = 0
    /// Interrupts queued for injection without an in-kernel irqchip, one bit per vector
    /// (4 words for 256 vectors).
    public var interruptBitmap: [UInt64] = [0, 0, 0, 0]

    /// All zero.
    public init() {}

    init(_ c: kvm_sregs) {
        cs = Segment(c.cs); ds = Segment(c.ds); es = Segment(c.es); fs = Segment(c.fs)
        gs = Segment(c.gs); ss = Segment(c.ss); tr = Segment(c.tr); ldt = Segment(c.ldt)
        gdt = DescriptorTable(c.gdt); idt = DescriptorTable(c.idt)
        cr0 = c.cr0; cr2 = c.cr2; cr3 = c.cr3; cr4 = c.cr4; cr8 = c.cr8
        efer = c.efer; apicBase = c.apic_base
        interruptBitmap = [c.interrupt_bitmap.0, c.interrupt_bitmap.1, c.interrupt_bitmap.2, c.interrupt_bitmap.3]
    }

    var c: kvm_sregs {
        var c = kvm_sregs()
        c.cs = cs.c; c.ds = ds.c; c.es = es.c; c.fs = fs.c; c.gs = gs.c; c.ss = ss.c
        c.tr = tr.c; c.ldt = ldt.c; c.gdt = gdt.c; c.idt = idt.c
        c.cr0 = cr0; c.cr2 = cr2; c.cr3 = cr3; c.cr4 = cr4; c.cr8 = cr8
        c.efer = efer; c.apic_base = apicBase
        let b = interruptBitmap + [UInt64](repeating: 0, count: max(0, 4 - interruptBitmap.count))
        c.interrupt_bitmap = (b[0], b[1], b[2], b[3])
        return c
    }
}
