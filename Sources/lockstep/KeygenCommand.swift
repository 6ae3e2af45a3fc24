import ArgumentParser
import Foundation
import Hypervisor
import Replication

/// `lockstep keygen FILE`: a new replication key for a pair.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Make a new key for a replicated pair (mode 0600; an existing file is never overwritten).",
        discussion: """
            Give the same file to the primary and the backup with --key-file. Whoever holds it can \
            join the pair or pose as one of its replicas: copy it to the other host over a secure \
            channel (scp), and keep it readable only by the user that runs lockstep.
            """)

    @Argument(help: "Where to write the key.")
    var file: String

    func run() throws {
        do {
            try ReplicationKey.generate().write(to: file)
        } catch {
            throw CLIFailure(error.description, status: ExitStatus.usage)
        }
    }
}
