import Foundation
import Loader
import MachineCore
import PARISC
import Testing

/// The platform pieces on their own: boot state, LASI, IO_EIR, the debug-exit register, bad
/// configurations. Small programs are built with the test encoder into minimal ELFs.
@Suite("PA-RISC platform")
struct PlatformTests {
    typealias E = Encoder

    /// A machine running `code` (at 0x10000), with `data` at 0x18000.
    static func machine(_ code: [UInt32], commandLine: String = "", disk: Bool = false,
                        memorySize: UInt64 = 16 << 20) throws -> (PARISCMachine, TestEnvironment)
    {
        let environment = TestEnvironment(diskSectors: disk ? 8 : 0)
        let image = try ELFImage(bytes: MinimalELF.make(code: code, data: [0, 0, 0, 0]), path: "test.elf")
        let machine = try PARISCMachine(
            image: image,
            configuration: .init(memorySize: memorySize, commandLine: commandLine,
                                 disk: disk ? .init(capacity: 8) : nil),
            environment: environment)
        return (machine, environment)
    }

    /// Stores `value` (32 bits) to `address` using r19/r20.
    static func store(_ value: UInt32, to address: UInt32) -> [UInt32] {
        E.load(value, into: 20) + E.load(address, into: 19)
            + [E.memoryLong(0x1A, base: 19, register: 20, displacement: 0)]
    }

    static func storeByte(_ value: UInt8, to address: UInt32) -> [UInt32] {
        E.load(UInt32(value), into: 20) + E.load(address, into: 19)
            + [E.memoryLong(0x18, base: 19, register: 20, displacement: 0)]
    }

    static let halt: UInt32 = 0xFFFD_EAD0

    @Test("entry state: PL 0, Q = 1, r26 = mem_free, r25 = command line, r2 = a HALT word")
    func entryState() throws {
        let (machine, _) = try Self.machine([Self.halt], commandLine: "rounds=3")
        let s = machine.cpu.state
        #expect(s.iaoqFront == 0x10000 && s.iaoqBack == 0x10004)
        #expect(s.psw == PSW.q)
        #expect(s[gr: 26] == 0x6000 && s[gr: 25] == 0x4000 && s[gr: 24] == 0 && s[gr: 23] == 0)
        #expect(s[gr: 2] == 0x5FF0)
        #expect(try machine.memory.load(UInt32.self, at: GuestAddress(0x5FF0), order: .big) == Self.halt)
        let line = try machine.memory.read(at: GuestAddress(0x4000), count: 64)
        let text = String(decoding: line.prefix { $0 != 0 }, as: UTF8.self)
        #expect(text == "lockstep.debugexit=0xf1001000 rounds=3")
        #expect(try machine.run(budget: 10) == .exited(status: 0))
    }

    @Test("the hypervisor-style initializer attaches a disk of diskSectors")
    func hypervisorInitializer() throws {
        let image = try ELFImage(bytes: MinimalELF.make(code: [Self.halt], data: []), path: "test.elf")
        let machine = try PARISCMachine(image: image, memorySize: 32 << 20, commandLine: "x",
                                        diskSectors: 16, environment: TestEnvironment())
        #expect(machine.configuration.disk?.capacity == 16)
        #expect(machine.memory.size == 32 << 20)
        #expect(machine.epochClock == .recoveryCounter && machine.architecture == .parisc)
    }

