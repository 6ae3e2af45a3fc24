import ArgumentParser
import Foundation
import Hypervisor
import Logging

@main
struct Lockstep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lockstep",
        abstract: "Hypervisor-based fault tolerance: run a guest, or a primary and a backup in lockstep.",
        discussion: """
            Exit status: 0 when the guest finished (a halt, a clean shutdown, a debug-exit write of 0); \
            (value << 1) | 1, an odd number, when the guest wrote value to its debug-exit register (QEMU's \
            isa-debug-exit convention); an even number from 64 to 82 for Lockstep's own outcome, with one line \
            on standard error: \(ExitStatus.Failure.allCases.map { "\($0.rawValue) \($0.name)" }.joined(separator: ", ")).
            """,
        version: version,
        subcommands: [RunCommand.self, PrimaryCommand.self, BackupCommand.self,
                      PairCommand.self, KeygenCommand.self, DoctorCommand.self, BenchCommand.self])

    /// This build's version, as `--version` prints it.
    static let version: String = {
        #if DEBUG
        "0.1.0 (debug build)"
        #else
        "0.1.0"
        #endif
    }()

    /// Parses and runs the command; a failure while running is one line on standard error and
    /// an exit status (see `ExitStatus`).
    static func main() {
        unblockTerminationSignals()
        // A closed standard output (`lockstep run ... | head -1`) is an error on write, which
        // the console reports once, never a death by SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            // Help and version requests print as usual; a usage error is one line.
            let code = exitCode(for: error)
            guard code != .success, fullMessage(for: error).hasPrefix("Error:") else { exit(withError: error) }
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            CLIFailure(usageLine(message.replacingOccurrences(of: "Error: ", with: "")), status: code.rawValue).exit()
        }
        let level = (command as? LoggingCommand)?.logOptions.level ?? .info
        LoggingSystem.bootstrap { label in ConsoleLogHandler(label: label, level: level) }
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

    /// ArgumentParser's message for a usage error, in Lockstep's words: lower case, and where to
    /// look (`lockstep COMMAND --help`).
    static func usageLine(_ message: String) -> String {
        let names = configuration.subcommands.map { $0.configuration.commandName ?? "" }
        let arguments = CommandLine.arguments.dropFirst()
        if let first = arguments.first, !first.hasPrefix("-"), !names.contains(first) {
            return "unknown command '\(first)': expected \(names.joined(separator: ", ")) (see lockstep --help)"
        }
        let command = arguments.first.flatMap { names.contains($0) ? "lockstep \($0)" : nil } ?? "lockstep"
        let text = message.prefix(1).lowercased() + message.dropFirst()
        // Option values are checked with one line of their own, which already says what to give.
        if text.hasPrefix("-") { return text }
        return "\(text) (see \(command) --help)"
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
