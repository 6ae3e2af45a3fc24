import ArgumentParser
import Foundation

@main
struct Lockstep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lockstep",
        abstract: "Hypervisor-based fault tolerance: run a guest, or a primary and a backup in lockstep.",
        subcommands: [RunCommand.self, PrimaryCommand.self, BackupCommand.self,
                      PairCommand.self, KeygenCommand.self, DoctorCommand.self, BenchCommand.self])

    /// Parses and runs the command; a failure while running is one line on standard error and
    /// an exit status (see `ExitStatus`).
    static func main() {
        unblockTerminationSignals()
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            // Help and version requests print as usual; a usage error is one line.
            let code = exitCode(for: error)
            guard code != .success, fullMessage(for: error).hasPrefix("Error:") else { exit(withError: error) }
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            CLIFailure(message.replacingOccurrences(of: "Error: ", with: ""), status: code.rawValue).exit()
        }
        do {
            try command.run()
        } catch let exit as ExitCode {
            Foundation.exit(exit.rawValue)
        } catch {
            // A command with subcommands asks for its help by throwing.
            if !fullMessage(for: error).hasPrefix("Error:") { exit(withError: error) }
            CLIFailure(error).exit()
        }
    }

    /// A parent may start this process with SIGINT, SIGTERM and SIGHUP blocked (test runners
    /// do, and children inherit the mask). They must work: `pair` forwards them to its replicas,
    /// and a replica must die of them. Threads started later inherit the main thread's mask.
    private static func unblockTerminationSignals() {
        var signals = sigset_t()
        sigemptyset(&signals)
        for number in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&signals, number) }
        pthread_sigmask(SIG_UNBLOCK, &signals, nil)
    }
}
