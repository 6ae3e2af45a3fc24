import Foundation

/// One timed run of a guest, as a row of the raw CSV files.
public struct Measurement: Codable, Sendable {
    public var experiment: String
    /// Which engine/clock/peer line this belongs to (e.g. "emulator, recovery counter").
    public var series: String
    /// "run", "pair", "qemu-tcg", ...
    public var mode: String
    public var epochLength: UInt64?
    /// The work parameter: cpu rounds, disk blocks, or 0.
    public var work: Int
    public var repetition: Int
    public var seconds: Double
    /// Seconds to the guest's first line of output (its marker).
    public var markerSeconds: Double?
    public var exitStatus: Int32
    /// Whether the run ended as expected with the expected output.
    public var ok: Bool
    public var channel: ChannelFigures?

    static let header = ["experiment", "series", "mode", "epoch_length", "work", "repetition", "seconds",
                         "first_output_seconds", "exit_status", "ok", "epochs", "bytes_sent", "bytes_received",
                         "replicating_seconds"]

    var row: [String] {
        [experiment, series, mode, epochLength.map(String.init) ?? "", "\(work)", "\(repetition)",
         String(format: "%.6f", seconds), markerSeconds.map { String(format: "%.6f", $0) } ?? "",
         "\(exitStatus)", ok ? "1" : "0",
         channel.map { "\($0.epochs)" } ?? "", channel.map { "\($0.bytesSent)" } ?? "",
         channel.map { "\($0.bytesReceived)" } ?? "", channel.map { String(format: "%.6f", $0.replicatingSeconds) } ?? ""]
    }

    /// Raw rows as a CSV table.
    static func table(_ measurements: [Measurement]) -> Table {
        var t = Table(header)
        for m in measurements { t.append(m.row) }
        return t
    }

    /// Seconds per unit of work from runs at two work values, one slope per repetition that
    /// has both (so a fixed cost such as process start and boot cancels out).
    static func slopes(_ measurements: [Measurement], low: Int, high: Int) -> [Double] {
        let ok = measurements.filter(\.ok)
        var result: [Double] = []
        for rep in Set(ok.map(\.repetition)).sorted() {
            guard let a = ok.first(where: { $0.repetition == rep && $0.work == low }),
                  let b = ok.first(where: { $0.repetition == rep && $0.work == high }), high != low
            else { continue }
            result.append((b.seconds - a.seconds) / Double(high - low))
        }
        return result
    }
}
