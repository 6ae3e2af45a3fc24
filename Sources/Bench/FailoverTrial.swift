import Foundation

/// One failover trial: a primary and a backup started by the bench, the primary killed or
/// frozen, the backup's statistics file read for when it noticed and when it went live.
struct FailoverTrial: Codable, Sendable {
    var engine: String
    /// The bundled guest.
    var guest: String
    /// "SIGKILL" (the primary dies; its TCP connection closes) or "SIGSTOP" (it freezes and
    /// goes silent, as a hung host or a partition would).
    var failure: String
    var timeoutMilliseconds: Int
    var trial: Int
    /// From the signal to the backup entering "taking over" (failure detected).
    var detectionSeconds: Double?
    /// From the signal to the backup entering "live".
    var liveSeconds: Double?
    var backupStatus: Int32?
    var primaryStatus: Int32?
    var primarySignaled: Bool
    var ok: Bool
    var note: String
}
