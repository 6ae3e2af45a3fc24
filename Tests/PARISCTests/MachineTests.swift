import Foundation
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
    /// xorshift32 as the guests' fill_pattern: least significant byte of each word first.
    static func pattern(seed: UInt32, count: Int) -> [UInt8] {
        var x = seed
        var bytes: [UInt8] = []
        while bytes.count < count {
            x ^= x << 13
            x ^= x >> 17
            x ^= x << 5
            for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: x >> (8 * UInt32(i)))) }
        }
        return Array(bytes.prefix(count))
    }

    @Test("cpu: the SHA-256 chain matches a host computation")
    func cpu() throws {
        let driver = try MachineDriver(guest: "cpu", commandLine: "rounds=3 seed=7")
        let stop = try driver.run()
        #expect(stop == .exited(status: 0))
        let buffer = Self.pattern(seed: 7, count: 16384)
        var digest = [UInt8](repeating: 0, count: 32)
        for _ in 0..<3 { digest = StateDigest.of(digest + buffer).bytes }
        let hex = StateDigest(bytes: digest).description
        #expect(driver.environment.output == "cpu rounds=3 seed=7 buffer=16384 sha256=\(hex)\n")
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
        let data = Self.pattern(seed: 3, count: 16 * 512)
        let hex = StateDigest.of(data).description
        #expect(driver.environment.output == "disk capacity=64 blocks=16 seed=3\ndisk write ok\n"
            + "disk read ok\ndisk verify ok sha256=\(hex)\n")
        #expect(Array(driver.environment.disk.prefix(16 * 512)) == data)
        #expect(driver.machine.outstandingBlockRequests.isEmpty)
    }

    @Test("disk without a device: the announcement is absent, the guest exits 3 via debug-exit")
    func noDisk() throws {
        let driver = try MachineDriver(guest: "disk")
        #expect(try driver.run() == .exited(status: 3 << 1 | 1))
    }

    @Test("trap guest: its handler reports interruption 9 / 8 and exits 64 + n through debug-exit",
          arguments: [("break", 9), ("ill", 8)])
    func trap(kind: String, number: Int) throws {
        let driver = try MachineDriver(guest: "trap", commandLine: "trap=\(kind)")
        let stop = try driver.run()
        #expect(stop == .exited(status: Int32((64 + number) << 1 | 1)))
        #expect(driver.environment.output.contains("trap n=\(number) "))
    }

    @Test("a bad token: exit status 2 through debug-exit")
    func badToken() throws {
        let driver = try MachineDriver(guest: "cpu", commandLine: "rounds=0")
        #expect(try driver.run() == .exited(status: 2 << 1 | 1))
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
