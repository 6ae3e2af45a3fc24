import Foundation

/// How to run one engine of a comparison on a guest: Lockstep's `run`, or a QEMU command line.
struct PeerCommand {
    var name: String
    var executable: String
    /// The arguments for a guest ELF and its command line.
    var arguments: (_ elf: String, _ cmdline: String) -> [String]
    /// The exit status of a successful run (QEMU's isa-debug-exit gives (0 << 1) | 1 = 1).
    var successStatus: Int32

    static func lockstep(_ context: BenchContext, name: String, options: [String] = []) -> PeerCommand {
        PeerCommand(name: name, executable: context.driver.executable,
                    arguments: { elf, cmdline in ["run"] + options + ["--cmdline", cmdline, elf] }, successStatus: 0)
    }

    /// qemu-system-hppa as guests/README.md runs it; `icount` adds `-icount shift=0`.
    static func qemuHPPA(_ executable: String, icount: Bool) -> PeerCommand {
        PeerCommand(name: icount ? "qemu-system-hppa -icount shift=0" : "qemu-system-hppa (TCG)", executable: executable,
                    arguments: { elf, cmdline in
                        ["-nographic", "-m", "64", "-no-reboot"] + (icount ? ["-icount", "shift=0"] : [])
                            + ["-kernel", elf, "-append", cmdline]
                    }, successStatus: 0)
    }

    /// qemu-system-x86_64 with KVM, the pc or the microvm machine, as scripts/qemu-run-guest runs it,
    /// with the CPU argument its probe chose on this host (`PeerProbe`).
    static func qemuX86(_ executable: String, microvm: Bool, cpu: String) -> PeerCommand {
        PeerCommand(name: microvm ? "qemu-system-x86_64 KVM microvm" : "qemu-system-x86_64 KVM pc", executable: executable,
                    arguments: { elf, cmdline in
                        ["-display", "none", "-serial", "stdio", "-no-reboot", "-m", "64",
                         "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
                            + (microvm ? ["-machine", "microvm,accel=kvm,ioapic2=off,acpi=off", "-cpu", cpu]
                                       : ["-enable-kvm", "-cpu", cpu])
                            + ["-kernel", elf, "-append", cmdline]
                    }, successStatus: 1)
    }
}
