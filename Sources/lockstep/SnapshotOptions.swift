import ArgumentParser
import Foundation
import Hypervisor
import Logging
import MachineCore

/// `lockstep run`'s snapshot options.
struct SnapshotOptions: ParsableArguments {
    @Option(name: .customLong("snapshot-at"),
            help: ArgumentHelp("Save a snapshot at the boundary after this many epochs (1 or more).", valueName: "epoch"))
    var snapshotAt: String?

    @Option(name: .customLong("snapshot-file"), help: ArgumentHelp("Where --snapshot-at saves the snapshot.", valueName: "file"))
    var snapshotFile: String?

    @Flag(name: .customLong("snapshot-stop"), help: "Stop after saving the snapshot (exit status 0).")
    var snapshotStop = false

    @Option(name: .customLong("restore"),
            help: ArgumentHelp("Continue the machine saved in this snapshot (same guest and options).", valueName: "file"))
    var restore: String?

    @Flag(name: .customLong("print-state-digest"),
          help: "At the end, print the machine's state digest on standard error.")
    var printStateDigest = false

    /// The checked options.
    func plan() throws -> SnapshotPlan {
        var save: SnapshotPlan.Save?
        if let snapshotAt {
            guard let epoch = UInt64(snapshotAt), epoch > 0 else {
                throw CLIFailure("--snapshot-at \(snapshotAt): expected a whole number of at least 1", status: ExitStatus.usage)
            }
            guard let snapshotFile, !snapshotFile.isEmpty else {
                throw CLIFailure("--snapshot-at needs --snapshot-file FILE", status: ExitStatus.usage)
            }
            save = SnapshotPlan.Save(epoch: epoch, path: snapshotFile, stop: snapshotStop)
        } else if snapshotFile != nil || snapshotStop {
            throw CLIFailure("--snapshot-file and --snapshot-stop need --snapshot-at EPOCH", status: ExitStatus.usage)
        }
        return SnapshotPlan(save: save, restorePath: restore)
    }
}

/// What a run does with snapshots.
struct SnapshotPlan: Sendable {
    /// A snapshot to save.
    struct Save: Sendable {
        let epoch: UInt64
        let path: String
        let stop: Bool
    }

    let save: Save?
    let restorePath: String?

    var stopsAfterSnapshot: Bool { save?.stop ?? false }

    /// Opens the snapshot to restore, if any, and checks that it fits this run's guest and
    /// options (before the machine is built).
    func openRestore(for setup: GuestSetup) throws -> SnapshotReader? {
        guard let restorePath else { return nil }
        let reader: SnapshotReader
        do { reader = try SnapshotFile.open(restorePath) } catch {
            throw CLIFailure(error.description, status: ExitStatus.badInput)
        }
        if let why = setup.snapshotIdentity.refusal(of: reader.identity) {
            throw CLIFailure("\(restorePath): the snapshot does not fit this run: \(why)", status: ExitStatus.badInput)
        }
        if let save, save.epoch <= reader.host.epoch {
            throw CLIFailure("--snapshot-at \(save.epoch): the restored run starts after epoch \(reader.host.epoch)", status: ExitStatus.usage)
        }
        return reader
    }

    /// Restores `reader`'s snapshot into the freshly built `machine` and hands the host its
    /// pending events; returns the epoch count to continue from.
    func restore(_ reader: SnapshotReader?, into machine: any Machine, host: HostIO) throws -> UInt64 {
        guard let reader, let restorePath else { return 0 }
        let start = DispatchTime.now()
        do { try reader.restore(into: machine) } catch let error as SnapshotError {
            throw CLIFailure(error.inFile(restorePath).description, status: ExitStatus.badInput)
        }
        host.carry(reader.host.eventsForFirstBoundary(outstanding: machine.outstandingBlockRequests))
        let ms = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
        note("restored \(restorePath) at epoch \(reader.host.epoch) in \(String(format: "%.1f", ms)) ms")
        return reader.host.epoch
    }

    /// The session's boundary observer that saves the snapshot, if one is asked for.
    func observer(machine: any Machine, host: HostIO, setup: GuestSetup) throws
        -> ((UInt64) throws -> BoundaryAction)?
    {
        guard let save else { return nil }
        let identity = setup.snapshotIdentity
        return { epoch in
            guard epoch == save.epoch else { return .proceed }
            let start = DispatchTime.now()
            let summary: MachineSnapshot.Summary
            do {
                summary = try SnapshotFile.save(machine, identity: identity,
                                                host: SnapshotHostState(epoch: epoch, pendingEvents: host.heldEvents),
                                                to: save.path)
            } catch let error as SnapshotError {
                throw CLIFailure(error)
            }
            let ms = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
            note("saved \(save.path) at epoch \(epoch): \(summary.pages) pages, \(summary.bytes) bytes, \(String(format: "%.1f", ms)) ms")
            return save.stop ? .pause : .proceed
        }
    }

    /// Says so when the guest stopped before the snapshot's epoch.
    func report(_ outcome: RunOutcome) {
        // A guest that stops in epoch N never reaches the boundary after it.
        if let save, outcome.stop != .epochEnd, outcome.epochs <= save.epoch {
            note("the guest stopped in epoch \(outcome.epochs), before the boundary after epoch \(save.epoch): no snapshot was saved")
        }
    }

    private func note(_ line: String) {
        Logger(label: "lockstep.snapshot").notice("\(line)")
    }
}
