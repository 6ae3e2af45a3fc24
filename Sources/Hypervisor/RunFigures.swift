import Foundation
import MachineCore
import X86

/// The final figures of an unreplicated run, as `lockstep run --stats-json FILE` writes them.
public struct RunFigures: Codable, Sendable, Equatable {
    /// Epochs run.
    public var epochs: UInt64
    /// Units of the epoch clock executed.
    public var progress: UInt64
    /// The guest's exit status, if it exited.
    public var exitStatus: Int32?
    /// x86: what the KVM engine did (`KVM_RUN` calls, exits by kind, injected interrupts,
    /// deferred and coalesced writes); nil for the emulator.
    public var x86: X86Machine.Statistics?

    /// The figures of `machine` after a run that ended with `outcome`.
    public init(outcome: RunOutcome, machine: any Machine) {
        epochs = outcome.epochs
        progress = outcome.progress
        exitStatus = if case .exited(let status) = outcome.stop { status } else { nil }
        x86 = (machine as? X86Machine)?.statistics
    }

    /// Writes the figures as JSON (sorted keys) to `path`, through a temporary file renamed over it.
    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
