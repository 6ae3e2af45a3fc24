import ArgumentParser
import Foundation
import Hypervisor
import Replication

/// `--arbiter` and its alias `--arbiter-dir`, shared by `primary`, `backup` and `pair`.
struct ArbiterOptions: ParsableArguments {
    @Option(help: "The pair's arbiter: file:DIR (a directory both replicas see) or etcd://HOST:PORT[/PREFIX] (default: file: next to the disk image, or the guest).")
    var arbiter: String?

    @Option(name: .customLong("arbiter-dir"), help: "The same as --arbiter file:DIR.")
    var arbiterDirectory: String?

    /// Usage errors: ArgumentParser exits 64 (EX_USAGE) for a `ValidationError`, with one line.
    func validate() throws {
        if arbiter != nil && arbiterDirectory != nil {
            throw ValidationError("--arbiter and --arbiter-dir name the same thing: give one of them")
        }
        if let arbiter {
            do { _ = try ArbiterSpecification(parsing: arbiter) } catch { throw ValidationError(error.description) }
        }
        if arbiterDirectory == "" { throw ValidationError("--arbiter-dir needs a directory") }
    }

    /// The arbiter for `setup`: as given, or a directory next to the disk image (or the guest).
    func specification(for setup: GuestSetup) -> ArbiterSpecification {
        if let arbiter, let specification = try? ArbiterSpecification(parsing: arbiter) { return specification }
        if let arbiterDirectory { return .directory(arbiterDirectory) }
        let anchor = setup.options.diskPath ?? setup.options.guestPath
        return .directory(URL(fileURLWithPath: anchor).deletingLastPathComponent().path)
    }

    /// The same options as arguments, for starting a replica process.
    var arguments: [String] {
        if let arbiter { return ["--arbiter", arbiter] }
        if let arbiterDirectory { return ["--arbiter-dir", arbiterDirectory] }
        return []
    }
}

extension Arbiter {
    /// The arbiter a replica command uses: `specification`'s, for `session`, telling `status`
    /// what it waits for.
    convenience init(_ specification: ArbiterSpecification, session: [UInt8], status: ReplicationStatus) {
        self.init(specification, session: session) { wait in
            status.message(wait?.description ?? "the arbiter answered: waiting over", level: .warning)
        }
    }
}
