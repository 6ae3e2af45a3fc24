import Foundation
import Logging
import MachineCore

/// An environment a session loop can drive: besides the guest's calls, it has the host's console
/// and disk, whose asynchronous inputs wait for the next epoch boundary.
public protocol SessionEnvironment: GuestEnvironment {
    var host: HostIO { get }
}

/// How a run ended.
public struct RunOutcome: Sendable, Equatable {
    public let stop: MachineStop
    public let epochs: UInt64
    public let progress: UInt64

    public init(stop: MachineStop, epochs: UInt64, progress: UInt64) {
        self.stop = stop
        self.epochs = epochs
        self.progress = progress
    }
}

/// What happens at a boundary.
public enum BoundaryDecision: Equatable, Sendable {
    /// A boundary at this virtual time.
    case at(VirtualTime)
    /// The guest idles with no timer armed, no disk request outstanding and no console input it
    /// can ever be given: it would wait forever.
    case waitsForever(WaitReason)

    /// Why an idle guest can never be woken.
    public enum WaitReason: Equatable, Sendable, CustomStringConvertible {
        /// Console input is closed and everything typed was delivered.
        case inputClosed
        /// The guest's UART takes no input (the guest never opened its receiver, or left it
        /// full), so no input can wake it.
        case receiverClosed

        /// The notice the run prints before it stops the guest.
        public var description: String {
            switch self {
            case .inputClosed: "the guest waits for console input, and input is closed: stopping"
            case .receiverClosed: "the guest waits for an interrupt, and nothing can raise one (no timer, no disk request, and its UART takes no input): stopping"
            }
        }
    }
}

/// Decides the virtual time of each epoch boundary, and how long to wait while the guest idles.
public struct BoundaryTiming: Sendable {
    public let mode: ClockMode
    public let host: HostClock

    public init(mode: ClockMode, host: HostClock = HostClock()) {
        self.mode = mode
        self.host = host
    }

    /// The time for a boundary where inputs are pending or the epoch simply ended.
    public func time(for machine: any Machine) -> VirtualTime {
        switch mode {
        case .deterministic: machine.clock.now
        case .host: max(machine.clock.now, host.now)
        }
    }

    /// The boundary after `stop`. When the guest idles with nothing to deliver, in deterministic
    /// mode virtual time warps to the next timer; in host mode this waits for it in real time;
    /// with no timer it waits for console input. Console input counts only when the guest's UART
    /// has room for it (`Machine.consoleInputRoom`): input it cannot take yet wakes nothing.
    public func decide(after stop: MachineStop, machine: any Machine,
                       environment: any SessionEnvironment) -> BoundaryDecision
    {
        let room = machine.consoleInputRoom
        let host = environment.host
        guard stop == .idle, !host.hasPendingEvents, !host.hasInput(room: room) else {
            return .at(time(for: machine))
        }
        if let deadline = machine.nextTimerDeadline {
            switch mode {
            case .deterministic:
                return .at(max(machine.clock.now, deadline))
            case .host:
                if self.host.now < deadline {
                    let wake = self.host.date(at: deadline)
                    if room > 0 { host.console.waitForInput(until: wake) } else { Thread.sleep(until: wake) }
                }
                return .at(time(for: machine))
            }
        }
        if machine.outstandingBlockRequests.isEmpty {
            if room == 0 { return .waitsForever(.receiverClosed) }
            if host.console.isExhausted { return .waitsForever(.inputClosed) }
        }
        host.console.waitForInput()
        return .at(time(for: machine))
    }
}

/// What a session does after a boundary, as its boundary observer decides.
public enum BoundaryAction: Sendable, Equatable {
    /// Run the next epoch.
    case proceed
    /// Stop here: `run` returns with `MachineStop.epochEnd`.
    case pause
}

/// An unreplicated run: the machine's epochs back to back, every boundary delivering what the
/// host console and disk produced. Runs on the calling thread, which must be a dedicated thread.
public final class LocalSession {
    public let machine: any Machine
    public let environment: any SessionEnvironment
    public let epochLength: UInt64
    public let timing: BoundaryTiming
    /// Called after each boundary is applied, with the number of boundaries passed: the place
    /// to take a snapshot (the machine is at a boundary; the host holds no undelivered
    /// completion). Returning `.pause` ends the run there.
    public var boundaryObserver: ((UInt64) throws -> BoundaryAction)?
    /// Called before each epoch runs, with its number (fault injection's seam).
    public var epochStarting: ((UInt64) throws -> Void)?
    private let logger = Logger(label: "lockstep.run")

    public init(machine: any Machine, environment: any SessionEnvironment, epochLength: UInt64,
                timing: BoundaryTiming)
    {
        self.machine = machine
        self.environment = environment
        self.epochLength = epochLength
        self.timing = timing
    }

    /// Runs until the guest exits or crashes (or the boundary observer pauses the session, with
    /// `MachineStop.epochEnd`); `epochs` counts boundaries already passed.
    public func run(epochs startEpochs: UInt64 = 0) throws -> RunOutcome {
        var epochs = startEpochs
        while true {
            try epochStarting?(epochs)
            let stop = try machine.run(budget: epochLength)
            epochs += 1
            switch stop {
            case .exited, .crashed:
                return RunOutcome(stop: stop, epochs: epochs, progress: machine.progress)
            case .epochEnd, .idle:
                break
            }
            switch timing.decide(after: stop, machine: machine, environment: environment) {
            case .at(let time):
                try machine.applyBoundary(time: time, events: environment.host.takeEvents(consoleRoom: machine.consoleInputRoom))
                if try boundaryObserver?(epochs) == .pause {
                    return RunOutcome(stop: .epochEnd, epochs: epochs, progress: machine.progress)
                }
            case .waitsForever(let reason):
                logger.notice("\(reason.description)")
                return RunOutcome(stop: .exited(status: 0), epochs: epochs, progress: machine.progress)
            }
        }
    }
}
