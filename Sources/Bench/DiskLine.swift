import Foundation

/// One fitted line of the I/O experiment: an engine, a mode (run or pair), an epoch length.
struct DiskLine: Codable, Sendable {
    var series: String
    var mode: String
    var epochLength: UInt64?
    /// Marginal seconds per virtio request (4 KiB: 8 sectors), from the least-squares line.
    var secondsPerRequest: Double
    /// The line's intercept: start-up, boot, handshake.
    var fixedSeconds: Double
    /// 4096 bytes / seconds per request.
    var bytesPerSecond: Double
    /// Primary's channel bytes per request (pair only), from the largest and smallest runs.
    var channelBytesPerRequest: Double?
    /// (requests, fastest seconds) for each block count.
    var fastest: [[Double]]
    /// KVM (run only): `KVM_RUN` calls per request, from `lockstep run --stats-json` (exits
    /// are deterministic: the slope between the smallest and largest block counts).
    var exitsPerRequest: Double? = nil
    /// KVM (run only): interrupts injected per request.
    var interruptsPerRequest: Double? = nil
}
