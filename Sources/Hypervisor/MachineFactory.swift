import MachineCore
import PARISC
import X86

/// Creates the engine's machine for a checked setup.
public enum MachineFactory {
    /// Creates the machine on the calling thread, which must be the thread that will run it.
    public static func make(_ setup: GuestSetup, environment: any GuestEnvironment) throws -> any Machine {
        switch setup.engine {
        case .kvm:
            return try makeX86(setup, environment: environment)
        case .emulator:
            do {
                return try PARISCMachine(
                    image: setup.image, memorySize: setup.options.memorySize,
                    commandLine: setup.options.commandLine, diskSectors: setup.diskSectors,
                    engine: setup.options.emulator ?? .fastestAvailable, environment: environment)
            } catch {
                if case .image(let loader) = error { throw SetupError.image(loader) }
                throw error
            }
        }
    }

    /// The x86 machine on KVM. A host that cannot run it (no usable KVM device, no PMU for the
    /// `pmu` clock) is `SetupError.hostUnavailable`; other failures keep their X86Error.
    static func makeX86(_ setup: GuestSetup, environment: any GuestEnvironment) throws -> any Machine {
        do {
            return try X86Machine(
                image: setup.image, memorySize: setup.options.memorySize,
                commandLine: setup.options.commandLine, diskSectors: setup.diskSectors,
                epochClock: setup.epochClock, environment: environment,
                coalescing: setup.options.coalescedWrites)
        } catch {
            switch error {
            case .kvmUnavailable, .epochClockUnavailable:
                throw SetupError.hostUnavailable(error.description)
            case .image(let loader):
                throw SetupError.image(loader)
            case .kvm, .memory, .layout, .disassembler, .needsCPL0, .counterOvershoot:
                throw error
            }
        }
    }
}
