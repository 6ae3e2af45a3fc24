import MachineCore

/// Creates the engine's machine for a checked setup.
public enum MachineFactory {
    public static func make(_ setup: GuestSetup, environment: any GuestEnvironment) throws -> any Machine {
        throw SetupError.hostUnavailable("the \(setup.engine) engine is not built yet")
    }
}
