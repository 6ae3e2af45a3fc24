import Foundation
import KVM
import Loader
import MachineCore
import Testing
@testable import X86

/// X86Machine on the real /dev/kvm with tiny hand-assembled kernels: entry state, environment
/// instructions, exits, epochs, crashes.
@Suite("x86 machine", .serialized, .enabled(if: Host.hasKVM, "needs a usable /dev/kvm"))
struct MachineTests {
    static let hlt: [UInt8] = [0xF4]

    // MARK: - Layout and entry state

    @Test("Multiboot entry: 32-bit protected mode, paging off, flat CS/DS, EAX=0x2BADB002, EBX=info")
    func multibootEntryState() async throws {
        let state = try await onMachineThread { () -> [UInt64] in
            let image = try tinyELF(code: multibootHeader + Self.hlt, address: 0x10_0000, entry: 0x10_000C, elf32: true)
            let machine = try X86Machine(image: image, memorySize: 8 << 20, commandLine: "hello=1",
                                         diskSectors: 64, environment: RecordingEnvironment())
            let r = try machine.registers()
            let s = try machine.specialRegisters()
            try #require(machine.entryState.protocolKind == .multiboot)
            try #require(s.cs.db && !s.cs.l && s.cs.base == 0 && s.cs.limit == 0xFFFF_FFFF && s.cs.type == 0xB)
            try #require(s.cs.selector == X86Platform.code32Selector && s.cs.dpl == 0)
            for d in [s.ds, s.es, s.ss, s.fs, s.gs] {
                try #require(d.base == 0 && d.limit == 0xFFFF_FFFF && d.db && d.selector == X86Platform.dataSelector)
            }
            try #require(s.efer & 0x400 == 0)
            try #require(s.gdt.base == X86Platform.gdtAddress)
            try #require(s.tr.type == 0xB && s.tr.base == X86Platform.tssAddress)
            // The information block: flags, command line (with the virtio announcement), memory map.
            let info = GuestAddress(r.rbx)
            let flags = try machine.memory.load(UInt32.self, at: info, order: .little)
            try #require(flags & (1 << 2) != 0 && flags & (1 << 6) != 0 && flags & 1 != 0)
            let cmdline = try machine.memory.load(UInt32.self, at: GuestAddress(r.rbx + 16), order: .little)
            let bytes = try machine.memory.read(at: GuestAddress(UInt64(cmdline)), count: 64)
            try #require(String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
                    == "virtio_mmio.device=512@0xfeb00000:5 hello=1")
            try #require(machine.commandLine == "virtio_mmio.device=512@0xfeb00000:5 hello=1")
            let upperKB = try machine.memory.load(UInt32.self, at: GuestAddress(r.rbx + 8), order: .little)
            try #require(UInt64(upperKB) == (8 << 20 - 0x10_0000) / 1024)
            try #require(cmdline < 0xA0000 && r.rbx < 0xA0000, "below 640 KiB")
            try #require(try machine.run(budget: 10) == .exited(status: 0))
            return [r.rax, r.rbx, r.rip, r.rflags, r.rsp, s.cr0, s.cr4, s.cr3]
        }
        #expect(state == [0x2BAD_B002, X86Platform.bootInfoAddress, 0x10_000C, 0x2, X86Platform.bootStackTop, 0x11, 0, 0])
    }

    @Test("ELF64 without Multiboot: long mode at CPL0, identity map, Lockstep's GDT, RSI=RBX=info")
    func longModeEntryState() async throws {
        try await onMachineThread {
            let machine = try X86Machine(image: try tinyELF(code: Self.hlt), memorySize: 16 << 20,
                                         environment: RecordingEnvironment())
            let r = try machine.registers()
            let s = try machine.specialRegisters()
            try #require(machine.entryState.protocolKind == .longMode)
            try #require(r.rip == 0x20_0000 && r.rsp == X86Platform.bootStackTop && r.rflags == 0x2)
            try #require(r.rsi == X86Platform.bootInfoAddress && r.rbx == X86Platform.bootInfoAddress)
            try #require(s.cs.l && s.cs.dpl == 0 && s.cs.selector == X86Platform.code64Selector)
            try #require(s.cr0 == 0x8005_0033 && s.cr4 & 0x20 != 0 && s.efer & 0x500 == 0x500)
            try #require(s.cr3 == X86Platform.pml4Address)
            try #require(machine.commandLine == "", "no disk, no announcement")
            // The identity map covers 0-4 GiB (MMIO included) with 2 MiB pages.
            let walk = AddressTranslation(s, memory: machine.memory)
            for address: UInt64 in [0, 0x20_0000, 0x12_3456, 0xFEB0_0010, 0xFFFF_FFFF] {
                try #require(walk.physicalAddress(of: address) == address)
            }
            try #require(walk.physicalAddress(of: 0x1_0000_0000) == nil)
            try #require(try machine.run(budget: 10) == .exited(status: 0))
        }
    }

    @Test("kernels that do not fit are refused with one line")
    func badLayouts() async throws {
        try await onMachineThread {
            // A segment over Lockstep's boot structures.
            let low = try tinyELF(code: Self.hlt, address: 0x8000)
            let overlap = refusal { () throws(X86Error) in
                try X86Machine(image: low, memorySize: 16 << 20, environment: RecordingEnvironment())
            }
            try #require(overlap?.description.contains("overlaps Lockstep's boot structures") == true)
            // An ELF32 without a Multiboot header.
            let plain32 = try tinyELF(code: Self.hlt, address: 0x10_0000, elf32: true)
            let noHeader = refusal { () throws(X86Error) in
                try X86Machine(image: plain32, memorySize: 16 << 20, environment: RecordingEnvironment())
            }
            try #require(noHeader?.description.contains("needs a Multiboot header") == true)
            // A segment beyond RAM.
            let high = try tinyELF(code: Self.hlt, address: 0x200_0000)
            let beyond = refusal { () throws(X86Error) in
                try X86Machine(image: high, memorySize: 16 << 20, environment: RecordingEnvironment())
            }
            try #require(beyond?.description.contains("outside guest RAM") == true)
            // RAM too small for the PC memory map.
            let tiny = refusal { () throws(X86Error) in
                try X86Machine(image: high, memorySize: 512 << 10, environment: RecordingEnvironment())
            }
            try #require(tiny?.description.contains("at least 1 MiB") == true)
        }
    }

    // MARK: - Environment instructions

    @Test("RDTSC at CPL0 is trapped; EDX:EAX is the environment's value; the proposal is virtual time")
    func rdtsc() async throws {
        let code: [UInt8] = [0x0F, 0x31, 0x48, 0x89, 0xC3, 0x48, 0x89, 0xD1, 0x0F, 0x31, 0xF4]
        let (plain, _) = try await runProgram(code)
        #expect(plain.values == [1000, 2000], "1000 ns per counted exit; the trap itself counts")
        let (result, r) = try await runProgram(code) { _, proposed in proposed + 0x1234_5678_0000_0000 }
        #expect(result.stop == .exited(status: 0))
        try #require(result.values.count == 2)
        #expect(r.rbx == result.values[0] & 0xFFFF_FFFF && r.rcx == result.values[0] >> 32)
        #expect(r.rax == result.values[1] & 0xFFFF_FFFF && r.rdx == result.values[1] >> 32)
        #expect(result.statistics.environmentInstructions == 2)
    }

    @Test("RDTSCP (an emulation failure at CPL0 on this host unless patched) gives the TSC and ECX=0")
    func rdtscp() async throws {
        let code: [UInt8] = [0xB9, 0x77, 0x00, 0x00, 0x00, 0x0F, 0x01, 0xF9, 0xF4]
        let (result, r) = try await runProgram(code) { _, _ in 0xAB_0000_0042 }
        #expect(result.stop == .exited(status: 0))
        #expect(r.rax == 0x42 && r.rdx == 0xAB && r.rcx == 0)
    }

    @Test("CPUID answers from Lockstep's table, not the host's")
    func cpuid() async throws {
        let leaf0: [UInt8] = [0x31, 0xC0, 0x0F, 0xA2, 0xF4]
        let (_, r0) = try await runProgram(leaf0)
        let words = [r0.rbx, r0.rdx, r0.rcx].map { UInt32(truncatingIfNeeded: $0) }
        let vendor = words.flatMap { w in (0..<4).map { UInt8(truncatingIfNeeded: w >> (8 * $0)) } }
        #expect(String(decoding: vendor, as: UTF8.self) == "GenuineIntel")
        #expect(r0.rax == 0x16)
        let leaf1: [UInt8] = [0xB8, 0x01, 0x00, 0x00, 0x00, 0x0F, 0xA2, 0xF4]
        let (_, r1) = try await runProgram(leaf1)
        let expected = CPUIDTable().lookup(leaf: 1, subleaf: 0)
        #expect([r1.rax, r1.rbx, r1.rcx, r1.rdx] == [expected.eax, expected.ebx, expected.ecx, expected.edx].map(UInt64.init))
    }

    @Test("RDRAND and RDSEED get the environment's random value, truncated, with CF=1")
    func rdrand() async throws {
        // rdrand %rcx; rdseed %edx; rdrand %bx (after mov $-1, %rbx)
        let code: [UInt8] = [0x48, 0x0F, 0xC7, 0xF1, 0x0F, 0xC7, 0xFA,
                             0x48, 0xC7, 0xC3, 0xFF, 0xFF, 0xFF, 0xFF, 0x66, 0x0F, 0xC7, 0xF3, 0xF4]
        let (result, r) = try await runProgram(code) { read, proposed in
            read == .randomNumber ? proposed ^ 0xA5A5_A5A5_A5A5_A5A5 : proposed
        }
        #expect(result.stop == .exited(status: 0))
        try #require(result.values.count == 3)
        #expect(r.rcx == result.values[0])
        #expect(r.rdx == result.values[1] & 0xFFFF_FFFF)
        #expect(r.rbx == 0xFFFF_FFFF_FFFF_0000 | result.values[2] & 0xFFFF)
        #expect(r.rflags & 1 == 1)
        // The proposals come from a deterministic generator: the same in every run.
        let (again, _) = try await runProgram(code)
        let (third, _) = try await runProgram(code)
        #expect(again.values == third.values)
        #expect(Set(again.values).count == 3)
    }

    @Test("32-bit code: a REX-looking byte before a site stays the DEC it is")
    func thirtyTwoBitSites() async throws {
        // mov $5, %eax; dec %eax (0x48); rdrand %ecx; rdtsc is not used; hlt
        let code: [UInt8] = [0xB8, 0x05, 0x00, 0x00, 0x00, 0x48, 0x0F, 0xC7, 0xF1, 0x89, 0xC3, 0x0F, 0x31, 0xF4]
        let (result, r) = try await runProgram(code, elf32Multiboot: true) { _, proposed in proposed | 0xFFFF_0000_0000 }
        #expect(result.stop == .exited(status: 0))
        try #require(result.values.count == 2)
        #expect(r.rbx == 4, "the DEC ran")
        #expect(r.rcx == result.values[0] & 0xFFFF_FFFF)
        #expect(r.rax == result.values[1] & 0xFFFF_FFFF && r.rdx == result.values[1] >> 32)
    }

    @Test("RDMSR of IA32_TIME_STAMP_COUNTER exits through the MSR filter and reads the environment's TSC")
    func tscMSR() async throws {
        let code: [UInt8] = [0xB9, 0x10, 0x00, 0x00, 0x00, 0x0F, 0x32, 0xF4]
        let (result, r) = try await runProgram(code) { _, _ in 0x0000_0007_8000_0001 }
        #expect(result.stop == .exited(status: 0))
        #expect(result.values == [0x0000_0007_8000_0001])
        #expect(r.rax == 0x8000_0001 && r.rdx == 7)
    }

    // MARK: - Exits and stops

    @Test("isa-debug-exit: the value written is the exit status")
    func debugExit() async throws {
        let (result, _) = try await runProgram([0xB8, 0x2A, 0x00, 0x00, 0x00, 0xE7, 0xF4])
        #expect(result.stop == .exited(status: 42))
    }

    @Test("unknown ports and MMIO read all ones, writes are ignored, each is logged once, the run goes on")
    func unknownAccesses() async throws {
        let code: [UInt8] = [
            0xE4, 0x99,                    // in $0x99, %al
            0x88, 0xC3,                    // mov %al, %bl
            0xE6, 0x98, 0xE6, 0x98,        // out %al, $0x98 (twice)
            0xE6, 0x80,                    // out %al, $0x80 (POST code: known, silent)
            0xA1, 0x00, 0x00, 0x00, 0xC0, 0x00, 0x00, 0x00, 0x00,  // mov 0xc0000000, %eax
            0x89, 0xC2,                    // mov %eax, %edx
            0xF4,
        ]
        let (result, r) = try await runProgram(code)
        #expect(result.stop == .exited(status: 0))
        #expect(r.rbx & 0xFF == 0xFF)
        #expect(r.rdx == 0xFFFF_FFFF)
        #expect(result.unknownAccesses == [
            UnknownAccessLog.Location(bus: "pio", address: 0x99), UnknownAccessLog.Location(bus: "pio", address: 0x98),
            UnknownAccessLog.Location(bus: "mmio", address: 0xC000_0000),
        ])
    }

    @Test("a triple fault is a crash with one line")
    func tripleFault() async throws {
        let (result, _) = try await runProgram([0x90, 0x0F, 0x0B])  // nop; ud2 with no IDT
        #expect(result.stop == .crashed(reason: "triple fault at RIP 0x200001"))
    }

    @Test("an instruction KVM cannot emulate (INT3 at CPL0 here) is a crash naming its bytes")
    func emulationFailure() async throws {
        let (result, _) = try await runProgram([0x90, 0xCC, 0xF4])
        guard case .crashed(let reason) = result.stop else {
            // A host whose KVM runs CPL0 natively delivers #BP instead; with no IDT that is a
            // triple fault.
            #expect(result.stop == .crashed(reason: "triple fault at RIP 0x200001"))
            print("X86Tests: this host's KVM executes INT3 at CPL0; the emulation-failure path was not exercised")
            return
        }
        if reason.hasPrefix("triple fault") {
            print("X86Tests: this host's KVM executes INT3 at CPL0; the emulation-failure path was not exercised")
            return
        }
        #expect(reason.hasPrefix("KVM cannot emulate the instruction at RIP 0x200001 (bytes cc f4"), "\(reason)")
    }

    @Test("run(budget:) ends the epoch after exactly budget exits; the stop counts as progress")
    func epochBudget() async throws {
        try await onMachineThread {
            let code: [UInt8] = Array((0..<10).map { _ in [UInt8](arrayLiteral: 0xE6, 0x80) }.joined()) + [0xF4]
            let machine = try X86Machine(image: try tinyELF(code: code), memorySize: 16 << 20,
                                         environment: RecordingEnvironment())
            try #require(try machine.run(budget: 3) == .epochEnd)
            try #require(machine.progress == 3)
            try #require(try machine.run(budget: 0) == .epochEnd)
            try #require(machine.progress == 3)
            try #require(try machine.run(budget: 4) == .epochEnd)
            try #require(machine.progress == 7)
            try #require(machine.clock.now == VirtualTime(nanoseconds: 7000))
            try #require(try machine.run(budget: 100) == .exited(status: 0))
            try #require(machine.progress == 11, "10 OUTs and the HLT")
            try #require(try machine.run(budget: 100) == .exited(status: 0), "a stopped machine stays stopped")
            try #require(machine.progress == 11)
        }
    }

    @Test("deferred writes: 300 to the 8259's command port (more than KVM's ring holds), then an initialization; applied in guest order, the same run whether KVM buffers them or not")
    func deferredWrites() async throws {
        let code: [UInt8] = [
            0xB9, 0x2C, 0x01, 0x00, 0x00,  // mov $300, %ecx
            0xB0, 0x0B,                    // mov $0x0b, %al        OCW3: read ISR
            0xE6, 0x20,                    // 1: out %al, $0x20     (deferred)
            0xFF, 0xC9,                    // dec %ecx
            0x75, 0xFA,                    // jnz 1b
            0xB0, 0x11, 0xE6, 0x20,        // ICW1 (deferred; clears IMR)
            0xB0, 0x30, 0xE6, 0x21,        // ICW2: an exit, which applies ICW1 first
            0xB0, 0x04, 0xE6, 0x21,        // ICW3
            0xB0, 0x01, 0xE6, 0x21,        // ICW4
            0xE4, 0x21,                    // in $0x21, %al         IMR: 0 after ICW1
            0xE6, 0xF4,                    // out %al, $0xf4        isa-debug-exit with IMR
            0xF4,
        ]
        let (coalesced, _) = try await runProgram(code, coalescing: true)
        let (exiting, _) = try await runProgram(code, coalescing: false)
        for result in [coalesced, exiting] {
            #expect(result.stop == .exited(status: 0), "ICW1 was applied before ICW2-4")
            #expect(result.statistics.deferredWrites == 301)
        }
        #expect(exiting.statistics.coalescedWrites == 0)
        #expect(exiting.statistics.runs == 306, "301 deferred writes, ICW2-4, IN and the debug exit")
        if try GuestTests.hostCoalescesWrites() {
            // A full ring makes the write exit; it is queued behind the buffered ones.
            #expect(coalesced.statistics.coalescedWrites > 150 && coalesced.statistics.coalescedWrites < 301)
            #expect(coalesced.statistics.runs == 5 + 301 - coalesced.statistics.coalescedWrites)
        }
        #expect(coalesced.progress == exiting.progress && coalesced.progress == 5)
        #expect(coalesced.digest == exiting.digest)
        #expect(coalesced.boundaries == exiting.boundaries)
    }

    @Test("HLT with IF=1 and nothing pending is idle (counted), with IF=0 a clean exit")
    func idle() async throws {
        try await onMachineThread {
            let machine = try X86Machine(image: try tinyELF(code: [0xFB, 0xF4, 0xFA, 0xF4]), memorySize: 16 << 20,
                                         environment: RecordingEnvironment())
            try #require(try machine.run(budget: 10) == .idle)
            try #require(machine.progress == 1)
            try #require(machine.nextTimerDeadline == nil, "the BIOS-state PIT runs, but IRQ 0 is masked")
            try machine.applyBoundary(time: VirtualTime(nanoseconds: 5000), events: [])
            try #require(try machine.run(budget: 10) == .exited(status: 0))
            try #require(machine.progress == 2)
        }
    }

    @Test("single-step clock: one unit per instruction, an exiting instruction is its own unit")
    func singleStep() async throws {
        try await onMachineThread {
            let machine = try X86Machine(image: try tinyELF(code: [0x90, 0x90, 0x90, 0xE6, 0x80, 0x90, 0xF4]),
                                         memorySize: 16 << 20, epochClock: .singleStep,
                                         environment: RecordingEnvironment())
            try #require(machine.clock.nanosecondsPerUnit == 1)
            try #require(try machine.run(budget: 2) == .epochEnd)
            try #require(machine.progress == 2)
            try #require(try machine.registers().rip == 0x20_0002)
            try #require(try machine.run(budget: 100) == .exited(status: 0))
            try #require(machine.progress == 6, "nop nop nop, out (a PIO exit), nop, hlt")
            // Under single-step this host reports the HLT as a step (KVM completes it as a no-op),
            // which the machine recognises as a halt; elsewhere it is a HLT exit.
            try #require(machine.statistics.halts == 1 && machine.statistics.portIO == 1)
        }
    }

    @Test("the pmu clock is refused with one line on a host without a PMU")
    func pmuRefused() async throws {
        guard let why = PerformanceCounter.probe(.instructions) else {
            try Test.cancel("this host has a PMU (perf_event_open counts instructions): the refusal without one cannot happen here")
        }
        try await onMachineThread {
            let image = try tinyELF(code: Self.hlt)
            let error = refusal { () throws(X86Error) in
                try X86Machine(image: image, memorySize: 16 << 20, epochClock: .performanceCounter,
                               environment: RecordingEnvironment())
            }
            guard case .epochClockUnavailable(.performanceCounter, _)? = error else {
                throw Failure("the pmu clock was not refused without a PMU (\(why)): \(String(describing: error))")
            }
            try #require(error?.description.contains("\n") == false)
            try #require(error?.description.contains("pmu") == true)
        }
    }

    @Test("a missing KVM device is one clear error")
    func missingKVM() async throws {
        try await onMachineThread {
            let image = try tinyELF(code: Self.hlt)
            let error = refusal { () throws(X86Error) in
                try X86Machine(image: image, memorySize: 16 << 20, environment: RecordingEnvironment(),
                               kvmPath: "/nonexistent/kvm")
            }
            guard case .kvmUnavailable? = error else {
                throw Failure("unexpected result \(String(describing: error))")
            }
            try #require(error?.description == "KVM is not available: /nonexistent/kvm: no such device (is KVM enabled?); open: errno 2")
        }
    }
}

