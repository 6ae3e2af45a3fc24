import Bench
import Foundation
import Loader
import MachineCore
import PARISC
import Testing

/// The platform: the bundled guest kernels (guests/build/parisc, built with scripts/build-guests)
/// on PARISCMachine.
@Suite("PA-RISC machine and platform", .enabled(if: MachineDriver.guestsAvailable, "guests/build/parisc is missing and cannot be built (hppa-linux-gnu-gcc)"))
struct MachineTests {
    @Test("hello prints its greeting and halts")
    func hello() throws {
        let driver = try MachineDriver(guest: "hello")
        let stop = try driver.run()
        print("hello: \(stop) \(driver.environment.output.debugDescription)")
        #expect(stop == .exited(status: 0))
        #expect(driver.environment.output == "Hello from parisc\n")
    }
}

extension MachineTests {
    @Test("cpu: the SHA-256 chain matches a host computation")
    func cpu() throws {
        let driver = try MachineDriver(guest: "cpu", commandLine: "rounds=3 seed=7")
        let stop = try driver.run()
        #expect(stop == .exited(status: 0))
        #expect(driver.environment.output == GuestExpectations.cpuLine(rounds: 3, seed: 7) + "\n")
    }

    @Test("ticks: timer interrupts through CR16's comparator, idle warps, exact 250 MHz")
    func ticks() throws {
        let driver = try MachineDriver(guest: "ticks", commandLine: "hz=1000 ticks=5")
        let stop = try driver.run()
        #expect(stop == .exited(status: 0))
        let lines = driver.environment.output.split(separator: "\n")
        #expect(lines.first == "ticks hz=1000 target=5 clock=cr16")
        #expect(lines.count == 3)
        #expect(lines.dropFirst().first?.hasPrefix("ticks count=5 ") == true)
        #expect(lines.dropFirst().first?.hasSuffix(" per_tick=250000") == true)
        #expect(driver.environment.timerReads > 0, "CR16 reads went through the environment")
    }

    @Test("echo: console input through the UART, LASI and IO_EIR interrupts")
    func echo() throws {
        let driver = try MachineDriver(guest: "echo")
        let stop = try driver.run(input: Array("hello\r\nabc\nquit\n".utf8), inputAfter: 200_000)
        #expect(stop == .exited(status: 0))
        #expect(driver.environment.output
            == "echo ready\necho n=1 len=5 rev=olleh\necho n=2 len=3 rev=cba\necho bye n=2\n")
    }

    @Test("disk: virtio-mmio block writes and reads through the environment")
    func disk() throws {
        let driver = try MachineDriver(guest: "disk", commandLine: "blocks=16 seed=3", diskSectors: 64)
        let stop = try driver.run()
        #expect(stop == .exited(status: 0))
        let data = GuestExpectations.pattern(seed: 3, count: 16 * 512)
        let hex = StateDigest.of(data).description
        #expect(driver.environment.output == "disk capacity=64 blocks=16 seed=3\ndisk write ok\n"
            + "disk read ok\ndisk verify ok sha256=\(hex)\n")
        #expect(Array(driver.environment.disk.prefix(16 * 512)) == data)
        #expect(driver.machine.outstandingBlockRequests.isEmpty)
    }

    @Test("disk without a device: the announcement is absent, the guest exits 3 via debug-exit")
    func noDisk() throws {
        let driver = try MachineDriver(guest: "disk")
        #expect(try driver.run() == .exited(status: 3))
    }

    @Test("trap guest: its handler reports interruption 9 / 8 and exits 64 + n through debug-exit",
          arguments: [("break", 9), ("ill", 8)])
    func trap(kind: String, number: Int) throws {
        let driver = try MachineDriver(guest: "trap", commandLine: "trap=\(kind)")
        let stop = try driver.run()
        #expect(stop == .exited(status: Int32(64 + number)))
        #expect(driver.environment.output.contains("trap n=\(number) "))
    }

    @Test("a bad token: exit status 2 through debug-exit")
    func badToken() throws {
        let driver = try MachineDriver(guest: "cpu", commandLine: "rounds=0")
        #expect(try driver.run() == .exited(status: 2))
        #expect(driver.environment.output.hasPrefix("error: bad rounds=0"))
    }

    @Test("two identical runs have equal state digests at every boundary")
    func digests() throws {
        let a = try MachineDriver(guest: "ticks", commandLine: "hz=1000 ticks=3")
        let b = try MachineDriver(guest: "ticks", commandLine: "hz=1000 ticks=3")
        #expect(try a.machine.stateDigest() == b.machine.stateDigest())
        for _ in 0..<5 {
            _ = try a.machine.run(budget: 7919)
            _ = try b.machine.run(budget: 7919)
            #expect(try a.machine.stateDigest() == b.machine.stateDigest())
        }
        _ = try b.machine.run(budget: 1)
        #expect(try a.machine.stateDigest() != b.machine.stateDigest())
    }
}

