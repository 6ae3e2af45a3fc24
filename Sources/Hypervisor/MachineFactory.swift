import Devices
import MachineCore
import PARISC

/// Creates the engine's machine for a checked setup.
public enum MachineFactory {
    public static func make(_ setup: GuestSetup, environment: any GuestEnvironment) throws -> any Machine {
        switch setup.engine {
        case .emulator:
            let disk = setup.diskSectors.map { VirtioMMIOBlock.Configuration(capacity: $0) }
            let configuration = PARISCMachine.Configuration(
                memorySize: setup.options.memorySize, commandLine: setup.options.commandLine, disk: disk)
            return try PARISCMachine(image: setup.image, configuration: configuration, environment: environment)
        case .kvm:
            throw SetupError.hostUnavailable("the kvm engine is not built yet")
        }
    }
}
