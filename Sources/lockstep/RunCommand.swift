import ArgumentParser
import Foundation
import Hypervisor
import MachineCore

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a guest unreplicated: console on standard input and output, exit with the guest's status.",
        discussion: """
            Snapshots: --snapshot-at N --snapshot-file FILE saves the machine at the boundary \
            after epoch N and keeps running (--snapshot-stop: stops there, status 0). \
            --restore FILE continues a saved machine; the guest and options must be the ones \
            it was saved with.
            """)

    @OptionGroup var guest: GuestOptions
    @OptionGroup var snapshot: SnapshotOptions

    @Option(name: .customLong("stats-json"),
            help: ArgumentHelp("At the end, write the run's figures (epochs, progress, x86 exits) as JSON to this file.", valueName: "file"))
    var statsJSON: String?
    @Option(name: .customLong("inject-fault"),
            help: "Flip one bit at an epoch boundary (a soft error): primary:EPOCH:TARGET, TARGET reg:NAME:BIT, mem:ADDRESS:BIT or sym:SYMBOL[+OFFSET]:BIT.")
    var injectFault: String?

    func run() throws {
        let statsPath = statsJSON
        if let statsPath {
            // Found out now, not after the guest ran.
            let directory = URL(fileURLWithPath: statsPath).deletingLastPathComponent().path
            guard !statsPath.isEmpty, FileManager.default.isWritableFile(atPath: directory) else {
                throw CLIFailure("--stats-json \(statsPath): cannot create a file there", status: ExitStatus.usage)
            }
        }
        let setup = try guest.setup()
        let plan = try snapshot.plan()
        let printDigest = snapshot.printStateDigest
        let fault = try injectFault.map { text in do { return try SoftError(parsing: text) } catch { throw CLIFailure(error) } }
        if let fault, fault.replica != .primary {
            throw CLIFailure("--inject-fault \(fault): an unreplicated run has one replica, the primary", status: ExitStatus.usage)
        }
        let result = DedicatedThread.run(name: "lockstep-machine") { () -> Result<RunOutcome, CLIFailure> in
            do {
                let console = HostConsole(input: .standardInput, output: .standardOutput,
                                          bufferLimit: HostConsole.defaultBufferLimit)
                let environment = LocalEnvironment(host: HostIO(console: console, disk: try setup.openDisk()))
                let reader = try plan.openRestore(for: setup)
                let machine = try MachineFactory.make(setup, environment: environment)
                let firstEpoch = try plan.restore(reader, into: machine, host: environment.host)
                let session = LocalSession(machine: machine, environment: environment,
                                           epochLength: setup.epochLength,
                                           timing: BoundaryTiming(mode: setup.options.clockMode))
                session.boundaryObserver = try plan.observer(machine: machine, host: environment.host, setup: setup)
                if let fault {
                    try fault.check(machine: machine, image: setup.image)
                    session.epochStarting = { epoch in
                        guard epoch == fault.epoch else { return }
                        let line = try fault.inject(into: machine, image: setup.image)
                        FileHandle.standardError.write(Data("lockstep: \(line)\n".utf8))
                    }
                }
                let outcome = try session.run(epochs: firstEpoch)
                plan.report(outcome)
                if let statsPath {
                    do {
                        try RunFigures(outcome: outcome, machine: machine).write(to: statsPath)
                    } catch {
                        throw CLIFailure("--stats-json \(statsPath): cannot write it: \(error.localizedDescription)", status: ExitStatus.internalError)
                    }
                }
                if printDigest {
                    let digest = try machine.stateDigest()
                    FileHandle.standardError.write(Data("lockstep: final state digest \(digest) after \(outcome.epochs) epochs\n".utf8))
                }
                return .success(outcome)
            } catch {
                return .failure(CLIFailure(error))
            }
        }
        let outcome = try result.get()
        if outcome.stop == .epochEnd, plan.stopsAfterSnapshot { throw ExitCode.success }
        throw try guestExit(outcome.stop)
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
