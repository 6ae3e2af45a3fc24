import Foundation

/// One timed run of a guest, as a row of the raw CSV files.
struct Measurement: Codable, Sendable {
    var experiment: String
    /// Which engine/clock/peer line this belongs to (e.g. "emulator, recovery counter").
    var series: String
    /// "run", "pair", "qemu-tcg", ...
    var mode: String
    var epochLength: UInt64?
    /// The work parameter: cpu rounds, disk blocks, or 0.
    var work: Int
    var repetition: Int
    var seconds: Double
    /// Seconds to the guest's first line of output (its marker).
    var markerSeconds: Double?
    /// CPU seconds of the run's process tree (both replicas for a pair).
    var cpuSeconds: Double?
    var exitStatus: Int32
    /// Whether the run ended as expected with the expected output.
    var ok: Bool
    var channel: ChannelFigures?

    static let header = ["experiment", "series", "mode", "epoch_length", "work", "repetition", "seconds",
                         "first_output_seconds", "cpu_seconds", "exit_status", "ok", "epochs", "bytes_sent", "bytes_received",
                         "replicating_seconds"]

    var row: [String] {
        [experiment, series, mode, epochLength.map(String.init) ?? "", "\(work)", "\(repetition)",
         String(format: "%.6f", seconds), markerSeconds.map { String(format: "%.6f", $0) } ?? "",
         cpuSeconds.map { String(format: "%.6f", $0) } ?? "",
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

    /// The estimate of seconds (or, with `cpu`, CPU seconds) per unit of work: the fastest run at
    /// each of the two work values (other work on the host only ever adds time), and the slope
    /// between them, so a fixed cost such as process start and boot cancels out. With equal work
    /// values, the fastest whole run divided by the work.
    static func bestSlope(_ measurements: [Measurement], low: Int, high: Int, cpu: Bool = false) -> Double? {
        let ok = measurements.filter(\.ok)
        func fastest(_ work: Int) -> Double? {
            ok.filter { $0.work == work }.compactMap { cpu ? $0.cpuSeconds : $0.seconds }.min()
        }
        guard let b = fastest(high), high > 0 else { return nil }
        if low == high { return b / Double(high) }
        guard let a = fastest(low) else { return nil }
        return (b - a) / Double(high - low)
    }

    /// Seconds per unit of work from runs at two work values, one slope per repetition that
    /// has both (their spread shows the noise).
    static func slopes(_ measurements: [Measurement], low: Int, high: Int) -> [Double] {
        let ok = measurements.filter(\.ok)
        if low == high { return ok.filter { $0.work == high }.map { $0.seconds / Double(max(high, 1)) } }
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