    @Test("a disk adds the virtio-mmio announcement")
    func diskAnnouncement() throws {
        let (machine, _) = try Self.machine([Self.halt], disk: true)
        let line = try machine.memory.read(at: GuestAddress(0x4000), count: 128)
        #expect(String(decoding: line.prefix { $0 != 0 }, as: UTF8.self)
            == "virtio_mmio.device=512@0xf1000000:1 lockstep.debugexit=0xf1001000")
    }

    @Test("a kernel that returns to r2 halts the machine")
    func returnHalts() throws {
        let (machine, _) = try Self.machine([0xE840_C000, Encoder.nop])     // bv r0(rp); nop
        #expect(try machine.run(budget: 10) == .exited(status: 0))
    }

    @Test("IO_EIR: a store of n sets EIRR bit n")
    func ioEIR() throws {
        let (machine, _) = try Self.machine(Self.store(2, to: 0xFFFB_0000) + Self.store(31, to: 0xFFFB_0000) + [Self.halt])
        #expect(try machine.run(budget: 100) == .exited(status: 0))
        #expect(machine.cpu.externalInterruptRequests == 0x2000_0001)
    }

    @Test("debug-exit: a store of v exits with status v, counting the store as progress")
    func debugExit() throws {
        let program = Self.store(0x31, to: 0xF100_1000) + [Encoder.nop, Self.halt]
        let (machine, _) = try Self.machine(program)
        #expect(try machine.run(budget: 100) == .exited(status: 0x31))
        #expect(machine.progress == UInt64(program.count - 2), "up to and including the store")
        #expect(machine.debugExit.exitStatus == 0x63, "the device's QEMU-style status")
    }

    @Test("UART output goes to the environment; input interrupts through LASI and IO_EIR")
    func uartThroughLASI() throws {
        let program = Self.store(0xFFFB_0002, to: 0xFFD0_0010)      // IAR: IO_EIR, EIRR bit 2
            + Self.store(1 << 5, to: 0xFFD0_0004)                     // IMR: the UART
            + Self.storeByte(1, to: 0xFFD0_5801)                      // IER: received data
            + Self.storeByte(0x41, to: 0xFFD0_5800)                   // THR: 'A'
            + [Encoder.nop, Encoder.branchLink(t: 0, displacement: -8, nullify: true)]  // spin
        let (machine, environment) = try Self.machine(program)
        #expect(try machine.run(budget: 200) == .epochEnd)
        #expect(environment.output == "A")
        #expect(machine.cpu.externalInterruptRequests == 0)
        try machine.applyBoundary(time: machine.clock.now, events: [.consoleInput([0x7A])])
        #expect(machine.cpu.externalInterruptRequests == 0x2000_0000, "EIRR bit 2")
        #expect(machine.lasi.state.irr & 0x20 != 0 && machine.lasi.state.ipr & 0x20 != 0)
    }

    @Test("LASI: IPR clears on read and write, ICR bus error suppresses the store, lowering does nothing")
    func lasiRegisters() throws {
        var stores: [(UInt32, UInt32)] = []
        let lasi = LASIInterruptController { stores.append(($0, $1)) }
        lasi.write(offset: 0x10, size: 4, value: 0xFFFB_0005)
        lasi.setLevel(true, line: 7)
        #expect(stores.isEmpty, "IMR masks line 7")
        #expect(lasi.read(offset: 0x08, size: 4) == 0x80)
        #expect(lasi.read(offset: 0x08, size: 4) == 0, "reading IPR cleared it")
        lasi.write(offset: 0x04, size: 4, value: 0x80)
        lasi.setLevel(true, line: 7)
        #expect(stores.count == 1 && stores[0] == (0xFFFB_0000, 5))
        #expect(lasi.read(offset: 0x00, size: 4) == 0x80, "IRR")
        lasi.write(offset: 0x08, size: 4, value: 0)
        #expect(lasi.state.ipr == 0, "writing IPR cleared it")
        lasi.setLevel(false, line: 7)
        #expect(stores.count == 1)
        lasi.write(offset: 0x0C, size: 4, value: 1 << 8)
        lasi.setLevel(true, line: 7)
        #expect(stores.count == 1, "bus error set: no store")
        #expect(lasi.read(offset: 0x0C, size: 4) == 1 << 8)
        lasi.write(offset: 0xC000, size: 4, value: 2)
        #expect(lasi.state.powerOff)
    }

    @Test("an access to nothing (0xf2000000) is a data fault; with no handler a clear stop")
    func unmappedAccess() throws {
        let (machine, _) = try Self.machine(E.load(0xF200_0000, into: 19)
            + [E.memoryLong(0x12, base: 19, register: 20, displacement: 0), Self.halt])
        guard case .crashed(let reason) = try machine.run(budget: 100) else {
            Issue.record("expected a crash")
            return
        }
        #expect(reason.contains("data fault (15)") && reason.contains("0xf2000000"))
    }

    @Test("bad configurations and images are refused with one line")
    func refusals() throws {
        #expect(throws: PARISCMachineError.memorySize(8 << 20)) {
            _ = try Self.machine([Self.halt], memorySize: 8 << 20)
        }
        let long = String(repeating: "x", count: 4100)
        #expect(throws: PARISCMachineError.commandLineTooLong(4130)) {
            _ = try Self.machine([Self.halt], commandLine: long)
        }
        let x86 = Toolchain.repository.appendingPathComponent("guests/build/x86/hello.elf").path
        if FileManager.default.fileExists(atPath: x86) {
            do {
                _ = try PARISCMachine(image: try ELFImage.load(contentsOf: x86), environment: TestEnvironment())
                Issue.record("an x86 kernel was accepted")
            } catch let error as PARISCMachineError {
                #expect(error.description.contains("not a PA-RISC 1.1 kernel"))
            }
        }
    }
}