/// The tiny test kernel of parisc-toolchain.md §2.7 (scripts/parisc/kernel): its own IVT,
/// BREAK, the divide-by-zero conditional trap in $$divI, an interval timer interrupt, and the
/// recovery counter, which QEMU does not implement.
@Suite("PA-RISC tiny kernel", .enabled(if: Toolchain.hasCompiler, "hppa-linux-gnu-gcc is not installed"))
struct TinyKernelTests {
    static func build() throws -> String {
        let kernel = Toolchain.support.appendingPathComponent("kernel").path
        return try Toolchain.build(
            name: "tiny-kernel",
            sources: ["\(kernel)/kentry.S", "\(kernel)/plat_sys.c", "\(kernel)/kernel.c"],
            flags: ["-O2", "-ffreestanding", "-nostdlib", "-static", "-fno-pic", "-mdisable-fpregs"],
            linkFlags: ["-Wl,--build-id=none", "-T", "\(kernel)/link.ld", "-lgcc"])
    }

    @Test("traps, timer and recovery counter as the kernel reports them")
    func run() throws {
        let environment = TestEnvironment()
        let machine = try PARISCMachine(image: try ELFImage.load(contentsOf: try Self.build()),
                                        environment: environment)
        var stop = MachineStop.epochEnd
        while machine.progress < 50_000_000 {
            stop = try machine.run(budget: 100_000)
            guard stop == .epochEnd || stop == .idle else { break }
            try machine.applyBoundary(time: machine.clock.now, events: [])
        }
        #expect(stop == .exited(status: 0))
        let lines = environment.output.replacingOccurrences(of: "\r", with: "").split(separator: "\n")
        #expect(lines.first == "tiny hppa kernel up. psw(sysmask via rsm 0)=0x00000008")
        #expect(lines.contains { $0.hasPrefix("[break] n9=0x00000001 ") && $0.contains("iir=0x00246005 ipsw=0x00000008") })
        #expect(lines.contains { $0.hasPrefix("[div0] n13=0x00000001 ") && $0.contains("iir=0xb3202000 q=0x000004d2") })
        #expect(lines.contains { $0.hasPrefix("[timer] n4=0x00000001 eirr=0x80000000 ") && $0.contains("ipsw=0x00000009") })
        // QEMU prints n3=0x00000000 here: it has no recovery counter.
        let rctr = lines.first { $0.hasPrefix("[rctr]") } ?? ""
        #expect(rctr.hasPrefix("[rctr] cr0 after mtctl 1000 =0x000003e8 spin=0x9454074f cr0_after=0xffffffff n3=0x00000001 iaoq0=0x001"))
        #expect(rctr.hasSuffix("cr0_at_trap=0xffffffff "))
        #expect(lines.last == "kernel done")
    }
}

/// The same guests under qemu-system-hppa (QEMU 7.2, `-kernel`): Lockstep's console output must
/// be what the guest prints there (after the SeaBIOS banner).
@Suite("PA-RISC guests against qemu-system-hppa",
       .enabled(if: MachineDriver.guestsAvailable && Toolchain.hasQEMUSystem,
                "needs guests/build/parisc and qemu-system-hppa (qemu-system-misc)"))
struct QEMUSystemComparisonTests {
    @Test("same console output", arguments: [("hello", ""), ("cpu", "rounds=2 seed=9"),
                                             ("trap", "trap=break")])
    func sameOutput(guest: String, commandLine: String) throws {
        let driver = try MachineDriver(guest: guest, commandLine: commandLine)
        _ = try driver.run()
        let qemu = try Toolchain.run(Toolchain.qemuSystem, [
            "-nographic", "-m", "64", "-no-reboot", "-kernel", MachineDriver.guest(guest)!,
            "-append", commandLine,
        ], timeout: 60)
        // QEMU 7.2 scrambles the digit carries when it folds them into the PSW (see
        // docs/parisc.md), so the C/B byte of a printed IPSW is not compared.
        func normalized(_ text: String) -> String {
            text.replacingOccurrences(of: "\r", with: "")
                .replacingOccurrences(of: #"ipsw=0x([0-9a-f]{4})[0-9a-f]{2}"#, with: "ipsw=0x$1**",
                                      options: .regularExpression)
        }
        let qemuText = normalized(String(decoding: qemu.output, as: UTF8.self))
        let ours = normalized(driver.environment.output)
        print("lockstep \(guest): \(ours.debugDescription)")
        // Without a debug-exit register (QEMU) a guest prints its non-zero status before halting.
        let expected = guest == "trap" ? ours + "exit status 73\n" : ours
        #expect(!ours.isEmpty)
        #expect(qemuText.hasSuffix(expected), "qemu printed: \(qemuText.suffix(300))")
    }
}
