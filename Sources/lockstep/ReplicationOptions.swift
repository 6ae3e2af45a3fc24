import ArgumentParser
import Foundation
import Hypervisor
import Replication

/// Options shared by `primary`, `backup` and `pair`.
struct ReplicationOptions: ParsableArguments {
    /// The most backups a primary takes (`--backups`).
    static let maximumBackups = 4

    @Option(help: ArgumentHelp("Failure detection: a peer silent this long is declared failed: 10ms to 10m; a bare number is in milliseconds.",
                               valueName: "duration"))
    var timeout: String = "1s"

    @Option(name: .customLong("stats-json"), help: "Write progress and final figures as JSON to this file.")
    var statsJSON: String?

    @Option(name: .customLong("max-lag"),
            help: "The primary waits when the backup is this far behind: a duration of guest time (50ms, 0.2s, 500us) or a number of epochs.")
    var maxLag: String = LagBound.defaultBound.description

    @Option(name: .customLong("digest-every"),
            help: "Compare full state digests every this many epochs (0: only at the end).")
    var digestEvery: UInt64 = 0

    @Flag(help: "Compare outputs: the primary releases an output only when the backup computed the same one (and, with --digest-every, the same state fingerprint); a mismatch withholds it and stops the pair (exit 78).")
    var compare = false

    @Option(name: .customLong("inject-fault"),
            help: "Flip one bit in one replica at an epoch boundary (a soft error): REPLICA:EPOCH:TARGET, REPLICA primary or backup, TARGET reg:NAME:BIT, mem:ADDRESS:BIT or sym:SYMBOL[+OFFSET]:BIT.")
    var injectFault: String?

    @OptionGroup var arbiter: ArbiterOptions

    @Option(name: .customLong("key-file"),
            help: "The pair's shared key (make one with lockstep keygen FILE); both replicas need the same file.")
    var keyFile: String?

    @Flag(help: "Run without a key: anyone who can reach the primary can join or pose as it (prints a warning).")
    var insecure = false

    @Flag(name: .customLong("no-status-line"), help: "Draw no status line on the terminal (messages still appear).")
    var noStatusLine = false

    /// Usage errors: ArgumentParser exits 64 (EX_USAGE) for a `ValidationError`, with one line.
    func validate() throws {
        _ = try timeoutDuration()
        if let statsJSON { try OptionValues.checkOutputFile(statsJSON, option: "--stats-json") }
        guard LagBound(parsing: maxLag) != nil else {
            throw ValidationError("--max-lag \(maxLag): expected a duration with its unit (50ms, 0.2s, 500us; at most 3600s) or a number of epochs (at least 1)")
        }
        if keyFile != nil && insecure { throw ValidationError("--key-file and --insecure cannot be combined") }
        if let injectFault {
            do { _ = try SoftError(parsing: injectFault) } catch { throw ValidationError(error.description) }
        }
    }

    /// `--timeout` (a bare number in milliseconds, its unit before durations took units).
    func timeoutDuration() throws -> Duration {
        try OptionValues.duration(timeout, option: "--timeout", bareUnit: .milliseconds(1),
                                  range: .milliseconds(10) ... .seconds(600))
    }

    /// `--timeout` in whole milliseconds, as the replication settings take it.
    var timeoutMilliseconds: Int {
        Int((try? timeoutDuration()).map { DurationParser.nanoseconds($0) / 1_000_000 } ?? 1000)
    }
    /// The soft error to inject (already checked by `validate`).
    var softError: SoftError? { injectFault.flatMap { try? SoftError(parsing: $0) } }

    /// The pair's key: from `--key-file`, or the public one with `--insecure` (after a warning).
    /// Without either, a replica refuses to start.
    func key(warn: (String) -> Void) throws -> ReplicationKey {
        if let keyFile {
            do { return try ReplicationKey(contentsOf: keyFile) } catch {
                throw CLIFailure(error.description, status: ExitStatus.usage)
            }
        }
        guard insecure else {
            throw CLIFailure("no key: give --key-file FILE (make one with lockstep keygen FILE), or --insecure to replicate without authentication",
                             status: ExitStatus.usage)
        }
        warn("warning: --insecure: the replication channel is not authenticated; anyone who can reach it can join or pose as a replica")
        return .insecure
    }

    /// The replication settings for `setup`. Checks at once that the arbiter is usable: a
    /// failover is the wrong moment to find out.
    func settings(for setup: GuestSetup) throws -> ReplicationSettings {
        let specification = arbiter.specification(for: setup)
        try specification.check()
        let directory = if case .directory(let directory) = specification { directory } else {
            URL(fileURLWithPath: setup.options.diskPath ?? setup.options.guestPath).deletingLastPathComponent().path
        }
        var settings = ReplicationSettings(arbiterDirectory: directory)
        settings.timeoutMilliseconds = timeoutMilliseconds
        settings.maximumLag = LagBound(parsing: maxLag) ?? .defaultBound
        settings.digestInterval = digestEvery
        settings.compare = compare
        return settings
    }

    /// The same options as arguments, for starting a replica process (without the key options:
    /// `pair` gives its replicas a key of its own).
    var arguments: [String] {
        ["--timeout", "\(timeoutMilliseconds)ms", "--max-lag", "\(maxLag)", "--digest-every", "\(digestEvery)"]
            + (compare ? ["--compare"] : []) + (injectFault.map { ["--inject-fault", $0] } ?? [])
            + arbiter.arguments
    }

    /// A fault-injection point given as `option` (N or N:PHASE).
    static func killPoint(_ text: String, option: String) throws -> KillPoint {
        guard let point = KillPoint(text) else {
            throw CLIFailure("\(option) \(text): expected N or N:PHASE", status: ExitStatus.usage)
        }
        return point
    }
}

/// Runs a replica on the machine's dedicated thread, closes the channel, writes the final
/// statistics, and ends the command with the guest's status (or the failure's one line).
func runReplicaCommand(_ role: ReplicaRole, connection: ReplicationConnection, otherBackups: [ReplicationConnection] = [],
                       arbiter: Arbiter, context: ReplicaContext, network: ReplicationNetwork) throws
{
    try runReplicaCommand(context: context, network: network, connections: [connection] + otherBackups) {
        try runReplica(role, connection: connection, otherBackups: otherBackups, arbiter: arbiter, context: context)
    }
}

/// `runReplicaCommand` for any way of running the replica (`body`, on the machine thread);
/// `connections` are closed once it ended.
func runReplicaCommand(context: ReplicaContext, network: ReplicationNetwork, connections: [ReplicationConnection],
                       _ body: @escaping @Sendable () throws -> ReplicaOutcome) throws
{
    let result = DedicatedThread.run(name: "lockstep-machine") { () -> Result<ReplicaOutcome, CLIFailure> in
        do {
            return .success(try body())
        } catch {
            return .failure(CLIFailure(error))
        }
    }
    for connection in connections { connection.close() }
    network.shutdown()
    switch result {
    case .success(let outcome):
        let code: Int32? = if case .exited(let s) = outcome.run.stop { s } else { nil }
        context.status.finish(state: outcome.finalState, status: code, finalDigest: outcome.digest.description,
                              primaryFinalDigest: outcome.primaryDigest?.description)
        throw try guestExit(outcome.run.stop)
    case .failure(let failure):
        context.status.finish(state: .failed, status: failure.status, finalDigest: nil)
        // Among several backups, the line says which one failed.
        if let name = context.status.name { throw CLIFailure("\(name): \(failure.message)", status: failure.status) }
        throw failure
    }
}
