import ArgumentParser
import Foundation
import Hypervisor
import MachineCore

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a guest unreplicated: console on standard input and output, exit with the guest's status.")

    @OptionGroup var guest: GuestOptions

    func run() throws {
        let setup = try guest.setup()
        let result = DedicatedThread.run(name: "lockstep-machine") { () -> Result<RunOutcome, CLIFailure> in
            do {
                let console = HostConsole(input: .standardInput, output: .standardOutput)
                let environment = LocalEnvironment(host: HostIO(console: console, disk: try setup.openDisk()))
                let machine = try MachineFactory.make(setup, environment: environment)
                let session = LocalSession(machine: machine, environment: environment,
                                           epochLength: setup.epochLength,
                                           timing: BoundaryTiming(mode: setup.options.clockMode))
                return .success(try session.run())
            } catch {
                return .failure(CLIFailure(error))
            }
        }
        throw try guestExit(result.get().stop)
    }
}

/// The exit for a guest that stopped: its own status, or a crash line.
func guestExit(_ stop: MachineStop) throws -> ExitCode {
    switch stop {
    case .exited(let status):
        return ExitCode(ExitStatus.guest(status))
    case .crashed(let reason):
        throw CLIFailure("guest crashed: \(reason)", status: ExitStatus.guestCrashed)
    case .epochEnd, .idle:
        // A session returns only when the guest stopped; anything else is Lockstep's bug.
        throw CLIFailure("internal error: the run ended while the guest was still running (\(stop))", status: ExitStatus.internalError)
    }
}
