import MachineCore

extension EpochClock {
    /// The epoch length used when none is given: long enough that boundaries are cheap, short
    /// enough that interrupt latency stays small.
    public var defaultEpochLength: UInt64 {
        switch self {
        case .recoveryCounter: 16384
        case .singleStep: 4096
        case .emulationCounter: 32768
        case .performanceCounter: 100_000
        case .deterministicExits: 16
        }
    }
}
