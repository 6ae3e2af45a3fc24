import Foundation

/// What the caller of `Benchmark.run` gets back.
public struct BenchOutcome: Sendable {
    /// The summary (Markdown) to print.
    public var summary: String
    /// The files written.
    public var files: [String]
    /// Failed runs, with their commands.
    public var problems: [String]
    /// Parts not run, with the reason.
    public var skipped: [String]
}
