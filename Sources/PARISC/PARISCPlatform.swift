/// The addresses of the PA-RISC platform Lockstep gives a guest: what `qemu-system-hppa -kernel`
/// (QEMU 7.2, B160L machine, SeaBIOS-hppa) gives a tiny kernel, plus Lockstep's own devices.
/// docs/parisc.md has the same table.
public enum PARISCPlatform {
    /// Guest RAM starts at physical 0.
    public static let ramBase: UInt64 = 0
    /// The default RAM size (64 MiB); QEMU's firmware needs at least 16 MiB.
    public static let defaultMemorySize: UInt64 = 64 << 20
    /// The RAM sizes the platform accepts: 16 MiB ... 3 GiB (I/O space starts at 0xF0000000).
    public static let memoryRange: ClosedRange<UInt64> = (16 << 20)...(3 << 30)

    /// Where the command line is copied (QEMU copies `-append` to 0x4000; SeaBIOS passes it on
    /// in r25), at most 4095 bytes plus the terminating NUL.
    public static let commandLineAddress: UInt32 = 0x4000
    public static let commandLineCapacity = 4096
    /// `mem_free` as SeaBIOS-hppa passes it in r26 (PAGE0->mem_free).
    public static let memFree: UInt32 = 0x6000
    /// The return address given in r2: a HALT word, so a kernel that returns stops the machine.
    public static let returnStub: UInt32 = 0x5FF0
    /// ELF segments are placed at physical = virtual & 0x0fffffff, as QEMU's loader does.
    public static let physicalMask: UInt64 = 0x0FFF_FFFF

    /// LASI chip registers (IRR, IMR, IPR, ICR, IAR) — `LASI_HPA` in QEMU.
    public static let lasiBase: UInt64 = 0xFFD0_0000
    public static let lasiLength: UInt64 = 0x20
    /// LASI's power/error/version/reset/arbitration registers (LASI_HPA + 0xC000).
    public static let lasiControlBase: UInt64 = 0xFFD0_C000
    public static let lasiControlLength: UInt64 = 0x14
    /// The LASI 16550 UART (byte registers at byte stride), on LASI interrupt 5.
    public static let uartBase: UInt64 = 0xFFD0_5800
    public static let uartLength: UInt64 = 8
    public static let uartLASIInterrupt = 5
    /// The CPU's IO_EIR register (`CPU_HPA`): a 32-bit store of n sets EIRR bit n.
    public static let ioEIRBase: UInt64 = 0xFFFB_0000
    public static let ioEIRLength: UInt64 = 0x1000

    /// Lockstep: the virtio-mmio block device (little-endian registers), EIRR bit 1.
    public static let virtioBase: UInt64 = 0xF100_0000
    public static let virtioLength: UInt64 = 0x200
    public static let virtioEIRRBit = 1
    /// Lockstep: the debug-exit register, a big-endian 32-bit register: a store of v exits with
    /// status (v << 1) | 1.
    public static let debugExitBase: UInt64 = 0xF100_1000
    public static let debugExitLength: UInt64 = 4

    /// The command-line token announcing the virtio-mmio block device (Linux syntax).
    public static let virtioAnnouncement = "virtio_mmio.device=512@0xf1000000:1"
    /// The command-line token announcing the debug-exit register.
    public static let debugExitAnnouncement = "lockstep.debugexit=0xf1001000"

    /// The EIRR bit of the interval timer (the most significant bit).
    public static let timerEIRRBit = 0
}