/// The error `body` throws, or nil if it succeeds.
func refusal(_ body: () throws(X86Error) -> X86Machine) -> X86Error? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

/// `lockstep doctor`'s probes on this host.
@Suite("host probe", .enabled(if: Host.hasKVM, "needs a usable /dev/kvm"))
struct HostProbeTests {
    @Test("every item is probed, the epoch clocks follow from the probes, the report reads and decodes",
          .timeLimit(.minutes(1)))
    func probe() async throws {
        let probe = try await onMachineThread { try HostProbe.run() }
        #expect(probe.apiVersion == 12)
        #expect(probe.cpl0.nanosecondsPerInstruction > 0 && probe.cpl3.nanosecondsPerInstruction > 0)
        let report = HostReport(probe, defaultEpochLength: { _ in 4096 })
        let clocks = Dictionary(uniqueKeysWithValues: report.epochClocks.map { ($0.name, $0.available) })
        #expect(clocks["recovery-counter"] == true && clocks["exits"] == true)
        #expect(clocks["single-step"] == (probe.singleStepCPL0.works || probe.singleStepCPL3.works))
        #expect(clocks["emulation-counter"] == (probe.emulationCounter == .available && probe.singleStepCPL0.works))
        let pmuAvailable = if case .available = CounterAvailability.branchCounter() { true } else { false }
        #expect(clocks["pmu"] == pmuAvailable)
        #expect(report.automaticX86Clock == X86Machine.automaticEpochClock().rawValue)
        #expect(!report.recommendations.isEmpty)
        // Readable: sections, no line longer than the wrap width (plus a word that cannot break).
        let lines = report.lines
        #expect(lines.contains("Recommendations") && lines.contains("Counters"))
        #expect(lines.allSatisfy { $0.count <= 120 }, "\(lines.filter { $0.count > 120 })")
        // Machine-readable: the JSON round-trips.
        let decoded = try JSONDecoder().decode(HostReport.self, from: try JSONEncoder().encode(report))
        #expect(decoded.epochClocks.map(\.name) == report.epochClocks.map(\.name))
        // What kvm-platform.md measured on the PVM host, if this is such a host.
        if probe.cpl0.isInterpreted {
            #expect(probe.singleStepCPL0.works)
            #expect(!probe.cpl3.isInterpreted)
            #expect(probe.emulationCounter == .available)
            let overflow = try #require(probe.overflow)
            #expect(overflow.skids.count == 30 && overflow.boundedRuns.count == 40)
            #expect(HostProbe.OverflowMeasurement.quantile(overflow.boundedRuns, 1) <= EmulationCounter.boundedRun,
                    "an interrupt-window run stays within the bound the clock relies on: \(overflow.boundedRuns)")
            print("X86Tests: host report:\n\(lines.joined(separator: "\n"))")
        }
    }
}
