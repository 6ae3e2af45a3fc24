/// The exit statuses of every `lockstep` command: one scheme in which the guest's own status and
/// Lockstep's own outcomes can never be mistaken for each other.
///
/// | status | meaning |
/// |---|---|
/// | 0 | the guest finished: a halt, a clean shutdown, a debug-exit write of 0, or a guest left waiting for console input after input closed |
/// | odd, 1-255 | the guest wrote `value` to its debug-exit register: `(value << 1) \| 1`, modulo 256, as QEMU's isa-debug-exit |
/// | even, 64-82 | Lockstep's own outcome (`Failure`), with one line on standard error |
///
/// The only departure from QEMU is a debug-exit write of 0, which QEMU reports as 1: Lockstep
/// reports it as 0, so that success is 0 on both architectures (the bundled x86 guests end
/// through the debug-exit port, the PA-RISC ones through the halt word). A command killed by a
/// signal dies of it (no status at all), so a shell shows 128 + the signal.
public enum ExitStatus {
    /// Lockstep's own outcomes. Their statuses are even, so no guest status is ever one of them.
    public enum Failure: Int32, CaseIterable, Sendable, Codable, CustomStringConvertible {
        /// Bad command-line usage or values (BSD sysexits EX_USAGE).
        case usage = 64
        /// The guest image, the disk image or a snapshot cannot be used (EX_NOINPUT).
        case unusableInput = 66
        /// The host cannot do what was asked: no usable /dev/kvm, no PMU for the requested
        /// epoch clock, a disk image in use, an arbiter or a peer that cannot be reached.
        case hostUnavailable = 68
        /// An internal error in Lockstep itself (EX_SOFTWARE).
        case internalError = 70
        /// The guest crashed: a triple fault, an interruption with no handler.
        case guestCrashed = 72
        /// Host I/O failed: a file Lockstep was asked to write cannot be written (EX_IOERR).
        case hostIO = 74
        /// Replication failed: a refused peer, a corrupt channel, divergence (EX_PROTOCOL).
        case replicationFailed = 76
        /// A replica lost the arbiter and stopped without producing output.
        case lostArbiter = 78
        /// Output comparison (`--compare`) found the replicas disagree and withheld the output.
        case outputMismatch = 80
        /// Output comparison with several backups outvoted this primary: it stepped down (its
        /// output withheld) so that a backup of the majority takes over.
        case outvoted = 82

        /// The name scripts read in `--stats-json` files (`outcome`).
        public var name: String {
            switch self {
            case .usage: "usage"
            case .unusableInput: "unusable-input"
            case .hostUnavailable: "host-unavailable"
            case .internalError: "internal-error"
            case .guestCrashed: "guest-crashed"
            case .hostIO: "host-io"
            case .replicationFailed: "replication-failed"
            case .lostArbiter: "lost-arbiter"
            case .outputMismatch: "output-mismatch"
            case .outvoted: "outvoted"
            }
        }

        public var description: String { name }
    }

    /// What a process exit status means under this scheme.
    public enum Meaning: Equatable, Sendable, CustomStringConvertible {
        /// The guest finished with status 0.
        case guestFinished
        /// The guest wrote this value (modulo 128) to its debug-exit register.
        case guestExited(value: Int32)
        /// One of Lockstep's own outcomes.
        case lockstep(Failure)
        /// A status no `lockstep` command exits with.
        case unknown(Int32)

        /// Decodes a process exit status.
        public init(status: Int32) {
            if status == 0 {
                self = .guestFinished
            } else if status & 1 == 1, (1...255).contains(status) {
                self = .guestExited(value: status >> 1)
            } else if let failure = Failure(rawValue: status) {
                self = .lockstep(failure)
            } else {
                self = .unknown(status)
            }
        }

        /// The name for `outcome` in `--stats-json` files.
        public var name: String {
            switch self {
            case .guestFinished, .guestExited: "guest-exited"
            case .lockstep(let failure): failure.name
            case .unknown: "unknown"
            }
        }

        public var description: String {
            switch self {
            case .guestFinished: "the guest finished (status 0)"
            case .guestExited(let value): "the guest exited with debug-exit value \(value)"
            case .lockstep(let failure): "Lockstep: \(failure.name)"
            case .unknown(let status): "unknown status \(status)"
            }
        }
    }

    /// The process exit status for a guest that stopped with `status`: the value written to
    /// its debug-exit register (0 for a halt or clean shutdown).
    public static func guest(_ status: Int32) -> Int32 {
        status == 0 ? 0 : ((status << 1) | 1) & 0xFF
    }

    /// Bad command-line usage or values.
    public static let usage = Failure.usage.rawValue
    /// The guest image, disk image or snapshot cannot be used.
    public static let badInput = Failure.unusableInput.rawValue
    /// The host cannot run this guest as asked.
    public static let unavailable = Failure.hostUnavailable.rawValue
    /// The guest crashed.
    public static let guestCrashed = Failure.guestCrashed.rawValue
    /// An internal error in Lockstep itself.
    public static let internalError = Failure.internalError.rawValue
    /// Host I/O failed.
    public static let hostIO = Failure.hostIO.rawValue
    /// Replication failed.
    public static let replicationFailed = Failure.replicationFailed.rawValue
    /// A replica lost the arbiter.
    public static let lostArbiter = Failure.lostArbiter.rawValue
    /// See `Failure.outputMismatch`.
    public static let outputMismatch = Failure.outputMismatch.rawValue
    /// See `Failure.outvoted`.
    public static let outvoted = Failure.outvoted.rawValue

    /// Whether a replica that exited with `status` stopped so that another replica goes on (it
    /// lost the arbiter, or the vote outvoted it): a failover, not the end of the run.
    public static func gaveWay(_ status: Int32) -> Bool { status == lostArbiter || status == outvoted }
}
