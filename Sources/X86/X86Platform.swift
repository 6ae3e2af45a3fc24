/// Where things are on Lockstep's x86 platform: guest-physical addresses, ports and IRQ lines.
/// docs/architecture.md has the same table; keep them in step.
public enum X86Platform {
    // MARK: Low memory, written by Lockstep before the guest starts

    /// The PML4 of the identity map built for ELF64 kernels entered in long mode.
    public static let pml4Address: UInt64 = 0x1000
    /// The page-directory-pointer table of that map.
    public static let pdptAddress: UInt64 = 0x2000
    /// Four page directories of 2 MiB pages: 0-4 GiB identity-mapped.
    public static let pageDirectoryAddress: UInt64 = 0x3000
    /// Lockstep's GDT: 0x08 64-bit code, 0x10 data, 0x18 32-bit code, 0x20 the TSS (16 bytes).
    public static let gdtAddress: UInt64 = 0x7000
    /// The (empty) 64-bit TSS that TR points at.
    public static let tssAddress: UInt64 = 0x7080
    /// The TSS size (`sizeof(struct tss64)`).
    public static let tssLimit: UInt32 = 0x67
    /// The boot stack's top (ESP/RSP at entry); the stack is the page below.
    public static let bootStackTop: UInt64 = 0x8FF0
    /// The Multiboot information block (fixed part, command line, memory map, loader name).
    public static let bootInfoAddress: UInt64 = 0x9000
    /// The end of the area the information block may use (the EBDA starts here).
    public static let bootInfoLimit: UInt64 = 0x9FC00
    /// The start of the low memory Lockstep writes: no segment of a kernel entered through
    /// Multiboot may overlap [gdtAddress, bootInfoLimit), nor one of a long-mode ELF64 kernel
    /// [pml4Address, bootInfoLimit).
    public static let lowestBootStructure: UInt64 = pml4Address

    /// GDT selectors.
    public static let code64Selector: UInt16 = 0x08
    public static let dataSelector: UInt16 = 0x10
    public static let code32Selector: UInt16 = 0x18
    public static let tssSelector: UInt16 = 0x20

    // MARK: Port I/O

    /// COM1 16550: 0x3F8-0x3FF.
    public static let com1Port: UInt16 = 0x3F8
    /// The master 8259: 0x20-0x21.
    public static let masterPICPort: UInt16 = 0x20
    /// The slave 8259: 0xA0-0xA1.
    public static let slavePICPort: UInt16 = 0xA0
    /// The ELCR pair: 0x4D0-0x4D1.
    public static let elcrPort: UInt16 = 0x4D0
    /// The 8254 PIT: 0x40-0x43.
    public static let pitPort: UInt16 = 0x40
    /// Port B (PIT channel 2 gate and speaker): 0x61.
    public static let speakerPort: UInt16 = 0x61
    /// POST codes: writes ignored, reads all ones, never logged.
    public static let postCodePort: UInt16 = 0x80
    /// isa-debug-exit: 0xF4-0xF7.
    public static let debugExitPort: UInt16 = 0xF4
    /// The trap port of rewritten environment instructions (`out %al,$0xe7`).
    public static let trapPort: UInt16 = UInt16(EnvironmentPatcher.trapPort)

    // MARK: Interrupts

    /// The PIT's IRQ line.
    public static let pitIRQ = 0
    /// COM1's IRQ line.
    public static let com1IRQ = 4
    /// The virtio-mmio block device's IRQ line.
    public static let virtioIRQ = 5

    // MARK: MMIO

    /// The virtio-mmio block device's window.
    public static let virtioAddress: UInt64 = 0xFEB0_0000
    /// Its size.
    public static let virtioWindow: UInt64 = 0x200

    /// The kernel command-line token that announces the virtio-mmio block device (Linux syntax).
    public static let virtioCommandLineToken = "virtio_mmio.device=512@0xfeb00000:5"

    /// The IA32_TIME_STAMP_COUNTER MSR.
    public static let tscMSR: UInt32 = 0x10

    /// The command line the guest sees: with a disk, the virtio announcement, then the user's
    /// (first, so that a guest that truncates a long command line still finds it).
    public static func commandLine(user: String, hasDisk: Bool) -> String {
        guard hasDisk else { return user }
        return user.isEmpty ? virtioCommandLineToken : virtioCommandLineToken + " " + user
    }
}
