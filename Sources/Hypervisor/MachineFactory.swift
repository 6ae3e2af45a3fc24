import MachineCore
import X86

/// Creates the engine's machine for a checked setup.
public enum MachineFactory {
    /// Creates the machine on the calling thread, which must be the thread that will run it.
    public static func make(_ setup: GuestSetup, environment: any GuestEnvironment) throws -> any Machine {
        switch setup.engine {
        case .kvm:
            return try makeX86(setup, environment: environment)
        case .emulator:
            throw SetupError.hostUnavailable("the emulator engine is not built yet")
        }
    }

    /// The x86 machine on KVM. A host that cannot run it (no usable KVM device, no PMU for the
    /// `pmu` clock) is `SetupError.hostUnavailable`; other failures keep their X86Error.
    static func makeX86(_ setup: GuestSetup, environment: any GuestEnvironment) throws -> any Machine {
        do {
            return HostCheckedX86Machine(try X86Machine(
                image: setup.image, memorySize: setup.options.memorySize,
                commandLine: setup.options.commandLine, diskSectors: setup.diskSectors,
                epochClock: setup.epochClock, environment: environment))
        } catch {
            switch error {
            case .kvmUnavailable, .epochClockUnavailable:
                throw SetupError.hostUnavailable(error.description)
            case .image(let loader):
                throw SetupError.image(loader)
            case .kvm, .memory, .layout, .disassembler, .singleStepAtCPL3,
                 .performanceCounterOvershoot, .environment:
                throw error
            }
        }
    }
}

/// An x86 machine whose run-time discovery that the host cannot do what its epoch clock needs
/// (the single-step clock meeting CPL3 code) is `SetupError.hostUnavailable`, like the host
/// limits found at creation, so `lockstep` reports it with exit status 69.
final class HostCheckedX86Machine: Machine {
    let machine: X86Machine

    init(_ machine: X86Machine) { self.machine = machine }

    var architecture: GuestArchitecture { machine.architecture }
    var epochClock: EpochClock { machine.epochClock }
    var progress: UInt64 { machine.progress }
    var clock: VirtualClock { machine.clock }
    var nextTimerDeadline: VirtualTime? { machine.nextTimerDeadline }
    var outstandingBlockRequests: [BlockRequestID] { machine.outstandingBlockRequests }

    func run(budget: UInt64) throws -> MachineStop {
        do {
            return try machine.run(budget: budget)
        } catch let error as X86Error {
            if case .singleStepAtCPL3 = error { throw SetupError.hostUnavailable(error.description) }
            throw error
        }
    }

    func applyBoundary(time: VirtualTime, events: [BoundaryEvent]) throws {
        try machine.applyBoundary(time: time, events: events)
    }

    func stateDigest() throws -> StateDigest { try machine.stateDigest() }
}
