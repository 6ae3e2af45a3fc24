import ArgumentParser
import Logging

/// `--log-level` and `--quiet`, taken by every command.
struct LogOptions: ParsableArguments {
    @Option(name: .customLong("log-level"),
            help: ArgumentHelp("Lockstep's own messages on standard error: trace, debug, info, notice, warning, error or critical (default: info).",
                               valueName: "level"))
    var logLevel: String?

    @Flag(name: [.customShort("q"), .customLong("quiet")],
          help: "Only errors: the same as --log-level error, and no progress display.")
    var quiet = false

    func validate() throws {
        if quiet && logLevel != nil { throw ValidationError("--quiet and --log-level set the same thing: give one of them") }
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level \(logLevel): expected \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    /// The level of messages shown.
    var level: Logger.Level {
        if quiet { return .error }
        return logLevel.flatMap(Logger.Level.init(rawValue:)) ?? .info
    }

    /// The same options as arguments, for starting a replica process.
    var arguments: [String] {
        if quiet { return ["--quiet"] }
        return logLevel.map { ["--log-level", $0] } ?? []
    }
}

/// A command whose messages follow `--log-level` and `--quiet`.
protocol LoggingCommand {
    var logOptions: LogOptions { get }
}

extension RunCommand: LoggingCommand { var logOptions: LogOptions { guest.log } }
extension PrimaryCommand: LoggingCommand { var logOptions: LogOptions { guest.log } }
extension BackupCommand: LoggingCommand { var logOptions: LogOptions { guest.log } }
extension PairCommand: LoggingCommand { var logOptions: LogOptions { guest.log } }
extension DoctorCommand: LoggingCommand { var logOptions: LogOptions { log } }
extension BenchCommand: LoggingCommand { var logOptions: LogOptions { log } }
