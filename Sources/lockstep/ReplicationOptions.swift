import ArgumentParser
import Foundation
import Hypervisor
import Replication

/// Options shared by `primary`, `backup` and `pair`.
struct ReplicationOptions: ParsableArguments {
    @Option(help: "Failure detection: a peer silent this many milliseconds is declared failed.")
    var timeout: Int = 1000

    @Option(name: .customLong("stats-json"), help: "Write progress and final figures as JSON to this file.")
    var statsJSON: String?

    @Option(name: .customLong("max-lag"), help: "The primary waits when the backup is this many epochs behind.")
    var maxLag: UInt64 = 256

    @Option(name: .customLong("digest-every"),
            help: "Compare full state digests every this many epochs (0: only at the end).")
    var digestEvery: UInt64 = 0

    @OptionGroup var arbiter: ArbiterOptions

    @Flag(name: .customLong("no-status-line"), help: .hidden)
    var noStatusLine = false

    /// Usage errors: ArgumentParser exits 64 (EX_USAGE) for a `ValidationError`, with one line.
    func validate() throws {
        guard (10...600_000).contains(timeout) else {
            throw ValidationError("--timeout \(timeout): expected 10 to 600000 milliseconds")
        }
        guard maxLag >= 1 else { throw ValidationError("--max-lag must be at least 1") }
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
        settings.timeoutMilliseconds = timeout
        settings.maximumLag = maxLag
        settings.digestInterval = digestEvery
        return settings
    }

    func identity(for setup: GuestSetup) -> ReplicaIdentity {
        ReplicaIdentity(imageBytes: setup.image.fileBytes, options: setup.options, engine: setup.engine,
                        epochClock: setup.epochClock, epochLength: setup.epochLength,
                        diskSectors: setup.diskSectors)
    }

    /// The same options as arguments, for starting a replica process.
    var arguments: [String] {
        ["--timeout", "\(timeout)", "--max-lag", "\(maxLag)", "--digest-every", "\(digestEvery)"]
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

/// What a replica's run produced, for its statistics file.
struct ReplicaRun: Sendable {
    let outcome: RunOutcome
    let finalState: String
    let digest: String
    let primaryDigest: String?
}

/// Runs a replica (`body`) on the machine's dedicated thread, closes the channel, writes the
/// final statistics, and ends the command with the guest's status (or the failure's one line).
func runReplica(status: ReplicationStatus, connection: PeerConnection, network: ReplicationNetwork,
                _ body: @escaping @Sendable () throws -> ReplicaRun) throws
{
    let result = DedicatedThread.run(name: "lockstep-machine") { () -> Result<ReplicaRun, CLIFailure> in
        do { return .success(try body()) } catch { return .failure(CLIFailure(error)) }
    }
    connection.close()
    network.shutdown()
    switch result {
    case .success(let run):
        let code: Int32? = if case .exited(let s) = run.outcome.stop { s } else { nil }
        status.finish(state: run.finalState, status: code, finalDigest: run.digest,
                      primaryFinalDigest: run.primaryDigest)
        throw try guestExit(run.outcome.stop)
    case .failure(let failure):
        status.finish(state: "failed", status: failure.status, finalDigest: nil)
        throw failure
    }
}
