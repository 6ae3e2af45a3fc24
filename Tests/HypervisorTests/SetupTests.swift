import Foundation
import MachineCore
import Testing

@testable import Hypervisor

@Suite struct GuestSetupTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static func guest(_ arch: String, _ name: String) -> String {
        root.appendingPathComponent("guests/build/\(arch)/\(name).elf").path
    }
    static let built = FileManager.default.fileExists(atPath: guest("parisc", "hello"))
        && FileManager.default.fileExists(atPath: guest("x86", "hello"))

    @Test(.enabled(if: built, "guests are not built (scripts/build-guests)"))
    func enginesAndClocksFollowTheArchitecture() throws {
        let parisc = try GuestSetup(RunOptions(guestPath: Self.guest("parisc", "hello")))
        #expect(parisc.architecture == .parisc)
        #expect(parisc.engine == .emulator)
        #expect(parisc.epochClock == .recoveryCounter)
        #expect(parisc.epochLength == EpochClock.recoveryCounter.defaultEpochLength)
        let x86 = try GuestSetup(RunOptions(guestPath: Self.guest("x86", "hello"), epochLength: 5))
        #expect(x86.engine == .kvm)
        #expect(x86.epochClock == .deterministicExits)
        #expect(x86.epochLength == 5)
    }

    @Test(.enabled(if: built, "guests are not built (scripts/build-guests)"))
    func mismatchesAreRefusedWithAReason() throws {
        #expect(throws: SetupError.engineMismatch(engine: .emulator, architecture: .x86_64)) {
            try GuestSetup(RunOptions(guestPath: Self.guest("x86", "hello"), engine: .emulator))
        }
        #expect(throws: SetupError.engineMismatch(engine: .kvm, architecture: .parisc)) {
            try GuestSetup(RunOptions(guestPath: Self.guest("parisc", "hello"), engine: .kvm))
        }
        #expect(throws: SetupError.epochClockMismatch(.recoveryCounter, engine: .kvm)) {
            try GuestSetup(RunOptions(guestPath: Self.guest("x86", "hello"), epochClock: .specific(.recoveryCounter)))
        }
        #expect(throws: SetupError.epochClockMismatch(.deterministicExits, engine: .emulator)) {
            try GuestSetup(RunOptions(guestPath: Self.guest("parisc", "hello"), epochClock: .specific(.deterministicExits)))
        }
    }

    @Test(.enabled(if: built, "guests are not built (scripts/build-guests)"),
          arguments: [UInt64(0), 4096, 8 << 20, (3 << 30) + 4096, 64 << 30, (64 << 20) + 1] as [UInt64])
    func unusableMemorySizesForPARISC(_ size: UInt64) {
        #expect(throws: SetupError.self) {
            try GuestSetup(RunOptions(guestPath: Self.guest("parisc", "hello"), memorySize: size))
        }
    }

    @Test(.enabled(if: built, "guests are not built (scripts/build-guests)"))
    func aDiskImageIsCheckedAndSized() throws {
        let path = try scratchFile("setup.img", bytes: 16 * 512)
        let setup = try GuestSetup(RunOptions(guestPath: Self.guest("parisc", "disk"), diskPath: path))
        #expect(setup.diskSectors == 16)
        #expect(throws: SetupError.disk(.notFound(path: "/nonexistent.img"))) {
            try GuestSetup(RunOptions(guestPath: Self.guest("parisc", "disk"), diskPath: "/nonexistent.img"))
        }
    }
}

struct SessionFailure: Error, CustomStringConvertible { let description: String }

/// The unreplicated session loop and its boundary timing, on the PA-RISC engine.
@Suite struct LocalSessionTests {
    func run(_ guest: String, cmdline: String = "", clock: ClockMode = .deterministic, input: String = "")
        throws -> (RunOutcome, String)
    {
        let output = Pipe(), inputPipe = Pipe()
        try inputPipe.fileHandleForWriting.write(contentsOf: Data(input.utf8))
        try inputPipe.fileHandleForWriting.close()
        let options = RunOptions(guestPath: GuestSetupTests.guest("parisc", guest), commandLine: cmdline,
                                 clockMode: clock)
        let result: Result<RunOutcome, SessionFailure> = DedicatedThread.run(name: "test-session") {
            Result { () throws(SessionFailure) in
              do {
                let setup = try GuestSetup(options)
                let environment = LocalEnvironment(host: HostIO(
                    console: HostConsole(input: inputPipe.fileHandleForReading, output: output.fileHandleForWriting),
                    disk: nil))
                let machine = try MachineFactory.make(setup, environment: environment)
                return try LocalSession(machine: machine, environment: environment, epochLength: setup.epochLength,
                                        timing: BoundaryTiming(mode: clock)).run()
              } catch { throw SessionFailure(description: "\(error)") }
            }
        }
        try output.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (try result.get(), text)
    }

    @Test(.enabled(if: GuestSetupTests.built, "guests are not built (scripts/build-guests)"))
    func deterministicTimeWarpsOverIdlePeriods() throws {
        let start = Date()
        let (outcome, text) = try run("ticks", cmdline: "ticks=1000")
        #expect(outcome.stop == .exited(status: 0))
        #expect(text.contains("ticks count=1000"))
        // Ten seconds of virtual time pass in far less real time (a fraction of a second; the
        // bound leaves room for a loaded machine).
        #expect(Date().timeIntervalSince(start) < 5)
    }

    @Test(.enabled(if: GuestSetupTests.built, "guests are not built (scripts/build-guests)"))
    func hostTimeFollowsTheHostClock() throws {
        let start = Date()
        let (outcome, text) = try run("ticks", cmdline: "ticks=20", clock: .host)
        #expect(outcome.stop == .exited(status: 0))
        #expect(text.contains("ticks count=20"))
        #expect(Date().timeIntervalSince(start) >= 0.19)
    }

    @Test(.enabled(if: GuestSetupTests.built, "guests are not built (scripts/build-guests)"))
    func aGuestWaitingForClosedInputIsStopped() throws {
        let (outcome, text) = try run("echo", input: "abc\n")
        #expect(outcome.stop == .exited(status: 0))
        #expect(text.contains("rev=cba"))
    }
}
