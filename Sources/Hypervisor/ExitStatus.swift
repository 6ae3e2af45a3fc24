/// The exit statuses of the `lockstep` command other than the guest's own.
///
/// A guest that stops through its debug-exit register makes `lockstep` exit with the value it
/// wrote (modulo 256); a halt or clean shutdown exits 0. Lockstep's own conditions use the
/// BSD sysexits numbers, and each is accompanied by one line on standard error.
public enum ExitStatus {
    /// Bad command-line usage or values (EX_USAGE).
    public static let usage: Int32 = 64
    /// The guest image or disk image cannot be used (EX_DATAERR).
    public static let badInput: Int32 = 65
    /// The host cannot run this guest: no /dev/kvm, no PMU for the requested epoch clock ... (EX_UNAVAILABLE).
    public static let unavailable: Int32 = 69
    /// The guest crashed: a triple fault, an interruption with no handler (EX_SOFTWARE).
    public static let guestCrashed: Int32 = 70
    /// An internal error in Lockstep itself, or host I/O failure (EX_OSERR).
    public static let internalError: Int32 = 71
    /// Replication failed: a refused peer, a corrupt channel, divergence (EX_PROTOCOL).
    public static let replicationFailed: Int32 = 76
    /// A replica lost the arbiter and stopped without producing output (EX_NOPERM).
    public static let lostArbiter: Int32 = 77
    /// Output comparison (`--compare`) found the replicas disagree and withheld the output: a
    /// soft error in one of them (78, next to the replication statuses).
    public static let outputMismatch: Int32 = 78

    /// The process exit status for a guest that stopped with `status`.
    public static func guest(_ status: Int32) -> Int32 { status & 0xFF }
}
